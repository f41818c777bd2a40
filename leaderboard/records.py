"""A run dir's own records, read for `cram submit` and the validator (contract 2).

Every reader of a run dir is here: its summary, results, config, model config, checkpoint
train state, metrics log (and the loss curve thinned from it), data dir and manifest, an
extracted run's search table and a derived run's parent. `cram submit` builds entries through
them and the validator's checks recompute claims through them, so both read a run the same way.

Every file is opened through `run_file`, so a recorded path (or a symbolic link in the run
dir) never makes the validator read or hash a file outside the run dir. Readers check the
structure the claim checks rely on and raise a one-line UserError naming the file otherwise.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from crambench.contracts import contained_path, read_contract, read_json_object, sha256_file
from crambench.errors import UserError
from leaderboard.schema import RUN_FORMAT

# GLUE results win over probe results when a run has both.
RESULTS_FILES = ("eval/glue.json", "eval/probe.json")
# Enough points to draw a smooth curve, few enough to keep an entry a few kB.
LOSS_CURVE_POINTS = 200


def run_file(run: Path, relative: str, what: str | None = None) -> Path:
    """`run / relative`, which must stay inside the run dir (UserError otherwise)."""
    return contained_path(run, relative, what=what or f"{relative} of run dir")


def required_file(run: Path, relative: str) -> Path:
    """`run / relative`, kept inside the run dir, which a finished run must have."""
    path = run_file(run, relative)
    if not path.is_file():
        raise UserError(f"run dir {run} lacks {path.relative_to(run)} (an unfinished run?)")
    return path


def read_run_summary(run: Path) -> dict:
    """RUN/summary.json of a finished run that made a step (UserError otherwise)."""
    if not run.is_dir():
        raise UserError(f"run dir {run} not found")
    summary = read_contract(required_file(run, "summary.json"), RUN_FORMAT)
    needed = ("budget_s", "train_elapsed_s", "stopped_by", "steps", "tokens_seen",
              "train_loss", "val_loss", "params", "preset", "model", "hardware", "software",
              "data_sha256", "tokenizer_sha256", "config_sha256", "model_sha256",
              "finished_utc")
    missing = [key for key in needed if key not in summary]
    if missing:
        raise UserError(f"{run}/summary.json lacks {', '.join(missing)} (an unfinished run?)")
    if not isinstance(summary["hardware"], dict):
        raise UserError(f"{run}/summary.json: hardware is not an object")
    if summary.get("status") == "failed":
        raise UserError(f"run {run} failed ({summary.get('failure')}): it cannot be submitted")
    if summary["stopped_by"] not in ("budget", "steps"):
        raise UserError(f"run {run} is unfinished (stopped by {summary['stopped_by']}): finish "
                        f"it with `cram pretrain --resume {run}` first")
    if not isinstance(summary["steps"], int) or summary["steps"] < 1:
        raise UserError(f"run {run} made no optimizer step: it cannot be submitted")
    return summary


def entry_hardware(hardware: dict, where) -> dict:
    """The hardware an entry records from a summary's (`where`: the summary, for errors): its
    device fields, the world size and every rank's device name of its largest segment, and
    every training segment. A summary that does not record its ranks is refused: a run cannot
    be assumed to have trained on one process."""
    missing = [key for key in ("world_size", "device_names") if hardware.get(key) is None]
    if missing:
        raise UserError(f"{where}: hardware lacks {', '.join(missing)}: the run does not record "
                        "how many ranks trained it, so its track cannot be decided (train it "
                        "again with this version of cram pretrain)")
    out = {key: hardware.get(key)
           for key in ("device", "gpu_name", "gpu_count", "gpu_memory_gb", "world_size",
                       "device_names")}
    if out["gpu_count"] is None:
        out["gpu_count"] = 0  # a CPU run records no GPU count
    if "segments" in hardware:  # summaries from before segments were recorded have none
        out["segments"] = [{key: item.get(key) for key in SEGMENT_KEYS}
                           for item in hardware["segments"]]
    return out


# What an entry keeps of each training segment (cramming.train.segments).
SEGMENT_KEYS = ("world_size", "device_names", "started_step", "started_elapsed_s")


def read_results(run: Path) -> tuple[str, dict]:
    """The run's evaluation results: (path relative to the run dir, parsed JSON)."""
    from glue_eval import read_results as read_results_file  # contract 3, carried whole in an entry
    from glue_eval.results import recover_for_reading

    for relative in RESULTS_FILES:
        recover_for_reading(run / relative, lock=run)  # an eval killed between its renames
        if run_file(run, relative).is_file():
            return relative, read_results_file(run / relative)
    raise UserError(f"run {run} has no eval results ({' or '.join(RESULTS_FILES)}): "
                    f"score it first with `cram eval glue --run {run}`")


def data_dir_of(run: Path, summary: dict) -> Path:
    """The run's data dir, as recorded; a relative path is tried from here, then the run."""
    recorded = summary.get("data_path")
    if not recorded:
        raise UserError(f"{run}/summary.json does not name its data dir (data_path)")
    path = Path(recorded)
    if not path.is_absolute() and not path.exists() and (run / path).exists():
        path = run / path
    return path


def read_data_manifest(run: Path, summary: dict) -> dict:
    """The manifest.json of the run's data dir (`data_dir_of`)."""
    data = data_dir_of(run, summary)
    manifest = data / "manifest.json"
    if not manifest.is_file():
        raise UserError(f"data dir {data} (recorded in {run}/summary.json) has no manifest.json;"
                        " the entry needs it for the data sources")
    return read_json_object(manifest)


def loss_curve(run: Path, max_points: int = LOSS_CURVE_POINTS) -> dict | None:
    """(elapsed_s, loss) pairs from metrics.jsonl, evenly thinned to at most `max_points`.

    Embedding the curve keeps an entry self-contained: the site needs no run dir, and
    `validate --run` can recompute the same thinning from the run's metrics.jsonl. A log
    whose steps or times run backwards is a UserError (`read_metrics`).
    """
    records = read_metrics(run)
    if not records:
        return None
    points = [[float(r["elapsed_s"]), float(r["loss"])] for r in records]
    if len(points) > max_points:
        # Even spacing by index, always keeping the first and the last point.
        step = (len(points) - 1) / (max_points - 1)
        points = [points[round(i * step)] for i in range(max_points)]
    return {"source": "metrics.jsonl", "points": [[round(t, 3), round(x, 5)] for t, x in points]}


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


def read_extraction(run: Path, summary: dict) -> dict:
    """The entry's `extraction` record from an extracted run: its search.json, which must be
    the one its summary.json names (by sha256)."""
    recorded = summary["extracted_from"]
    path = run_file(run, recorded.get("search_file") or "search.json",
                    "extracted_from.search_file of summary.json")
    if path.name != "search.json" or not path.is_file():
        raise UserError(f"{run} was extracted but lacks its search table ({run}/search.json)")
    if sha256_file(path) != recorded.get("search_sha256"):
        raise UserError(f"{path} does not match the search_sha256 in {run}/summary.json: the "
                        "run dir was changed after extraction")
    return {"search_file": path.name, "search_sha256": recorded["search_sha256"],
            "search": read_json_object(path)}


def read_search_table(run: Path, relative: str, what: str) -> tuple[Path, str, object]:
    """(path, sha256, parsed JSON) of an extraction's search table `relative` in the run dir;
    a file that cannot be read is a UserError naming `what` and the path."""
    path = run_file(run, relative, what)
    try:
        return path, sha256_file(path), json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{what} {path} cannot be read: {err}") from None


def parent_dir(lineage: dict, run: Path) -> Path | None:
    """The parent run of a derived run: its path as recorded, relative to the derived run dir
    (then, as older runs recorded it, from here); None when neither exists."""
    recorded = Path(lineage["parent_run"])
    for candidate in (run / recorded, recorded):
        if candidate.is_dir():
            return candidate
    return None


def read_parent_summary(parent: Path) -> dict:
    """The parent run's summary.json as JSON, once its sha256 matched the lineage's."""
    return json.loads((parent / "summary.json").read_text())
