"""`compress`: a finished run in, a compressed run out (contract 2 plus `compression` and the
shared `lineage` record), written whole under a temporary name or not at all.

    prune:S     final/ holds the pruned encoder, stored sparsely; masks stay fixed in
                fine-tuning; recovery training counts against --budget and the day's budget
    int8, int4  final/ holds the parent's weights as they are: quantization is applied to each
                task model after fine-tuning (that is what is deployed), so it trains nothing
                and its stage budget is 0
"""

from __future__ import annotations

import shutil
import signal
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from crambench.contracts import hash_pair, sha256_file
from crambench.errors import UserError
from crambench.files import atomic_dir, copy_tree, refuse_output_over_inputs, write_json_atomic
from crambench.locks import read_lock
from cramming.compress.method import SPEC_FILE, SPEC_FORMAT, Method, compose, parse_method
from cramming.lineage import lineage_record, lineage_totals, read_parent

PARENT_FILES = ("config.yaml", "metrics.jsonl")


def compress(run, method: str, out, *, budget=None, device="auto", overrides=(), force=False,
             quiet=False, clock=time.monotonic) -> dict:
    """Compress the finished run `run` with `method` into the new run dir `out`; returns its
    summary. `budget` (e.g. "20m") is required for pruning and refused for quantization alone.

    Before the clock starts and before anything is written: the parent's final/ is read whole
    (config against weights, tokenizer) and, for a quantizing method, every weight quantization
    will meet is checked against the run's real shapes. The parent run dir is held under its
    shared lock throughout (`crambench.locks.read_lock`). UserError (one line) for all of these.
    """
    stage = parse_method(method)
    run, out = Path(run), Path(out)
    if not run.is_dir():
        read_parent(run)  # the one-line refusal of a run dir that is not there
    # The parent is read from here to the end (its summary again for the lineage): no
    # `cram pretrain --force` or `--resume` may rewrite it meanwhile.
    with read_lock(run):
        return _compress(run, stage, out, budget=budget, device=device, overrides=overrides,
                         force=force, quiet=quiet, clock=clock)


def _compress(run: Path, stage: Method, out: Path, *, budget, device, overrides, force, quiet,
              clock) -> dict:
    from cramming.config import check_derived_overrides
    from cramming.final import open_final
    from cramming.train.budget import parse_budget

    parent = read_parent(run)
    total = compose(_method_of(parent), stage, run)
    if stage.trains and budget is None:
        raise UserError(f"--method {stage} prunes and trains (recovery rounds): give --budget, "
                        "e.g. --budget 20m; it counts against the day's budget")
    if not stage.trains and budget is not None:
        raise UserError(f"--budget does not apply to --method {stage}: quantization trains "
                        "nothing and costs no budget")
    if not stage.trains and overrides:
        raise UserError(f"{overrides[0]!r}: key=value overrides change pruning's recovery "
                        f"training, and --method {stage} trains nothing")
    check_derived_overrides(overrides, "cram compress")
    budget_s = parse_budget(budget) if stage.trains else 0.0
    # The run, and the data dir its recovery training reads.
    refuse_output_over_inputs(out, run=run, data=parent.get("data_path"))
    if out.exists() and not force:
        raise UserError(f"{out} already exists; use --force to replace it")
    # The parent's final/ whole (config against weights, tokenizer), and what quantization
    # will meet in it, before the clock starts and before anything is written.
    model = open_final(run / "final", "cram compress")
    if total.bits is not None:
        from cramming.compress.quantize import check_model_config, check_supported

        check_supported(total.bits)
        check_model_config(model.cfg, total.bits, where=f"{run}/final/model_config.json: ")
    started = datetime.now(UTC).isoformat(timespec="seconds")
    with _sigterm_interrupts(), atomic_dir(out, force=force) as tmp:
        if stage.trains:
            trained = _prune(run, parent, model, tmp, total, budget_s, device=device,
                             overrides=overrides, quiet=quiet, clock=clock)
        else:
            trained = _copy_parent(run, parent, tmp)
        summary = _summary(run, out, parent, tmp, stage, total, budget_s, trained, started)
        from cramming.train.run_dir import write_summary

        write_summary(tmp, summary)
    return {"format": "cram-run/1", **summary}


def _method_of(summary: dict) -> Method | None:
    record = summary.get("compression")
    return parse_method(record["method"]) if record else None


def _copy_parent(run: Path, parent: dict, tmp: Path) -> dict:
    """Quantization only: the weights to fine-tune from are the parent's, byte for byte."""
    copy_tree(run / "final", tmp / "final")
    (tmp / "final" / SPEC_FILE).unlink(missing_ok=True)
    for name in PARENT_FILES:
        if (run / name).is_file():
            shutil.copyfile(run / name, tmp / name)
    return {"train_elapsed_s": 0.0, "steps": 0, "tokens": 0, "rows_seen": parent.get("rows_seen"),
            "nonfinite_skips": 0, "stopped_by": parent["stopped_by"],
            "train_loss": parent["train_loss"], "val_loss": parent["val_loss"], "rounds": [],
            "hardware": None}


def _prune(run: Path, parent: dict, parent_model, tmp: Path, total: Method, budget_s: float, *,
           device, overrides, quiet, clock) -> dict:
    import torch

    from cramming.compress import prune
    from cramming.compress.recovery import prune_with_recovery
    from cramming.config import load_saved_config, to_yaml
    from cramming.model import CrammedBert
    from cramming.train.budget import Budget
    from cramming.train.hardware import detect_hardware, resolve_device, resolve_precision
    from cramming.train.summary import validation_loss
    from cramming.weights import save_pretrained
    from data_prep import open_data_dir

    # The run's own recipe, trained again under the stage's budget; max_steps (a smoke-run cap
    # of pretraining) does not carry over: `train.max_steps=N` caps each round instead.
    cfg = load_saved_config(run / "config.yaml", ["train.max_steps=null", *overrides])
    cfg.train.budget_s = budget_s
    cfg.impl.compile = False  # the pruning hooks change the graph every round
    if not parent.get("data_path"):
        raise UserError(f"{run}/summary.json does not name its data dir (data_path): recovery "
                        "training needs the run's own data")
    data_dir = open_data_dir(parent["data_path"])
    if data_dir.data_sha256 != parent["data_sha256"]:
        shown = hash_pair(data_dir.data_sha256, parent["data_sha256"])
        raise UserError(f"data dir {data_dir.path} is not the one run {run} trained on "
                        f"(data_sha256 {shown[0]}, the run's {shown[1]})")
    cfg.data.path = str(Path(data_dir.path).resolve())
    if device != "auto":
        cfg.impl.device = device
    dev = resolve_device(cfg.impl.device)
    hardware = detect_hardware(dev)
    precision = resolve_precision(cfg.impl.precision, dev)
    if cfg.impl.threads:
        torch.set_num_threads(cfg.impl.threads)
    (tmp / "config.yaml").write_text(to_yaml(cfg))
    shutil.copyfile(run / "metrics.jsonl", tmp / "metrics.jsonl")

    # The clock starts here: after the parent and its data dir are read, before the model.
    budget = Budget(budget_s, clock=clock)
    torch.manual_seed(cfg.seed)
    model = CrammedBert(parent_model.cfg)
    model.load_state_dict(parent_model.state)
    model.to(dev)
    prune.apply_masks(model, parent_model.masks)
    trained = prune_with_recovery(model, cfg, data_dir, run=tmp, sparsity=total.sparsity,
                                  budget=budget, clock=clock, parent=parent, device=dev,
                                  precision=precision, quiet=quiet)
    # Off the clock: the final save and the validation loss, as in pretraining.
    shutil.rmtree(tmp / "checkpoint", ignore_errors=True)  # no command resumes a compression
    val_loss = validation_loss(model, data_dir, cfg, precision)
    trained["val_loss"] = None if val_loss is None else round(val_loss, 5)
    masks = prune.make_permanent(model)
    (tmp / "final").mkdir()
    save_pretrained(model, tmp / "final", masks=masks)
    shutil.copyfile(run / "final" / "tokenizer.json", tmp / "final" / "tokenizer.json")
    trained["hardware"] = {key: hardware[key] for key in ("device", "gpu_name", "gpu_count")}
    return trained


def _summary(run: Path, out: Path, parent: dict, tmp: Path, stage: Method, total: Method,
             budget_s: float, trained: dict, started: str) -> dict:
    from crambench.code import code_sha256, code_version
    from cramming.compress.storage import stored_stats
    from cramming.config import config_sha256, load_config
    from cramming.train.hardware import software_info
    from cramming.train.run_dir import keep_local_changes
    from cramming.train.summary import code_record

    final = tmp / "final"
    keep_local_changes(tmp)
    stats = stored_stats(final / "model.safetensors")
    spec = deployment_spec(total)
    write_json_atomic(final / SPEC_FILE, spec)
    lineage = lineage_record(run, out=out, stage="compress", method=str(stage),
                             stage_train_elapsed_s=trained["train_elapsed_s"],
                             stage_budget_s=budget_s)
    compression = {
        "method": str(total),
        "bits": total.stored_bits,
        "quantization": spec["quantization"],
        "sparsity_target": total.sparsity or 0.0,
        "sparsity": stats["sparsity"],
        "prunable_params": stats["prunable_params"],
        "params": stats["params"],
        "nonzero_params": stats["kept_params"],
        "stored_bytes": stats["stored_bytes"],
        "train_elapsed_s": trained["train_elapsed_s"],
        "budget_s": budget_s,
        "rounds": trained["rounds"],
        "recovery_hardware": trained["hardware"],
    }
    summary = {key: value for key, value in parent.items() if key != "format"}
    summary.update(lineage_totals(lineage))
    summary.update({
        "stopped_by": trained["stopped_by"],
        "steps": parent["steps"] + trained["steps"],
        "tokens_seen": parent["tokens_seen"] + trained["tokens"],
        "rows_seen": trained["rows_seen"],
        "train_loss": trained["train_loss"] if trained["train_loss"] is not None
        else parent["train_loss"],
        "val_loss": trained["val_loss"],
        "nonfinite_skips": parent.get("nonfinite_skips", 0) + trained["nonfinite_skips"],
        "software": software_info(),
        "config_sha256": config_sha256(tmp / "config.yaml"),
        "model_sha256": sha256_file(final / "model.safetensors"),
        "code_version": code_version(),
        "code_sha256": code_sha256(),
        # This stage's code; it starts from the parent's weights (lineage), no built ones.
        "code": code_record(tmp, load_config(tmp / "config.yaml", saved=True), {}),
        "started_utc": started,
        "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "lineage": lineage,
        "compression": compression,
    })
    return summary


def deployment_spec(method: Method) -> dict:
    """final/compression.json: what evaluation does to every task model it fine-tunes."""
    quantization = None
    if method.bits is not None:
        from cramming.compress.quantize import scheme

        quantization = scheme(method.bits)
    return {"format": SPEC_FORMAT, "method": str(method), "sparsity": method.sparsity or 0.0,
            "bits": method.stored_bits, "quantization": quantization}


@contextmanager
def _sigterm_interrupts():
    """SIGTERM ends a compression like Ctrl-C: the temporary run dir is removed, nothing that
    looks complete is left (recovery training catches both signals itself and stops)."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
