"""Paired bootstrap of GLUE dev scores: is B's score above A's more than resampling explains?

A replicate redraws every dev split's examples with replacement, the same draw for both systems
(the paired bootstrap of Koehn 2004, "Statistical significance tests for machine translation
evaluation", as Dror et al. 2018 recommend for NLP metrics), and, where a result holds several
fine-tuning seeds, each system's seeds with replacement; each system is then scored as its
results file scores it (a task's metric is the median over its seeds). The 95% interval is the
percentile interval of the replicate differences (Efron & Tibshirani 1993, "An Introduction to
the Bootstrap", ch. 13); the two-sided p-value is twice the share of replicates on the far side
of zero (counted with the +1 of Davison & Hinkley 1997, ch. 4, so it is never 0), the test that
interval inverts: p < 0.05 exactly when 0 lies outside it, up to the resolution of the replicates.

A redrawn split is a vector of weights (how often each example was drawn), so every metric is
computed for a block of replicates at once as a weighted statistic; with all weights 1 each one
equals `glue_eval.compute_metrics` on the whole split (the tests check this).
"""

from __future__ import annotations

import numpy as np

CONFIDENCE = 0.95
# Weights scored at once (replicates x examples): 4M float64 = 32 MB whatever the split size.
BLOCK_CELLS = 4_000_000
# A centred variance below this (in squared units of the scores) is a constant input: its
# correlation is undefined and reported as 0, as compute_metrics does.
CONSTANT_VARIANCE = 1e-12


def resample_weights(rng: np.random.Generator, n: int, replicates: int) -> np.ndarray:
    """(replicates, n) float64: how often each of n examples is drawn in each replicate."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=replicates).astype(np.float64)


def weighted_metric(name: str, weights: np.ndarray, labels: np.ndarray,
                    predictions: np.ndarray) -> np.ndarray:
    """Metric `name` of every row of `weights` (R, n) over labels/predictions (n,), in percent
    points: accuracy, f1 (of class 1), mcc (any number of classes, sklearn's definition),
    pearson or spearman. Returns shape (R,)."""
    y, p = np.asarray(labels), np.asarray(predictions)
    total = weights.sum(axis=1)
    if name == "accuracy":
        value = weights @ (y == p) / total
    elif name == "f1":
        tp = weights @ ((y == 1) & (p == 1))
        wrong = weights @ ((y == 1) != (p == 1))  # false positives + false negatives
        value = _ratio(2 * tp, 2 * tp + wrong)
    elif name == "mcc":
        value = _mcc(weights, y, p, total)
    elif name == "pearson":
        value = _pearson(weights, y.astype(np.float64), p.astype(np.float64), total)
    elif name == "spearman":
        value = _pearson(weights, _weighted_ranks(weights, y), _weighted_ranks(weights, p),
                         total)
    else:
        raise ValueError(f"no weighted form of metric {name!r}")
    return 100.0 * value


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    # 0 where the denominator is 0: sklearn's zero_division=0 (F1) and its MCC convention.
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)


def _mcc(weights, y, p, total) -> np.ndarray:
    # Gorodkin's multi-class MCC from the weighted confusion counts, as sklearn computes it.
    correct = weights @ (y == p)
    classes = np.union1d(y, p)
    true_k = np.stack([weights @ (y == k) for k in classes], axis=1)
    pred_k = np.stack([weights @ (p == k) for k in classes], axis=1)
    cov_yp = correct * total - (true_k * pred_k).sum(axis=1)
    cov_pp = total**2 - (pred_k**2).sum(axis=1)
    cov_yy = total**2 - (true_k**2).sum(axis=1)
    return _ratio(cov_yp, np.sqrt(cov_yy * cov_pp))


def _pearson(weights, x, y, total) -> np.ndarray:
    """Weighted Pearson correlation per row; x and y are (n,) or per-replicate (R, n)."""
    # Centred first: a constant input then has an exactly zero variance.
    x = x - x.mean(axis=-1, keepdims=True)
    y = y - y.mean(axis=-1, keepdims=True)

    def mean(values):
        return (weights * values).sum(axis=1) / total

    mean_x, mean_y = mean(x), mean(y)
    cov = mean(x * y) - mean_x * mean_y
    var_x = mean(x * x) - mean_x**2
    var_y = mean(y * y) - mean_y**2
    defined = (var_x > CONSTANT_VARIANCE) & (var_y > CONSTANT_VARIANCE)
    return _ratio(np.where(defined, cov, 0.0), np.sqrt(np.where(defined, var_x * var_y, 0.0)))


def _weighted_ranks(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(R, n): each example's average rank among the examples drawn in its replicate (ties
    share the mean of their ranks, as scipy's rankdata does), for Spearman's correlation."""
    unique, inverse = np.unique(values, return_inverse=True)
    counts = np.zeros((weights.shape[0], len(unique)))
    np.add.at(counts.T, inverse, weights.T)  # draws per distinct value, per replicate
    below = np.cumsum(counts, axis=1) - counts
    return (below + (counts + 1) / 2)[:, inverse]


def split_replicates(rng: np.random.Generator, labels: np.ndarray,
                     runs: dict[str, np.ndarray], metrics: tuple[str, ...],
                     replicates: int) -> dict[str, dict[str, np.ndarray]]:
    """Every metric of every seed of every system on the same redrawn examples.

    `runs`: system -> (seeds, n) predictions on one dev split's n examples. Returns
    system -> metric -> (replicates, seeds)."""
    n = len(labels)
    block = max(1, BLOCK_CELLS // n)
    out = {system: {m: [] for m in metrics} for system in runs}
    for start in range(0, replicates, block):
        weights = resample_weights(rng, n, min(block, replicates - start))
        for system, predictions in runs.items():
            for metric in metrics:
                out[system][metric].append(np.stack(
                    [weighted_metric(metric, weights, labels, seed) for seed in predictions],
                    axis=1))
    return {system: {m: np.concatenate(blocks) for m, blocks in values.items()}
            for system, values in out.items()}


def median_over_drawn_seeds(rng: np.random.Generator, per_seed: np.ndarray) -> np.ndarray:
    """(R, k) -> (R,): per replicate, the median over k seeds drawn with replacement (one seed:
    its value)."""
    replicates, k = per_seed.shape
    if k == 1:
        return per_seed[:, 0]
    drawn = rng.integers(0, k, size=(replicates, k))
    return np.median(np.take_along_axis(per_seed, drawn, axis=1), axis=1)


def summarize(observed_a: float, observed_b: float, replicates_a: np.ndarray,
              replicates_b: np.ndarray) -> dict:
    """The observed difference B - A, its percentile interval and two-sided p-value."""
    diff = replicates_b - replicates_a
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(diff, [tail, 1 - tail])
    far_side = min(int((diff <= 0).sum()), int((diff >= 0).sum()))
    p_value = min(1.0, 2 * (far_side + 1) / (len(diff) + 1))
    return {"a": observed_a, "b": observed_b, "diff": observed_b - observed_a,
            "interval": [float(low), float(high)], "p": p_value}
