"""Learning-rate and batch-size schedules as functions of f = elapsed / budget (not of steps),
so a run ends with a decayed model exactly at its deadline on any hardware (cramming paper)."""

from __future__ import annotations


def lr_factor(f: float, start: float = 0.25, peak_at: float = 0.75) -> float:
    """One-cycle triangle: `start` at f = 0, 1 at f = peak_at, 0 at f = 1.

    With the reference start 0.25 and peak 0.75 this is min(0.25 + f, 4 * (1 - f))
    (docs/pretrain.md, "The budget").
    """
    f = min(max(f, 0.0), 1.0)
    rise = start + (1.0 - start) * f / peak_at
    fall = (1.0 - f) / (1.0 - peak_at)
    return max(0.0, min(rise, fall, 1.0))


def batch_size_at(f: float, start: int, target: int, ramp_until: float = 0.6) -> int:
    """Sequences per optimizer step: linear from `start` at f = 0 to `target` at f = ramp_until.

    Small batches early make many cheap steps while the loss falls fast; large batches later
    average out gradient noise (cramming paper: 8192 reached at 60% of the budget)."""
    progress = min(max(f, 0.0) / ramp_until, 1.0)
    return int(round(start + (target - start) * progress))
