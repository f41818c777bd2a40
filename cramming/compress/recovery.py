"""Pruning rounds, each followed by recovery training with the trainer's own loop.

Recovery is pretraining continued: the MLM objective on the parent run's data dir (rows from
where pretraining stopped), the run's recipe (AdamW groups, clipping, the one-cycle learning
rate and batch ramp as functions of elapsed / budget), and `train_loop` with its deadline check
before every micro-batch. What differs is the clock: `--budget` is one wall-clock budget for
all rounds; each round gets an equal share of the time left when it starts (round k of R:
remaining / (R - k + 1)), and the schedules run a whole cycle within each round. Duration
estimates carry from one round to the next, so no round starts a step that would run past its
share.

The clock starts once the parent is read and its data dir opened, before the model is built:
loading, pruning and recovery all count; the final save and validation loss do not.
"""

from __future__ import annotations

import json

import torch

from crambench.errors import UserError
from cramming.compress import prune
from cramming.train.budget import Budget, DurationEstimate
from cramming.train.optimizers import build_optimizer
from cramming.train.pretrain import RowStream, StopSignal, train_loop


class ContinuedMetrics:
    """Appends recovery metrics to the derived run's metrics.jsonl after the parent's lines,
    shifting step, elapsed time and tokens so the run's loss curve reads on from pretraining."""

    def __init__(self, path, *, step: int, elapsed_s: float, tokens: int):
        self.path = path
        self.offset = {"step": step, "elapsed_s": elapsed_s, "tokens": tokens}

    def append(self, record: dict) -> None:
        shifted = dict(record)
        for key, offset in self.offset.items():
            shifted[key] = round(record[key] + offset, 3) if key == "elapsed_s" \
                else record[key] + offset
        with self.path.open("a") as handle:
            handle.write(json.dumps(shifted) + "\n")


def prune_with_recovery(model, cfg, data_dir, *, run, sparsity: float, budget: Budget, clock,
                        parent: dict, device, precision: str, quiet: bool) -> dict:
    """Prune `model` in rounds to `sparsity` with recovery training between them, all within
    `budget` (already running). Returns the compression record's training part."""
    layers = prune.prunable(model)
    total = sum(module.weight.numel() for _, module in layers)
    already = prune.pruned_count(model)
    targets = prune.round_targets(total, already, sparsity)
    if not targets:  # a sparsity so small that it rounds to no more weights than are pruned
        raise UserError(f"prune:{sparsity:g} prunes no weight: round({sparsity:g} x {total:,} "
                        f"prunable weights) = {round(sparsity * total):,}, and {already:,} are "
                        "pruned already; ask for a larger sparsity")
    durations = tuple(DurationEstimate() for _ in range(3))
    position = int(parent.get("rows_seen") or 0)  # where pretraining left the data
    done = {"step": 0, "tokens": 0, "nonfinite_skips": 0}
    rounds, stopped_by, train_loss, ended = [], None, None, 0.0
    with StopSignal() as stop:
        for k, count in enumerate(targets, 1):
            prune.prune_to(model, count)
            optimizer = build_optimizer(model, cfg.optim, device)  # weight_orig replaced weight
            scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
            state = {"step": 0, "tokens": 0, "rows": position, "nonfinite_skips": 0,
                     "train_loss": None}
            # The round's clock starts before the reading its share is cut from, so the round
            # ends by started + share: by the stage's deadline, and `started + the round's
            # elapsed time` never under-counts. An equal share of what is left, so time spent
            # before (loading, the optimizer's set-up) or an early round's stop does not starve
            # later rounds.
            round_budget = Budget(0.0, clock=clock)
            started = budget.elapsed()
            round_budget.budget_s = share = (budget.budget_s - started) / (len(targets) - k + 1)
            if share > 0:
                rows = RowStream(data_dir, seed=cfg.seed, start=position,
                                 chunk=cfg.impl.micro_batch)
                metrics = ContinuedMetrics(
                    run / "metrics.jsonl", step=parent["steps"] + done["step"],
                    elapsed_s=parent["train_elapsed_s"] + started,
                    tokens=parent["tokens_seen"] + done["tokens"])
                stopped_by = train_loop(model, optimizer, scaler, rows, round_budget, cfg,
                                        state, run=run, metrics=metrics, stop=stop,
                                        data_dir=data_dir, precision=precision, quiet=quiet,
                                        durations=durations, command="cram compress")
                if stopped_by == "interrupt":
                    raise KeyboardInterrupt
                position = rows.position
                ended = started + state["elapsed_s"]  # the last applied update, stage time
            for key in done:
                done[key] += state[key]
            train_loss = state["train_loss"] if state["train_loss"] is not None else train_loss
            rounds.append({"round": k, "sparsity": count / total, "steps": state["step"],
                           "elapsed_s": round(ended, 3), "train_loss": state["train_loss"]})
    # Stage time, as pretraining counts it: until the last applied update (the final save and
    # the validation loss come after, off the clock).
    elapsed = round(ended, 3)
    if elapsed > budget.budget_s or not done["step"]:
        raise UserError(f"--budget {budget.budget_s:g}s is too short for {len(targets)} pruning "
                        f"rounds with recovery training ({done['step']} recovery steps in "
                        f"{elapsed:.1f}s); give a larger --budget")
    return {"rounds": rounds, "steps": done["step"], "tokens": done["tokens"],
            "rows_seen": position, "nonfinite_skips": done["nonfinite_skips"],
            "train_elapsed_s": elapsed, "stopped_by": stopped_by or "budget",
            "train_loss": train_loss}
