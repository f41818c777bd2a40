"""GLUE metrics and the two averages, in percent points (x100, as GLUE and the cramming paper
report them; MCC and correlations too).

These functions are what the leaderboard validator calls to recompute an entry's numbers from
its prediction files, so they depend on nothing but the task table.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Mapping

import numpy as np
from scipy import stats
from sklearn import metrics as skm

from crambench.errors import UserError
from glue_eval.tasks import PROTOCOL_TASKS, TASKS


def _pearson(labels, predictions) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return float(stats.pearsonr(labels, predictions).statistic)


def _spearman(labels, predictions) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return float(stats.spearmanr(labels, predictions).statistic)


_METRICS = {
    "accuracy": skm.accuracy_score,
    # F1 of the positive class (MRPC: equivalent, QQP: duplicate), as GLUE reports it.
    "f1": lambda y, p: skm.f1_score(y, p, pos_label=1, average="binary", zero_division=0.0),
    "mcc": skm.matthews_corrcoef,
    "pearson": _pearson,
    "spearman": _spearman,
}


def compute_metrics(task_name: str, labels, predictions, *, split: str | None = None) -> dict:
    """Metric name -> value in percent points for one task.

    `labels`/`predictions`: arrays of class ids (scores for STS-B) of one dev split, or, for a
    task with several dev splits (MNLI), mappings split -> array covering any of its splits.
    A single array is scored as `split` (default: the task's first dev split).

    A correlation is undefined when either side is constant (e.g. a model that predicts one
    score for every pair); it is reported as 0, the value sklearn's MCC uses for the same case.
    """
    spec = TASKS.get(task_name)
    if spec is None:
        raise UserError(f"unknown GLUE task {task_name!r}; known: {', '.join(TASKS)}")
    if not isinstance(labels, Mapping):
        labels = {split or next(iter(spec.dev_splits)): labels}
        predictions = {next(iter(labels)): predictions}
    out = {}
    for split_name, split_labels in labels.items():
        if split_name not in spec.dev_splits:
            raise UserError(f"task {task_name} has no dev split {split_name!r}")
        y = np.asarray(split_labels)
        p = np.asarray(predictions[split_name])
        if y.shape != p.shape or y.ndim != 1 or not len(y):
            raise UserError(f"{task_name} {split_name}: {len(p)} predictions for {len(y)} labels")
        suffix = spec.dev_splits[split_name][1]
        for name in spec.metrics:
            value = float(_METRICS[name](y, p))
            out[name + suffix] = 100.0 * (0.0 if math.isnan(value) else value)
    return out


def median_over_seeds(per_seed: list[dict]) -> dict:
    """A task's score from its fine-tuning seeds: the median of each metric over the seeds.

    `per_seed`: one {metric: value} per seed, all with the same metric keys. The median over
    fine-tuning runs is what ELECTRA (Clark et al. 2020: median of 10 runs) and MosaicBERT
    (Portes et al. 2023) report: one unlucky seed on a small task (RTE, MRPC, CoLA) does not
    move it. An even number of seeds gives the mean of the middle two.
    Each metric is a median on its own (MRPC's F1 and accuracy may come from different seeds).
    """
    if not per_seed:
        raise ValueError("no seed to take a median over")
    return {key: statistics.median(run[key] for run in per_seed) for key in per_seed[0]}


def seed_spread(per_seed: list[dict]) -> dict:
    """metric -> {"mean", "std", "min", "max"} over the seeds; `std` is the sample standard
    deviation (n - 1 in the denominator), None with a single seed."""
    out = {}
    for key in per_seed[0]:
        values = [run[key] for run in per_seed]
        out[key] = {"mean": statistics.fmean(values),
                    "std": statistics.stdev(values) if len(values) > 1 else None,
                    "min": min(values), "max": max(values)}
    return out


# The cramming paper's GLUE table (Geiping & Goldstein 2022, table 3): one number per column.
CRAMMING_COMPONENTS = (
    ("mnli", "accuracy_m"), ("mnli", "accuracy_mm"), ("qqp", "f1"), ("qnli", "accuracy"),
    ("sst2", "accuracy"), ("cola", "mcc"), ("stsb", "pearson"), ("mrpc", "f1"),
    ("rte", "accuracy"),
)


def compute_averages(task_metrics: dict[str, dict]) -> dict:
    """Both averages of contract 3 from task -> {metric: value}.

    An average over a subset of its components is still computed (a quick run over five
    tasks wants a number) but marked `complete: false` and labelled with what is missing.
    """
    cram_parts = [
        {"task": t, "metric": m, "value": task_metrics[t][m]}
        for t, m in CRAMMING_COMPONENTS
        if m in task_metrics.get(t, {})
    ]
    glue_parts = []
    for task in PROTOCOL_TASKS:
        values = [task_metrics.get(task, {}).get(k) for k in TASKS[task].metric_keys]
        if all(v is not None for v in values):
            glue_parts.append({"task": task, "value": sum(values) / len(values)})
    return {
        "avg_cramming": _average(
            cram_parts, len(CRAMMING_COMPONENTS),
            "cramming-paper average: MNLI-m, MNLI-mm, QQP F1, QNLI acc, SST-2 acc, CoLA MCC, "
            "STS-B Pearson, MRPC F1, RTE acc",
            [f"{t}.{m}" for t, m in CRAMMING_COMPONENTS
             if m not in task_metrics.get(t, {})]),
        "avg_glue": _average(
            glue_parts, len(PROTOCOL_TASKS),
            "GLUE-style average: one score per task (mean of its metrics; MNLI mean of m/mm), "
            "WNLI excluded",
            [t for t in PROTOCOL_TASKS if t not in {p["task"] for p in glue_parts}]),
    }


def _average(parts: list[dict], expected: int, label: str, missing: list[str]) -> dict:
    complete = len(parts) == expected
    if not complete:
        label += f" (partial: {len(parts)} of {expected}; missing {', '.join(missing)})"
    value = sum(p["value"] for p in parts) / len(parts) if parts else None
    return {"value": value, "label": label, "components": parts, "complete": complete}
