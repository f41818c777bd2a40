"""The statistics of a sweep's comparisons: Welch's t over pretraining seeds, Holm's
correction across variants, and the verdict in words.

Each pretraining seed is one draw of the run-to-run noise (MultiBERTs, Sellam et al. 2022:
another seed alone can change a conclusion), so a variant is compared with the baseline over
its seeds: the difference of the means, its confidence interval and the two-sided p-value of
Welch's unequal-variances t-test (Welch 1947; scipy.stats.ttest_ind with equal_var=False).
Across several variants the p-values are adjusted by Holm's step-down method (Holm 1979,
"A simple sequentially rejective multiple test procedure"), which keeps the chance of any false
"better" or "worse" at most alpha without assuming the tests independent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def welch(baseline: Sequence[float], variant: Sequence[float], *,
          confidence: float = 0.95) -> dict:
    """variant - baseline over seeds: {"diff", "interval": [low, high], "p", "df"}; the
    interval and p are None with fewer than two values on a side (no spread to test with)."""
    from scipy import stats

    a, b = list(map(float, baseline)), list(map(float, variant))
    diff = _mean(b) - _mean(a)
    if len(a) < 2 or len(b) < 2:
        return {"diff": diff, "interval": None, "p": None, "df": None}
    var_a, var_b = _var(a) / len(a), _var(b) / len(b)
    se = math.sqrt(var_a + var_b)
    if se == 0:  # identical values on both sides: the difference is exact
        return {"diff": diff, "interval": [diff, diff], "p": 1.0 if diff == 0 else 0.0,
                "df": None}
    # Welch-Satterthwaite degrees of freedom
    df = (var_a + var_b) ** 2 / (var_a**2 / (len(a) - 1) + var_b**2 / (len(b) - 1))
    half = stats.t.ppf(0.5 + confidence / 2, df) * se
    p = float(stats.ttest_ind(b, a, equal_var=False).pvalue)
    return {"diff": diff, "interval": [diff - half, diff + half], "p": p, "df": df}


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-adjusted p-values, in the order given (None stays None and is not counted)."""
    tested = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m, adjusted, running = len(tested), [None] * len(p_values), 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))  # step-down: never below a smaller p's
        adjusted[i] = running
    return adjusted


def verdict(diff: float, p_adjusted: float | None, *, alpha: float, lower_is_better: bool,
            n: tuple[int, int]) -> str:
    """"better", "worse" (than the baseline, at the Holm-adjusted level alpha) or "no
    detectable difference with n = 3" (n: the seeds of the baseline and the variant)."""
    if p_adjusted is not None and p_adjusted < alpha:
        return "better" if (diff < 0) == lower_is_better else "worse"
    counts = f"n = {n[0]}" if n[0] == n[1] else f"n = {n[0]} and {n[1]}"
    if p_adjusted is None:
        return f"not tested with {counts} (a test needs two seeds per arm)"
    return f"no detectable difference with {counts}"


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _var(values: list[float]) -> float:
    """Sample variance (n - 1)."""
    mean = _mean(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)
