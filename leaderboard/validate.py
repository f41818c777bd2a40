"""`cram leaderboard validate`: is an entry well-formed, within the rules, and true?

Four layers, each listing every problem it finds as one line:
1. schema: the entry parses against `entry.schema.json`, which names every field (an unknown
   field, at any level, is an error);
2. record-free: Rules v1 hold and the track label is the one the rules give; both GLUE
   averages recompute from the per-task scores; a derived run's times add up; the hashes the
   results carry are the entry's; the loss curve runs forward and ends by train_elapsed_s;
3. with a run dir: every field the run dir can vouch for equals its record there (summary,
   config, checkpoint train state, metrics log, final model config, data manifest, results
   file), every time claim agrees with every record that carries it (`leaderboard.claims`),
   every hash of the chain recomputes from the files, and a derived run's parent is unchanged;
4. with a GLUE dir too: every metric recomputes from the saved dev predictions against the
   dev labels.
A compressed entry's fields must also agree with each other and, with a run dir, with the
stored files (`leaderboard.compressed`).
Every path an entry or a record names is followed only inside its run dir or data dir.
An outside model's entry has no run: it is checked alone, against its results file and
predictions (`--results`, `--glue-dir`) and against its model folder (`--model`), as
`leaderboard.outside_entry` lists.
"""

from __future__ import annotations

import json
from pathlib import Path

from crambench.contracts import contained_path, sha256_file
from crambench.errors import UserError
from cramming.rules import RANKED_PROTOCOL
from leaderboard import claims, compressed, outside_entry, tracks
from leaderboard.extraction import extraction_run_problems
from leaderboard.outside_entry import is_outside
from leaderboard.records import (
    data_dir_of,
    entry_hardware,
    loss_curve,
    parent_dir,
    read_config,
    read_data_manifest,
    read_parent_summary,
    read_run_summary,
    run_file,
)
from leaderboard.schema import read_entry, schema_errors
from leaderboard.values import close, differences, format_number


def validate_entries(paths, *, run=None, glue_dir=None, results=None,
                     model=None) -> dict[str, list[str]]:
    """Map each entry path to its problems (an empty list: valid). `results` and `model` are
    an outside model's results file and model folder (`leaderboard.outside_entry`)."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise UserError("no entry to validate")
    for option, value in (("--run", run), ("--results", results), ("--model", model)):
        if value is not None and len(paths) > 1:
            raise UserError(f"{option} checks one entry: give a single entry")
    if run is not None and (results is not None or model is not None):
        raise UserError("--run is a trained run's; --results and --model an outside model's: "
                        "not both")
    if glue_dir is not None and run is None and results is None:
        raise UserError("--glue-dir needs --run (or --results for an outside model): the saved "
                        "dev predictions live beside the results")
    return {str(path): validate_entry(path, run=run, glue_dir=glue_dir, results=results,
                                      model=model) for path in paths}


def validate_entry(path, *, run=None, glue_dir=None, results=None, model=None) -> list[str]:
    try:
        entry = read_entry(path)
    except UserError as err:
        return [str(err)]
    problems = schema_errors(entry)
    if problems:  # the later layers assume the schema's structure
        return problems
    if is_outside(entry):
        return outside_problems(entry, run=run, glue_dir=glue_dir, results=results, model=model)
    if results is not None or model is not None:
        return [f"--results and --model are for an outside model's entry; {path} is a trained "
                "run's: check it with --run RUN"]
    problems = record_free_problems(entry)
    if run is not None:
        problems += run_problems(entry, Path(run))
    if glue_dir is not None:
        problems += metric_problems(entry, Path(run), Path(glue_dir))
    return problems


def outside_problems(entry: dict, *, run=None, glue_dir=None, results=None,
                     model=None) -> list[str]:
    """An outside model's entry: alone, against its results file and predictions (`results`,
    with `glue_dir` the dev labels) and against its model folder (`model`)."""
    if run is not None:
        return [f"--run: {entry['name']} is an outside model's entry, with no run; give its "
                "results file with --results FILE"]
    problems = outside_entry.record_free_problems(entry)
    if results is not None:
        problems += outside_entry.results_problems(entry, Path(results))
        if glue_dir is not None:
            problems += metric_problems(entry, Path(results).parent, Path(glue_dir))
    if model is not None:
        problems += outside_entry.folder_problems(entry, Path(model))
    return problems


def record_free_problems(entry: dict) -> list[str]:
    """Everything a schema-valid entry must satisfy on its own (no run dir, no GLUE files)."""
    if is_outside(entry):
        return outside_entry.record_free_problems(entry)
    return (tracks.rule_violations(entry) + arithmetic_problems(entry)
            + claims.entry_time_problems(entry) + compressed.consistency_problems(entry))


def arithmetic_problems(entry: dict) -> list[str]:
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


def run_problems(entry: dict, run: Path) -> list[str]:
    """Recompute what the run dir can tell: copied fields, time claims, the model's shape,
    the hash chain, the data sources, the results and the loss curve."""
    try:
        summary = read_run_summary(run)
    except UserError as err:
        return [str(err)]
    # What submit copied: a summary without world_size or device_names is one process's.
    summary = {**summary, "hardware": entry_hardware(summary["hardware"])}
    problems = claims.summary_problems(entry, summary, run)
    try:
        config = read_config(run)
    except UserError as err:
        config = None  # the hash check below still names the file
        problems.append(f"config.yaml cannot be read: {err}")
    else:
        problems += claims.time_problems(entry, summary, run, config)
        problems += claims.shape_problems(entry, run, config)
    problems += _hash_problems(entry, run, summary, config)
    problems += lineage_problems(entry, run) + extraction_run_problems(entry, run, summary)
    problems += compressed.run_problems(entry, run)
    problems += _data_problems(entry, run, summary)
    problems += _results_problems(entry, run)
    try:
        curve = loss_curve(run)
    except UserError as err:
        problems.append(f"loss_curve cannot be recomputed: {err}")
    else:
        if entry["loss_curve"] != curve:
            problems.append(f"loss_curve does not match {run}/metrics.jsonl")
    return problems


def _data_problems(entry: dict, run: Path, summary: dict) -> list[str]:
    """The entry's data sources and tokenizer are the ones the data dir's manifest records."""
    try:
        manifest = read_data_manifest(run, summary)
    except UserError as err:
        return [f"data.sources cannot be checked: {err}"]
    problems = []
    if entry["data"]["sources"] != manifest.get("sources", []):
        problems.append("data.sources differ from the data dir's manifest.json")
    if entry["hashes"]["tokenizer_sha256"] != manifest.get("tokenizer_sha256"):
        problems.append("hashes.tokenizer_sha256 differs from the tokenizer_sha256 of the data "
                        "dir's manifest.json: the run's tokenizer is not its data's")
    return problems


def _results_problems(entry: dict, run: Path) -> list[str]:
    """The entry's results must be the run's results file, field for field."""
    try:
        path = run_file(run, entry["results_file"], "results_file")
    except UserError as err:
        return [str(err)]
    if not path.is_file():
        return [f"results_file {path} not found (is the run scored? `cram eval glue --run "
                f"{run}`)"]
    try:
        on_disk = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return [f"results_file {path} cannot be read: {err}"]
    # Scores first: they are what a reader of the difference cares about.
    places = sorted(differences(entry["results"], on_disk),
                    key=lambda where: (not where.startswith("tasks."), where))
    problems = []
    if places:
        more = f" and {len(places) - 3} more" if len(places) > 3 else ""
        problems.append(f"results differ from {path} at {', '.join(places[:3])}{more}")
    return problems + _prediction_problems(entry, path.parent)


def _hash_problems(entry: dict, run: Path, summary: dict, config) -> list[str]:
    """Each hash of the chain recomputed from its file (`config`: the parsed config.yaml, or
    None when it cannot be read)."""
    from cramming import config_sha256
    from data_prep import open_data_dir

    hashes, problems = entry["hashes"], []

    def check(name: str, compute) -> None:
        try:
            actual = compute()
        except UserError as err:
            problems.append(f"hashes.{name} cannot be recomputed: {err}")
            return
        except OSError as err:
            problems.append(f"hashes.{name} cannot be recomputed: {err.filename}: "
                            f"{err.strerror}")
            return
        if actual != hashes[name]:
            problems.append(f"hashes.{name} {hashes[name][:12]}... does not match the "
                            f"recomputed {actual[:12]}...")

    check("data_sha256",
          lambda: open_data_dir(data_dir_of(run, summary), verify_hashes=True).data_sha256)
    check("tokenizer_sha256", lambda: sha256_file(run_file(run, "final/tokenizer.json")))
    if config is not None:
        check("config_sha256", lambda: config_sha256(config))
    check("model_sha256", lambda: sha256_file(run_file(run, "final/model.safetensors")))
    try:
        results = run_file(run, entry["results_file"], "results_file")
    except UserError:
        return problems  # the results check says so
    if results.is_file():  # if not, the results check says so
        check("eval_sha256", lambda: sha256_file(results))
    return problems


def lineage_problems(entry: dict, run: Path) -> list[str]:
    """A derived run's parent must still be the run it was derived from: the same summary
    (so the same training time and budget) and the same final model."""
    lineage = entry.get("lineage")
    if lineage is None:
        return []
    parent = parent_dir(lineage, run)
    if parent is None:
        return [f"lineage.parent_run {lineage['parent_run']} not found (from {run} or from "
                "here): the parent's hashes cannot be checked"]
    problems = []
    for key, path in (("parent_summary_sha256", parent / "summary.json"),
                      ("parent_model_sha256", parent / "final" / "model.safetensors")):
        try:
            actual = sha256_file(path)
        except OSError as err:
            problems.append(f"lineage.{key} cannot be recomputed: {path}: {err.strerror}")
            continue
        if actual != lineage[key]:
            problems.append(f"lineage.{key} {lineage[key][:12]}... does not match {path} "
                            f"({actual[:12]}...)")
    if not problems:  # the summary is the one hashed: its times are the parent's
        summary = read_parent_summary(parent)
        for part in ("train_elapsed_s", "budget_s"):
            if summary.get(part) != lineage[f"parent_{part}"]:
                problems.append(f"lineage.parent_{part} is {lineage[f'parent_{part}']!r} but "
                                f"{parent}/summary.json says {summary.get(part)!r}")
    return problems


def _prediction_problems(entry: dict, results_dir: Path) -> list[str]:
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
    seed's metrics from its own predictions (the median over seeds is checked without them)."""
    results = entry["results"]
    if results["suite"] != "glue":
        return [f"--glue-dir: this entry has {results['suite']} results, not GLUE"]
    from glue_eval import RESULTS_FORMAT, seed_runs

    try:
        results_dir = run_file(run, entry["results_file"], "results_file").parent
    except UserError as err:
        return [str(err)]
    problems = []
    for task in results["tasks"]:
        for number, seed_run in enumerate(seed_runs(results, task)):
            # cram-glue/1: the task's own metrics; cram-glue/2: those of each seed's run.
            where = f"results.tasks.{task}" + (
                f".seeds[{number}]" if results["format"] == RESULTS_FORMAT else "")
            problems += _rescore(task, seed_run, where, results["protocol"], results_dir,
                                 glue_dir)
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

