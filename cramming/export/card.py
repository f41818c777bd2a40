"""The model card (README.md) of an exported run: what was trained, on what, for how long, how it
scored, and the hashes that tie the folder to its run.

Every figure comes from the run's own records (summary.json, the data manifest, eval/*.json);
a field the run did not record is shown as "not recorded", never guessed.
"""

from __future__ import annotations

from pathlib import Path

from crambench.units import format_duration

UNKNOWN = "not recorded"
# GLUE tasks in the cramming paper's table order, with the metrics each reports.
GLUE_ROWS = (("mnli", "MNLI"), ("qqp", "QQP"), ("qnli", "QNLI"), ("sst2", "SST-2"),
             ("cola", "CoLA"), ("stsb", "STS-B"), ("mrpc", "MRPC"), ("rte", "RTE"),
             ("wnli", "WNLI"))


def model_card(*, out: Path, summary: dict, results: dict, cfg, model_sha256: str,
               tokenizer_sha256: str, manifest: dict, weights: dict | None = None) -> str:
    """Markdown with Hub metadata (YAML front matter) for `transformers` users; `out` is the
    folder as the user named it (the examples load it by that path). `weights`: how the
    folder holds the run's weights (`cramming.export.job.weights_record`); None or kind
    "as trained": the run's file itself."""
    weights = weights or {"kind": "as trained", "sha256": model_sha256}
    name = out.resolve().name
    parts = [
        "---",
        "library_name: transformers",
        "pipeline_tag: fill-mask",
        "tags:\n- cramming-bench\n- crammed-bert\n- masked-lm",
        "---",
        "",
        f"# {name}: a crammed BERT",
        "",
        f"A BERT pretrained from scratch by cramming-bench within a wall-clock budget of "
        f"{_duration(summary.get('budget_s'))} ({_training_line(summary)}), in the recipe of "
        '"Cramming: Training a Language Model on a Single GPU in One Day" (Geiping & Goldstein, '
        "2022).",
        "",
        "## Use",
        "",
        "The modeling code ships in this folder (the architecture is cramming-bench's "
        "`cramming/model.py`), so transformers needs `trust_remote_code=True`. Load the folder "
        "by its path, or by its Hub id once uploaded:",
        "",
        "```python",
        "from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification, "
        "AutoTokenizer, pipeline",
        "",
        f'fill = pipeline("fill-mask", model="{out}", trust_remote_code=True)',
        'fill("the meaning of life is [MASK].")',
        f'model = AutoModelForSequenceClassification.from_pretrained("{out}", num_labels=2, '
        "trust_remote_code=True)",
        "```",
        "",
        "The tokenizer lowercases and folds text to ASCII, as the pretraining corpus was. The "
        "model has no segment embedding, so it takes no `token_type_ids`; sentence pairs are "
        "`[CLS] A [SEP] B [SEP]`. The classification head "
        f"({POOLING_WORDS[cfg.pooler]} -> dense -> tanh -> dropout -> classifier) starts "
        "fresh; fine-tuning dropout is 0.1 (`config.dropout`), as in the benchmark's GLUE "
        "protocol.",
        "",
        "## Training",
        "",
        "| | |",
        "|---|---|",
        *_rows(_training_fields(summary, cfg, manifest)),
        "",
        "## Hashes",
        "",
        "Recompute them to check that this folder is the run's model "
        "(`sha256sum model.safetensors`).",
        "",
        "| | sha256 |",
        "|---|---|",
        f"| data (`data_sha256`) | `{summary.get('data_sha256') or UNKNOWN}` |",
        f"| recipe (`config_sha256`) | `{summary.get('config_sha256') or UNKNOWN}` |",
        *_weight_hashes(weights, model_sha256),
        f"| tokenizer (the run's `final/tokenizer.json`) | `{tokenizer_sha256}` |",
        "",
    ]
    parts += _weights(weights, model_sha256)
    if summary.get("lineage"):
        parts += _lineage(summary["lineage"])
    if summary.get("compression"):
        parts += _compression(summary["compression"])
    parts += _evaluation(results)
    parts += ["cramming-bench is the benchmark harness that trained and scored this model; "
              "`cram_run.json` holds the run's summary and results files as it recorded them.",
              ""]
    return "\n".join(parts)


def _training_line(summary: dict) -> str:
    if summary.get("train_elapsed_s") is None:
        return "training time not recorded"
    return (f"{_duration(summary['train_elapsed_s'])} used, stopped by "
            f"{summary.get('stopped_by', UNKNOWN)}")


def _training_fields(summary: dict, cfg, manifest: dict) -> list[tuple[str, str]]:
    hardware = summary.get("hardware") or {}
    device = hardware.get("gpu_name") or hardware.get("cpu_name") or hardware.get("device")
    if hardware.get("gpu_count", 0) and hardware["gpu_count"] > 1:
        device = f"{hardware['gpu_count']} x {device}"
    software = summary.get("software") or {}
    sources = ", ".join(source.get("name", "?") for source in manifest.get("sources", []))
    return [
        ("budget", _duration(summary.get("budget_s"))),
        ("training time", _duration(summary.get("train_elapsed_s"))),
        ("stopped by", _value(summary.get("stopped_by"))),
        ("hardware", _value(device)),
        ("precision", _value(summary.get("precision"))),
        ("software", ", ".join(f"{k} {v}" for k, v in software.items() if v) or UNKNOWN),
        ("preset", _value(summary.get("preset"))),
        ("shape", f"{cfg.layers} layers, hidden {cfg.hidden}, {cfg.heads} heads, "
                  f"feed-forward {cfg.ffn_hidden}, vocabulary {cfg.vocab_size}, "
                  f"length {cfg.seq_len}"),
        ("components", components(cfg)),
        ("parameters", _count(summary.get("params"))),
        ("optimizer steps", _count(summary.get("steps"))),
        ("tokens seen", _count(summary.get("tokens_seen"))),
        ("final train / val MLM loss", f"{_value(summary.get('train_loss'))} / "
                                       f"{_value(summary.get('val_loss'))}"),
        ("data sources", sources or UNKNOWN),
        ("code version", _value(summary.get("code_version"))),
        ("finished", _value(summary.get("finished_utc"))),
    ]


def _weight_hashes(weights: dict, model_sha256: str) -> list[str]:
    if weights["kind"] == "as trained":
        return [f"| weights (`model.safetensors`, the run's `final/model.safetensors`) | "
                f"`{model_sha256}` |"]
    return [f"| weights in this folder (`model.safetensors`, {weights['kind']}) | "
            f"`{weights['sha256']}` |",
            f"| the run's weights (`final/model.safetensors`, `model_sha256`) | "
            f"`{model_sha256}` |"]


def _weights(weights: dict, model_sha256: str) -> list[str]:
    """How this folder holds a compressed run's weights, which transformers could not read as
    the run stores them."""
    if weights["kind"] == "as trained":
        return []
    spec = weights.get("spec") or {}
    parts = ["## Weights in this folder", ""]
    run_file = (f"the run's `final/model.safetensors` ({weights['run_file_bytes']:,} bytes, "
                f"sha256 `{model_sha256[:12]}...`)")
    sparsity = weights.get("sparsity") or {}
    if sparsity:
        zeros, entries = sparsity["zeros"], sparsity["entries"]
        parts.append(
            f"The run is pruned (`{spec.get('method', '?')}`) and stores its encoder sparsely, "
            f"in cramming-bench's compact form (`cram-compact/1`: masks and kept values), which "
            f"transformers does not read. `model.safetensors` here holds the same weights as "
            f"dense fp32 tensors with the pruned entries as zeros: {zeros:,} of the {entries:,} "
            f"entries of the pruned weights (the encoder's linear layers) are zero, sparsity "
            f"{zeros / entries:.4f}. The zeros are not enforced by the architecture: "
            f"fine-tuning this folder with transformers moves them unless you mask them.")
        parts.append("")
    quantization = spec.get("quantization")
    if weights["kind"] == "dequantized" and quantization:
        parts.append(
            f"The run is quantized to {quantization['bits']} bits "
            f"(`{spec.get('method', '?')}`: {quantization['library']} "
            f"`{quantization['config']}`, {quantization['mapping']}, "
            f"{quantization['granularity']}), applied to {quantization['applies_to']}. "
            "`model.safetensors` here holds the pretrained encoder quantized the same way and "
            "dequantized to fp32 (each value is its integer code times its scale): every "
            "nn.Linear and nn.Embedding weight of the encoder, the token embedding (and so the "
            "tied MLM decoder) included; the MLM head's own dense layer, which no task model "
            "has, stays fp32. transformers computes in fp32 with these values; the benchmark "
            "fine-tunes the fp32 weights of "
            f"{run_file} and quantizes each task model afterwards.")
        parts.append("")
    parts += [f"Built from {run_file}; the folder was loaded back with transformers and its "
              "MLM logits matched the run's model "
              + ("with its encoder quantized by torchao " if weights["kind"] == "dequantized"
                 else "") + "before it was written.", ""]
    return parts


def _compression(record: dict) -> list[str]:
    """The run's compression record (summary.json), as `cram compress` wrote it."""
    quantization = record.get("quantization") or {}
    fields = [
        ("method", f"`{record.get('method')}`"),
        ("bits", _value(record.get("bits"))),
        ("quantization", ", ".join(f"{k} {v}" for k, v in quantization.items()) or "none"),
        ("sparsity (target / reached)", f"{_value(record.get('sparsity_target'))} / "
                                        f"{_value(record.get('sparsity'))}"),
        ("prunable parameters", _count(record.get("prunable_params"))),
        ("parameters / kept", f"{_count(record.get('params'))} / "
                              f"{_count(record.get('nonzero_params'))}"),
        ("stored size of final/", f"{_count(record.get('stored_bytes'))} bytes"),
        ("recovery training", f"{_duration(record.get('train_elapsed_s'))} of "
                              f"{_duration(record.get('budget_s'))}, "
                              f"{len(record.get('rounds') or [])} rounds"),
    ]
    return ["## Compression", "", "What `cram compress` did to the parent run (the run's "
            "`compression` record).", "", "| | |", "|---|---|", *_rows(fields), ""]


def _lineage(lineage: dict) -> list[str]:
    """A compressed or extracted run: the stage that made it and the parent it came from."""
    fields = [(key.replace("_", " "), f"`{value}`" if key.endswith("sha256") else
               _duration(value) if key.endswith("_s") else _value(value))
              for key, value in lineage.items()]
    return ["## Lineage", "",
            f"This model was derived from another run by the `{lineage.get('stage', '?')}` "
            "stage; its budget and training time cover all training, the parent's included.",
            "", "| | |", "|---|---|", *_rows(fields), ""]


def _evaluation(results: dict) -> list[str]:
    if not results:
        return ["## Evaluation", "", "The run had not been scored when it was exported "
                "(`cram eval glue --run RUN`).", ""]
    parts = ["## Evaluation", ""]
    for relative, record in results.items():
        protocol = record.get("protocol") or {}
        suite = record.get("suite", "?")
        what = "GLUE dev sets" if suite == "glue" else f"{suite} tasks (not GLUE)"
        seeds = protocol.get("seeds") or [protocol.get("seed", "?")]
        seed_text = (f"seed {seeds[0]}" if len(seeds) == 1 else
                     f"median over seeds {', '.join(map(str, seeds))}")
        parts += [f"{what}, fine-tuned with the `{protocol.get('name', '?')}` protocol "
                  f"({seed_text}), from `{relative}` of the run. Scores are percent points.",
                  "", "| task | metric | score |", "|---|---|---|"]
        tasks = record.get("tasks") or {}
        order = [key for key, _ in GLUE_ROWS if key in tasks] + \
                [key for key in tasks if key not in dict(GLUE_ROWS)]
        labels = dict(GLUE_ROWS)
        for task in order:
            for metric, value in (tasks[task].get("metrics") or {}).items():
                parts.append(f"| {labels.get(task, task)} | {metric} | {value:.1f} |")
        for key in ("avg_cramming", "avg_glue"):
            average = record.get(key) or {}
            if average.get("value") is not None:
                parts.append(f"| {key} | {average.get('label', '')} | {average['value']:.2f} |")
        parts.append("")
    return parts


POOLING_WORDS = {"first": "first token", "mean": "mean of the tokens"}


def components(cfg) -> str:
    """The model's named components in one line (ModelConfig's fields)."""
    ffn = f"{cfg.activation.upper()} {'GLU' if cfg.ffn == 'glu' else 'MLP'}"
    biases = [name for name, on in (("qkv", cfg.qkv_bias), ("linear", cfg.linear_bias)) if on]
    head = [name for name, on in (("transform", cfg.head_transform),
                                  ("decoder bias", cfg.decoder_bias)) if on]
    return (f"{cfg.norm_scheme}-norm {cfg.norm}, {ffn}, {cfg.pos_embedding} positions, "
            f"biases: {', '.join(biases) or 'none'}, MLM head: {', '.join(head) or 'decoder only'}"
            f"{'' if cfg.tie_weights else ' (untied)'}, pooling: {POOLING_WORDS[cfg.pooler]}")


def _rows(fields: list[tuple[str, str]]) -> list[str]:
    return [f"| {key} | {value} |" for key, value in fields]


def _duration(seconds) -> str:
    return format_duration(seconds, unknown=UNKNOWN)


def _value(value) -> str:
    return UNKNOWN if value is None else str(value)


def _count(value) -> str:
    return UNKNOWN if value is None else f"{value:,}"
