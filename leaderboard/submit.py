"""Leaderboard entries (contract 4) built and written: from a scored run dir (contract 2 +
contract 3), or from an outside model's results file.

A run's entry copies the run's summary, data sources and results (read through
`leaderboard.records`), the track Rules v1 give it, and the hash chain data -> config -> model
-> results. An outside model's entry (a `transformers` encoder this harness did not train,
scored with `cram eval glue|probe --model PATH --out FILE`) says plainly what it is: no run, so
no budget, hardware, training or data claims; the model folder named by the sha256 of its
config, weight, tokenizer and code files (`glue_eval.model_folder`, recomputed from the folder,
as `cram eval` computed it); the protocol and scores (the results file in full); the open track
with the outside-model reason. The site shows those as baselines, never ranked.

Either entry is checked by the validator's layers before it is written; the first problem is
a UserError and nothing is written then.
"""

from __future__ import annotations

import re
from pathlib import Path

from crambench.contracts import sha256_file
from crambench.errors import UserError
from crambench.files import write_json_atomic
from cramming.rules import RULES_VERSION
from leaderboard import claims, cross_checks, tracks
from leaderboard.entry_checks import record_free_problems
from leaderboard.prediction_checks import prediction_problems
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
from leaderboard.run_checks import code_record_problems, model_folder_problems, plugin_problems
from leaderboard.schema import ENTRY_FORMAT, schema_errors

SCORE_HINT = "score the model with `cram eval glue --model PATH --out FILE`"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def submit(run, name: str, *, out=None, force: bool = False) -> dict:
    """Write `out` (default `entries/NAME.json`) for the scored run `run`; return the entry."""
    out = entry_path(name, out, force)
    run = Path(run)
    entry = build_entry(run, name)
    # The run's records must agree with each other before they make an entry (hashing the
    # data dir is left to `validate --run`: hours of shards for a full-size corpus).
    config = read_config(run)
    entry["claims"], contradictions = cross_checks.cross_check(entry, run, config)
    problems = schema_errors(entry) or (
        record_free_problems(entry)
        + claims.time_problems(entry, read_run_summary(run), run, config)
        + claims.shape_problems(entry, run, config) + contradictions
        + plugin_problems(run, config) + code_record_problems(entry, run, config))
    if problems:  # a run dir that produces a bad entry is a bad run dir; name the first fault
        raise UserError(f"run {run} does not make a valid entry: {problems[0]}")
    write_json_atomic(out, entry)
    return entry


def submit_results(results, name: str, *, out=None, force: bool = False, model=None) -> dict:
    """Write `out` (default `entries/NAME.json`) for an outside model's results file `results`
    (`cram eval glue|probe --model PATH --out FILE`), hashing the model folder (`model`, or the
    local folder the results name); return the entry. Every problem is a UserError naming the
    results file and the field; nothing is written then."""
    out = entry_path(name, out, force)
    results_path = Path(results)
    entry = build_outside_entry(results_path, name)
    folder = model_folder(entry, model, results_path)
    problems = schema_errors(entry) or (
        record_free_problems(entry) + model_folder_problems(entry, folder)
        + prediction_problems(entry, results_path.parent))
    if problems:
        raise UserError(f"{results_path} does not make a valid entry: {problems[0]}")
    write_json_atomic(out, entry)
    return entry


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
        "hardware": entry_hardware(summary["hardware"], run / "summary.json"),
        "budget_s": summary["budget_s"],
        "train_elapsed_s": summary["train_elapsed_s"],
        "stopped_by": summary["stopped_by"],
        "model": {"preset": summary["preset"], "params": summary["params"],
                  "shape": summary["model"]},
        "training": {key: summary[key]
                     for key in ("steps", "tokens_seen", "train_loss", "val_loss")},
        "data": {"sources": manifest.get("sources", []), "data_sha256": summary["data_sha256"],
                 **({"settings": manifest["pipeline"]["settings"]}
                    if isinstance(manifest.get("pipeline"), dict)
                    and "settings" in manifest["pipeline"] else {})},
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
        "code_sha256": summary.get("code_sha256"),
        "claims": [],  # cross-checked against the run dir by `submit`
        "loss_curve": loss_curve(run),
    }
    if "code" in summary:  # absent in summaries written before the code record
        entry["code"] = summary["code"]
    if "lineage" in summary:  # a derived run (cram compress, cram extract)
        entry["lineage"] = summary["lineage"]
    if "extracted_from" in summary:  # cram extract: the search table travels with the entry
        entry["extraction"] = read_extraction(run, summary)
    if "compression" in summary:  # cram compress: what was done to the parent
        entry["compression"] = summary["compression"]
    entry["track"], entry["track_reason"] = tracks.decide_track(entry)
    entry["category"] = tracks.decide_category(entry)
    return entry


def read_outside_results(path: Path) -> dict:
    """The results file at `path`, which must be an outside model's (UserError otherwise)."""
    from glue_eval import read_results as read_results_file  # contract 3, carried whole

    if not path.is_file():
        raise UserError(f"results file {path} not found ({SCORE_HINT})")
    results = read_results_file(path)
    if not isinstance(results.get("outside_model"), dict):
        raise UserError(f"{path} is not an outside model's results (it has no outside_model "
                        "record): submit a run's results with `cram submit --run RUN`")
    if "folder_sha256" not in results["outside_model"]:
        raise UserError(f"{path}: outside_model has no folder_sha256 (scored by an earlier "
                        f"cram eval); {SCORE_HINT} again")
    return results


def build_outside_entry(results_path: Path, name: str) -> dict:
    """The entry of the outside model's results at `results_path` (not yet checked)."""
    results = read_outside_results(results_path)
    model = results["outside_model"]
    entry = {
        "format": ENTRY_FORMAT,
        "name": name,
        "date": str(results.get("finished_utc"))[:10],
        "rules_version": RULES_VERSION,
        "track": None,  # decided below, by the rules
        "track_reason": None,
        "outside_model": model,
        "hashes": {"folder_sha256": model["folder_sha256"],
                   "model_sha256": results.get("model_sha256"),
                   "eval_sha256": sha256_file(results_path)},
        "results_file": results_path.name,
        "results": results,
    }
    entry["track"], entry["track_reason"] = tracks.decide_track(entry)
    return entry


def model_folder(entry: dict, model, results_path: Path) -> Path:
    """The folder to recompute the model's identity from: `model` when given, else the local
    folder the results name (`outside_model.source`)."""
    recorded = entry["outside_model"]
    if model is not None:
        folder = Path(model)
    elif recorded.get("location") == "local":
        folder = Path(recorded["source"])
    else:
        raise UserError(f"{results_path}: the model came from the Hub ({recorded['source']}); "
                        "pass --model with its downloaded folder to hash its files")
    if not folder.is_dir():
        given = "--model" if model is not None else f"outside_model.source in {results_path}"
        raise UserError(f"model folder {folder} ({given}) not found: its files are hashed into "
                        "the entry; pass --model PATH where the folder is now")
    return folder
