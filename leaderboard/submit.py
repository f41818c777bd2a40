"""Turn a scored run dir (contract 2 + contract 3) into a leaderboard entry (contract 4); an
outside model's results file becomes an entry through `leaderboard.outside_entry`."""

from __future__ import annotations

import re
from pathlib import Path

from crambench.contracts import read_contract, read_json_object, sha256_file
from crambench.errors import UserError
from crambench.files import write_json_atomic
from cramming.rules import RULES_VERSION
from leaderboard import claims, tracks
from leaderboard.extraction import read_extraction
from leaderboard.records import read_config, read_metrics, run_file
from leaderboard.schema import ENTRY_FORMAT, RUN_FORMAT, schema_errors

# GLUE results win over probe results when a run has both.
RESULTS_FILES = ("eval/glue.json", "eval/probe.json")
# Enough points to draw a smooth curve, few enough to keep an entry a few kB.
LOSS_CURVE_POINTS = 200
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def submit(run, name: str, *, out=None, force: bool = False) -> dict:
    """Write `out` (default `entries/NAME.json`) for the scored run `run`; return the entry."""
    out = entry_path(name, out, force)
    run = Path(run)
    entry = build_entry(run, name)
    from leaderboard.validate import record_free_problems  # validate imports this module

    # The run's records must agree with each other before they make an entry (hashing the
    # data dir is left to `validate --run`: hours of shards for a full-size corpus).
    config = read_config(run)
    problems = schema_errors(entry) or (
        record_free_problems(entry)
        + claims.time_problems(entry, read_run_summary(run), run, config)
        + claims.shape_problems(entry, run, config))
    if problems:  # a run dir that produces a bad entry is a bad run dir; name the first fault
        raise UserError(f"run {run} does not make a valid entry: {problems[0]}")
    write_json_atomic(out, entry)
    return entry


def submit_results(results, name: str, *, out=None, force: bool = False, model=None) -> dict:
    """Write `out` (default `entries/NAME.json`) for an outside model's results file `results`
    (`cram eval glue|probe --model PATH --out FILE`), hashing the model folder (`model`, or the
    local folder the results name); return the entry (`leaderboard.outside_entry`)."""
    from leaderboard.outside_entry import submit_outside

    return submit_outside(results, name, out=entry_path(name, out, force), model=model)


def entry_path(name: str, out, force: bool) -> Path:
    """Where entry `name` goes (default `entries/NAME.json`), after checking the name and that
    nothing is replaced without `force`."""
    if not NAME_PATTERN.match(name):
        raise UserError(f"entry name {name!r} must be 1-64 letters, digits, '.', '_' or '-', "
                        "starting with a letter or digit")
    out = Path(out) if out is not None else Path("entries") / f"{name}.json"
    if out.exists() and not force:
        raise UserError(f"{out} already exists (use --force to replace it)")
    return out


def build_entry(run: Path, name: str) -> dict:
    summary = read_run_summary(run)
    results_file, results = read_results(run)
    hashes = {}
    for file, key in (("final/model.safetensors", "model_sha256"),
                      ("final/tokenizer.json", "tokenizer_sha256")):
        hashes[key] = sha256_file(_require(run_file(run, file), run))
        if summary[key] != hashes[key]:
            raise UserError(f"{run}/{file} does not match the {key} in {run}/summary.json: "
                            "the run dir was changed after training")
    from cramming import config_sha256

    if config_sha256(_require(run_file(run, "config.yaml"), run)) != summary["config_sha256"]:
        raise UserError(f"{run}/config.yaml does not match the config_sha256 in "
                        f"{run}/summary.json: the run dir was changed after training")
    for key, what in (("model_sha256", "model"), ("tokenizer_sha256", "tokenizer")):
        if results.get(key) != hashes[key]:
            raise UserError(f"{run}/{results_file} was scored with a different {what} than "
                            f"the run's final/: re-run the evaluation")
    manifest = read_data_manifest(run, summary)
    for key in ("data_sha256", "tokenizer_sha256"):
        if manifest.get(key) != summary[key]:
            raise UserError(f"the data dir's manifest has {key} {manifest.get(key)} but the "
                            f"run was trained with {summary[key]}")
    entry = {
        "format": ENTRY_FORMAT,
        "name": name,
        "date": str(summary.get("finished_utc"))[:10],
        "rules_version": RULES_VERSION,
        "track": None,  # decided below, from the finished entry
        "track_reason": None,
        "hardware": entry_hardware(summary["hardware"]),
        "budget_s": summary["budget_s"],
        "train_elapsed_s": summary["train_elapsed_s"],
        "stopped_by": summary["stopped_by"],
        "model": {"preset": summary["preset"], "params": summary["params"],
                  "shape": summary["model"]},
        "training": {key: summary[key]
                     for key in ("steps", "tokens_seen", "train_loss", "val_loss")},
        "data": {"sources": manifest.get("sources", []), "data_sha256": summary["data_sha256"]},
        "hashes": {
            "data_sha256": summary["data_sha256"],
            "tokenizer_sha256": hashes["tokenizer_sha256"],
            "config_sha256": summary["config_sha256"],
            "model_sha256": hashes["model_sha256"],
            "eval_sha256": sha256_file(run_file(run, results_file)),
        },
        "results_file": results_file,
        "results": results,
        "software": summary["software"],
        "code_version": summary.get("code_version"),
        "loss_curve": loss_curve(run),
    }
    if "lineage" in summary:  # a derived run (cram compress, cram extract)
        entry["lineage"] = summary["lineage"]
    if "extracted_from" in summary:  # cram extract: the search table travels with the entry
        entry["extraction"] = read_extraction(run, summary)
    if "compression" in summary:  # cram compress: what was done to the parent
        entry["compression"] = summary["compression"]
    entry["track"], entry["track_reason"] = tracks.decide_track(entry)
    entry["category"] = tracks.decide_category(entry)
    return entry


def entry_hardware(hardware: dict) -> dict:
    """The entry's hardware: the summary's device fields, with the job's world size and every
    rank's device name (a summary from before multi-GPU runs is one process)."""
    out = {key: hardware.get(key)
           for key in ("device", "gpu_name", "gpu_count", "gpu_memory_gb", "world_size",
                       "device_names")}
    if out["gpu_count"] is None:
        out["gpu_count"] = 0
    if out["world_size"] is None:
        out["world_size"] = 1
    if out["device_names"] is None:
        out["device_names"] = [out["gpu_name"] or out["device"]] * out["world_size"]
    return out


def read_run_summary(run: Path) -> dict:
    if not run.is_dir():
        raise UserError(f"run dir {run} not found")
    summary = read_contract(_require(run_file(run, "summary.json"), run), RUN_FORMAT)
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


def read_results(run: Path) -> tuple[str, dict]:
    """The run's evaluation results: (path relative to the run dir, parsed JSON)."""
    from glue_eval import read_results as read_results_file  # contract 3, carried whole in an entry

    for relative in RESULTS_FILES:
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
    whose steps or times run backwards is a UserError (`records.read_metrics`).
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


def _require(path: Path, run: Path) -> Path:
    if not path.is_file():
        raise UserError(f"run dir {run} lacks {path.relative_to(run)} (an unfinished run?)")
    return path
