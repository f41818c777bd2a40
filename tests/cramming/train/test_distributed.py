"""DistributedDataParallel on CPU ranks (gloo): the rows each rank reads, the masks it draws,
the stop agreement, and whole runs on 2 processes: the same weights as one process, one stop
step for all ranks, SIGTERM to the launcher then --resume, and a killed rank."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_grammar_data
from ranks import run_ranks
from safetensors.torch import load_file

from crambench.errors import UserError
from cramming.train.objective import mask_tokens, step_generator
from cramming.train.pretrain import pretrain
from cramming.train.rows import RowStream
from cramming.train.stop import StopCheck, StopSignal
from data_prep import open_data_dir
from leaderboard.submit import build_entry

# A frozen clock (ranks.frozen_clock) keeps f = 0: constant batch and learning rate, so a run
# of k steps is a pure function of the seed, whatever the speed of each process.
RECIPE = ["train.batch_start=8", "train.batch_size=8", "impl.micro_batch=2", "impl.threads=1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_grammar_data(tmp_path_factory.mktemp("ddp"), seq_len=32, val_fraction=0.1)


@pytest.fixture
def overrides(data):
    return [f"model.vocab_size={open_data_dir(data).vocab_size}", "model.seq_len=32"]


@pytest.mark.parametrize("position", [0, 6, 7, 10 ** 3 + 1])
def test_row_streams_split_each_global_batch_and_resume_on_any_world_size(data, position):
    data = open_data_dir(data)
    one = RowStream(data, seed=5, start=position, chunk=4)
    for world_size in (2, 3, 4):
        streams = [RowStream(data, seed=5, start=position, chunk=4, rank=r,
                             world_size=world_size) for r in range(world_size)]
        reference = RowStream(data, seed=5, start=position, chunk=4)
        for size in (world_size * 3, world_size, world_size * 5):
            expected, _ = reference.peek(size)
            batch = np.zeros_like(expected)
            for stream in streams:
                rows, index = stream.peek(size)
                batch[index] = rows
                stream.consume(size)
            np.testing.assert_array_equal(batch, expected)
            reference.consume(size)
        assert all(s.position == reference.position for s in streams)
    with pytest.raises(ValueError, match="does not split over 2 ranks"):
        RowStream(data, seed=5, start=0, chunk=4, rank=0, world_size=2).peek(5)
    assert one.peek(4)[0].shape == (4, 32)


def test_each_rank_draws_the_masks_one_process_would(data):
    data = open_data_dir(data)
    rows = torch.from_numpy(next(data.iter_batches("train", 12, seed=1)))
    args = {"special_ids": data.special_ids, "vocab_size": 256}
    inputs, labels = mask_tokens(rows, generator=step_generator(3, 7), **args)
    for world_size in (2, 3):
        for rank in range(world_size):
            index = np.arange(rank, 12, world_size)
            mine = mask_tokens(rows[index], generator=step_generator(3, 7), batch_rows=12,
                               row_index=index, **args)
            assert torch.equal(mine[0], inputs[index]) and torch.equal(mine[1], labels[index])


class TwoRanks:
    """A stand-in for Dist that adds a second rank's row to each gathered table."""

    world_size, rank, is_main, distributed = 2, 0, True, True

    def __init__(self, other):
        self.other = other  # [elapsed, needed, checkpoint, signal, nonfinite, masked, loss]

    def gather(self, values):
        return torch.tensor([values, self.other], dtype=torch.float64)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_the_stop_check_follows_the_slowest_clock_and_any_rank():
    from cramming.train.budget import Budget

    clock = Clock()
    other = [0.0, 0.0, 0.0, 0.0, 0.0, 40.0, 1.5]
    check = StopCheck(Budget(100, clock=clock), StopSignal(), TwoRanks(other))
    clock.now, other[0] = 10.0, 30.0  # the other rank's clock reads later: the job's clock
    verdict = check.before_micro(last=False, masked=60)
    assert verdict.elapsed_s == 30.0 and check.fraction() == 0.3
    assert verdict.masked == 100 and verdict.stop is None
    other[1] = 50.0  # the other rank expects its next micro-batch to take 50 s
    assert check.before_micro(last=False).stop == "budget"
    other[1], other[3] = 0.0, 1.0  # a signal on the other rank stops both...
    assert check.before_micro(last=False).stop == "interrupt"
    verdict = check.before_update(loss=2.0, nonfinite=False)
    assert verdict.stop is None and verdict.loss == 3.5  # ...but not a finished step
    other[4] = 1.0
    assert check.before_update(loss=2.0, nonfinite=False).nonfinite
    other[4], other[2] = 0.0, 60.0  # a 60 s checkpoint after this update would end too late
    assert not check.before_update(loss=2.0, nonfinite=False).checkpoint_fits


def _child_failed(**exitcodes):
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    failures = {int(rank[1:]): ProcessFailure(int(rank[1:]), 300 + int(rank[1:]), code, "")
                for rank, code in exitcodes.items()}
    return ChildFailedError("cramming", failures)


def test_the_launcher_exit_status_passes_on_what_a_rank_said_or_names_the_dead_rank(tmp_path):
    from cramming.train.distributed import _failure_status

    run = tmp_path / "run"
    assert _failure_status(_child_failed(r1=2), run) == 2  # a user error: the rank printed it
    assert _failure_status(_child_failed(r0=130, r1=130), run) == 130
    with pytest.raises(UserError, match=r"rank 0 \(pid 300\) exited with status 1"):
        _failure_status(_child_failed(r0=1), run)  # a crash: no summary says why
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"status": "failed"}))
    assert _failure_status(_child_failed(r0=1), run) == 1  # RunFailed: rank 0 said why
    with pytest.raises(UserError) as caught:
        _failure_status(_child_failed(r0=3, r1=-signal.SIGKILL), run)
    assert str(caught.value).startswith("rank 1 (pid 301) was killed by SIGKILL; rank 0 (pid "
                                        "300) lost contact with it; the job stopped.")
    assert str(caught.value).endswith(f"continue with --resume {run}")


@pytest.mark.train
@pytest.mark.subprocess
def test_two_ranks_give_the_weights_of_one_process(data, overrides, tmp_path):
    # One micro-batch per rank and step: the same two micro-batches make each step's gradient
    # in both runs (with two per rank the sums also associate differently).
    steps = overrides + RECIPE + ["train.max_steps=3", "impl.micro_batch=4"]
    kwargs = {"budget_s": 600, "preset": "tiny", "overrides": steps, "quiet": True}
    torch.set_num_threads(1)
    one = pretrain(data, tmp_path / "one", **kwargs, clock=lambda: 0.0)
    ranks = run_ranks(2, data=data, out=tmp_path / "two", **kwargs)
    two = ranks[0]
    assert one["steps"] == two["steps"] == ranks[1]["steps"] == 3
    assert two["hardware"]["world_size"] == 2 and two["hardware"]["gpu_count"] == 0
    assert len(two["hardware"]["device_names"]) == 2 and two["hardware"]["track"] == "open"
    assert one["hardware"]["world_size"] == 1
    assert two["rows_seen"] == one["rows_seen"] == 24
    a = load_file(tmp_path / "one" / "final" / "model.safetensors")
    b = load_file(tmp_path / "two" / "final" / "model.safetensors")
    # The all-reduce averages in another order than one process accumulates, and Adam's
    # normalized step turns that rounding into up to ~2e-5 on the odd weight whose gradient is
    # near zero (seen: 1 of 49152). A rank that trained on other rows, or gradients left
    # unreduced, moves most weights by the order of lr (1e-3) instead.
    for key in a:
        diff = (b[key].float() - a[key].float()).abs()
        assert diff.max() <= 1e-4, (key, diff.max())
        assert (diff > 1e-5).float().mean() <= 1e-3, (key, (diff > 1e-5).sum())
    assert abs(two["train_loss"] - one["train_loss"]) < 1e-4
    # Rank 0 alone wrote the run; its metrics log the loss of the whole global batch.
    assert [json.loads(x)["batch_size"] for x in (tmp_path / "two" / "metrics.jsonl")
            .read_text().splitlines()] == [8, 8]


@pytest.mark.train
@pytest.mark.subprocess
def test_both_ranks_stop_at_the_same_step_within_the_budget(data, overrides, tmp_path):
    # Two clocks that disagree: alone, rank 1 would stop far earlier than rank 0.
    ranks = run_ranks(2, ticks=[0.01, 0.03], data=data, out=tmp_path / "run", budget_s=4,
                      preset="tiny", overrides=overrides + RECIPE, quiet=True)
    summary, other = ranks[0], ranks[1]
    assert summary["stopped_by"] == other["stopped_by"] == "budget"
    assert summary["steps"] == other["steps"] > 5
    assert summary["train_elapsed_s"] == other["train_elapsed_s"] <= 4.0
    entry = build_entry_for(tmp_path / "run", summary)
    assert entry["category"] == "multi-gpu" and entry["track"] == "open"
    assert "2 cpu processes" in entry["track_reason"]


def build_entry_for(run: Path, summary: dict) -> dict:
    """The entry `cram submit` would write, with a stand-in eval file."""
    (run / "eval").mkdir()
    (run / "eval" / "probe.json").write_text(json.dumps({
        "format": "cram-glue/1", "suite": "probe", "protocol": {"name": "quick",
                                                                "rankable": False},
        "model_sha256": summary["model_sha256"], "tokenizer_sha256": summary["tokenizer_sha256"],
        "tasks": {"continuation": {"metrics": {"accuracy": 50.0}}},
        **{k: {"value": None, "label": "", "components": [], "complete": False}
           for k in ("avg_cramming", "avg_glue")}}))
    return build_entry(run, "ddp")


def _cram(*args):
    return [sys.executable, "-m", "cramming", "pretrain", *map(str, args)]


def _wait_for_step(run: Path, step: int, proc, limit=90):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        log = run / "metrics.jsonl"
        lines = log.read_text().splitlines() if log.exists() else []
        if lines and json.loads(lines[-1])["step"] >= step:
            return
        time.sleep(0.1)
    raise AssertionError(f"no step {step} in {run}/metrics.jsonl")


@pytest.mark.slow
def test_sigterm_to_the_launcher_then_resume_on_another_world_size(data, overrides, tmp_path):
    run, budget = tmp_path / "run", 20
    common = ["--data", data, "--budget", f"{budget}s", "--device", "cpu", "--quiet",
              *overrides, "impl.threads=1", "impl.log_every=1"]
    env = {**os.environ, "CI": "true"}
    proc = subprocess.Popen(_cram("--nproc", 2, "--preset", "tiny", "--out", run, *common),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_for_step(run, 5, proc)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, output
    assert output.count("interrupted after") == 1 and f"--resume {run}" in output
    first = json.loads((run / "summary.json").read_text())
    assert first["stopped_by"] == "interrupt" and first["train_elapsed_s"] < budget
    assert first["hardware"]["world_size"] == 2
    checkpoint = json.loads((run / "checkpoint" / "train_state.json").read_text())
    assert checkpoint["step"] == first["steps"] and checkpoint["rows"] == first["rows_seen"]

    # Resume on one process: the same clock, the rows where the two ranks left them.
    done = subprocess.run(_cram("--resume", run, *common), env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stopped_by"] == "budget"
    # The steps trained on two ranks are not forgotten: the run is classified by its largest
    # segment, and each segment's devices are in the summary, the checkpoint and the log.
    hardware = summary["hardware"]
    assert hardware["world_size"] == 2 and len(hardware["device_names"]) == 2
    assert [(s["world_size"], s["started_step"]) for s in hardware["segments"]] == [
        (2, 0), (1, first["steps"])]
    state = json.loads((run / "checkpoint" / "train_state.json").read_text())
    assert state["segments"] == hardware["segments"]
    assert build_entry_for(run, summary)["category"] == "multi-gpu"
    assert first["train_elapsed_s"] < summary["train_elapsed_s"] <= budget
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [len(m["device_names"]) for m in metrics if "device_names" in m] == [2, 1]
    steps = [m["step"] for m in metrics]
    assert steps == list(range(1, summary["steps"] + 1))  # continuous, no repeat, no gap
    assert [m["elapsed_s"] for m in metrics] == sorted(m["elapsed_s"] for m in metrics)
    assert metrics[-1]["tokens"] == summary["tokens_seen"]


@pytest.mark.slow
def test_a_killed_rank_ends_the_job_with_one_clear_error(data, overrides, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen(
        _cram("--nproc", 2, "--data", data, "--budget", "120s", "--device", "cpu", "--preset",
              "tiny", "--out", run, "--quiet", *overrides, "impl.threads=1",
              "impl.log_every=1"),
        env={**os.environ, "CI": "true"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    _wait_for_step(run, 3, proc)
    victim = _rank_pid(proc.pid, rank=1)
    started = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    _, err = proc.communicate(timeout=90)  # never a hang
    assert time.monotonic() - started < 60
    assert proc.returncode == 2
    ours = [line for line in err.splitlines() if line.startswith("cram pretrain: error:")]
    assert "Traceback" not in err, err
    assert f"rank 1 (pid {victim}) was killed by SIGKILL" in ours[-1], err
    assert all("rank 0: lost contact" in line for line in ours[:-1])  # its one line, if any
    assert (run / "checkpoint" / "train_state.json").is_file()  # resumable from there


def _rank_pid(launcher: int, rank: int) -> int:
    """The pid of the launcher's child process with RANK=`rank` in its environment."""
    for _ in range(100):
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                environ = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == launcher and f"RANK={rank}".encode() in environ:
                return int(entry.name)
        time.sleep(0.1)
    raise AssertionError(f"no rank {rank} under pid {launcher}")


def test_a_batch_rounded_to_the_world_size_is_said_once():
    """`--nproc 3` turns the recipe's 32 rows per step into 30: the start says so, in one line;
    a world size that divides the batches says nothing."""
    from cramming.config import load_config
    from cramming.train.pretrain import batch_rounding, global_batch_size

    cfg = load_config("tiny", ["train.batch_size=32", "train.batch_start=8"])
    line = batch_rounding(cfg, 3)
    assert line == ("train.batch_size 32 to 30 and train.batch_start 8 to 6 rows per step: "
                    "rounded down to a multiple of the 3 ranks, so every rank gets an equal "
                    "share")
    assert global_batch_size(1.0, cfg, 3) == 30 and global_batch_size(0.0, cfg, 3) == 6
    assert batch_rounding(cfg, 2) is None and batch_rounding(cfg, 1) is None
