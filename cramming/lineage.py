"""Lineage of a derived run (`cram compress`, `cram extract`): which run it came from, and the
training time of every stage, so the one-day budget covers all training (Rules v1, rule 2).

A derived run's `summary.json` holds one `lineage` record:

    {"stage": "compress" | "extract", "method": str,
     "parent_run": str (the parent's path relative to the derived run dir, e.g. "../tiny"),
     "parent_model_sha256": str, "parent_summary_sha256": str,
     "parent_train_elapsed_s": float, "parent_budget_s": float,
     "stage_train_elapsed_s": float, "stage_budget_s": float (0 when the stage trains nothing)}

and its totals `train_elapsed_s = parent_train_elapsed_s + stage_train_elapsed_s`,
`budget_s = parent_budget_s + stage_budget_s`. A parent may itself be derived: its own totals
already include its ancestors. Torch-free: the validator checks the same record.
"""

from __future__ import annotations

import os
from pathlib import Path

from crambench.contracts import read_json_object, sha256_file
from crambench.errors import UserError
from cramming.rules import DERIVED_STAGES


def read_parent(parent_run) -> dict:
    """A finished run's summary.json, checked against its final model; UserError otherwise
    (no summary, no final model, a model changed since training)."""
    parent = Path(parent_run)
    if not parent.is_dir():
        raise UserError(f"run dir {parent} {'is not a folder' if parent.exists() else 'not found'}")
    summary_path, model = parent / "summary.json", parent / "final" / "model.safetensors"
    if not summary_path.is_file():
        raise UserError(f"run {parent} has no summary.json (is pretraining finished?)")
    summary = read_json_object(summary_path)
    if summary.get("stopped_by") == "interrupt" or not model.is_file():
        raise UserError(f"run {parent} has no final model ({model} is missing); finish it "
                        f"first with `cram pretrain --resume {parent}`")
    for key in ("train_elapsed_s", "budget_s", "model_sha256"):
        if key not in summary:
            raise UserError(f"{summary_path} lacks {key} (an unfinished run?)")
    if sha256_file(model) != summary["model_sha256"]:
        raise UserError(f"{model} does not match the model_sha256 in {summary_path}: the run "
                        "dir was changed after training")
    return summary


def lineage_record(parent_run, *, out, stage: str, method: str, stage_train_elapsed_s: float,
                   stage_budget_s: float) -> dict:
    """The `lineage` record of the run `out` derived from `parent_run` (a finished run dir).
    The parent is named relative to `out`, so the validator finds it from any working
    directory, and after the two runs move together."""
    if stage not in DERIVED_STAGES:
        raise ValueError(f"unknown stage {stage!r}; known: {', '.join(DERIVED_STAGES)}")
    parent = Path(parent_run)
    summary = read_parent(parent)
    return {
        "stage": stage,
        "method": method,
        "parent_run": os.path.relpath(Path(parent_run).resolve(), Path(out).resolve()),
        "parent_model_sha256": summary["model_sha256"],
        "parent_summary_sha256": sha256_file(parent / "summary.json"),
        "parent_train_elapsed_s": float(summary["train_elapsed_s"]),
        "parent_budget_s": float(summary["budget_s"]),
        "stage_train_elapsed_s": float(stage_train_elapsed_s),
        "stage_budget_s": float(stage_budget_s),
    }


def lineage_totals(lineage: dict) -> dict:
    """{"train_elapsed_s", "budget_s"} of the derived run: parent's plus the stage's."""
    # Rounded to the millisecond the trainer records times in; the validator allows for it.
    return {
        "train_elapsed_s": round(lineage["parent_train_elapsed_s"]
                                 + lineage["stage_train_elapsed_s"], 3),
        "budget_s": round(lineage["parent_budget_s"] + lineage["stage_budget_s"], 3),
    }
