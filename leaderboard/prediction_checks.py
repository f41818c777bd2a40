"""The prediction-file layer of `cram leaderboard validate`: the saved predictions behind an
entry's scores.

`prediction_problems`: every dev prediction file and every GLUE server test file the results
name is there, inside the results' folder, and matches its sha256 (a run's results file check
and `cram submit --results` run it). `metric_problems` (`--glue-dir`): every metric recomputes
from the saved dev predictions against the dev labels, each seed's from its own files.
"""

from __future__ import annotations

from pathlib import Path

from crambench.contracts import contained_path, sha256_file
from crambench.errors import UserError
from cramming.rules import RANKED_PROTOCOL
from leaderboard.records import run_file
from leaderboard.values import close, format_number


def prediction_problems(entry: dict, results_dir: Path) -> list[str]:
    """The prediction files of the results (in `results_dir`) are there and match their
    sha256: every seed's dev predictions, then the GLUE server test files."""
    from glue_eval import seed_runs

    problems = []
    for task in entry["results"]["tasks"]:
        for item in (i for run in seed_runs(entry["results"], task) for i in run["predictions"]):
            try:
                path = _prediction_path(results_dir, item)
            except UserError as err:
                problems.append(f"{task} {item['split']} predictions: {err}")
                continue
            if not path.is_file():
                problems.append(f"{task} {item['split']} predictions {path} not found")
            elif sha256_file(path) != item["sha256"]:
                problems.append(f"{task} {item['split']} predictions {path} do not match "
                                "their sha256")
    tests = entry["results"].get("test_predictions")
    for item in [*tests["files"], tests["submission"]] if tests else []:
        try:
            path = contained_path(results_dir, item["file"], what="test_predictions file")
        except UserError as err:
            problems.append(str(err))
            continue
        if not path.is_file():
            problems.append(f"test_predictions: {path} not found")
        elif sha256_file(path) != item["sha256"]:
            problems.append(f"test_predictions: {path} does not match its sha256")
    return problems


def metric_problems(entry: dict, run: Path, glue_dir: Path) -> list[str]:
    """Score every saved dev prediction file again against the dev labels in `glue_dir`: each
    seed's metrics from its own predictions (the median over seeds is checked without them).
    `run`: the run dir, or the folder of an outside model's results file."""
    results = entry["results"]
    if results["suite"] != "glue":
        return [f"--glue-dir: this entry has {results['suite']} results, not GLUE"]
    from glue_eval import RESULTS_FORMAT, seed_runs

    try:
        results_dir = run_file(run, entry["results_file"], "results_file").parent
    except UserError as err:
        return [str(err)]
    mismatched = label_problems(results, glue_dir)
    if mismatched:  # every metric would differ: the labels, not the scores, are the news
        return mismatched
    problems = []
    for task in results["tasks"]:
        for number, seed_run in enumerate(seed_runs(results, task)):
            # cram-glue/1: the task's own metrics; cram-glue/2: those of each seed's run.
            where = f"results.tasks.{task}" + (
                f".seeds[{number}]" if results["format"] == RESULTS_FORMAT else "")
            problems += _rescore(task, seed_run, where, results["protocol"], results_dir,
                                 glue_dir)
    return problems


def label_problems(results: dict, glue_dir: Path) -> list[str]:
    """One line per dev split whose labels in `glue_dir` are not those the results were
    scored against (results that predate the hashes are rescored unconfirmed)."""
    from glue_eval import TASKS, labels_sha256, labels_verdict, read_split

    problems = []
    for task in results["tasks"]:
        for split in TASKS[task].dev_splits if task in TASKS else ():
            try:
                actual = labels_sha256(read_split(glue_dir, task, split).labels)
            except UserError:
                continue  # the rescore names the unreadable file
            if labels_verdict(results, task, split, actual) == "other":
                problems.append(f"results.tasks.{task}.dev_labels_sha256: the {task} {split} "
                                f"labels in {glue_dir} are not those the results were scored "
                                "against; validate with the GLUE files they were scored with")
    return problems


def _rescore(task: str, seed_run: dict, where: str, protocol: dict, results_dir: Path,
             glue_dir: Path) -> list[str]:
    from glue_eval import compute_metrics

    problems, recomputed, failed = [], {}, False
    for item in seed_run["predictions"]:
        try:
            labels, predictions = _scored_rows(task, item, protocol, results_dir, glue_dir)
            recomputed.update(compute_metrics(task, labels, predictions, split=item["split"]))
        except (UserError, OSError) as err:
            problems.append(f"{task} {item['split']}: metrics cannot be recomputed: {err}")
            failed = True
    if not seed_run["predictions"]:
        problems.append(f"{task}: no saved predictions to recompute its metrics from")
    elif not failed:  # e.g. MNLI-mm stated with only the matched predictions saved
        problems += [f"{where}.metrics.{metric} has no saved predictions to recompute it "
                     "from" for metric in seed_run["metrics"] if metric not in recomputed]
    for metric, actual in recomputed.items():
        stated = seed_run["metrics"].get(metric)
        if not close(stated, actual):
            problems.append(f"{where}.metrics.{metric} is {stated} but the saved predictions "
                            f"score {format_number(actual)}")
    return problems


def _scored_rows(task: str, item: dict, protocol: dict, results_dir: Path, glue_dir: Path):
    """(dev labels, predictions) of the rows one prediction file covers.

    Each index must name a distinct row of the dev split. The ranked protocol scores every
    dev row; a capped one (quick: `max_dev_rows`) scores a seeded subset of exactly that
    many rows (all of them when the split is smaller).
    """
    import numpy as np

    from glue_eval import read_predictions, read_split

    labels = read_split(glue_dir, task, item["split"]).labels
    indices, predictions = read_predictions(_prediction_path(results_dir, item))
    n = len(labels)
    if len(np.unique(indices)) != len(indices):
        raise UserError(f"{item['file']} names a dev row more than once")
    if len(indices) and (indices.min() < 0 or indices.max() >= n):
        raise UserError(f"{item['file']} names rows outside the {n}-row dev split")
    cap = None if protocol["name"] == RANKED_PROTOCOL else protocol.get("max_dev_rows")
    expected = min(n, cap) if isinstance(cap, int) else n
    if len(indices) != expected:
        raise UserError(f"{item['file']} has predictions for {len(indices)} of the {n} dev "
                        f"rows; the {protocol['name']!r} protocol scores {expected}")
    return labels[indices], predictions


def _prediction_path(results_dir: Path, item: dict) -> Path:
    """A prediction file named in the results, relative to their folder, kept inside it."""
    return contained_path(results_dir, item["file"], what="prediction file")
