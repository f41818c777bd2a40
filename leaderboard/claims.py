"""Every claim of an entry against every record that carries it.

`entry_time_problems` needs the entry alone (its loss curve against its elapsed time);
`summary_problems`, `time_problems` and `shape_problems` need the run dir (and its config,
read once by the caller with `records.read_config`). Each returns one
line per disagreement, naming the field and the record that contradicts it.

The time claims are the benchmark's rule 2, so each is checked against every record the
trainer writes it to:

    budget_s         summary.json, config.yaml (train.budget_s, hashed as config_sha256)
    train_elapsed_s  summary.json, checkpoint/train_state.json (elapsed_s), the last
                     metrics.jsonl record and the entry's loss curve (neither may end later)
    date             summary.json finished_utc; the results were scored after it
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from crambench.errors import UserError
from leaderboard.records import read_metrics, read_model_config, read_train_state
from leaderboard.values import first_difference

# metrics.jsonl and train_elapsed_s are rounded to the millisecond, the loss curve too.
ELAPSED_TOLERANCE_S = 1e-3
# finished_utc is written to the second.
TIMESTAMP_TOLERANCE_S = 1.0
# Entry fields that are copies of summary.json (entry path -> summary path). Hardware is
# compared as a whole record (the caller hands in the summary's as `records.entry_hardware`
# makes it), so a key left out of the entry is a difference, not a key nobody checks.
SUMMARY_FIELDS = {
    "hardware": ("hardware",),
    "budget_s": ("budget_s",),
    "train_elapsed_s": ("train_elapsed_s",),
    "stopped_by": ("stopped_by",),
    "model.params": ("params",),
    "model.preset": ("preset",),
    "model.shape": ("model",),
    "training.steps": ("steps",),
    "training.tokens_seen": ("tokens_seen",),
    "training.train_loss": ("train_loss",),
    "training.val_loss": ("val_loss",),
    "hashes.data_sha256": ("data_sha256",),
    "hashes.tokenizer_sha256": ("tokenizer_sha256",),
    "hashes.config_sha256": ("config_sha256",),
    "hashes.model_sha256": ("model_sha256",),
    "software": ("software",),
    "code_version": ("code_version",),
    "code_sha256": ("code_sha256",),
    "code": ("code",),
    "lineage": ("lineage",),
    "compression": ("compression",),
}


def entry_time_problems(entry: dict) -> list[str]:
    """What the entry alone can tell about its time: its loss curve never runs backwards and
    ends no later than train_elapsed_s; a run with steps logged a curve."""
    curve, elapsed = entry["loss_curve"], entry["train_elapsed_s"]
    if curve is None:
        return [f"loss_curve is null but training.steps is {entry['training']['steps']}: "
                "a run that made a step logged it"] if entry["training"]["steps"] else []
    times = [t for t, _ in curve["points"]]
    problems = [f"loss_curve.points[{i}] elapsed time {t:g} s is before the previous point's "
                f"{times[i - 1]:g} s" for i, t in enumerate(times) if i and t < times[i - 1]]
    if times[-1] > elapsed + ELAPSED_TOLERANCE_S:
        problems.append(f"train_elapsed_s {elapsed:g} is less than the loss curve's last time "
                        f"{times[-1]:g} s: the run trained longer than it claims")
    return problems


def summary_problems(entry: dict, summary: dict, run: Path) -> list[str]:
    """Every entry field that copies summary.json, compared with it."""
    problems = []
    for field, keys in SUMMARY_FIELDS.items():
        stated, recorded = _get(entry, field.split(".")), _get(summary, keys)
        if stated != recorded:
            where, stated, recorded = first_difference(field, stated, recorded)
            problems.append(f"{where} is {stated!r} but {run}/summary.json says {recorded!r}")
    finished = summary.get("finished_utc")
    if entry["date"] != str(finished)[:10]:
        problems.append(f"date is {entry['date']!r} but {run}/summary.json says training "
                        f"finished at {finished!r}")
    return problems


def time_problems(entry: dict, summary: dict, run: Path, config) -> list[str]:
    """budget_s and train_elapsed_s against config.yaml (`config`, as `records.read_config`
    reads it), the checkpoint's train state, metrics.jsonl and the run's timestamps.

    A derived run (`lineage`) trained only its stage here: its config holds the stage's budget
    (when the stage trains), it keeps no checkpoint, and its metrics continue its parent's; the
    parent's own records are checked through the lineage (`run_checks.lineage_problems`)."""
    problems = []
    budget, elapsed = entry["budget_s"], entry["train_elapsed_s"]
    lineage = entry.get("lineage")
    field, configured_for = "budget_s", budget
    if lineage is not None:
        field, configured_for = "lineage.stage_budget_s", lineage["stage_budget_s"]
    if (lineage is None or configured_for) and config.train.budget_s != configured_for:
        problems.append(f"{field} is {configured_for:g} but {run}/config.yaml (hashed as "
                        f"config_sha256) trained with train.budget_s {config.train.budget_s:g}")
    problems += _metrics_problems(entry, run)
    problems += _timestamp_problems(entry, summary, run)
    if lineage is not None:
        return problems
    try:
        state = read_train_state(run)
    except UserError as err:
        problems.append(f"train_elapsed_s cannot be checked: {err}")
    else:
        where = f"{run}/checkpoint/train_state.json"
        from cramming.config import config_sha256  # OmegaConf only; no torch

        if state.get("config_sha256") != config_sha256(config):
            problems.append(f"{where}: config_sha256 {str(state.get('config_sha256'))[:12]}... "
                            f"is not the hash of {run}/config.yaml: the checkpoint was not "
                            "written by a run of this config")
        for field, key, stated in (("train_elapsed_s", "elapsed_s", elapsed),
                                   ("training.steps", "step", entry["training"]["steps"]),
                                   ("training.tokens_seen", "tokens",
                                    entry["training"]["tokens_seen"])):
            if abs(state[key] - stated) > ELAPSED_TOLERANCE_S / 2:
                problems.append(f"{field} is {stated:g} but {where} says {key} {state[key]:g}")
    return problems


def _metrics_problems(entry: dict, run: Path) -> list[str]:
    training, elapsed = entry["training"], entry["train_elapsed_s"]
    try:
        records = read_metrics(run)
    except UserError as err:
        return [f"metrics cannot be checked: {err}"]
    where = f"{run}/metrics.jsonl"
    if not records:
        return [f"{where} is missing or empty but training.steps is {training['steps']}"] \
            if training["steps"] else []
    last, problems = records[-1], []
    if last["elapsed_s"] > elapsed + ELAPSED_TOLERANCE_S:
        problems.append(f"train_elapsed_s {elapsed:g} is less than the {last['elapsed_s']:g} s "
                        f"that {where} logged at step {last['step']}")
    # The trainer logs the last step when the run ends, so the log ends where the run did.
    for field, key in (("training.steps", "step"), ("training.tokens_seen", "tokens"),
                       ("training.train_loss", "loss")):
        stated = _get(entry, field.split("."))
        if stated != last[key]:
            problems.append(f"{field} is {stated!r} but the last record of {where} says "
                            f"{key} {last[key]!r}")
    return problems


def _timestamp_problems(entry: dict, summary: dict, run: Path) -> list[str]:
    """The results were scored after training finished (so not of an earlier model)."""
    try:
        finished = _utc(summary.get("finished_utc"))
        scored = _utc(entry["results"]["started_utc"])
    except ValueError as err:
        return [f"timestamps cannot be compared: {err}"]
    if scored + dt.timedelta(seconds=TIMESTAMP_TOLERANCE_S) < finished:
        return [f"results.started_utc {entry['results']['started_utc']} is before the run "
                f"finished training ({summary['finished_utc']} in {run}/summary.json)"]
    return []


def shape_problems(entry: dict, run: Path, config) -> list[str]:
    """model.shape and model.params against config.yaml (`config`, hashed) and
    final/model_config.json (what the final weights are loaded with): one model in all three."""
    model = dataclasses.asdict(config.model)
    try:
        final = read_model_config(run)
    except UserError as err:
        return [f"model cannot be checked: {err}"]
    problems = [f"model.shape.{key} is {value!r} but {run}/config.yaml says "
                f"{model.get(key)!r}" for key, value in entry["model"]["shape"].items()
                if model.get(key) != value]
    from cramming.config import with_legacy  # OmegaConf only; no torch

    loaded = with_legacy("model", final)  # a file from before the component fields
    changed = [key for key, value in model.items() if loaded.get(key) != value]
    if changed:
        problems.append(f"{run}/final/model_config.json differs from config.yaml (hashed as "
                        f"config_sha256) at {', '.join(changed)}")
    if final.get("params") != entry["model"]["params"]:
        problems.append(f"model.params is {entry['model']['params']!r} but "
                        f"{run}/final/model_config.json says {final.get('params')!r}")
    return problems


def _utc(text) -> dt.datetime:
    try:
        stamp = dt.datetime.fromisoformat(str(text))
    except ValueError:
        raise ValueError(f"{text!r} is not a UTC timestamp") from None
    if stamp.utcoffset() != dt.timedelta(0):
        raise ValueError(f"{text!r} is not a UTC timestamp")
    return stamp


def _get(obj, keys):
    for key in keys:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj
