"""The end of a run: RUN/final/ (weights, model config, tokenizer) and RUN/summary.json."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

from cramming.config import PretrainConfig, config_sha256
from cramming.hardware import software_info
from cramming.model import count_parameters, save_pretrained
from cramming.run_dir import code_version, write_summary
from data_prep.files import atomic_dir, sha256_file


def finish_run(run, model, cfg: PretrainConfig, state: dict, *, stopped_by: str, data_dir,
               hardware: dict, precision: str, evaluate) -> dict:
    """Write final/ and the val loss for a finished run; an interrupted run (resumable from its
    checkpoint) gets a summary with stopped_by "interrupt" and no final/."""
    final = run / "final"
    val_loss, model_sha256 = None, None
    if stopped_by != "interrupt":
        with atomic_dir(final, force=True) as tmp:
            save_pretrained(model, tmp)
            shutil.copyfile(data_dir.tokenizer_path, tmp / "tokenizer.json")
        model_sha256 = sha256_file(final / "model.safetensors")
        val_loss = evaluate()
    summary = {
        "budget_s": cfg.train.budget_s,
        "train_elapsed_s": state["elapsed_s"],
        "stopped_by": stopped_by,
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
        "hardware": hardware,
        "software": software_info(),
        "data_sha256": data_dir.data_sha256,
        "data_path": str(data_dir.path),
        "config_sha256": config_sha256(cfg),
        "model_sha256": model_sha256,
        "code_version": code_version(),
        "started_utc": state["started_utc"],
        "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_summary(run, summary)
    return {"format": "cram-run/1", **summary}
