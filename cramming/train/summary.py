"""The end of a run: RUN/final/ (weights, model config, tokenizer) and RUN/summary.json."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from crambench.code import code_sha256, code_version
from crambench.contracts import sha256_file
from crambench.errors import UserError
from crambench.files import atomic_dir
from crambench.plugin import defined_hooks
from cramming.config import PretrainConfig, config_sha256
from cramming.model import IGNORE_INDEX, count_parameters
from cramming.plugins import model_record
from cramming.train.hardware import autocast, software_info
from cramming.train.objective import mask_tokens, pad_rows, sparse_rows, step_generator
from cramming.train.run_dir import HARNESS_DIFF, write_summary
from cramming.train.segments import run_hardware
from cramming.weights import save_pretrained


class RunFailed(UserError):
    """A run that ended over its budget or without one optimizer step. Its summary says so
    (status "failed"); it has no final/ and cannot be submitted. `cram` exits 1."""

    exit_status = 1


def run_failure(state: dict, budget_s: float) -> str | None:
    """Why a run whose training ended cannot count, or None when it can."""
    elapsed = state["elapsed_s"]
    if state["step"] == 0:
        return (f"no optimizer step in {elapsed:.1f}s of the {budget_s:g}s budget: the first "
                "step takes longer than the budget; raise --budget or choose a smaller preset")
    if elapsed > budget_s:
        return f"training took {elapsed:.1f}s, over the {budget_s:g}s budget"
    return None


def finish_run(run, model, cfg: PretrainConfig, state: dict, *, data_dir, hardware: dict,
               precision: str, extra: dict | None = None) -> dict:
    """Write final/ and the val loss for a finished run; an interrupted run (resumable from its
    checkpoint) gets a summary with stopped_by "interrupt" and no final/; a failed one, a
    summary that says why, and RunFailed is raised.

    `extra`: summary fields a derived run adds or replaces (its lineage and totals)."""
    stopped_by = state["stopped_by"]
    failure = None if stopped_by == "interrupt" else run_failure(state, cfg.train.budget_s)
    status = "interrupted" if stopped_by == "interrupt" else "failed" if failure else "complete"
    final = run / "final"
    val_loss, model_sha256 = None, None
    if status == "complete":
        with atomic_dir(final, force=True) as tmp:
            save_pretrained(model, tmp, plugin=model_record(cfg))
            shutil.copyfile(data_dir.tokenizer_path, tmp / "tokenizer.json")
            # The copy must be the tokenizer the data dir's manifest names (the hash chain's
            # tokenizer link); a file changed since the data dir was opened is not.
            if sha256_file(tmp / "tokenizer.json") != data_dir.manifest["tokenizer_sha256"]:
                raise UserError(f"{data_dir.tokenizer_path} changed during the run: it no "
                                "longer matches the tokenizer_sha256 of its manifest.json")
        model_sha256 = sha256_file(final / "model.safetensors")
        val_loss = validation_loss(model, data_dir, cfg, precision)
    summary = {
        "budget_s": cfg.train.budget_s,
        "train_elapsed_s": state["elapsed_s"],
        "stopped_by": stopped_by,
        "status": status,
        "failure": failure,
        "steps": state["step"],
        "tokens_seen": state["tokens"],
        "rows_seen": state["rows"],
        "train_loss": state["train_loss"],
        "val_loss": None if val_loss is None else round(val_loss, 5),
        "val_rows": min(cfg.train.val_rows, data_dir.num_rows("val")),
        "nonfinite_skips": state["nonfinite_skips"],
        "params": count_parameters(model),
        "preset": state["preset"],
        "model": {k: getattr(cfg.model, k) for k in ("layers", "hidden", "heads", "ffn_hidden",
                                                     "vocab_size", "seq_len")},
        "precision": precision,
        "compile": cfg.impl.compile,
        "compile_mode": cfg.impl.compile_mode if cfg.impl.compile else None,
        "micro_batch": cfg.impl.micro_batch,
        "profile_steps": cfg.impl.profile_steps,  # > 0: traced, so slower (open track)
        "hardware": run_hardware(hardware, state.get("segments")),
        "software": software_info(),
        "data_sha256": data_dir.data_sha256,
        "data_path": str(Path(data_dir.path).resolve()),
        "tokenizer_sha256": data_dir.manifest["tokenizer_sha256"],
        "config_sha256": config_sha256(cfg),
        "model_sha256": model_sha256,
        "code_version": code_version(),
        "code_sha256": code_sha256(),
        "code": code_record(run, cfg, state),
        "started_utc": state["started_utc"],
        "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    summary.update(extra or {})
    write_summary(run, summary)
    if failure:
        raise RunFailed(f"{run}: {failure} (see {run / 'summary.json'})")
    return {"format": "cram-run/1", **summary}


def code_record(run: Path, cfg: PretrainConfig, state: dict) -> dict:
    """What code trained the run, as summary.json and the entry carry it: the harness (its
    version and package hash, the same as the top-level code_version and code_sha256), whether
    its checkout had local changes (their `git diff HEAD` is RUN/code/harness.diff, hashed
    here), the plug-in (RUN/code/plugin.py), its options and the hooks it defines, and
    `init_sha256`, the tensors hash (crambench.tensor_hash) of the weights before the first
    step. None where a run from before the record lacks the value."""
    diff = run / HARNESS_DIFF
    return {"version": code_version(), "sha256": code_sha256(),
            "local_changes": diff.is_file(),
            "harness_diff_sha256": sha256_file(diff) if diff.is_file() else None,
            "plugin_sha256": cfg.plugin.sha256 or None,
            "plugin_options": dict(cfg.plugin.options),
            "plugin_hooks": defined_hooks(run / cfg.plugin.file) if cfg.plugin.file else [],
            "init_sha256": state.get("init_sha256")}


@torch.no_grad()
def validation_loss(model, data_dir, cfg: PretrainConfig, precision: str) -> float | None:
    """MLM loss on the first `train.val_rows` val rows, masked with a fixed seed (0) so every
    run on a data dir is scored on the same positions, whatever its micro-batch."""
    model.eval()
    device = next(model.parameters()).device
    total, weight = 0.0, 0
    # A compiled model keeps the training step's static shapes: a fixed MLM head size.
    head_rows = (sparse_rows(cfg.impl.micro_batch * cfg.model.seq_len, cfg.train.mask_prob)
                 if cfg.impl.compile else None)
    for x, y, n_masked in val_batches(data_dir, cfg):
        rows = max(head_rows, n_masked) if head_rows else None
        with autocast(device, precision):
            x, y = x.to(device), y.to(device)
            loss, _ = model(x, y) if rows is None else model(x, y, rows=rows)
        total, weight = total + loss.item() * n_masked, weight + n_masked
    return total / weight if weight else None


def val_batches(data_dir, cfg: PretrainConfig):
    """(inputs, labels, masked count) micro-batches of the scored val rows (see
    validation_loss); batches without a masked position are left out."""
    n_rows = min(cfg.train.val_rows, data_dir.num_rows("val"))
    if n_rows == 0:
        return
    inputs, labels = mask_tokens(
        torch.from_numpy(data_dir.get_rows("val", np.arange(n_rows))),
        special_ids=data_dir.special_ids, vocab_size=cfg.model.vocab_size,
        generator=step_generator(0, 0), mask_prob=cfg.train.mask_prob)
    batch = cfg.impl.micro_batch
    for start in range(0, n_rows, batch):
        x, y = inputs[start:start + batch], labels[start:start + batch]
        n_masked = int((y != IGNORE_INDEX).sum())
        if cfg.impl.compile:  # the compiled model's one shape
            x, y = pad_rows(x, y, batch)
        if n_masked:
            yield x, y, n_masked
