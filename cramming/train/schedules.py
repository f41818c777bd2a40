"""Learning-rate and batch-size schedules as functions of f = elapsed / budget (not of steps),
so a run ends with a decayed model exactly at its deadline on any hardware (cramming paper).

`train.schedule` names one entry of SCHEDULES; each maps (f, train section) to the factor of
the peak learning rate. The cramming code's `budget-*` schedules are the same idea.
"""

from __future__ import annotations

import math

from cramming.config import TrainConfig


def lr_factor(f: float, start: float = 0.25, peak_at: float = 0.75) -> float:
    """One-cycle triangle: `start` at f = 0, 1 at f = peak_at, 0 at f = 1.

    With the reference start 0.25 and peak 0.75 this is min(0.25 + f, 4 * (1 - f))
    (docs/pretrain.md, "The budget"; cramming's `budget-triangle2`).
    """
    f = min(max(f, 0.0), 1.0)
    rise = start + (1.0 - start) * f / peak_at
    fall = (1.0 - f) / (1.0 - peak_at)
    return max(0.0, min(rise, fall, 1.0))


def _warmed(decay):
    """A schedule that rises linearly from 0 over [0, warmup_fraction), then follows
    `decay(progress, f, warmup)` with progress in [0, 1] over the rest of the budget."""
    def schedule(f: float, t: TrainConfig) -> float:
        f, warmup = min(max(f, 0.0), 1.0), t.warmup_fraction
        if f < warmup:
            return f / warmup
        return decay((f - warmup) / (1.0 - warmup), f, warmup)
    return schedule


SCHEDULES = {
    "one-cycle": lambda f, t: lr_factor(f, t.lr_start_factor, t.lr_peak_at),
    "cosine": _warmed(lambda p, f, w: 0.5 * (1.0 + math.cos(math.pi * p))),
    "linear": _warmed(lambda p, f, w: 1.0 - p),
    # 1 at the end of the warm-up, then sqrt(w / f) (Vaswani et al. 2017, by time not steps)
    "inverse-sqrt": _warmed(lambda p, f, w: math.sqrt(w / f)),
    "constant": _warmed(lambda p, f, w: 1.0),
}


def lr_factor_at(f: float, t: TrainConfig) -> float:
    """The factor of optim.lr at f = elapsed / budget under `t.schedule`."""
    return SCHEDULES[t.schedule](f, t)


def batch_size_at(f: float, start: int, target: int, ramp_until: float = 0.6) -> int:
    """Sequences per optimizer step: linear from `start` at f = 0 to `target` at f = ramp_until.

    Small batches early make many cheap steps while the loss falls fast; large batches later
    average out gradient noise (cramming paper: 8192 reached at 60% of the budget)."""
    progress = min(max(f, 0.0) / ramp_until, 1.0)
    return int(round(start + (target - start) * progress))
