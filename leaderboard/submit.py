"""Turn a scored run dir (contract 2 + contract 3) into a leaderboard entry (contract 4); an
outside model's results file becomes an entry through `leaderboard.outside_entry`. The run dir
is read through `leaderboard.records`."""

from __future__ import annotations

import re
from pathlib import Path

from crambench.contracts import sha256_file
from crambench.errors import UserError
from crambench.files import write_json_atomic
from cramming.rules import RULES_VERSION
from leaderboard import claims, tracks
from leaderboard.records import (
    entry_hardware,
    loss_curve,
    read_config,
    read_data_manifest,
    read_extraction,
    read_results,
    read_run_summary,
    required_file,
    run_file,
)
from leaderboard.schema import ENTRY_FORMAT, schema_errors

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
    """The entry of the scored run `run` (not yet checked against the rules)."""
    summary = read_run_summary(run)
    results_file, results = read_results(run)
    hashes = {}
    for file, key in (("final/model.safetensors", "model_sha256"),
                      ("final/tokenizer.json", "tokenizer_sha256")):
        hashes[key] = sha256_file(required_file(run, file))
        if summary[key] != hashes[key]:
            raise UserError(f"{run}/{file} does not match the {key} in {run}/summary.json: "
                            "the run dir was changed after training")
    from cramming import config_sha256

    if config_sha256(required_file(run, "config.yaml")) != summary["config_sha256"]:
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
