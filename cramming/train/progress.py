"""What a run shows while it trains: metrics.jsonl records per log step and a tqdm bar."""

from __future__ import annotations

import sys

from tqdm import tqdm


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


def progress_bar(budget, quiet: bool) -> tqdm:
    """Seconds of the budget spent; the postfix shows loss, tokens/s and time left."""
    return tqdm(
        total=round(budget.budget_s),
        initial=round(budget.elapsed()),
        unit="s",
        disable=quiet,
        file=sys.stderr,
        bar_format="{desc}{percentage:3.0f}%|{bar}| {n}/{total}s{postfix}",
        desc="pretrain",
        dynamic_ncols=True,
    )


def show(bar: tqdm, budget, record: dict) -> None:
    if bar.disable:
        return
    bar.n = min(round(budget.elapsed()), bar.total)
    left = budget.remaining()
    bar.set_postfix_str(
        f"step {record['step']} loss {record['loss']:.3f} "
        f"{record['tokens_per_s']:,.0f} tok/s {int(left // 60)}m{int(left % 60):02d}s left"
    )


def warn(message: str) -> None:
    """Warnings print even when quiet: they report something that went wrong."""
    tqdm.write(f"cram pretrain: warning: {message}", file=sys.stderr)
