"""`cram pretrain --data DATA --budget 24h --out RUN`: pretrain a crammed BERT to a deadline.

`pretrain` sets the run up (ranks, config, run dir, hardware, clock, model) and `train_loop`
runs optimizer steps until the budget, `train.max_steps` or a signal stops it; helpers beside
them. The same code runs one process or, under torchrun / `cram pretrain --nproc N`, one rank
of a DistributedDataParallel job (cramming.train.distributed): each rank trains on its share of
every global batch, every stop is agreed by all ranks (cramming.train.stop), only rank 0 reads
and writes the run dir.
"""

from __future__ import annotations

import contextlib
import math
import shlex
import time
from datetime import UTC, datetime
from functools import partial

import torch

from crambench.errors import OutOfSpace, UserError
from crambench.plugin import loaded_plugin
from crambench.progress import progress_line
from cramming.config import AUTO, PretrainConfig, config_sha256
from cramming.model import IGNORE_INDEX, count_parameters
from cramming.plugins import (
    build_model,
    build_optimizer,
    lr_at,
    mask_rows,
    objective_of,
    rows_at,
    run_plugin,
)
from cramming.train.budget import Budget
from cramming.train.checkpoint import (
    END_KEYS,
    END_RECORD,
    StepJournal,
    apply_checkpoint,
    clear_end_record,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
    write_end_record,
)
from cramming.train.distributed import AgreedError, Dist, init_dist
from cramming.train.hardware import (
    autocast,
    check_track,
    detect_hardware,
    job_hardware,
    resolve_device,
    resolve_precision,
)
from cramming.train.metrics_log import LogWindow, progress_bar, show, warn
from cramming.train.micro_batch import CPU_MICRO_BATCH, choose_micro_batch, cuda_size_trial
from cramming.train.objective import pad_rows, sparse_rows
from cramming.train.rows import RowStream
from cramming.train.run_dir import (
    FINISHED,
    MetricsLog,
    RunRequest,
    locked_run,
    resolve_run,
    write_run,
)
from cramming.train.segments import continue_segments, segment
from cramming.train.stop import StopCheck, StopSignal
from cramming.train.summary import finish_run
from data_prep import open_data_dir


def pretrain(data=None, out=None, *, budget_s: float | None = None, preset="crammed-bert",
             overrides=(), device="auto", gpu_check="open", seed=None, resume=None, force=False,
             quiet=False, clock=time.monotonic, plugin=None) -> dict:
    """Train within `budget_s` seconds (`parse_budget("24h")`) on the prepared data dir `data`;
    returns the summary (on ranks other than 0 of a DDP job: {"rank", "stopped_by", "steps",
    "train_elapsed_s"}).

    With `resume`, `data` and `budget_s` default to the run's own and must match it when given.
    seed None keeps the preset's (0) or, on resume, the run's. `clock` is injectable for tests.
    `plugin`: a plug-in file (crambench.plugin) for a new run; the run keeps a copy.
    Raises UserError on bad input and RunFailed (after writing the summary) when the run ends
    over its budget or without an optimizer step."""
    with init_dist() as dist, contextlib.ExitStack() as held:
        # Rank 0 alone holds the run dir's lock (only it writes there); when another process
        # holds it, every rank raises the error.
        dist.on_main(lambda: held.enter_context(locked_run(out, resume)))
        request = RunRequest(data=data, out=out,
                             budget_s=None if budget_s is None else float(budget_s), preset=preset,
                             overrides=tuple(overrides), device=device, seed=seed, resume=resume,
                             force=force, plugin=None if plugin is None else str(plugin))
        run, cfg, resumed, data_dir = resolve_on_main(dist, request,
                                                      quiet=quiet or not dist.is_main)
        dev = dist.use_device(resolve_device(cfg.impl.device))
        hardware = job_hardware(detect_hardware(dev), dist)
        dist.on_main(check_track, hardware, gpu_check, cfg.train.budget_s)
        precision = resolve_precision(cfg.impl.precision, dev)
        with StopSignal() as stop, resume_hint_on_full_disk(run):
            dist.on_main(write_run, run, cfg, fresh=resumed is None,
                         plugin_source=plugin if resume is None else None)
            dist.barrier()  # every rank loads the run's copy of the plug-in, once written
            run_plugin(run, cfg)
            if cfg.impl.threads:
                torch.set_num_threads(cfg.impl.threads)
            ended = training_ended(resumed)
            if ended:
                # Training ended before a signal or crash cut the write-out short: finish only
                # the write-out, off the clock (the clock stopped when the loop did); rank 0's.
                # A crash while the end state was saved lost the steps since the checkpoint: the
                # end record says how to redo them, as part of the write-out.
                if not dist.is_main:
                    return rank_result(dist, ended)
                stop.after_training = AFTER_TRAINING
                model, optimizer, scaler = build_training(cfg, dev, precision)
                state = load_checkpoint(run, model=model, optimizer=optimizer, scaler=scaler)
                if ended is not resumed:  # its end record: the end state was lost in the save
                    state = redo_lost_steps(run, model, optimizer, scaler, cfg, data_dir, state,
                                            ended, precision=precision)
                    save_checkpoint(run, model=model, optimizer=optimizer, scaler=scaler,
                                    train_state=state)
                clear_end_record(run)  # also one a kill left beside the end state's checkpoint
            else:
                model, state = train(run, cfg, data_dir, resumed, dev=dev, precision=precision,
                                     hardware=hardware, preset=preset, stop=stop, quiet=quiet,
                                     clock=clock, dist=dist)
            if not dist.is_main:
                return rank_result(dist, state)
            stop.after_training = AFTER_TRAINING
            return finish_run(run, model, cfg, state, data_dir=data_dir, hardware=hardware,
                              precision=precision)


AFTER_TRAINING = ("stop signal received after training ended: finishing the write-out "
                  "(final/, val loss, summary) first")


def training_ended(resumed: dict | None) -> dict | None:
    """How a resumed run's training ended, if it did: its end record (RUN/ended.json, when the
    end state was lost while it was saved) or its checkpoint's train state; None while it has
    training left to do."""
    if not resumed:
        return None
    return resumed.get("ended") or (resumed if resumed["stopped_by"] in FINISHED else None)


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


def resolve_on_main(dist: Dist, request: RunRequest, *, quiet: bool):
    """`resolve_run` on rank 0, the only rank that reads the run dir; every rank then opens the
    data dir it names (each node has its own copy at that path)."""
    if not dist.distributed:
        return resolve_run(request, quiet=quiet)

    def resolve():
        run, cfg, resumed, data_dir = resolve_run(request, quiet=quiet)
        return run, cfg, resumed, str(data_dir.path)

    run, cfg, resumed, data_path = dist.on_main(resolve)
    return run, cfg, resumed, open_data_dir(data_path)


def rank_result(dist: Dist, state: dict) -> dict:
    """What a rank other than 0 returns: where it stopped (the same as rank 0)."""
    return {"rank": dist.rank, "stopped_by": state["stopped_by"], "steps": state["step"],
            "train_elapsed_s": state["elapsed_s"]}


def build_training(cfg: PretrainConfig, dev, precision):
    """The model (seeded), its optimizer and the fp16 grad scaler (off otherwise)."""
    torch.manual_seed(cfg.seed)
    plugin, options = loaded_plugin(cfg.plugin.sha256), cfg.plugin.options
    model = build_model(cfg.model, plugin, options, cfg.train.dropout).to(dev)
    optimizer = build_optimizer(model, cfg.optim, plugin, options, dev)
    scaler = torch.amp.GradScaler(dev.type, enabled=precision == "fp16")
    return model, optimizer, scaler


def train(run, cfg: PretrainConfig, data_dir, resumed, *, dev, precision, hardware, preset,
          stop, quiet, clock, dist: Dist):
    """Start (or continue) the clock, build the model and run the loop; save the post-loop
    checkpoint, which records how training ended (after RUN/ended.json, which records it
    first). -> (model, train state)."""
    # A resumed run's checkpoint is read and checked against its hashes first: a damaged one
    # is refused before the start line is printed and before the clock starts.
    checkpoint = dist.on_main(read_checkpoint, run) if resumed else None
    # The clock starts here, on every rank once all have arrived: after the data dir is open,
    # before the model is built.
    dist.barrier()
    budget = Budget(cfg.train.budget_s, elapsed_offset=resumed["elapsed_s"] if resumed else 0.0,
                    clock=clock)
    model, optimizer, scaler = build_training(cfg, dev, precision)
    name = hardware["gpu_name"] or hardware["cpu_name"]
    ranks = f"{dist.world_size} ranks x " if dist.distributed else ""
    again = (f", resumed at step {resumed['step']:,} with {resumed['elapsed_s']:.1f}s spent"
             if resumed else "")
    progress_line(f"cram pretrain: {count_parameters(model):,} parameters, {ranks}"
                  f"{hardware['device']} ({name}), {precision}, budget {budget.budget_s:g}s"
                  f"{again}", quiet=quiet or not dist.is_main)
    rounding = batch_rounding(cfg, dist.world_size)
    if rounding:  # said once, beside the start line: the steps are not the recipe's
        progress_line(f"cram pretrain: {rounding}", quiet=quiet or not dist.is_main)
    state = initial_state(cfg, data_dir, preset)
    if resumed:
        state.update(apply_checkpoint(checkpoint, model=model, optimizer=optimizer,
                                      scaler=scaler), stopped_by=None)
    state["segments"] = continue_segments(state.get("segments", []), segment(
        hardware, step=state["step"], elapsed_s=state.get("elapsed_s", 0)))
    if cfg.impl.micro_batch == AUTO:  # on the clock, before compilation (one shape)
        cfg.impl.micro_batch = dist.on_main(probe_micro_batch, model, cfg, dev, precision,
                                            quiet=quiet or not dist.is_main)
        dist.on_main(write_run, run, cfg, fresh=False)  # config.yaml: the size it trains at
    if cfg.impl.compile:
        # The whole MLM forward: every shape is static once micro-batches are padded and the
        # head takes a fixed number of rows (micro_step). In-place compilation keeps the
        # state-dict names of the plain module.
        model.compile(dynamic=False, mode=compile_mode(cfg.impl.compile_mode))
    net = dist.wrap(model)  # what the micro-batches run through: DDP under several ranks
    rows = RowStream(data_dir, seed=cfg.seed, start=state["rows"], chunk=cfg.impl.micro_batch,
                     rank=dist.rank, world_size=dist.world_size)
    metrics = (MetricsLog(run / "metrics.jsonl", resume_step=state["step"] if resumed else None,
                          resume_elapsed=state["elapsed_s"] if resumed else None,
                          first_fields={"device_names": hardware["device_names"]})
               if dist.is_main else None)
    journal = StepJournal(dist.world_size)
    with step_profiler(cfg.impl.profile_steps, run / "profile", dev,
                       enabled=dist.is_main) as profiler:
        state["stopped_by"] = train_loop(model, optimizer, scaler, rows, budget, cfg, state,
                                         run=run, metrics=metrics, stop=stop, data_dir=data_dir,
                                         precision=precision, quiet=quiet or not dist.is_main,
                                         dist=dist, net=net, after_step=profiler,
                                         journal=journal, objective=objective_of(cfg))
    if dist.is_main:
        # Saving the end state takes as long as any checkpoint; a kill meanwhile keeps the
        # previous one. The record, small and written first, says that training ended and how
        # to redo the steps since that checkpoint, so a resume never trains on.
        if state["stopped_by"] in FINISHED:
            write_end_record(run, state, journal)
        save_checkpoint(run, model=model, optimizer=optimizer, scaler=scaler, train_state=state)
        clear_end_record(run)
    return model, state


@contextlib.contextmanager
def step_profiler(steps: int, folder, dev, *, enabled: bool = True):
    """impl.profile_steps: a torch.profiler trace of `steps` optimizer steps after one warm-up
    step, written as a Chrome trace (open it in Perfetto or chrome://tracing) to
    `folder`/trace.json; yields the callable the loop calls after each step (None when off)."""
    if steps <= 0 or not enabled:
        yield None
        return
    from torch.profiler import ProfilerActivity, profile, schedule

    def export(prof) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        prof.export_chrome_trace(str(folder / "trace.json"))

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with profile(activities=activities, schedule=schedule(wait=0, warmup=1, active=steps, repeat=1),
                 on_trace_ready=export, record_shapes=True) as prof:
        yield prof.step


def probe_micro_batch(model, cfg: PretrainConfig, dev, precision: str, *, quiet: bool) -> int:
    """impl.micro_batch=auto: on CUDA the fastest size that fits (cramming.train.micro_batch),
    on a CPU its fixed default."""
    if dev.type != "cuda":
        return CPU_MICRO_BATCH
    trial = cuda_size_trial(model, cfg.model.seq_len, cfg.model.vocab_size, dev,
                            lambda: autocast(dev, precision))
    memory = torch.cuda.get_device_properties(dev).total_memory
    try:
        chosen, trials = choose_micro_batch(trial, memory)
    except RuntimeError as err:
        raise UserError(str(err)) from None
    tried = ", ".join(f"{t['micro_batch']}: " + (
        f"{1 / t['seconds_per_sequence']:,.0f} seq/s, {t['peak_bytes'] / 2**30:.1f} GiB"
        if "peak_bytes" in t else t["reason"]) for t in trials)
    progress_line(f"cram pretrain: impl.micro_batch=auto chose {chosen} ({tried})", quiet=quiet)
    return chosen


def initial_state(cfg: PretrainConfig, data_dir, preset) -> dict:
    """The train state of a run before its first step (checkpointed, then summarized)."""
    return {"step": 0, "tokens": 0, "rows": 0, "nonfinite_skips": 0, "train_loss": None,
            "config_sha256": config_sha256(cfg), "data_sha256": data_dir.data_sha256,
            "started_utc": datetime.now(UTC).isoformat(timespec="seconds"), "preset": str(preset),
            "stopped_by": None}


def train_loop(model, optimizer, scaler, rows, budget, cfg: PretrainConfig, state,
               *, run, metrics, stop, data_dir, precision, quiet, durations=None,
               objective=None, dist: Dist | None = None, net=None,
               command: str = "cram pretrain", after_step=None, journal=None) -> str:
    """Optimizer steps until the budget, `train.max_steps` or a signal ends the run.

    Returns stopped_by: "budget" | "steps" | "interrupt"; `state` is updated in place, the same
    on every rank; its elapsed_s is when training ended, or, if the check that ended it came
    after the deadline, when the last applied step ended (work past the deadline is dropped,
    never applied).
    `durations`: three DurationEstimates (micro-batch, update, checkpoint) carried over from an
    earlier loop on the same model, so that its first step is already checked against the
    deadline (pruning's recovery rounds); None starts with no estimate.
    `objective(model, inputs, labels) -> (loss, mlm_loss)` replaces the MLM loss as what is
    minimized (knowledge distillation); metrics.jsonl logs its MLM part, so every run's loss
    curve is the same quantity. None trains on the MLM loss.
    `dist`: this rank of a DDP job (None: one process); `net` is `model` or its DDP wrapper,
    what the micro-batches run through. `command` names the job in progress and warnings.
    `after_step()` is called after each applied optimizer step (the profiler's clock).
    `journal` (a StepJournal) is kept up to date with the steps since the last checkpoint."""
    t, impl = cfg.train, cfg.impl
    if impl.micro_batch == AUTO:
        raise UserError(f"impl.micro_batch=auto is chosen by `cram pretrain`; {command} needs a "
                        "number of sequences (e.g. impl.micro_batch=128)")
    dist, net = dist or Dist(), net or model
    device = next(model.parameters()).device
    # Durations are read off the budget's own clock, so a fake clock in tests drives them too.
    # Work is queued on an accelerator and waited for once per step (the loss is read then),
    # so there the deadline check must cover the rest of the step, not one micro-batch.
    check = StopCheck(budget, stop, dist, durations=durations, queued=device.type != "cpu")
    # A compiled model sees one shape: the MLM head takes a fixed number of rows.
    head_rows = (sparse_rows(impl.micro_batch * cfg.model.seq_len, t.mask_prob)
                 if impl.compile else None)
    if state["step"] == 0:  # a first checkpoint, so a non-finite loss always has one to reload
        check.checkpoint.update(write_checkpoint(dist, run, model, optimizer, scaler, state,
                                                 budget))
    journal = journal if journal is not None else StepJournal(dist.world_size)
    journal.restart(state)  # the model holds what the checkpoint holds
    last_checkpoint = check.elapsed_s
    window = LogWindow(check.elapsed_s, state["tokens"])
    bar = progress_bar(budget, quiet, command)
    recovered_since_checkpoint = False
    lr = n_rows = 0
    last_step_end = state.get("elapsed_s") if state["step"] else None  # the model's time

    def finish(stopped_by: str, now: float) -> str:
        """The clock stops at the check that ended the run; log the steps not yet logged."""
        late = now > budget.budget_s and last_step_end is not None
        state["elapsed_s"] = round(last_step_end if late else now, 3)
        if window.steps:
            record = window.flush(state, state["elapsed_s"], lr, n_rows)
            state["train_loss"] = record["loss"]
            if metrics:
                metrics.append(record)
        bar.close()
        return stopped_by

    model.train()
    while True:
        if t.max_steps is not None and state["step"] >= t.max_steps:
            return finish("steps", budget.elapsed())
        # Schedules read the job's clock as agreed at the last check: the same on every rank.
        f = check.fraction()
        n_rows, lr, mine, inputs, labels = start_step(f, optimizer, rows, cfg, data_dir,
                                                      state["step"], dist.world_size)
        # The step's loss stays on the device until the step ends: one host sync per step.
        step_loss, total_masked = torch.zeros((), device=device), 0
        for begin in range(0, len(mine), impl.micro_batch):
            last = begin + impl.micro_batch >= len(mine)
            masked = int((labels != IGNORE_INDEX).sum()) if begin == 0 else 0  # labels: CPU
            verdict = check.before_micro(last=last, masked=masked,
                                         remaining=-(-(len(mine) - begin) // impl.micro_batch))
            if verdict.stop:
                return finish(verdict.stop, verdict.elapsed_s)
            total_masked = verdict.masked if begin == 0 else total_masked  # the whole batch's
            end = begin + impl.micro_batch
            step_loss += micro_step(net, inputs[begin:end], labels[begin:end], total_masked,
                                    scaler, precision, dist=dist, sync=last,
                                    pad_to=impl.micro_batch if impl.compile else None,
                                    head_rows=head_rows, objective=objective)
        else:  # every micro-batch ran: update the weights, unless the step would end too late
            step_value = step_loss.item()
            verdict = check.before_update(loss=step_value,
                                          nonfinite=not math.isfinite(step_value))
            if verdict.stop:  # e.g. a stall in the last micro-batch
                optimizer.zero_grad(set_to_none=True)  # the step is dropped, never applied
                return finish(verdict.stop, verdict.elapsed_s)
            if not verdict.nonfinite:
                optimizer_update(model, optimizer, scaler, cfg.optim.grad_clip)
                rows.consume(n_rows)
                state["step"] += 1
                state["rows"] = rows.position
                state["tokens"] += n_rows * cfg.model.seq_len
                journal.add(f)
                window.add(verdict.loss)
                if after_step is not None:
                    after_step()
                if state["step"] == 1 or state["step"] % impl.log_every == 0:
                    record = window.flush(state, budget.elapsed(), lr, n_rows)
                    state["train_loss"] = record["loss"]
                    if metrics:
                        metrics.append(record)
                    show(bar, budget, record)
                last_step_end = budget.elapsed()  # applied and logged: the model's time
                # A periodic checkpoint counts against the budget; skip one that would overrun
                # it (the run saves at its end anyway, off the clock). Decided from agreed
                # numbers, so every rank takes part or none.
                due = verdict.elapsed_s - last_checkpoint >= impl.checkpoint_every_min * 60
                if due and verdict.checkpoint_fits:
                    seconds = write_checkpoint(dist, run, model, optimizer, scaler, state, budget)
                    check.checkpoint.update(seconds)
                    check.exclude(seconds)  # timed apart from the update
                    last_checkpoint, recovered_since_checkpoint = verdict.elapsed_s, False
                    journal.restart(state)
                continue
        # A non-finite loss on some rank: every rank reloads the last checkpoint and skips this
        # batch; twice is an error.
        optimizer.zero_grad(set_to_none=True)
        if recovered_since_checkpoint:
            raise AgreedError(f"loss became non-finite again at step {state['step']} after a "
                              f"reload from {run / 'checkpoint'}; {nonfinite_hint(cfg)}")
        restore(dist, run, model, optimizer, scaler, restore_rng=False)
        rows.consume(n_rows)
        state["rows"] = rows.position
        state["nonfinite_skips"] += 1
        recovered_since_checkpoint = True
        journal.restart(state)  # the steps since the checkpoint were undone
        if dist.is_main:
            warn(f"non-finite loss at step {state['step']}: reloaded the last checkpoint and "
                 f"skipped {n_rows} rows", command)


def nonfinite_hint(cfg: PretrainConfig) -> str:
    """What to look at when the loss stays non-finite: the plug-in's hooks that make the loss
    first, where the run has them, else the learning rate and the data."""
    plugin = loaded_plugin(cfg.plugin.sha256)
    hooks = [name for name in ("objective", "build_model", "mask_tokens")
             if plugin is not None and plugin.hook(name) is not None]
    if hooks:
        return (f"check the plug-in's {' and '.join(hooks)} hook{'s' * (len(hooks) > 1)} in "
                f"{plugin.path}, then optim.lr")
    return "lower optim.lr or check the data"


def mlm_objective(model, inputs, labels, rows=None):
    """The pretraining loss, minimized and logged: mean cross-entropy over the masked
    positions (`rows`: how many positions the MLM head takes, see CrammedBert.forward)."""
    loss, _ = model(inputs, labels) if rows is None else model(inputs, labels, rows=rows)
    return loss, loss


def compile_mode(mode: str) -> str | None:
    """torch.compile's `mode` argument for impl.compile_mode ("default" is torch's None)."""
    return None if mode == "default" else mode


def global_batch_size(f: float, cfg: PretrainConfig, world_size: int,
                      max_rows: int | None = None) -> int:
    """Sequences in this step, all ranks together: the batch schedule at f = elapsed / budget,
    rounded down to a multiple of the world size (at least one row per rank) so every rank
    runs the same number of micro-batches."""
    rows = rows_at(f, cfg, max_rows)  # max_rows: the train split, a plug-in's bound
    return max(world_size, rows - rows % world_size)


def batch_rounding(cfg: PretrainConfig, world_size: int) -> str | None:
    """What `global_batch_size` does to the recipe's batch sizes on `world_size` ranks, in one
    line; None when they are multiples of it."""
    t = cfg.train
    changed = [f"{name} {rows} to {max(world_size, rows - rows % world_size)}"
               for name, rows in (("train.batch_size", t.batch_size),
                                  ("train.batch_start", t.batch_start))
               if rows % world_size]
    if not changed:
        return None
    return (f"{' and '.join(changed)} rows per step: rounded down to a multiple of the "
            f"{world_size} ranks, so every rank gets an equal share")


def write_checkpoint(dist: Dist, run, model, optimizer, scaler, state, budget) -> float:
    """Rank 0 saves, every rank waits for it; returns the seconds it took (on the clock). The
    step-0 checkpoint holds the weights as built: their hash is the run's init_sha256."""
    started = budget.elapsed()
    if dist.is_main:
        tensors = save_checkpoint(run, model=model, optimizer=optimizer, scaler=scaler,
                                  train_state={**state, "elapsed_s": started})
        if state["step"] == 0:  # later checkpoints carry it in their train state
            state["init_sha256"] = tensors
    dist.barrier()
    return budget.elapsed() - started


def restore(dist: Dist, run, model, optimizer, scaler, *, restore_rng: bool = True) -> dict:
    """Rank 0 reads the checkpoint (checked against its hashes) and hands it to every rank;
    each loads it in place. Returns the train state."""
    checkpoint = dist.on_main(read_checkpoint, run)
    return apply_checkpoint(checkpoint, model=model, optimizer=optimizer, scaler=scaler,
                            restore_rng=restore_rng)


def start_step(f: float, optimizer, rows, cfg: PretrainConfig, data_dir, step: int,
               world_size: int):
    """A step's set-up from f, the budget fraction its schedules read: the learning rate is
    set, and this rank's rows of the global batch are drawn and masked with the step's own
    seed. -> (rows in the global batch, lr, this rank's rows, inputs, labels)."""
    n_rows = global_batch_size(f, cfg, world_size, data_dir.num_rows("train"))
    lr = lr_at(f, cfg)
    for group in optimizer.param_groups:
        group["lr"] = lr
    mine, index = rows.peek(n_rows)  # this rank's share of the global batch
    inputs, labels = mask_rows(torch.from_numpy(mine), index, n_rows, cfg=cfg,
                               special_ids=data_dir.special_ids, step=step, rank=rows.rank,
                               world_size=world_size, position=rows.position)
    return n_rows, lr, mine, inputs, labels


def redo_lost_steps(run, model, optimizer, scaler, cfg: PretrainConfig, data_dir, state: dict,
                    ended: dict, *, precision: str) -> dict:
    """Training ended, but the process died while it saved the end state, so the steps applied
    since the checkpoint (`state`, loaded into the model and optimizer) were lost. Redo them as
    the end record says: each at the budget fraction it read, so with its own batch size,
    learning rate, rows and masks. Off the clock: they were trained within the budget once, and
    the run ends where it ended. Returns the end's train state. One process redoes them,
    whatever number of ranks trained them."""
    replay, impl = ended["replay"], cfg.impl
    if replay["fractions"]:
        warn(f"training ended at step {ended['step']} ({ended['elapsed_s']:g}s, stopped by "
             f"{ended['stopped_by']}), but the process died while saving it: redoing steps "
             f"{replay['step'] + 1}-{ended['step']} from the step {state['step']} checkpoint, "
             "off the clock")
    rows = RowStream(data_dir, seed=cfg.seed, start=replay["rows"], chunk=impl.micro_batch)
    # As the loop ran them: a compiled model's fixed MLM head size and padding.
    head_rows = (sparse_rows(impl.micro_batch * cfg.model.seq_len, cfg.train.mask_prob)
                 if impl.compile else None)
    step, tokens = replay["step"], replay["tokens"]
    objective = objective_of(cfg)  # the run's plug-in hook, or None: the MLM loss
    model.train()
    for f in replay["fractions"]:
        n_rows, _, _, inputs, labels = start_step(f, optimizer, rows, cfg, data_dir, step,
                                                  replay["world_size"])
        masked = int((labels != IGNORE_INDEX).sum())
        loss = sum(micro_step(model, inputs[begin:begin + impl.micro_batch],
                              labels[begin:begin + impl.micro_batch], masked, scaler, precision,
                              pad_to=impl.micro_batch if impl.compile else None,
                              head_rows=head_rows, objective=objective)
                   for begin in range(0, n_rows, impl.micro_batch))
        if not math.isfinite(float(loss)):  # the run applied this step: its loss was finite
            raise UserError(f"redoing step {step + 1} gave a non-finite loss, which the run did "
                            f"not have; remove {run / END_RECORD} to resume from the checkpoint "
                            "and train on instead")
        optimizer_update(model, optimizer, scaler, cfg.optim.grad_clip)
        rows.consume(n_rows)
        step, tokens = step + 1, tokens + n_rows * cfg.model.seq_len
    if (step, rows.position, tokens) != (ended["step"], ended["rows"], ended["tokens"]):
        raise UserError(f"{run / END_RECORD} is damaged: its steps end at step {step}, row "
                        f"{rows.position}, not at its step {ended['step']}, row {ended['rows']}; "
                        "remove it to resume from the checkpoint")
    return {**state, **{key: ended[key] for key in END_KEYS}}


def micro_step(net, inputs, labels, total_masked, scaler, precision, *,
               dist: Dist | None = None, sync: bool = True, pad_to=None, head_rows=None,
               objective=None) -> torch.Tensor:
    """Forward and backward on one micro-batch; gradients accumulate across the step.

    Each micro-batch's mean loss is weighted by its share of the step's masked tokens (all
    ranks together), so the accumulated gradient equals that of one big batch whatever
    impl.micro_batch is (this holds for any objective that is a mean over the masked
    positions). DDP averages gradients over ranks, so each rank's weight is scaled by
    the world size: the average is then the one-process gradient of the same global batch.
    The all-reduce runs only when `sync` (a step's last micro-batch). `head_rows` fixes the
    MLM head's row count (a compiled model). Returns this micro-batch's share of the step's
    loss as a 0-d tensor on the device: nothing here waits for the device (`labels` are on the
    CPU, where masks are drawn)."""
    dist = dist or Dist()  # one process
    device = next(net.parameters()).device
    n_masked = int((labels != IGNORE_INDEX).sum())
    if n_masked == 0:
        if not dist.distributed:
            return torch.zeros((), device=device)
        # DDP's all-reduce needs every rank's backward: run one with weight 0 on a position
        # labelled with its own input token (the loss of an empty selection is undefined).
        labels = labels.clone()
        labels.view(-1)[0] = inputs.reshape(-1)[0]
    if pad_to:
        inputs, labels = pad_rows(inputs, labels, pad_to)
    weight = n_masked / total_masked * dist.world_size if n_masked else 0.0
    if objective is None:  # the MLM loss; a fixed head size unless more positions are masked
        objective = partial(mlm_objective, rows=max(head_rows, n_masked) if head_rows else None)
    with dist.sync_gradients(net, sync):  # DDP reads it in the forward and the backward
        with autocast(device, precision):
            loss, logged = objective(net, inputs.to(device, non_blocking=True),
                                     labels.to(device, non_blocking=True))
        scaler.scale(loss * weight).backward()
    # A non-finite minimized loss shows as such; else the logged (MLM) part.
    value = loss.detach() if logged is loss else torch.where(
        torch.isfinite(loss), logged.detach(), loss.detach())
    return value.float() * (weight / dist.world_size)


def optimizer_update(model, optimizer, scaler, grad_clip: float) -> None:
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
