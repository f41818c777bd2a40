"""Several processes, one run: DistributedDataParallel under torchrun or `cram pretrain --nproc`.

    torchrun --nproc_per_node 8 -m cramming pretrain --data DATA --budget 48h --out RUN
    cram pretrain --nproc 2 --device cpu --data DATA --preset tiny --budget 5m --out RUN

`Dist` is what the trainer knows of the job: its rank and world size, the device this rank
trains on, and the few collectives it needs (an agreement per deadline check, a broadcast of
what rank 0 read, a barrier). A single process gets the same object with no process group, so
the trainer has one code path and a one-process run makes no collective at all.

Only rank 0 touches the run dir: it resolves the run, writes the config, metrics, checkpoints,
the summary and final/, and reads a checkpoint back; other ranks receive what it read by
broadcast, so only the data dir has to be present on every node.

`launch` is `cram pretrain --nproc N`: torch's elastic launcher (the engine behind torchrun) with
a standalone rendezvous on this machine, running `python -m cramming pretrain ...` per rank.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from crambench.errors import UserError

# A collective that waits longer than this fails instead of hanging: a dead or stuck rank ends
# the job with an error. Long enough for rank 0 to write a checkpoint of a large model while
# the others wait at the barrier after it.
COLLECTIVE_TIMEOUT = timedelta(minutes=10)
# What a worker has after SIGTERM/SIGINT to stop at its next check and write one checkpoint,
# before the launcher kills it (torch's default is 30 s).
SHUTDOWN_TIMEOUT_S = 120
# A rank's exit status when a collective failed because another rank died or hung.
LOST_CONTACT = 3


class AgreedError(UserError):
    """A user error every rank raises together (rank 0 found it and told the others): only rank
    0 prints it."""


@dataclass
class Dist:
    """This process's place in the job. `world_size` 1 means no process group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    def __enter__(self) -> Dist:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def use_device(self, device: torch.device) -> torch.device:
        """This rank's device: GPU LOCAL_RANK of its node on CUDA (one rank per GPU)."""
        if self.distributed and device.type == "cuda":
            if self.local_rank >= torch.cuda.device_count():
                raise UserError(f"rank {self.rank} has LOCAL_RANK {self.local_rank} but torch "
                                f"sees {torch.cuda.device_count()} GPUs on this node; start at "
                                "most one process per GPU")
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
            self.backend = "nccl"
        self.device = device
        return device

    def gather(self, values: list[float]) -> torch.Tensor:
        """(world_size, len(values)) float64: every rank's `values`, rank by rank."""
        mine = torch.tensor(values, dtype=torch.float64)  # on the CPU: gloo carries it
        if not self.distributed:
            return mine.unsqueeze(0)
        out = torch.empty(self.world_size * len(values), dtype=torch.float64)
        dist.all_gather_single(out, mine)
        return out.view(self.world_size, len(values))

    def broadcast(self, obj):
        """Rank 0's `obj` on every rank (pickled; tensors inside should be on the CPU)."""
        if not self.distributed:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, device=torch.device("cpu"))
        return box[0]

    def on_main(self, fn, *args, **kwargs):
        """Run `fn` on rank 0 only and hand its result to every rank; a UserError it raises is
        raised on every rank (as AgreedError), so no rank waits for an answer that never comes."""
        if not self.distributed:
            return fn(*args, **kwargs)
        result, error = None, None
        if self.is_main:
            try:
                result = fn(*args, **kwargs)
            except UserError as err:
                error = str(err)
            except BaseException as err:
                self.broadcast((None, f"rank 0 failed: {type(err).__name__}: {err}"))
                raise
        result, error = self.broadcast((result, error))
        if error is not None:
            raise AgreedError(error)
        return result

    def barrier(self) -> None:
        """Every rank waits for the last one (a one-number gather on the CPU)."""
        self.gather([0.0])

    def all_gather_object(self, obj) -> list:
        if not self.distributed:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """DistributedDataParallel around `model` (parameters are broadcast from rank 0 here);
        the model itself when there is one process."""
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        # No buffer sync in the forward: the one buffer is a constant table of positions.
        return DistributedDataParallel(model, device_ids=ids, forward_sync_buffers=False)

    def sync_gradients(self, model: torch.nn.Module, sync: bool):
        """Gradient accumulation: the all-reduce runs only on a step's last micro-batch."""
        if self.distributed and not sync:
            return model.no_sync()
        return nullcontext()

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def launched_world_size() -> int:
    """WORLD_SIZE as torchrun (or any env:// launcher) sets it; 1 outside a launcher."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise UserError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number") from None


def init_dist() -> Dist:
    """Join the job torchrun started (env:// rendezvous: RANK, WORLD_SIZE, LOCAL_RANK,
    MASTER_ADDR/PORT), or a one-process Dist outside a launcher.

    torch's default backends: gloo for CPU tensors (the trainer's small agreements and
    broadcasts) and, where CUDA is present, NCCL for CUDA tensors (DDP's gradients)."""
    world_size = launched_world_size()
    if world_size <= 1:
        return Dist()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dist.init_process_group(timeout=COLLECTIVE_TIMEOUT)
    return Dist(rank=rank, world_size=world_size, local_rank=local_rank, backend="gloo")


def launch(nproc: int, worker_args: list[str], *, run, device: str = "auto") -> int:
    """`cram pretrain --nproc N`: N ranks on this machine through torch's elastic launcher, as
    `torchrun --standalone --nproc-per-node N -m cramming pretrain ...` would start them.

    Returns the exit status for the CLI: 0 done, 130 interrupted (every rank stopped at the same
    check and rank 0 wrote one checkpoint), 2 when a rank reported a user error (it printed it);
    any other failure (a rank killed or crashed) is one UserError line naming the rank."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch
    from torch.distributed.run import config_from_args, get_args_parser

    if nproc < 1:
        raise UserError(f"--nproc {nproc}: need at least 1 process")
    if launched_world_size() > 1:
        raise UserError("--nproc launches ranks itself; under torchrun leave it out")
    if device != "cpu" and torch.cuda.is_available() and nproc > torch.cuda.device_count():
        raise UserError(f"--nproc {nproc} but torch sees {torch.cuda.device_count()} GPUs "
                        "(one rank per GPU); use --device cpu to run on the CPU")
    # CPU ranks share the cores instead of each taking them all (torchrun would give each 1).
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    args = get_args_parser().parse_args(
        ["--nnodes", "1", "--nproc-per-node", str(nproc), "--max-restarts", "0",
         "--module", "cramming", "pretrain", *worker_args])
    # What torchrun --standalone does: a c10d rendezvous on a free local port.
    args.rdzv_backend, args.rdzv_endpoint, args.rdzv_id = "c10d", "localhost:0", str(uuid.uuid4())
    config, entrypoint, entry_args = config_from_args(args)
    config.shutdown_timeout = SHUTDOWN_TIMEOUT_S
    try:
        elastic_launch(config, entrypoint)(*entry_args)
    except SignalException:
        return 130  # the ranks stopped on the forwarded signal; rank 0 said how to resume
    except ChildFailedError as err:
        return _failure_status(err, run)
    return 0


def _failed_run(run) -> bool:
    try:
        summary = json.loads((Path(run) / "summary.json").read_text())
    except (OSError, ValueError, TypeError):
        return False
    return isinstance(summary, dict) and summary.get("status") == "failed"


def short_error(err: BaseException) -> str:
    """The first line of a backend's error without its source location, e.g. gloo's
    "[.../pair.cc:537] Read error ...: Connection reset by peer. This is typically ..." ->
    "Read error ...: Connection reset by peer"."""
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    first = re.sub(r"^\[[^\]]*\]\s*", "", first)
    return first.split(". This is typically")[0]


def lost_contact(err: BaseException) -> bool:
    """Did a collective fail because another rank died or hung (not a bug of this rank)?"""
    if isinstance(err, dist.DistError):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and any(
        sign in text for sign in ("Connection closed by peer", "Connection reset by peer",
                                  "NCCL", "timed out", "Timed out"))


def _failure_status(err, run) -> int:
    failures = sorted(err.failures.items())
    if all(f.exitcode in (2, 130) for _, f in failures):
        return failures[0][1].exitcode  # a user error or an interrupt: the rank printed it
    if [(r, f.exitcode) for r, f in failures] == [(0, 1)] and _failed_run(run):
        return 1  # a run over budget or without a step (RunFailed): rank 0 said why

    def cause(item):  # the rank that was killed or crashed first, then those it took along
        rank, failure = item
        who = f"rank {rank} (pid {failure.pid})"
        if failure.exitcode == LOST_CONTACT:
            return 2, f"{who} lost contact with it"
        if failure.exitcode is None or failure.exitcode >= 0:
            return 1, f"{who} exited with status {failure.exitcode}"
        if failure.signal_name() in ("SIGTERM", "SIGINT"):  # the launcher's teardown
            return 3, f"{who} was stopped"
        return 0, f"{who} was killed by {failure.signal_name()}"

    parts = [text for _, text in sorted(map(cause, failures))]
    raise UserError("; ".join(parts) + f"; the job stopped. {run} keeps its last checkpoint: "
                    f"continue with --resume {run}")

