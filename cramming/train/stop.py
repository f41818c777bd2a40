"""When training stops: the deadline prediction, a signal, a non-finite loss, agreed by all ranks.

`StopCheck` is asked before every micro-batch and before every optimizer update. Each rank
brings what it knows (its clock reading, how long the next piece of work may take, whether it
got SIGINT/SIGTERM, whether its loss went non-finite, its masked-token count and loss share);
one all-gather hands every rank the same table, and every rank derives the same `Verdict` from
it. So all ranks stop at the same check, and none is left waiting in a collective another rank
skipped. With one process the table has one row and no collective runs.

The job's clock is the latest of the ranks' readings (their clocks start together, after a
barrier). Durations are measured between checks, so the time a rank spends waiting in a
collective, and the gradient all-reduce inside a step's last backward, are part of the
estimates the deadline is predicted from.
"""

from __future__ import annotations

import math
import signal
from dataclasses import dataclass

from cramming.train.budget import DurationEstimate
from cramming.train.metrics_log import warn

# Margin on duration estimates at the deadline: the run gives up at most half a micro-batch
# of time so that timing noise does not carry it past the budget.
SAFETY = 1.5
# Columns of the table each check gathers, and how the ranks' values combine.
ELAPSED, NEEDED, CHECKPOINT, SIGNAL, NONFINITE, MASKED, LOSS = range(7)


class StopSignal:
    """SIGINT/SIGTERM set a flag the checks read: stop cleanly, save. Under a launcher the
    signal reaches every rank (torchrun forwards it); the agreement makes any one enough.

    Installed before the run dir is written and held through the write-out, so a signal never
    leaves a half-made run: during training it ends the loop at the next check, after training
    it only prints `after_training` once and lets the write-out finish."""

    def __init__(self):
        self.requested = False
        self.after_training: str | None = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.after_training and not self.requested:
            warn(self.after_training)
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclass
class Verdict:
    """What every rank concluded at one check."""

    elapsed_s: float  # the job's clock at the check
    stop: str | None = None  # "budget" | "interrupt" | None
    nonfinite: bool = False  # some rank's loss went non-finite since the last check
    masked: int = 0  # masked tokens, all ranks together (first micro-batch of a step)
    loss: float = 0.0  # the step's loss, all ranks together (before the update)
    checkpoint_fits: bool = False  # a checkpoint after this update ends before the deadline


class StopCheck:
    """The deadline, signals and non-finite losses, decided together before each micro-batch
    and each optimizer update; durations of the work between checks feed the predictions."""

    def __init__(self, budget, stop: StopSignal, dist, durations=None, queued: bool = False):
        """`durations`: (micro-batch, update, checkpoint) DurationEstimates to go on from (an
        earlier loop on the same model), updated in place; None starts with no estimate.
        `queued`: the device runs work queued by the host, which waits for it once per step
        (a GPU): a micro-batch's check then covers the rest of its step, since the time of
        queued micro-batches shows up only when the step's loss is read."""
        self.budget, self.signal, self.dist, self.queued = budget, stop, dist, queued
        self.micro, self.update, self.checkpoint = durations or tuple(
            DurationEstimate() for _ in range(3))
        self._since: tuple[DurationEstimate, float] | None = None
        self.elapsed_s = self._agree(0.0).elapsed_s  # the clock the first step's schedules read

    def fraction(self) -> float:
        """Share of the budget spent at the last check: the argument of every schedule (the
        same on every rank)."""
        return self.budget.fraction_at(self.elapsed_s)

    def before_micro(self, *, last: bool, masked: int = 0, nonfinite: bool = False,
                     remaining: int = 1) -> Verdict:
        """Before a micro-batch: stop unless it (and the update, if it ends the step) fits in
        the budget, with a margin for timing noise; `masked` is this rank's masked-token count
        for the step (given at its first micro-batch). With queued work, the `remaining`
        micro-batches of the step (this one included) and its update must fit."""
        if self.queued:
            needed = remaining * self.micro.estimate() + self.update.estimate()
        else:
            needed = self.micro.estimate() + (self.update.estimate() if last else 0.0)
        verdict = self._agree(needed, masked=masked, nonfinite=nonfinite, signal_stops=True)
        self._since = (self.micro, self.budget.elapsed())
        return verdict

    def before_update(self, *, loss: float, nonfinite: bool) -> Verdict:
        """After a step's last micro-batch: apply the update only if it ends before the
        deadline (no margin: the work is done; a step that would end late is dropped, its rows
        replayed on resume). A signal is honoured at the next check, so finished work is
        kept."""
        verdict = self._agree(self.update.estimate(), loss=loss, nonfinite=nonfinite,
                              extra=self.checkpoint.estimate(), margin=1.0)
        self._since = (self.update, self.budget.elapsed())
        return verdict

    def exclude(self, seconds: float) -> None:
        """Leave `seconds` (a checkpoint write, timed on its own) out of the running duration."""
        if self._since is not None:
            estimate, started = self._since
            self._since = (estimate, started + seconds)

    def _agree(self, needed: float, *, masked: int = 0, loss: float = 0.0,
               nonfinite: bool = False, extra: float = 0.0, signal_stops: bool = False,
               margin: float = SAFETY):
        now = self.budget.elapsed()
        if self._since is not None:  # the work since the last check, collective included
            estimate, started = self._since
            estimate.update(now - started)
        nonfinite = nonfinite or not math.isfinite(loss)
        row = [0.0] * 7
        row[ELAPSED], row[NEEDED], row[CHECKPOINT] = now, needed, extra
        row[SIGNAL], row[NONFINITE] = float(self.signal.requested), float(nonfinite)
        row[MASKED], row[LOSS] = float(masked), 0.0 if nonfinite else loss
        table = self.dist.gather(row)
        maxima, sums = table.max(dim=0).values, table.sum(dim=0)
        elapsed = float(maxima[ELAPSED])
        verdict = Verdict(elapsed_s=elapsed, nonfinite=bool(maxima[NONFINITE]),
                          masked=int(sums[MASKED]), loss=float(sums[LOSS]))
        budget_s = self.budget.budget_s
        if signal_stops and maxima[SIGNAL]:
            verdict.stop = "interrupt"
        elif elapsed + margin * float(maxima[NEEDED]) > budget_s:
            verdict.stop = "budget"
        verdict.checkpoint_fits = (
            elapsed + SAFETY * float(maxima[NEEDED] + maxima[CHECKPOINT]) <= budget_s)
        self.elapsed_s = elapsed
        return verdict
