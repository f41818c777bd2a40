"""The two-level bootstrap of GLUE scores (pretraining seeds, then dev examples), on made-up
predictions: the observed difference is the difference of the runs' means, a clear gap is
detected, identical arms are not."""

import numpy as np
import pytest

from sweep.resample import compare_arms, glue_replicates, mean_over_drawn_runs


def runs_with_errors(rng, labels, rates):
    """One run per error rate: its predictions (1 fine-tuning seed) with that share flipped."""
    out = {}
    for number, rate in enumerate(rates):
        flipped = rng.random(len(labels)) < rate
        out[number] = np.where(flipped, 1 - labels, labels)[None, :]
    return out


def setup(rates_a, rates_b, n=300):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, n)
    a = runs_with_errors(rng, labels, rates_a)
    b = runs_with_errors(rng, labels, rates_b)
    predictions = {f"a/{k}": {("rte", "dev"): v} for k, v in a.items()}
    predictions |= {f"b/{k}": {("rte", "dev"): v} for k, v in b.items()}
    observed = {arm: [100.0 * float((p[("rte", "dev")][0] == labels).mean())
                      for run, p in predictions.items() if run.startswith(arm)]
                for arm in ("a", "b")}
    per_run = glue_replicates(np.random.default_rng(0), {("rte", "dev"): labels}, predictions,
                              "rte.accuracy", replicates=400)
    replicated = {arm: np.stack([v for run, v in per_run.items() if run.startswith(arm)])
                  for arm in ("a", "b")}
    return observed, replicated


def test_a_clear_gap_is_detected_and_the_difference_is_the_means():
    observed, replicated = setup([0.3, 0.32, 0.28], [0.1, 0.12, 0.09])
    result = compare_arms(np.random.default_rng(2), observed, replicated, "a", "b")
    assert result["diff"] == pytest.approx(np.mean(observed["b"]) - np.mean(observed["a"]))
    low, high = result["interval"]
    assert 0 < low < result["diff"] < high and result["p"] < 0.01


def test_identical_arms_show_no_difference():
    observed, replicated = setup([0.3, 0.25], [0.3, 0.25])
    replicated["b"] = replicated["a"].copy()
    result = compare_arms(np.random.default_rng(2), observed, replicated, "a", "b")
    low, high = result["interval"]
    assert low <= 0 <= high and result["p"] > 0.5


def test_the_first_level_draws_runs_with_replacement():
    per_run = np.array([[1.0, 1.0], [3.0, 3.0]])
    means = mean_over_drawn_runs(np.random.default_rng(0), per_run)
    assert set(np.round(means, 6)) <= {1.0, 2.0, 3.0}
