"""The wall-clock budget: one clock, asked for `fraction()` and `would_overrun(next_s)`.

Where it runs (Rules v1, rule 2): it starts after the data dir is opened and before the model is
built, so model construction, compilation, checkpoint writes and logging all count. It stops when
the training loop ends; the final save and the validation loss are not training and do not count.
A resumed run starts the clock at the elapsed time stored in its checkpoint.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

from crambench.options import parse_budget  # noqa: F401  (the stages import it from here)


class Budget:
    """Elapsed time against a fixed budget; `clock` is injectable so tests can fake time.

    A budget may be a window of a longer one (`window`): elapsed time and the deadline stay on
    the outer clock, while `fraction` runs from 0 at the window's start to 1 at its end."""

    def __init__(
        self,
        budget_s: float,
        *,
        elapsed_offset: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.budget_s = float(budget_s)
        self._offset = float(elapsed_offset)  # seconds already spent before a resume
        self._clock = clock
        self._start = clock()
        self.window_start = 0.0  # elapsed seconds at which this window's schedules start

    def elapsed(self) -> float:
        return self._offset + (self._clock() - self._start)

    def fraction(self) -> float:
        """Share of the budget (window) spent, in [0, 1]: the argument of every schedule."""
        return self.fraction_at(self.elapsed())

    def fraction_at(self, elapsed_s: float) -> float:
        """`fraction` at `elapsed_s` on this budget's clock (e.g. the clock all ranks agreed)."""
        span = self.budget_s - self.window_start
        if span <= 0:
            return 1.0
        return min(1.0, max(0.0, (elapsed_s - self.window_start) / span))

    def window(self, seconds: float | None = None) -> Budget:
        """A phase of this budget starting now: `seconds` long (default: the rest), never past
        this budget's deadline. It reads the same clock, so its elapsed time and metrics stay
        on this budget's timeline (a search's candidates, then the chosen one's training)."""
        sub = copy.copy(self)  # the same clock, start and offset
        sub.window_start = self.elapsed()
        if seconds is not None:
            sub.budget_s = min(self.budget_s, sub.window_start + float(seconds))
        return sub

    def remaining(self) -> float:
        return max(0.0, self.budget_s - self.elapsed())

    def would_overrun(self, next_s: float) -> bool:
        """Would work taking `next_s` seconds, started now, end after the deadline?"""
        return self.elapsed() + next_s > self.budget_s


class DurationEstimate:
    """A cautious guess of how long the next unit of work takes: the larger of a running
    average and the last measurement, so one slow outlier makes the deadline check careful
    at once instead of after the average catches up."""

    def __init__(self, smoothing: float = 0.9):
        self.smoothing = smoothing
        self.average: float | None = None
        self.last = 0.0

    def update(self, seconds: float) -> None:
        self.last = seconds
        if self.average is None:
            self.average = seconds
        else:
            self.average = self.smoothing * self.average + (1 - self.smoothing) * seconds

    def estimate(self) -> float:
        return max(self.average or 0.0, self.last)
