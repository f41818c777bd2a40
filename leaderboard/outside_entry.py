"""Outside models on the leaderboard: entries for a `transformers` encoder this harness did not
train, scored with the same protocol (`cram eval glue|probe --model PATH --out FILE`).

`cram submit --results FILE` turns such results into an entry that says plainly what it is: no
run, so no budget, hardware, training or data claims; the model folder named by the sha256 of
its config, weight, tokenizer and code files (`glue_eval.model_folder`, recomputed here from the
folder, as `cram eval` computed it); the protocol and scores (the results file in full); the
open track with the outside-model reason. The site shows these entries as baselines, in a table
of their own, never ranked.

What `cram leaderboard validate` checks of such an entry:
- alone: the schema; the track and its reason; the model record equals the results' own; the
  weights hash, the folder hash and the results' hashes agree with each other and with the file
  listing; the results are not rankable and not a from-scratch control; both GLUE averages
  recompute from the per-task scores;
- with `--results FILE`: the results equal the file field for field, the file hashes as
  recorded and every prediction file as its results record it;
- with `--glue-dir DIR` too: every metric recomputes from the saved dev predictions;
- with `--model PATH`: every file of the folder hashes as recorded.
"""

from __future__ import annotations

from pathlib import Path

from crambench.contracts import sha256_file
from crambench.errors import UserError
from cramming.rules import OUTSIDE_MODEL_REASON, RULES_VERSION
from glue_eval.model_folder import (
    folder_sha256,
    identity_files,
    listing_differences,
    listing_sha256,
)
from leaderboard import tracks
from leaderboard.schema import ENTRY_FORMAT
from leaderboard.values import differences

SCORE_HINT = "score the model with `cram eval glue --model PATH --out FILE`"


def is_outside(entry) -> bool:
    """Whether `entry` is an outside model's (it names one at its top level)."""
    return isinstance(entry, dict) and "outside_model" in entry


def read_outside_results(path: Path) -> dict:
    """The results file at `path`, which must be an outside model's (UserError otherwise)."""
    from glue_eval import read_results  # contract 3, carried whole inside an entry

    if not path.is_file():
        raise UserError(f"results file {path} not found ({SCORE_HINT})")
    results = read_results(path)
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


def submit_outside(results_path, name: str, *, out: Path, model=None) -> dict:
    """Write the entry `out` for an outside model's results file; return the entry. Every
    problem is a UserError naming the results file and the field; nothing is written then."""
    from crambench.files import write_json_atomic
    from leaderboard.schema import schema_errors
    from leaderboard.validate import _prediction_problems

    results_path = Path(results_path)
    entry = build_outside_entry(results_path, name)
    folder = model_folder(entry, model, results_path)
    problems = schema_errors(entry) or (
        record_free_problems(entry) + folder_problems(entry, folder)
        + _prediction_problems(entry, results_path.parent))
    if problems:
        raise UserError(f"{results_path} does not make a valid entry: {problems[0]}")
    write_json_atomic(out, entry)
    return entry


def record_free_problems(entry: dict) -> list[str]:
    """Everything a schema-valid outside entry must satisfy on its own."""
    from leaderboard.validate import arithmetic_problems

    problems = []
    if entry["rules_version"] != RULES_VERSION:
        problems.append(f"rules_version {entry['rules_version']} is unknown "
                        f"(this validator knows Rules v{RULES_VERSION})")
    track, reason = tracks.decide_track(entry)
    if (entry["track"], entry["track_reason"]) != (track, reason):
        problems.append(f"track {entry['track']!r} ({entry['track_reason']!r}) is not what "
                        f"Rules v{RULES_VERSION} give an outside model: {track!r} ({reason!r})")
    model, results = entry["outside_model"], entry["results"]
    places = differences(model, results["outside_model"])
    if places:
        problems.append(f"outside_model differs from results.outside_model at "
                        f"{', '.join(places[:3])}")
    if (model.get("track", "open"), model.get("track_reason", OUTSIDE_MODEL_REASON)) != \
            ("open", OUTSIDE_MODEL_REASON):
        problems.append(f"outside_model.track_reason is {model.get('track_reason')!r}, not "
                        f"{OUTSIDE_MODEL_REASON!r}")
    if results["protocol"]["rankable"]:
        problems.append("results.protocol.rankable is true: an outside model's results are "
                        "never rankable")
    if results["from_scratch"]:
        problems.append("results.from_scratch is true: the --from-scratch control is a run's, "
                        "not an outside model's")
    problems += _hash_problems(entry)
    if str(results.get("finished_utc"))[:10] != entry["date"]:
        problems.append(f"date {entry['date']} is not the day the results were finished "
                        f"({results.get('finished_utc')})")
    return problems + arithmetic_problems(entry)


def _hash_problems(entry: dict) -> list[str]:
    """The weights hash, the folder hash and the file listing agree with each other."""
    model, hashes, results = entry["outside_model"], entry["hashes"], entry["results"]
    problems = []
    weights = listing_sha256(model["weights"]) if model["weights"] else None
    if results["model_sha256"] != weights:
        problems.append(f"results.model_sha256 {results['model_sha256'][:12]}... is not the "
                        f"sha256 of outside_model.weights ({str(weights)[:12]}...)")
    if hashes["model_sha256"] != results["model_sha256"]:
        problems.append("hashes.model_sha256 differs from results.model_sha256")
    listed = {f["file"]: f["sha256"] for f in model["files"]}
    for weight in model["weights"]:
        if listed.get(weight["file"]) != weight["sha256"]:
            problems.append(f"outside_model.weights {weight['file']} is not in "
                            "outside_model.files with the same sha256")
    actual = folder_sha256(model["files"])
    if model["folder_sha256"] != actual:
        problems.append(f"outside_model.folder_sha256 {model['folder_sha256'][:12]}... is not "
                        f"the sha256 of outside_model.files ({actual[:12]}...)")
    if hashes["folder_sha256"] != model["folder_sha256"]:
        problems.append("hashes.folder_sha256 differs from outside_model.folder_sha256")
    return problems


def folder_problems(entry: dict, folder: Path) -> list[str]:
    """The model folder's files hash (and weigh) as `outside_model.files` records them."""
    if not folder.is_dir():
        return [f"model folder {folder} not found"]
    recorded = entry["outside_model"]["files"]
    actual = identity_files(folder)
    changed = listing_differences(recorded, actual)
    if changed:
        return [f"outside_model.files do not match the model folder {folder}: "
                f"{', '.join(changed)}"]
    sizes = {f["file"]: f["bytes"] for f in actual}
    return [f"outside_model.files {f['file']} bytes is {f['bytes']}, the file in {folder} has "
            f"{sizes[f['file']]}" for f in recorded if f["bytes"] != sizes[f["file"]]]


def results_problems(entry: dict, results_path: Path) -> list[str]:
    """The entry's results are the results file at `results_path`, field for field, with the
    recorded hash, and every prediction file matches its sha256."""
    from leaderboard.validate import _results_problems

    results_path = Path(results_path)
    if results_path.name != entry["results_file"]:
        return [f"results_file is {entry['results_file']} but the results given are "
                f"{results_path}"]
    problems = _results_problems(entry, results_path.parent)
    if results_path.is_file() and sha256_file(results_path) != entry["hashes"]["eval_sha256"]:
        problems.append(f"hashes.eval_sha256 {entry['hashes']['eval_sha256'][:12]}... does not "
                        f"match {results_path}")
    return problems


def weights_bytes(entry: dict) -> int:
    """The stored size of the model's weights: the sum of its weight files' sizes."""
    sizes = {f["file"]: f["bytes"] for f in entry["outside_model"]["files"]}
    return sum(sizes.get(w["file"], 0) for w in entry["outside_model"]["weights"])
