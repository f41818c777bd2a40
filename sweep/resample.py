"""A two-level bootstrap of GLUE scores over a sweep's runs: pretraining seeds, then dev examples.

A sweep's GLUE comparison has two sources of noise: which pretraining seeds the arms happened
to get (the runs), and which dev examples the tasks happened to hold (the splits). A replicate
draws each arm's runs with replacement, and every dev split's examples with replacement (one
draw for every run of both arms: the paired bootstrap of `leaderboard.bootstrap`, Koehn 2004),
scores every run on the drawn examples as its results file scores it (each task's metric the
median over the run's fine-tuning seeds, the averages by `glue_eval.compute_averages`) and
averages the drawn runs of each arm: the nested bootstrap of a two-stage sample (Davison &
Hinkley 1997, section 3.8, resampling the first stage and then the second). The interval and
p-value of the differences are `leaderboard.bootstrap.summarize`'s.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

REPLICATES = 1000  # as `cram leaderboard compare`


def glue_replicates(rng: np.random.Generator, labels: dict, predictions: dict[str, dict],
                    metric: str, replicates: int = REPLICATES) -> dict[str, np.ndarray]:
    """run -> (replicates,) values of `metric` on the drawn dev examples (one draw per split,
    shared by every run).

    `labels`: (task, split) -> (n,) dev labels. `predictions`: run -> (task, split) -> (seeds, n)
    predictions on the same n rows. `metric`: avg_cramming, avg_glue or TASK.KEY."""
    from glue_eval import TASKS, compute_averages
    from leaderboard import bootstrap

    scores: dict[str, dict] = {run: {} for run in predictions}
    for (task, split), y in labels.items():
        spec = TASKS[task]
        suffix = spec.dev_splits[split][1]
        runs = {run: preds[task, split] for run, preds in predictions.items()}
        drawn = bootstrap.split_replicates(rng, y, runs, spec.metrics, replicates)
        for run, per_metric in drawn.items():
            for name, values in per_metric.items():  # (replicates, fine-tuning seeds)
                scores[run].setdefault(task, {})[name + suffix] = np.median(values, axis=1)
    if metric in ("avg_cramming", "avg_glue"):
        return {run: np.asarray(compute_averages(tasks)[metric]["value"])
                for run, tasks in scores.items()}
    task, _, key = metric.partition(".")
    return {run: tasks[task][key] for run, tasks in scores.items()}


def mean_over_drawn_runs(rng: np.random.Generator, per_run: np.ndarray) -> np.ndarray:
    """(runs, replicates) -> (replicates,): per replicate, the mean over the arm's runs drawn
    with replacement (the first level)."""
    runs, replicates = per_run.shape
    drawn = rng.integers(0, runs, size=(replicates, runs))
    return per_run[drawn, np.arange(replicates)[:, None]].mean(axis=1)


def compare_arms(rng: np.random.Generator, observed: dict[str, list[float]],
                 replicated: dict[str, np.ndarray], baseline: str, variant: str) -> dict:
    """The variant's difference from the baseline, its percentile interval and p-value.
    `observed`: arm -> each run's recorded score; `replicated`: arm -> (runs, replicates)."""
    from leaderboard import bootstrap

    a = mean_over_drawn_runs(rng, replicated[baseline])
    b = mean_over_drawn_runs(rng, replicated[variant])
    result = bootstrap.summarize(float(np.mean(observed[baseline])),
                                 float(np.mean(observed[variant])), a, b)
    return {"diff": result["diff"], "interval": result["interval"], "p": result["p"],
            "df": None}


def read_glue_predictions(runs: dict[str, Path], tasks: list[str], glue_dir):
    """(labels, predictions) for glue_replicates, from each run's eval/glue.json and its saved
    dev predictions, on the dev rows every run predicted (checked against their hashes)."""
    from crambench.errors import UserError
    from glue_eval import TASKS, read_split
    from leaderboard.compare import load_side

    sides = {run: load_side(path) for run, path in runs.items()}
    labels, predictions = {}, {run: {} for run in runs}
    for task in tasks:
        for split in TASKS[task].dev_splits:
            y = read_split(glue_dir, task, split).labels
            loaded = {run: side.predictions(task, split) for run, side in sides.items()}
            rows = None
            for seeds in loaded.values():
                for indices, _ in seeds:
                    rows = indices if rows is None else np.intersect1d(rows, indices)
            rows = np.unique(rows)
            if not len(rows) or rows.max() >= len(y):
                raise UserError(f"{task} {split}: the sweep's runs share no dev row in range")
            labels[task, split] = y[rows]
            for run, seeds in loaded.items():
                aligned = []
                for indices, preds in seeds:
                    order = np.argsort(indices)
                    aligned.append(preds[order][np.searchsorted(indices[order], rows)])
                predictions[run][task, split] = np.stack(aligned)
    return labels, predictions
