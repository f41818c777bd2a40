"""`cram leaderboard compare A B`: does B's GLUE score beat A's, beyond what chance explains?

A and B are GLUE results files (RUN/eval/glue.json) or run dirs (their eval/glue.json). Both are
scored again from their saved dev predictions against the dev labels, on the dev rows both
predicted, and compared by a paired bootstrap (`leaderboard.bootstrap`): for every metric of
every task both scored and for the two averages, the difference B - A, its 95% interval and a
two-sided p-value. The averages take only the components both results have; an average over
fewer than all of its components is marked partial.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from crambench.contracts import contained_path, sha256_file
from crambench.errors import UserError

if TYPE_CHECKING:
    import numpy as np

# numpy (and `leaderboard.bootstrap`, which needs it) is imported inside the functions that
# compute: `cram --help` reads the defaults below and must stay light.
REPLICATES = 1000  # as Koehn 2004 and Dror et al. 2018 use; p-values resolve to about 0.002
MIN_REPLICATES = 100  # with fewer, each 2.5% tail of the interval is two or three replicates
FORMAT = "cram-compare/1"
AVERAGES = (("avg_cramming", "avg (cram)"), ("avg_glue", "avg (GLUE)"))


@dataclass
class Side:
    """One results file: where it is, its record, and each task's runs (one per seed)."""
    path: Path
    record: dict

    @property
    def tasks(self) -> dict:
        return self.record["tasks"]

    def seed_runs(self, task: str) -> list[dict]:
        """[{seed, predictions: [{split, file, sha256}], ...}] of a task, for either format."""
        from glue_eval import seed_runs

        return seed_runs(self.record, task)

    def predictions(self, task: str, split: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """(dev row indices, predictions) of each seed, from files checked against their
        recorded sha256."""
        from glue_eval import read_predictions

        out = []
        for run in self.seed_runs(task):
            items = [item for item in run["predictions"] if item["split"] == split]
            if not items:
                raise UserError(f"{self.path}: {task} {split} has no saved predictions for seed "
                                f"{run['seed']} (re-run `cram eval glue`)")
            path = contained_path(self.path.parent, items[0]["file"], what="prediction file")
            if not path.is_file():
                raise UserError(f"{self.path}: prediction file {path} not found")
            if sha256_file(path) != items[0]["sha256"]:
                raise UserError(f"{path} does not match the sha256 in {self.path}")
            out.append(read_predictions(path))
        return out


def load_side(path) -> Side:
    """A GLUE results file, or a run dir's eval/glue.json; UserError otherwise."""
    path = Path(path)
    if path.is_dir():
        path = path / "eval" / "glue.json"
    if not path.is_file():
        raise UserError(f"{path} not found: give a GLUE results file or a scored run dir")
    from glue_eval import read_results

    record = read_results(path)  # a readable format and an object of tasks, or one line
    if record.get("suite") != "glue":
        raise UserError(f"{path} holds {record.get('suite')} results; compare needs GLUE scores")
    return Side(path, record)


def compare_results(a, b, *, glue_dir=None, replicates: int = REPLICATES, seed: int = 0) -> dict:
    """The comparison record (format cram-compare/1) of results B against results A.

    `glue_dir`: the GLUE folder with the dev labels (None: the Hub dataset). Raises UserError
    when the two share no task or no dev row of a task, or a prediction file is missing or
    changed."""
    if replicates < MIN_REPLICATES:
        raise UserError(f"--replicates {replicates}: use at least {MIN_REPLICATES}")
    import numpy as np

    from glue_eval import TASKS, compute_averages, read_split
    from leaderboard import bootstrap

    side_a, side_b = load_side(a), load_side(b)
    common = [task for task in TASKS if task in side_a.tasks and task in side_b.tasks]
    if not common:
        raise UserError(f"{side_a.path} and {side_b.path} share no GLUE task")
    notes = setting_notes(side_a, side_b, common)
    rng = np.random.default_rng(seed)
    tasks, observed, drawn = {}, {"a": {}, "b": {}}, {"a": {}, "b": {}}
    for task in common:
        spec = TASKS[task]
        tasks[task] = {"seeds": [len(side_a.seed_runs(task)), len(side_b.seed_runs(task))],
                       "metrics": {}}
        n_rows = {}
        for split, (_, suffix) in spec.dev_splits.items():
            labels = read_split(glue_dir, task, split).labels
            notes += label_notes(task, split, labels, {"A": side_a, "B": side_b}, glue_dir)
            rows, runs = _aligned(task, split, labels, {"a": side_a, "b": side_b})
            per_seed = bootstrap.split_replicates(rng, labels[rows], runs, spec.metrics,
                                                  replicates)
            for system, predictions in runs.items():
                for metric in spec.metrics:
                    key = metric + suffix
                    n_rows[key] = len(rows)
                    everything = np.ones((1, len(rows)))
                    observed[system].setdefault(task, {})[key] = float(np.median(
                        [bootstrap.weighted_metric(metric, everything, labels[rows], seed_preds)[0]
                         for seed_preds in predictions]))
                    drawn[system].setdefault(task, {})[key] = bootstrap.median_over_drawn_seeds(
                        rng, per_seed[system][metric])
        for key in spec.metric_keys:
            tasks[task]["metrics"][key] = {"rows": n_rows[key], **bootstrap.summarize(
                observed["a"][task][key], observed["b"][task][key],
                drawn["a"][task][key], drawn["b"][task][key])}
    record = {"format": FORMAT, "a": str(side_a.path), "b": str(side_b.path),
              "method": {"name": "paired bootstrap", "replicates": replicates, "seed": seed,
                         "confidence": bootstrap.CONFIDENCE},
              "tasks": tasks, "notes": sorted(set(notes), key=notes.index)}
    # compute_averages adds numbers or arrays alike: the replicates average as the scores do.
    stated = {system: compute_averages(observed[system]) for system in observed}
    resampled = {system: compute_averages(drawn[system]) for system in drawn}
    for key, _ in AVERAGES:
        if stated["a"][key]["value"] is None:
            record[key] = None
            continue
        record[key] = bootstrap.summarize(stated["a"][key]["value"], stated["b"][key]["value"],
                                          resampled["a"][key]["value"],
                                          resampled["b"][key]["value"])
        record[key].update(complete=stated["a"][key]["complete"], label=stated["a"][key]["label"])
    record["verdict"] = verdict(record)
    return record


def setting_notes(side_a: Side, side_b: Side, common: list[str]) -> list[str]:
    """What differs between how A and B were scored, said before any number: the protocol
    (seeds aside: the median over any seeds is one score) and the task set."""
    notes = []
    protocols = [{k: v for k, v in side.record.get("protocol", {}).items()
                  if k not in ("seeds", "seed", "rankable")} for side in (side_a, side_b)]
    if protocols[0] != protocols[1]:
        names = [p.get("name") for p in protocols]
        what = (f"A used {names[0]!r}, B {names[1]!r}" if names[0] != names[1]
                else f"both {names[0]!r} with different settings")
        notes.append(f"different fine-tuning protocols ({what}): the difference is not only "
                     "the models'")
    only = {label: [t for t in side.tasks if t not in common]
            for label, side in (("A", side_a), ("B", side_b))}
    if any(only.values()):
        parts = [f"only {label} has {', '.join(tasks)}" for label, tasks in only.items() if tasks]
        notes.append(f"different task sets ({'; '.join(parts)}): compared on the "
                     f"{len(common)} both have")
    return notes


def label_notes(task: str, split: str, labels: np.ndarray, sides: dict[str, Side],
                glue_dir) -> list[str]:
    """Refuse dev labels other than those a side was scored against (UserError, one line);
    a note for a side whose results predate the label hashes."""
    from glue_eval import labels_sha256, labels_verdict

    actual, notes = labels_sha256(labels), []
    where = f"the {task} {split} labels in {glue_dir}" if glue_dir else \
        f"the Hub's {task} {split} labels"
    for label, side in sides.items():
        verdict = labels_verdict(side.record, task, split, actual)
        if verdict == "other":
            raise UserError(f"{where} are not the labels {label} ({side.path}) was scored "
                            "against (dev_labels_sha256 differs): compare with the GLUE files "
                            "both were scored with")
        if verdict == "unknown":
            notes.append(f"{label} ({side.path}) records no dev label hashes (scored by an "
                         "earlier cram eval): its dev labels could not be confirmed")
    return notes


def _aligned(task: str, split: str, labels: np.ndarray, sides: dict[str, Side]):
    """(dev rows every seed of both sides predicted, system -> (seeds, rows) predictions)."""
    import numpy as np

    loaded = {system: side.predictions(task, split) for system, side in sides.items()}
    rows = None
    for system, runs in loaded.items():
        for indices, _ in runs:
            if len(indices) and (indices.min() < 0 or indices.max() >= len(labels)):
                raise UserError(f"{sides[system].path}: {task} {split} predictions name rows "
                                f"outside the {len(labels)}-row dev split")
            rows = indices if rows is None else np.intersect1d(rows, indices)
    rows = np.unique(rows)
    if not len(rows):
        raise UserError(f"{task} {split}: {sides['a'].path} and {sides['b'].path} predicted no "
                        "dev row in common")
    runs = {}
    for system, seeds in loaded.items():
        aligned = []
        for indices, predictions in seeds:
            order = np.argsort(indices)
            aligned.append(predictions[order][np.searchsorted(indices[order], rows)])
        runs[system] = np.stack(aligned)
    return rows, runs


def verdict(record: dict) -> str:
    """One line on the first average both have (the cramming one, the ranked score)."""
    for key, label in AVERAGES:
        result = record.get(key)
        if result is None:
            continue
        low, high = result["interval"]
        partial = "" if result["complete"] else " (partial average)"
        summary = (f"{result['diff']:+.2f} points on {label}{partial}, 95% interval "
                   f"[{low:+.2f}, {high:+.2f}], p = {_p(result['p'])}")
        if low > 0:
            return f"B beats A: {summary}"
        if high < 0:
            return f"A beats B: {summary}"
        return f"no significant difference: {summary}"
    return "no average to compare"


def format_report(record: dict) -> str:
    """The table `cram leaderboard compare` prints."""
    method = record["method"]
    lines = [f"A: {record['a']}", f"B: {record['b']}",
             f"{method['name']} over the dev rows both predicted (and the fine-tuning seeds), "
             f"{method['replicates']} replicates, seed {method['seed']}",
             f"{'task':<7}{'metric':<13}{'rows':>6}{'seeds':>6}{'A':>8}{'B':>8}{'B-A':>8}"
             f"{'95% interval':>18}{'p':>8}"]
    for task, result in record["tasks"].items():
        seeds = "/".join(str(k) for k in result["seeds"])
        for key, row in result["metrics"].items():
            lines.append(f"{task:<7}{key:<13}{row['rows']:>6}{seeds:>6}" + _numbers(row))
    for key, label in AVERAGES:
        if record.get(key) is not None:
            mark = "" if record[key]["complete"] else " *"
            lines.append(f"{label + mark:<32}" + _numbers(record[key]))
    if any(record.get(key) and not record[key]["complete"] for key, _ in AVERAGES):
        lines.append("* partial: over the components both results have")
    lines += [f"note: {note}" for note in record.get("notes", [])]
    lines.append(record["verdict"])
    return "\n".join(lines)


def _numbers(row: dict) -> str:
    low, high = row["interval"]
    return (f"{row['a']:>8.2f}{row['b']:>8.2f}{row['diff']:>+8.2f}"
            f"{f'[{low:+.2f}, {high:+.2f}]':>18}{_p(row['p']):>8}")


def _p(value: float) -> str:
    return f"{value:.3f}" if value >= 0.001 else "<0.001"
