"""What a run shows while it trains: metrics.jsonl records per log step, and its progress."""

from __future__ import annotations

import sys

from tqdm import tqdm

from crambench.progress import progress_disabled, progress_line


class LogWindow:
    """Optimizer steps since the last log line: their mean loss and their token throughput."""

    def __init__(self, elapsed_s: float, tokens: int):
        self.elapsed_s, self.tokens = elapsed_s, tokens
        self.loss_sum, self.steps = 0.0, 0

    def add(self, loss: float) -> None:
        self.loss_sum += loss
        self.steps += 1

    def flush(self, state: dict, elapsed_s: float, lr: float, batch_size: int) -> dict:
        """One metrics.jsonl record (contract 2); starts the next window."""
        seconds = max(elapsed_s - self.elapsed_s, 1e-9)
        record = {
            "step": state["step"],
            "elapsed_s": round(elapsed_s, 3),
            "tokens": state["tokens"],
            "loss": round(self.loss_sum / max(self.steps, 1), 5),
            "lr": lr,
            "batch_size": batch_size,
            "tokens_per_s": round((state["tokens"] - self.tokens) / seconds, 1),
        }
        self.__init__(elapsed_s, state["tokens"])
        return record


class BudgetProgress:
    """Progress through the budget, by the rule of crambench.progress: a live bar on a
    terminal (seconds of the budget spent; the postfix shows loss, tokens/s and time left);
    elsewhere a progress line at each tenth of the budget; nothing under --quiet.

    A window of a budget (a pruning round, an extraction candidate) counts its own seconds,
    from 0 to its length, not the whole clock's. `command` names the job in lines and
    warnings ("cram extract")."""

    LINE_EVERY = 0.1  # of the budget, between progress lines in a log

    def __init__(self, budget, quiet: bool, command: str = "cram pretrain"):
        self.command = command
        self.start = budget.window_start
        self.lines = not quiet and progress_disabled(quiet)
        self.next_line = self.LINE_EVERY
        self.bar = tqdm(
            total=round(budget.budget_s - self.start),
            initial=round(budget.elapsed() - self.start),
            unit="s",
            disable=progress_disabled(quiet),
            file=sys.stderr,
            bar_format="{desc}{percentage:3.0f}%|{bar}| {n}/{total}s{postfix}",
            desc=command.removeprefix("cram "),
            dynamic_ncols=True,
        )

    def show(self, budget, record: dict) -> None:
        left = budget.remaining()
        status = (f"step {record['step']} loss {record['loss']:.3f} "
                  f"{record['tokens_per_s']:,.0f} tok/s "
                  f"{int(left // 60)}m{int(left % 60):02d}s left")
        if not self.bar.disable:
            self.bar.n = min(round(budget.elapsed() - self.start), self.bar.total)
            self.bar.set_postfix_str(status)
        elif self.lines and budget.fraction() >= self.next_line:
            self.next_line = (int(budget.fraction() / self.LINE_EVERY) + 1) * self.LINE_EVERY
            progress_line(f"{self.command}: {budget.fraction():.0%} of "
                          f"{round(budget.budget_s - self.start, 1):g}s, {status}", quiet=False)

    def close(self) -> None:
        self.bar.close()


def progress_bar(budget, quiet: bool, command: str = "cram pretrain") -> BudgetProgress:
    return BudgetProgress(budget, quiet, command)


def show(progress: BudgetProgress, budget, record: dict) -> None:
    progress.show(budget, record)


def warn(message: str, command: str = "cram pretrain") -> None:
    """Warnings print even when quiet: they report something that went wrong."""
    tqdm.write(f"{command}: warning: {message}", file=sys.stderr)
