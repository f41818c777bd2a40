"""A run dir's own records, read for `cram submit` and the validator (contract 2).

Every file is opened through `run_file`, so a recorded path (or a symbolic link in the run
dir) never makes the validator read or hash a file outside the run dir. Readers check the
structure the claim checks rely on and raise a one-line UserError naming the file otherwise.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from crambench.contracts import contained_path, read_json_object
from crambench.errors import UserError


def run_file(run: Path, relative: str, what: str | None = None) -> Path:
    """`run / relative`, which must stay inside the run dir (UserError otherwise)."""
    return contained_path(run, relative, what=what or f"{relative} of run dir")


def read_metrics(run: Path) -> list[dict] | None:
    """The records of RUN/metrics.jsonl in order, or None when the run has no such file.

    Each record needs `step` (an integer >= 1), `elapsed_s` (seconds >= 0), `tokens` (>= 0)
    and a finite `loss`; steps strictly increase and neither elapsed time nor tokens go back,
    as the trainer writes them (a resume drops the lines logged after its checkpoint). Blank
    lines are skipped. Raises UserError naming the line that breaks a rule.
    """
    path = run_file(run, "metrics.jsonl")
    if not path.is_file():
        return None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read {path}: {err}") from None
    records, previous = [], None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise UserError(f"{path} line {number} is not JSON") from None
        problem = _record_problem(record, previous)
        if problem:
            raise UserError(f"{path} line {number}: {problem}")
        records.append(record)
        previous = record
    return records


def _record_problem(record, previous: dict | None) -> str | None:
    if not isinstance(record, dict):
        return "not a metrics record (a JSON object)"
    for key, low in (("step", 1), ("elapsed_s", 0), ("tokens", 0)):
        value = record.get(key)
        integral = key != "elapsed_s"
        if not _is_number(value, integral) or value < low:
            kind = "an integer" if integral else "a number"
            return f"{key} {value!r} is not {kind} >= {low}"
    if not _is_number(record.get("loss")) or not math.isfinite(record["loss"]):
        return f"loss {record.get('loss')!r} is not a finite number"
    if previous is not None:
        if record["step"] <= previous["step"]:
            return f"step {record['step']} does not follow step {previous['step']}"
        for key in ("elapsed_s", "tokens"):
            if record[key] < previous[key]:
                return (f"{key} {record[key]} at step {record['step']} is less than "
                        f"{previous[key]} at step {previous['step']}")
    return None


def _is_number(value, integral: bool = False) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if integral else isinstance(value, int | float)


def read_train_state(run: Path) -> dict:
    """RUN/checkpoint/train_state.json: the trainer's own record of its clock and position.

    A finished run keeps its last checkpoint's train_state.json (the weights and optimizer
    state beside it may be deleted to save space); the validator compares its step, tokens
    and elapsed_s with the summary's.
    """
    path = run_file(run, "checkpoint/train_state.json")
    if not path.is_file():
        raise UserError(f"{path} is missing: the run's own record of its training clock "
                        "(keep it when you delete checkpoint weights)")
    state = read_json_object(path)
    for key in ("step", "tokens", "elapsed_s"):
        if not _is_number(state.get(key), integral=key != "elapsed_s"):
            raise UserError(f"{path}: {key} {state.get(key)!r} is not a number")
    return state


def read_config(run: Path):
    """The resolved config of RUN/config.yaml (hashed as config_sha256), or a UserError."""
    from cramming.config import config_from_yaml  # OmegaConf only; no torch

    path = run_file(run, "config.yaml")
    if not path.is_file():
        raise UserError(f"{path} is missing")
    return config_from_yaml(path)


def read_model_config(run: Path) -> dict:
    """RUN/final/model_config.json: the shape the final weights are loaded with."""
    path = run_file(run, "final/model_config.json")
    if not path.is_file():
        raise UserError(f"{path} is missing")
    return read_json_object(path)
