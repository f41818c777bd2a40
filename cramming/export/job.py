"""`export_run`: a run's final model as a Hugging Face `transformers` folder.

    OUT/config.json                    CrammedBertConfig, with the auto_map of the classes below
    OUT/configuration_crammed_bert.py  the config class
    OUT/modeling_crammed_bert.py       AutoModel, ...ForMaskedLM, ...ForSequenceClassification
    OUT/cramming_model.py              cramming/model.py, generated from its source at export
    OUT/model.safetensors              the run's final/model.safetensors, byte for byte; for a
                                       compressed run, its weights as dense tensors (pruned
                                       entries as zeros, quantized ones dequantized)
    OUT/tokenizer.json, tokenizer_config.json   a fast tokenizer (the run's WordPiece, BPE, Unigram)
    OUT/README.md                      the model card: budget, hardware, data, hashes, results
    OUT/cram_run.json                  the run's summary and results files, as recorded

The modeling code ships in the folder, as the Hub expects of a model that transformers does not
define itself, so loading needs `trust_remote_code=True`. The architecture is shipped as the
source of `cramming/model.py` itself, so the exported model cannot drift from the one trained.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
from pathlib import Path

from crambench.contracts import read_contract, read_json_object, sha256_file
from crambench.errors import UserError
from crambench.files import atomic_dir, refuse_output_over_inputs, write_json_atomic
from cramming.export.card import model_card
from cramming.export.tensors import exported_weights

REMOTE_CODE = Path(__file__).parent / "remote_code"
CONFIG_MODULE, MODELING_MODULE = "configuration_crammed_bert", "modeling_crammed_bert"
MODEL_MODULE = "cramming_model"  # the shipped copy of cramming/model.py
# model.py's one import from the rest of the package, and what it becomes in the folder.
CONFIG_IMPORT = "from cramming.config import ModelConfig\n"
SHIPPED_CONFIG_IMPORT = f"from .{CONFIG_MODULE} import CrammedBertConfig as ModelConfig\n"
AUTO_MAP = {
    "AutoConfig": f"{CONFIG_MODULE}.CrammedBertConfig",
    "AutoModel": f"{MODELING_MODULE}.CrammedBertModel",
    "AutoModelForMaskedLM": f"{MODELING_MODULE}.CrammedBertForMaskedLM",
    "AutoModelForSequenceClassification": f"{MODELING_MODULE}.CrammedBertForSequenceClassification",
}
SPECIAL_TOKENS = {"unk_token": "[UNK]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                  "sep_token": "[SEP]", "mask_token": "[MASK]"}
RUN_FORMAT = "cram-run/1"
RESULTS_FILES = ("eval/glue.json", "eval/probe.json")
# Exported logits must equal the run model's; on CPU in fp32 they differ by ~1e-7 (summation
# order inside attention kernels), a wrong weight or layer moves them by far more.
CHECK_TOLERANCE = 1e-5
INSTALL_HINT = "pip install 'cramming-bench[hf]'"


def export_run(run, out, *, force: bool = False) -> dict:
    """Write the transformers folder `out` for run dir `run`; return what the CLI reports:
    {"out", "params", "vocab_size", "model_sha256" (the run's), "weights" (how the folder holds
    them: `cramming.export.tensors`), "weights_sha256" (the folder's model.safetensors),
    "sparsity" ({"zeros", "entries"} of the pruned weights, {} if none), "max_abs_diff"}.

    Raises UserError when the run has no final model (or one that does not fit its config),
    when `out` exists without `force`, or when transformers is not installed. Nothing is left
    at `out` unless the whole folder was written and loaded back by transformers."""
    run, out = Path(run), Path(out)
    final = final_model_dir(run)
    from cramming.weights import built_by_plugin

    if built_by_plugin(final):
        raise UserError(f"{final}/model_config.json: the run's plug-in built this model, and "
                        "an export ships cramming/model.py only; load the run with its "
                        "code/plugin.py instead")
    check_out(out, force)
    refuse_output_over_inputs(out, run=run)
    summary = read_summary(run)
    model_sha256 = sha256_file(final / "model.safetensors")
    if summary["model_sha256"] != model_sha256:
        raise UserError(f"{final}/model.safetensors does not match the model_sha256 in "
                        f"{run}/summary.json: the run dir was changed after training")
    weights = exported_weights(final)
    model, cfg = weights.model, weights.cfg
    _require_transformers()
    results = {name: read_json_object(run / name) for name in RESULTS_FILES
               if (run / name).is_file()}
    with atomic_dir(out, force=force) as tmp:
        write_remote_code(tmp)
        write_config(tmp, cfg)
        if weights.state is None:
            shutil.copyfile(final / "model.safetensors", tmp / "model.safetensors")
        else:
            from safetensors.torch import save

            (tmp / "model.safetensors").write_bytes(save(weights.state,
                                                         metadata={"format": "pt"}))
        weights_sha256 = sha256_file(tmp / "model.safetensors")
        write_tokenizer(tmp, final / "tokenizer.json", cfg.seq_len)
        write_json_atomic(tmp / "cram_run.json", {"summary": summary, "results": results})
        (tmp / "README.md").write_text(model_card(
            out=out, summary=summary, results=results, cfg=cfg, model_sha256=model_sha256,
            tokenizer_sha256=sha256_file(final / "tokenizer.json"),
            manifest=_data_manifest(summary),
            weights=weights_record(weights, weights_sha256, final)))
        max_abs_diff = check_export(tmp, weights.reference)
    return {"out": out, "params": sum(p.numel() for p in model.parameters()),
            "vocab_size": cfg.vocab_size, "model_sha256": model_sha256,
            "weights": weights.kind, "weights_sha256": weights_sha256,
            "sparsity": weights.sparsity, "max_abs_diff": max_abs_diff}


def weights_record(weights, sha256: str, final: Path) -> dict:
    """What the model card says of the folder's weights and the run's file they come from."""
    return {"kind": weights.kind, "sha256": sha256, "spec": weights.spec,
            "sparsity": weights.sparsity,
            "run_file_bytes": (final / "model.safetensors").stat().st_size}


def final_model_dir(run: Path) -> Path:
    if not run.is_dir():
        raise UserError(f"run dir {run} {'is not a folder' if run.exists() else 'does not exist'}")
    final = run / "final"
    for name in ("model.safetensors", "model_config.json", "tokenizer.json"):
        if not (final / name).is_file():
            raise UserError(f"run dir {run} has no final model (final/{name} is missing; "
                            "is pretraining finished?)")
    return final


def read_summary(run: Path) -> dict:
    """The run's summary.json: the card's budget, hardware, data and hashes come from it."""
    path = run / "summary.json"
    if not path.is_file():
        raise UserError(f"run dir {run} has no summary.json (is pretraining finished?)")
    summary = read_contract(path, RUN_FORMAT)
    if not summary.get("model_sha256"):
        raise UserError(f"{path} records no model_sha256 (an interrupted run has no final "
                        "model to export)")
    return summary


def check_out(out: Path, force: bool) -> None:
    """`out` must be new, or (with --force) an earlier export or an empty folder: --force never
    deletes a folder of something else."""
    if not out.exists():
        return
    if not force:
        raise UserError(f"{out} exists; pass --force to replace it")
    if not out.is_dir():
        raise UserError(f"{out} exists and is not a folder; choose another --out")
    if any(out.iterdir()) and not (out / f"{MODELING_MODULE}.py").is_file():
        raise UserError(f"{out} is not a folder written by `cram export`; choose another --out")


def shipped_model_source() -> str:
    """cramming/model.py's source with its config import pointed at the shipped config class
    (the class has the same field names). Fails if model.py imports anything else of the
    package: the folder must run without cramming-bench installed."""
    import cramming.model

    source = Path(cramming.model.__file__).read_text()
    if source.count(CONFIG_IMPORT) != 1:
        raise RuntimeError(f"cramming/model.py must import its config exactly as "
                           f"{CONFIG_IMPORT.strip()!r} for the export to ship it")
    shipped = source.replace(CONFIG_IMPORT, SHIPPED_CONFIG_IMPORT)
    local = [line for line in shipped.splitlines()
             if line.startswith(("from cramming", "import cramming", "from data_prep"))]
    if local:
        raise RuntimeError(f"cramming/model.py imports {local[0]!r}: the exported model must "
                           "not need cramming-bench")
    return ("# Generated by `cram export` from cramming-bench's cramming/model.py; only the\n"
            "# config import differs. Edit cramming/model.py, not this file.\n" + shipped)


def write_remote_code(folder: Path) -> None:
    for module in (CONFIG_MODULE, MODELING_MODULE):
        shutil.copyfile(REMOTE_CODE / f"{module}.py", folder / f"{module}.py")
    (folder / f"{MODEL_MODULE}.py").write_text(shipped_model_source())


def write_config(folder: Path, cfg) -> None:
    """config.json written by the shipped config class itself (transformers' own layout)."""
    spec = importlib.util.spec_from_file_location(CONFIG_MODULE, folder / f"{CONFIG_MODULE}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.CrammedBertConfig(**dataclasses.asdict(cfg),
                                      architectures=["CrammedBertForMaskedLM"],
                                      auto_map=AUTO_MAP, dtype="float32")
    config.save_pretrained(folder)


def write_tokenizer(folder: Path, tokenizer_json: Path, max_length: int) -> None:
    """The run's tokenizer (normalizer, pre-tokenizer, its WordPiece, BPE or Unigram model,
    [CLS] A [SEP] B [SEP] template) as a transformers fast tokenizer with BERT's special
    tokens: the generic class, since BertTokenizerFast holds a WordPiece only. No token type
    ids: the model has no segment embedding."""
    from transformers import PreTrainedTokenizerFast

    from data_prep import load_tokenizer

    backend = load_tokenizer(tokenizer_json)  # UserError when a special token is missing
    backend.no_truncation()
    backend.no_padding()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=max_length,
                                        model_input_names=["input_ids", "attention_mask"],
                                        **SPECIAL_TOKENS)
    tokenizer.save_pretrained(folder)


def check_export(folder: Path, model) -> float:
    """Load the folder with transformers and compare its MLM logits with the run model's on a
    fixed input; returns the largest absolute difference. A mismatch is a bug, not user error."""
    import torch
    from transformers import AutoModelForMaskedLM
    from transformers.utils import logging as hf_logging

    from cramming.compress.quantize import quiet_torchao_logs

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a "Loading weights" bar for a check the CLI reports
    try:
        with quiet_torchao_logs():  # transformers imports torchao as it loads a model
            exported = AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True)
        exported.eval()
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    cfg = model.cfg
    ids = torch.arange(min(16, cfg.seq_len))[None] % cfg.vocab_size  # (1, T)
    with torch.no_grad():
        ours = model(ids)[1]
        theirs = exported(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    diff = (ours - theirs).abs().max().item()
    if not diff <= CHECK_TOLERANCE:
        raise RuntimeError(f"exported model's logits differ from the run's by {diff:.3g} "
                           f"(tolerance {CHECK_TOLERANCE:g})")
    return diff


def _require_transformers() -> None:
    if importlib.util.find_spec("transformers") is None:
        raise UserError(f"cram export needs the transformers library: {INSTALL_HINT}")


def _data_manifest(summary: dict) -> dict:
    """The data dir's manifest (for the data sources), when the recorded data dir is here."""
    path = Path(summary.get("data_path") or "") / "manifest.json"
    if summary.get("data_path") and path.is_file():
        try:
            return read_json_object(path)
        except UserError:
            return {}
    return {}
