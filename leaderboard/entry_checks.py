"""The record-free layer of `cram leaderboard validate`: what a schema-valid entry must satisfy
on its own, with no run dir, results file or GLUE files.

A trained run's entry: Rules v1 hold and the track label is the one the rules give
(`leaderboard.tracks`, with a derived run's lineage times and an extracted run's search table);
both GLUE averages recompute from the per-task scores, each the median over its seeds; the loss
curve runs forward and ends by train_elapsed_s (`leaderboard.claims`); a compressed entry's
fields agree with each other (`leaderboard.compressed`).

An outside model's entry: the track and its reason; the model record equals the results' own;
the weights hash, the folder hash and the results' hashes agree with each other and with the
file listing; the results are not rankable and not a from-scratch control; the averages
recompute as a run's do.
"""

from __future__ import annotations

from crambench.contracts import hash_pair
from cramming.rules import OUTSIDE_MODEL_REASON, RULES_VERSION
from glue_eval.model_folder import folder_sha256, listing_sha256
from leaderboard import claims, compressed, tracks
from leaderboard.schema import is_outside
from leaderboard.values import close, differences, format_number


def record_free_problems(entry: dict) -> list[str]:
    """Everything a schema-valid entry must satisfy on its own, for its kind."""
    if is_outside(entry):
        return outside_problems(entry)
    return (tracks.rule_violations(entry) + arithmetic_problems(entry)
            + claims.entry_time_problems(entry) + compressed.consistency_problems(entry))


def arithmetic_problems(entry: dict) -> list[str]:
    """Each task's score is the median over its seeds, and both GLUE averages recompute."""
    results = entry["results"]
    problems = seed_problems(results)
    if results["suite"] != "glue":
        return problems  # probe averages are not GLUE averages; nothing of them is ranked
    from glue_eval import compute_averages

    task_metrics = {task: spec["metrics"] for task, spec in results["tasks"].items()}
    try:
        recomputed = compute_averages(task_metrics)
    except (KeyError, ValueError) as err:
        return problems + [f"results.tasks cannot be averaged: {err}"]
    for key in ("avg_cramming", "avg_glue"):
        stated, actual = results[key]["value"], recomputed[key]["value"]
        if not close(stated, actual):
            problems.append(f"results.{key}.value is {stated} but the per-task scores "
                            f"average to {format_number(actual)}")
        # The site marks a partial average from this flag; it must not hide missing tasks.
        if results[key]["complete"] != recomputed[key]["complete"]:
            problems.append(f"results.{key}.complete is {results[key]['complete']} but "
                            f"{recomputed[key]['label']}")
    return problems


def seed_problems(results: dict) -> list[str]:
    """Several fine-tuning seeds (cram-glue/2): each task ran exactly the protocol's seeds, and
    its score is the per-metric median over them, with the spread they give."""
    from glue_eval import RESULTS_FORMAT, median_over_seeds, seed_spread

    if results["format"] != RESULTS_FORMAT:
        return []  # cram-glue/1: one seed, its metrics are the score
    seeds = results["protocol"].get("seeds")
    if (not isinstance(seeds, list) or not seeds or len(set(seeds)) != len(seeds)
            or not all(isinstance(s, int) and s >= 0 for s in seeds)):
        return [f"results.protocol.seeds {seeds!r} is not a list of distinct seeds >= 0"]
    problems = []
    for task, spec in results["tasks"].items():
        runs = spec.get("seeds", [])
        ran = [run["seed"] for run in runs]
        if ran != seeds:
            problems.append(f"results.tasks.{task}.seeds ran {ran}, the protocol lists {seeds}")
            continue
        per_seed = [run["metrics"] for run in runs]
        if any(set(metrics) != set(spec["metrics"]) for metrics in per_seed):
            problems.append(f"results.tasks.{task}: its seeds' metrics are not "
                            f"{', '.join(spec['metrics'])}")
            continue
        for metric, actual in median_over_seeds(per_seed).items():
            if not close(spec["metrics"][metric], actual):
                problems.append(f"results.tasks.{task}.metrics.{metric} is "
                                f"{spec['metrics'][metric]} but the median over its seeds is "
                                f"{format_number(actual)}")
        stated_spread = spec.get("spread") or {}
        for metric, stats in seed_spread(per_seed).items():
            for key, actual in stats.items():
                stated = (stated_spread.get(metric) or {}).get(key)
                if not close(stated, actual):
                    problems.append(f"results.tasks.{task}.spread.{metric}.{key} is {stated} "
                                    f"but its seeds give {format_number(actual)}")
    return problems


def outside_problems(entry: dict) -> list[str]:
    """Everything a schema-valid outside model's entry must satisfy on its own."""
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
    problems += _outside_hash_problems(entry)
    if str(results.get("finished_utc"))[:10] != entry["date"]:
        problems.append(f"date {entry['date']} is not the day the results were finished "
                        f"({results.get('finished_utc')})")
    return problems + arithmetic_problems(entry)


def _outside_hash_problems(entry: dict) -> list[str]:
    """The weights hash, the folder hash and the file listing agree with each other."""
    model, hashes, results = entry["outside_model"], entry["hashes"], entry["results"]
    problems = []
    weights = listing_sha256(model["weights"]) if model["weights"] else None
    if results["model_sha256"] != weights:
        shown = hash_pair(results["model_sha256"], weights)
        problems.append(f"results.model_sha256 {shown[0]} is not the sha256 of "
                        f"outside_model.weights ({shown[1]})")
    if hashes["model_sha256"] != results["model_sha256"]:
        problems.append("hashes.model_sha256 differs from results.model_sha256")
    listed = {f["file"]: f["sha256"] for f in model["files"]}
    for weight in model["weights"]:
        if listed.get(weight["file"]) != weight["sha256"]:
            problems.append(f"outside_model.weights {weight['file']} is not in "
                            "outside_model.files with the same sha256")
    actual = folder_sha256(model["files"])
    if model["folder_sha256"] != actual:
        shown = hash_pair(model["folder_sha256"], actual)
        problems.append(f"outside_model.folder_sha256 {shown[0]} is not the sha256 of "
                        f"outside_model.files ({shown[1]})")
    if hashes["folder_sha256"] != model["folder_sha256"]:
        problems.append("hashes.folder_sha256 differs from outside_model.folder_sha256")
    return problems
