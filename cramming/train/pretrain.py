"""`cram pretrain --data DATA --budget 24h --out RUN`: pretrain a crammed BERT to a deadline.

`pretrain` sets the run up (config, run dir, hardware, clock, model) and `train_loop` runs
optimizer steps until the budget, `train.max_steps` or a signal stops it; helpers beside them.
"""

from __future__ import annotations

import contextlib
import math
import shlex
import signal
import time
from datetime import UTC, datetime

import numpy as np
import torch

from cramming.config import PretrainConfig, config_sha256
from cramming.model import IGNORE_INDEX, CrammedBert, count_parameters
from cramming.train.budget import Budget, DurationEstimate
from cramming.train.checkpoint import load_checkpoint, save_checkpoint
from cramming.train.hardware import (
    autocast,
    check_track,
    detect_hardware,
    resolve_device,
    resolve_precision,
)
from cramming.train.objective import mask_tokens, pad_rows, step_generator
from cramming.train.progress import LogWindow, progress_bar, show, warn
from cramming.train.run_dir import FINISHED, MetricsLog, locked_run, resolve_run, write_run
from cramming.train.schedules import batch_size_at, lr_factor
from cramming.train.summary import finish_run
from data_prep import UserError
from data_prep.files import OutOfSpace
from data_prep.progress import progress_disabled

# Margin on duration estimates at the deadline: the run gives up at most half a micro-batch
# of time so that timing noise does not carry it past the budget.
SAFETY = 1.5


class RowStream:
    """Training rows in the data dir's seeded order, handed out in any count. `position` counts
    rows of completed steps only, so a resume replays a step cut off by the deadline or a signal."""

    def __init__(self, data_dir, *, seed: int, start: int, chunk: int):
        self.position = start
        self._batches = data_dir.iter_batches("train", chunk, seed=seed, start=start)
        self._buffer = np.empty((0, data_dir.seq_len), dtype=np.int64)

    def peek(self, n: int) -> np.ndarray:
        while len(self._buffer) < n:
            self._buffer = np.concatenate([self._buffer, next(self._batches)])
        return self._buffer[:n]

    def consume(self, n: int) -> None:
        self._buffer = self._buffer[n:]
        self.position += n


class StopSignal:
    """SIGINT/SIGTERM set a flag the loop reads before every micro-batch: stop cleanly, save.

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


def pretrain(data=None, out=None, *, budget=None, preset="crammed-bert", overrides=(),
             device="auto", gpu_check="open", seed=None, resume=None, force=False, quiet=False,
             clock=time.monotonic) -> dict:
    """Train within `budget` (e.g. "24h") on the prepared data dir `data`; returns the summary.

    With `resume`, `data` and `budget` default to the run's own and must match it when given.
    seed None keeps the preset's (0) or, on resume, the run's. `clock` is injectable for tests.
    Raises UserError on bad input and RunFailed (after writing the summary) when the run ends
    over its budget or without an optimizer step."""
    quiet = progress_disabled(quiet)
    with locked_run(out, resume):
        run, cfg, resumed, data_dir = resolve_run(data, out, budget, preset, overrides, device,
                                                  seed, resume, force)
        dev = resolve_device(cfg.impl.device)
        hardware = detect_hardware(dev)
        check_track(hardware, gpu_check, cfg.train.budget_s)
        precision = resolve_precision(cfg.impl.precision, dev)
        with StopSignal() as stop, resume_hint_on_full_disk(run):
            write_run(run, cfg, fresh=resumed is None)
            if cfg.impl.threads:
                torch.set_num_threads(cfg.impl.threads)
            if resumed and resumed["stopped_by"] in FINISHED:
                # Training ended before a signal or crash cut the write-out short: finish only
                # the write-out, off the clock (the clock stopped when the loop did).
                model, optimizer, scaler = build_training(cfg, dev, precision)
                state = load_checkpoint(run, model=model, optimizer=optimizer, scaler=scaler)
            else:
                model, state = train(run, cfg, data_dir, resumed, dev=dev, precision=precision,
                                     hardware=hardware, preset=preset, stop=stop, quiet=quiet,
                                     clock=clock)
            stop.after_training = ("stop signal received after training ended: finishing the "
                                   "write-out (final/, val loss, summary) first")
            return finish_run(run, model, cfg, state, data_dir=data_dir, hardware=hardware,
                              precision=precision)


@contextlib.contextmanager
def resume_hint_on_full_disk(run):
    """A full disk stops the run with one line; what was saved stays intact (every write is
    atomic), so the line says how to go on once there is space."""
    try:
        yield
    except OutOfSpace as err:
        if not (run / "config.yaml").is_file():  # nothing to resume yet: start it again
            raise
        raise err.again(hint="free some space, then `cram pretrain --resume "
                             f"{shlex.quote(str(run))}` goes on from the last checkpoint") from None


def build_training(cfg: PretrainConfig, dev, precision):
    """The model (seeded), its AdamW optimizer and the fp16 grad scaler (off otherwise)."""
    torch.manual_seed(cfg.seed)
    model = CrammedBert(cfg.model).to(dev)
    optimizer = build_optimizer(model, cfg, dev)
    scaler = torch.amp.GradScaler(dev.type, enabled=precision == "fp16")
    return model, optimizer, scaler


def train(run, cfg: PretrainConfig, data_dir, resumed, *, dev, precision, hardware, preset,
          stop, quiet, clock):
    """Start (or continue) the clock, build the model and run the loop; save the post-loop
    checkpoint, which records how training ended. -> (model, train state)."""
    # The clock starts here: after the data dir is open, before the model is built.
    budget = Budget(cfg.train.budget_s, elapsed_offset=resumed["elapsed_s"] if resumed else 0.0,
                    clock=clock)
    model, optimizer, scaler = build_training(cfg, dev, precision)
    if not quiet:
        name = hardware["gpu_name"] or hardware["cpu_name"]
        print(f"cram pretrain: {count_parameters(model):,} parameters, {hardware['device']} "
              f"({name}), {precision}, budget {budget.budget_s:g}s")
    state = initial_state(cfg, data_dir, preset)
    if resumed:
        state.update(load_checkpoint(run, model=model, optimizer=optimizer, scaler=scaler),
                     stopped_by=None)
    if cfg.impl.compile:
        # Only the encoder: its shapes are static once micro-batches are padded (micro_step),
        # while the MLM head's gather of masked rows has a data-dependent size. In-place
        # compilation keeps the state-dict names of the plain module.
        model.encoder.compile(dynamic=False)
    rows = RowStream(data_dir, seed=cfg.seed, start=state["rows"], chunk=cfg.impl.micro_batch)
    metrics = MetricsLog(run / "metrics.jsonl", resume_step=state["step"] if resumed else None,
                         resume_elapsed=state["elapsed_s"] if resumed else None)
    state["stopped_by"] = train_loop(model, optimizer, scaler, rows, budget, cfg, state,
                                     run=run, metrics=metrics, stop=stop, data_dir=data_dir,
                                     precision=precision, quiet=quiet)
    save_checkpoint(run, model=model, optimizer=optimizer, scaler=scaler, train_state=state)
    return model, state


def initial_state(cfg: PretrainConfig, data_dir, preset) -> dict:
    """The train state of a run before its first step (checkpointed, then summarized)."""
    return {"step": 0, "tokens": 0, "rows": 0, "nonfinite_skips": 0, "train_loss": None,
            "config_sha256": config_sha256(cfg), "data_sha256": data_dir.data_sha256,
            "started_utc": datetime.now(UTC).isoformat(timespec="seconds"), "preset": str(preset),
            "stopped_by": None}


def train_loop(model, optimizer, scaler, rows, budget, cfg: PretrainConfig, state,
               *, run, metrics, stop, data_dir, precision, quiet, durations=None,
               objective=None) -> str:
    """Optimizer steps until the budget, `train.max_steps` or a signal ends the run.

    Returns stopped_by: "budget" | "steps" | "interrupt". `state` is updated in place; its
    elapsed_s is when training ended, or, if the check that ended it came after the deadline,
    when the last applied step ended (work past the deadline is dropped, never applied).
    `durations`: three DurationEstimates (micro-batch, update, checkpoint) carried over from an
    earlier loop on the same model, so that its first step is already checked against the
    deadline (pruning's recovery rounds); None starts with no estimate.
    `objective(model, inputs, labels) -> (loss, mlm_loss)` replaces the MLM loss as what is
    minimized (knowledge distillation); metrics.jsonl logs its MLM part, so every run's loss
    curve is the same quantity. None trains on the MLM loss."""
    t, impl = cfg.train, cfg.impl
    # Durations are read off the budget's own clock, so a fake clock in tests drives them too.
    per_micro, per_update, per_checkpoint = durations or (DurationEstimate() for _ in range(3))
    if state["step"] == 0:  # a first checkpoint, so a non-finite loss always has one to reload
        started = budget.elapsed()
        save_checkpoint(run, model=model, optimizer=optimizer, scaler=scaler,
                        train_state={**state, "elapsed_s": started})
        per_checkpoint.update(budget.elapsed() - started)
    last_checkpoint = budget.elapsed()
    window = LogWindow(budget.elapsed(), state["tokens"])
    bar = progress_bar(budget, quiet)
    recovered_since_checkpoint = False
    lr = n_rows = 0
    update_started = None  # when the last optimizer update began, until the next check
    last_step_end = state.get("elapsed_s") if state["step"] else None  # the model's time

    def finish(stopped_by: str, now: float) -> str:
        """The clock stops at the check that ended the run; log the steps not yet logged."""
        late = now > budget.budget_s and last_step_end is not None
        state["elapsed_s"] = round(last_step_end if late else now, 3)
        if window.steps:
            record = window.flush(state, state["elapsed_s"], lr, n_rows)
            metrics.append(record)
            state["train_loss"] = record["loss"]
        bar.close()
        return stopped_by

    model.train()
    while True:
        if t.max_steps is not None and state["step"] >= t.max_steps:
            return finish("steps", budget.elapsed())
        f = budget.fraction()
        n_rows = batch_size_at(f, t.batch_start, t.batch_size, t.batch_ramp_until)
        lr = cfg.optim.lr * lr_factor(f, t.lr_start_factor, t.lr_peak_at)
        for group in optimizer.param_groups:
            group["lr"] = lr
        inputs, labels = mask_tokens(
            torch.from_numpy(rows.peek(n_rows)), special_ids=data_dir.special_ids,
            vocab_size=cfg.model.vocab_size, generator=step_generator(cfg.seed, state["step"]),
            mask_prob=t.mask_prob, mask_token_prob=t.mask_token_prob,
            random_token_prob=t.random_token_prob)
        total_masked = int((labels != IGNORE_INDEX).sum())
        step_loss = 0.0
        for begin in range(0, n_rows, impl.micro_batch):
            end = min(begin + impl.micro_batch, n_rows)
            now = budget.elapsed()
            if update_started is not None:  # the update, logging and next batch's preparation
                per_update.update(now - update_started)
                update_started = None
            # The deadline check: stop unless this micro-batch (and the update, if it ends the
            # step) fits in the budget, with a margin for timing noise.
            needed = per_micro.estimate()  # a short last micro-batch takes no longer
            needed += per_update.estimate() if end == n_rows else 0.0
            if stop.requested:
                return finish("interrupt", now)
            if budget.would_overrun(SAFETY * needed):
                return finish("budget", now)
            loss = micro_step(model, inputs[begin:end], labels[begin:end], total_masked, scaler,
                              precision, pad_to=impl.micro_batch if impl.compile else None,
                              objective=objective)
            per_micro.update(budget.elapsed() - now)
            if not math.isfinite(loss):
                break
            step_loss += loss
        else:  # every micro-batch ran: update the weights, unless the step would end too late
            if budget.would_overrun(per_update.estimate()):  # e.g. a stall in the last micro
                optimizer.zero_grad(set_to_none=True)  # the step is dropped, never applied
                return finish("budget", budget.elapsed())
            update_started = budget.elapsed()
            optimizer_update(model, optimizer, scaler, cfg.optim.grad_clip)
            rows.consume(n_rows)
            state["step"] += 1
            state["rows"] = rows.position
            state["tokens"] += n_rows * cfg.model.seq_len
            window.add(step_loss)
            if state["step"] == 1 or state["step"] % impl.log_every == 0:
                record = window.flush(state, budget.elapsed(), lr, n_rows)
                metrics.append(record)
                state["train_loss"] = record["loss"]
                show(bar, budget, record)
            last_step_end = budget.elapsed()  # applied and logged: the model's time
            # A periodic checkpoint counts against the budget; skip one that would overrun it
            # (the run saves at its end anyway, off the clock).
            due = budget.elapsed() - last_checkpoint >= impl.checkpoint_every_min * 60
            if due and not budget.would_overrun(SAFETY * per_checkpoint.estimate()):
                started = budget.elapsed()
                save_checkpoint(run, model=model, optimizer=optimizer, scaler=scaler,
                                train_state={**state, "elapsed_s": budget.elapsed()})
                last_checkpoint, recovered_since_checkpoint = budget.elapsed(), False
                per_checkpoint.update(last_checkpoint - started)
                update_started += last_checkpoint - started  # timed apart from the update
            continue
        # A non-finite loss: reload the last checkpoint, skip this batch, go on; twice is an error.
        optimizer.zero_grad(set_to_none=True)
        if recovered_since_checkpoint:
            raise UserError(f"loss became non-finite again at step {state['step']} after a "
                            f"reload from {run / 'checkpoint'}; lower optim.lr or check the data")
        load_checkpoint(run, model=model, optimizer=optimizer, scaler=scaler, restore_rng=False)
        rows.consume(n_rows)
        state["rows"] = rows.position
        state["nonfinite_skips"] += 1
        recovered_since_checkpoint = True
        warn(f"non-finite loss at step {state['step']}: reloaded the last checkpoint and "
             f"skipped {n_rows} rows")


def mlm_objective(model, inputs, labels):
    """The pretraining loss, minimized and logged: mean cross-entropy over the masked
    positions."""
    loss, _ = model(inputs, labels)
    return loss, loss


def micro_step(model, inputs, labels, total_masked, scaler, precision, *, pad_to=None,
               objective=None) -> float:
    """Forward and backward on one micro-batch; gradients accumulate across the step.

    Each micro-batch's mean loss is weighted by its share of the step's masked tokens, so the
    accumulated gradient equals that of one big batch whatever impl.micro_batch is (this holds
    for any objective that is a mean over the masked positions)."""
    n_masked = int((labels != IGNORE_INDEX).sum())
    if n_masked == 0:
        return 0.0
    if pad_to:
        inputs, labels = pad_rows(inputs, labels, pad_to)
    device = next(model.parameters()).device
    with autocast(device, precision):
        loss, logged = (objective or mlm_objective)(model, inputs.to(device, non_blocking=True),
                                                    labels.to(device, non_blocking=True))
    scaler.scale(loss * (n_masked / total_masked)).backward()
    value = loss.item()
    if logged is not loss and math.isfinite(value):  # a non-finite minimized loss shows as such
        value = logged.item()
    return value * n_masked / total_masked


def optimizer_update(model, optimizer, scaler, grad_clip: float) -> None:
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)


def build_optimizer(model, cfg: PretrainConfig, device) -> torch.optim.Optimizer:
    """AdamW; weight decay only on the matrices of linear layers, never on norms, biases or
    embeddings (cramming paper, as BERT)."""
    word = model.encoder.embedding.word.weight
    decay = [p for p in model.parameters() if p.ndim >= 2 and p is not word]
    no_decay = [p for p in model.parameters() if p.ndim < 2 or p is word]
    o = cfg.optim
    groups = [{"params": decay, "weight_decay": o.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas), eps=o.eps,
                             fused=device.type == "cuda")
