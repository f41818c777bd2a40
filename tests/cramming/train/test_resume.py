"""Resuming a run: `--resume RUN` alone (the run knows its data and budget), what is checked
before a resume trusts the run dir (train_state.json field by field, the checkpoint's hashes,
metrics.jsonl, config.yaml), a run dir that never trained, and a run whose training ended but
whose write-out was cut short (finished off the clock, and never stopped by a signal)."""

import json
import os
import shutil
import signal

import pytest
import torch
from conftest import TickingClock
from safetensors.torch import load_file

from crambench.errors import UserError
from cramming.train import pretrain as pretrain_module
from cramming.train import summary as summary_module
from cramming.train.pretrain import pretrain

pytestmark = pytest.mark.train

BUDGET_S = 6  # seconds, on a fake clock ticking 0.05 s per reading: about 20 steps


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def interrupted(pretrain_data, tmp_path_factory):
    """A run stopped by SIGINT during its 8th micro-batch (8 steps done: the signal ends it
    at the next check): a resumable run dir that each test copies before it edits it."""
    run = tmp_path_factory.mktemp("interrupted") / "run"
    vocab = json.loads((pretrain_data / "manifest.json").read_text())["vocab_size"]
    overrides = [f"model.vocab_size={vocab}", "model.seq_len=32", "impl.threads=1"]
    real, calls = pretrain_module.micro_step, {"n": 0}

    def micro_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 8:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pretrain_module, "micro_step", micro_step)
        summary = pretrain(pretrain_data, run, budget_s=BUDGET_S, preset="tiny",
                           overrides=overrides,
                           quiet=True, clock=TickingClock(0.05))
    assert summary["stopped_by"] == "interrupt" and summary["steps"] == 8
    return run


@pytest.fixture
def run(interrupted, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(interrupted, copy)
    return copy


def _train_state(run):
    return json.loads((run / "checkpoint" / "train_state.json").read_text())


def _snapshot(run):
    return {p.relative_to(run): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def test_resume_alone_takes_the_runs_data_and_budget(run, pretrain_data, tmp_path, capsys,
                                                    monkeypatch):
    monkeypatch.delenv("CI", raising=False)  # the start line is progress, which CI=true hides
    spent = _train_state(run)["elapsed_s"]
    summary = pretrain(resume=run, quiet=False, clock=TickingClock(0.05))
    start = [line for line in capsys.readouterr().err.splitlines()
             if line.startswith("cram pretrain:") and "parameters" in line]
    assert start and start[0].endswith(f", budget 6s, resumed at step 8 with {spent:.1f}s spent")
    assert summary["stopped_by"] == "budget" and summary["status"] == "complete"
    assert summary["budget_s"] == 6.0 and 8 < summary["steps"]
    assert summary["train_elapsed_s"] <= 6.0 and (run / "final" / "model.safetensors").is_file()


def test_resume_refuses_another_budget_and_finds_a_moved_data_dir(run, pretrain_data, tmp_path):
    with pytest.raises(UserError, match=r"--budget 7s does not match the run's budget 6s"):
        pretrain(budget_s=7, resume=run, quiet=True)
    config = run / "config.yaml"
    config.write_text(config.read_text().replace(str(pretrain_data.resolve()),
                                                 str(tmp_path / "moved")))
    with pytest.raises(UserError, match=r"not found: .*moved \(the data dir named in .*config."
                                        r"yaml; give --data DATA if it moved\)"):
        pretrain(resume=run, quiet=True)
    summary = pretrain(pretrain_data, budget_s=6, resume=run, quiet=True,
                       clock=TickingClock(0.05))
    assert summary["status"] == "complete"  # --data names the same data where it now is


@pytest.mark.parametrize(("edit", "reason"), [
    ({"elapsed_s": -100}, r"elapsed_s is -100, expected a finite number of seconds >= 0"),
    ({"elapsed_s": "1.5"}, r"elapsed_s is '1.5', expected a finite number"),
    ({"step": -1}, r"step is -1, expected a whole number >= 0"),
    ({"step": 2.5}, r"step is 2.5, expected a whole number"),
    ({"rows": 10**15}, r"rows is 1000000000000000, expected at most 256 "),
    ({"tokens": 33}, r"tokens is 33, expected a multiple of seq_len 32"),
    ({"stopped_by": "done"}, r"stopped_by is 'done', expected one of None, budget"),
    ({"model_sha256": "0" * 63}, r"model_sha256 is '0+', expected a sha256 hex digest"),
    ({"step": None}, r"step is None"),
    ({"elapsed_s": 0.25}, r"metrics.jsonl line 1: step 1 was logged at .*s, after the "
                          r"checkpoint's elapsed_s 0.25s"),
])
def test_train_state_is_checked_before_a_resume(run, edit, reason):
    state = _train_state(run)
    (run / "checkpoint" / "train_state.json").write_text(json.dumps({**state, **edit}))
    before = _snapshot(run)
    with pytest.raises(UserError, match=r"train_state.json is damaged: " + reason
                       if "metrics" not in reason else reason):
        pretrain(resume=run, quiet=True)
    assert _snapshot(run) == before  # refused before anything was written


def test_undecodable_train_state_is_one_line(run):
    (run / "checkpoint" / "train_state.json").write_bytes(b'{"format": "\xff\xfe"}')
    with pytest.raises(UserError, match=r"train_state.json: not UTF-8 text"):
        pretrain(resume=run, quiet=True)


def test_damaged_checkpoint_files_are_refused(run):
    weights = run / "checkpoint" / "model.safetensors"
    intact = weights.read_bytes()
    weights.write_bytes(intact[:-1] + bytes([intact[-1] ^ 1]))  # one flipped bit
    with pytest.raises(UserError, match=r"model.safetensors is damaged \(1\.\d MB\): its sha256 "
                                        r"does not match model_sha256 in .*train_state.json"):
        pretrain(resume=run, quiet=True)
    weights.write_bytes(intact)
    (run / "checkpoint" / "state.pt").write_bytes(b"")
    with pytest.raises(UserError, match=r"state.pt is damaged \(0 B\)"):
        pretrain(resume=run, quiet=True)


def test_a_damaged_checkpoint_is_found_before_the_start_line_and_the_clock(run, capsys):
    weights = run / "checkpoint" / "model.safetensors"
    intact = weights.read_bytes()
    weights.write_bytes(intact[:-1] + bytes([intact[-1] ^ 1]))
    readings = []

    def clock():
        readings.append(1)
        return 0.0

    with pytest.raises(UserError, match=r"model.safetensors is damaged"):
        pretrain(resume=run, quiet=False, clock=clock)
    assert readings == []  # the budget's clock never started
    assert "parameters" not in capsys.readouterr().err  # nor was the start line printed


def test_damaged_metrics_or_config_are_named_before_work_starts(run):
    metrics = run / "metrics.jsonl"
    lines = metrics.read_bytes().splitlines(keepends=True)
    metrics.write_bytes(lines[0] + b"\x80\x81 garbage\n" + b"".join(lines[1:]))
    with pytest.raises(UserError, match=r"metrics.jsonl line 2 is damaged \(not UTF-8 text\)"):
        pretrain(resume=run, quiet=True)
    metrics.write_bytes(b"".join(lines))

    config = run / "config.yaml"
    text = config.read_text()
    config.write_text(text[: len(text) // 2].rsplit("\n", 1)[0] + "\n")  # cut at a line end
    with pytest.raises(UserError, match=r"config.yaml is incomplete \(cut short\?\): "):
        pretrain(resume=run, quiet=True)
    config.write_text(text.replace("lr: 0.001", "lr: 0.002"))
    with pytest.raises(UserError, match=r"config.yaml was changed or damaged after the "
                                        r"checkpoint"):
        pretrain(resume=run, quiet=True)


def test_a_run_dir_that_never_trained_restarts(run, pretrain_data, pretrain_overrides, tmp_path):
    """Killed at second 1: config.yaml and nothing else. Both a plain rerun and --resume
    start it; neither needs --force."""
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shutil.copy(run / "config.yaml", fresh / "config.yaml")
    summary = pretrain(resume=fresh, quiet=True, clock=TickingClock(0.05))
    assert summary["status"] == "complete" and summary["steps"] > 8

    again = tmp_path / "again"
    again.mkdir()
    shutil.copy(run / "config.yaml", again / "config.yaml")
    summary = pretrain(pretrain_data, again, budget_s=BUDGET_S, preset="tiny",
                       overrides=pretrain_overrides, quiet=True, clock=TickingClock(0.05))
    assert summary["status"] == "complete"
    # A finished run is not restarted silently, and the hint says what works.
    with pytest.raises(UserError, match=r"already holds a run .*use --force to replace it or "
                                        r"choose another --out"):
        pretrain(pretrain_data, again, budget_s=BUDGET_S, preset="tiny",
                 overrides=pretrain_overrides, quiet=True)
    with pytest.raises(UserError, match=r"continue it with `cram pretrain --resume "):
        pretrain(pretrain_data, run, budget_s=BUDGET_S, preset="tiny",
                 overrides=pretrain_overrides, quiet=True)


def test_a_cut_short_write_out_is_finished_off_the_clock(run, monkeypatch):
    """Training ended (its post-loop checkpoint says so) but the process died in the
    write-out: the resume only writes final/, the val loss and the summary; it never reads the
    clock, so the rebuild cannot push the run over its budget."""
    real_finish = pretrain_module.finish_run

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # stands for a kill during the final save

    monkeypatch.setattr(pretrain_module, "finish_run", killed)
    with pytest.raises(KeyboardInterrupt):
        pretrain(resume=run, quiet=True, clock=TickingClock(0.05))
    ended = _train_state(run)
    assert ended["stopped_by"] == "budget" and ended["elapsed_s"] <= 6.0
    assert not (run / "final").exists()

    monkeypatch.setattr(pretrain_module, "finish_run", real_finish)

    def no_clock():
        raise AssertionError("the clock was read during the write-out")

    summary = pretrain(resume=run, quiet=True, clock=no_clock)
    assert summary["status"] == "complete" and summary["steps"] == ended["step"]
    assert summary["train_elapsed_s"] == ended["elapsed_s"] <= 6.0
    final = load_file(run / "final" / "model.safetensors")
    checkpoint = load_file(run / "checkpoint" / "model.safetensors")
    assert all(torch.equal(final[k], checkpoint[k]) for k in checkpoint)


def test_a_signal_during_the_write_out_does_not_stop_it(run, monkeypatch, capsys):
    real_loss = summary_module.validation_loss

    def interrupted_loss(*args):
        os.kill(os.getpid(), signal.SIGTERM)  # e.g. a scheduler's stop, after training ended
        return real_loss(*args)

    monkeypatch.setattr(summary_module, "validation_loss", interrupted_loss)
    summary = pretrain(resume=run, quiet=True, clock=TickingClock(0.05))
    assert summary["status"] == "complete" and summary["val_loss"] is not None
    assert "stop signal received after training ended" in capsys.readouterr().err
