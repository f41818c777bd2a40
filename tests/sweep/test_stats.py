"""Welch's t and Holm's correction against scipy and a computation by hand; the verdicts."""

import math

import pytest
from scipy import stats as scipy_stats

from sweep.stats import holm, verdict, welch


def test_welch_matches_scipy_and_the_formula():
    a, b = [2.10, 2.05, 2.20], [1.95, 1.90, 2.02, 1.98]
    result = welch(a, b)
    # by hand: the means, the two variances of the mean, Welch-Satterthwaite's df
    mean_a, mean_b = sum(a) / 3, sum(b) / 4
    va = sum((x - mean_a) ** 2 for x in a) / 2 / 3
    vb = sum((x - mean_b) ** 2 for x in b) / 3 / 4
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 3)
    half = scipy_stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert result["diff"] == pytest.approx(mean_b - mean_a)
    assert result["df"] == pytest.approx(df)
    assert result["interval"] == pytest.approx([mean_b - mean_a - half, mean_b - mean_a + half])
    reference = scipy_stats.ttest_ind(b, a, equal_var=False)
    assert result["p"] == pytest.approx(reference.pvalue)
    low, high = reference.confidence_interval(0.95)
    assert result["interval"] == pytest.approx([low, high])


def test_welch_needs_two_values_a_side():
    assert welch([1.0], [2.0, 3.0]) == {"diff": 1.5, "interval": None, "p": None, "df": None}


def test_holm_by_hand():
    # sorted 0.01, 0.02, 0.04 times 3, 2, 1 -> 0.03, 0.04, 0.04 (never below a smaller p's)
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, None, 0.6]) == pytest.approx([1.0, None, 1.0], nan_ok=True)
    assert holm([]) == []


def test_verdicts_in_words():
    assert verdict(-0.1, 0.01, alpha=0.05, lower_is_better=True, n=(3, 3)) == "better"
    assert verdict(-0.1, 0.01, alpha=0.05, lower_is_better=False, n=(3, 3)) == "worse"
    assert verdict(0.1, 0.20, alpha=0.05, lower_is_better=True, n=(3, 3)) == \
        "no detectable difference with n = 3"
    assert verdict(0.1, 0.20, alpha=0.05, lower_is_better=True, n=(3, 2)) == \
        "no detectable difference with n = 3 and 2"
    assert verdict(0.1, None, alpha=0.05, lower_is_better=True, n=(1, 1)).startswith("not tested")
