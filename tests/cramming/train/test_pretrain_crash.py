"""`cram pretrain` killed (SIGKILL, no cleanup) at many points, including inside the checkpoint
swap: the run dir it leaves is always resumable (or, killed before config.yaml was written,
restartable with the same command), never needs --force, and ends with no leftovers."""

import json

import pytest
import torch
from conftest import cram_killed_at

from cramming.train.pretrain import pretrain

pytestmark = [pytest.mark.train, pytest.mark.subprocess]

RUN_CONTENTS = {"config.yaml", "metrics.jsonl", "checkpoint", "final", "summary.json"}
STEPS = 3
# (kill before the N-th rename onto NAME, what the kill interrupts). Checkpoints are saved at
# step 0, after every step (impl.checkpoint_every_min=0) and once more after the loop.
KILL_POINTS = [
    ("config.yaml:1", "creating the run dir: no config.yaml yet"),
    ("metrics.jsonl:1", "second 1: config.yaml alone"),
    ("checkpoint:1", "the first checkpoint built but not yet in place"),
    ("checkpoint:2", "inside the swap of the second checkpoint: no checkpoint/ at all"),
    ("*.partial:1", "after a swap, before the old checkpoint is removed"),
    ("ended.json:1", "training ended, its end record not yet in place"),
    (f"train_state.json:{STEPS + 2}", "building the post-loop checkpoint (the end record in "
                                      "place)"),
    ("final:1", "the write-out: final/ built but not yet in place"),
    ("summary.json:1", "the write-out: final/ in place, no summary yet"),
]


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
@pytest.mark.parametrize(("kill", "moment"), KILL_POINTS, ids=[k for k, _ in KILL_POINTS])
def test_a_killed_pretrain_leaves_a_resumable_run(kill, moment, pretrain_data,
                                                   pretrain_overrides, tmp_path):
    run = tmp_path / "run"
    overrides = [*pretrain_overrides, f"train.max_steps={STEPS}", "impl.checkpoint_every_min=0"]
    argv = ["pretrain", "--data", str(pretrain_data), "--preset", "tiny", "--budget", "60s",
            "--out", str(run), "--quiet", *overrides]
    killed = cram_killed_at(kill, argv)
    assert killed.returncode == -9, f"{moment}: the kill point was not reached\n{killed.stderr}"

    if (run / "config.yaml").exists():
        summary = pretrain(resume=run, quiet=True)
    else:  # killed before the run dir held anything: the same command starts it
        summary = pretrain(pretrain_data, run, budget_s=60, preset="tiny", overrides=overrides,
                           quiet=True)
    assert summary["status"] == "complete" and summary["steps"] == STEPS, moment
    assert {p.name for p in run.iterdir()} == RUN_CONTENTS, moment  # no leftovers
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no lock file, no temporary dir
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == STEPS


@pytest.mark.slow
def test_a_kill_while_the_end_state_is_saved_costs_no_budget(pretrain_data, pretrain_overrides,
                                                             tmp_path):
    """The only checkpoint before the post-loop one is step 0's (impl.checkpoint_every_min is a
    minute): the resume redoes the run's steps from the end record, off the clock, and ends
    where the killed run ended."""
    run = tmp_path / "run"
    overrides = [*pretrain_overrides, f"train.max_steps={STEPS}"]
    argv = ["pretrain", "--data", str(pretrain_data), "--preset", "tiny", "--budget", "60s",
            "--out", str(run), "--quiet", *overrides]
    killed = cram_killed_at("train_state.json:2", argv)  # building the post-loop checkpoint
    assert killed.returncode == -9, killed.stderr
    ended = json.loads((run / "ended.json").read_text())
    assert json.loads((run / "checkpoint" / "train_state.json").read_text())["step"] == 0
    assert ended["stopped_by"] == "steps" and len(ended["replay"]["fractions"]) == STEPS

    def no_clock():
        raise AssertionError("the budget's clock was read: the resume spent budget")

    summary = pretrain(resume=run, quiet=True, clock=no_clock)
    assert summary["status"] == "complete" and summary["steps"] == STEPS
    assert summary["train_elapsed_s"] == ended["elapsed_s"]
    assert {p.name for p in run.iterdir()} == RUN_CONTENTS  # the record is gone
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, STEPS]  # the killed run's lines, none repeated
    assert metrics[-1]["elapsed_s"] <= summary["train_elapsed_s"]
