"""`cram pretrain` end to end on a tiny data dir: contract 2, the deadline (a late step is
dropped, a run over budget or without a step fails), the refusals, non-finite recovery, and
SIGTERM followed by `--resume RUN` alone in a subprocess."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import TickingClock

from crambench.errors import UserError
from cramming.config import config_sha256
from cramming.model import CrammedBert
from cramming.train.budget import parse_budget
from cramming.train.pretrain import pretrain
from cramming.weights import load_classifier
from data_prep import load_tokenizer, open_data_dir, prepare

pytestmark = pytest.mark.train

SUMMARY_KEYS = {"format", "budget_s", "train_elapsed_s", "stopped_by", "steps", "tokens_seen",
                "train_loss", "val_loss", "params", "preset", "model", "hardware", "software",
                "data_sha256", "data_path", "config_sha256", "model_sha256", "code_version",
                "started_utc", "finished_utc", "status", "failure"}
METRIC_KEYS = {"step", "elapsed_s", "tokens", "loss", "lr", "batch_size", "tokens_per_s"}


@pytest.fixture
def data(pretrain_data):
    return pretrain_data


@pytest.fixture
def overrides(pretrain_overrides):
    return pretrain_overrides


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_end_to_end_writes_contract_2_within_budget(data, overrides, tmp_path):
    run = tmp_path / "run"
    summary = pretrain(data, run, budget_s=8, preset="tiny", overrides=overrides, quiet=True)
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "checkpoint/model.safetensors",
                 "checkpoint/state.pt", "checkpoint/train_state.json", "final/model.safetensors",
                 "final/model_config.json", "final/tokenizer.json"):
        assert (run / name).is_file(), name
    on_disk = json.loads((run / "summary.json").read_text())
    assert on_disk == summary and SUMMARY_KEYS <= set(summary)
    assert summary["format"] == "cram-run/1" and summary["stopped_by"] == "budget"
    assert summary["status"] == "complete" and summary["failure"] is None
    assert 0 < summary["train_elapsed_s"] <= 8.0 and summary["budget_s"] == 8.0
    assert summary["hardware"]["track"] == "open" and summary["hardware"]["device"] == "cpu"
    assert summary["config_sha256"] == config_sha256(run / "config.yaml")
    metrics = _metrics(run)
    assert all(METRIC_KEYS <= set(m) for m in metrics)
    assert [m["step"] for m in metrics] == sorted({m["step"] for m in metrics})
    assert metrics[-1]["step"] == summary["steps"] > 5
    assert summary["val_loss"] < metrics[0]["loss"]  # it learned something
    assert summary["tokens_seen"] == metrics[-1]["tokens"]
    clf = load_classifier(run / "final", num_labels=2)
    assert clf.cfg.vocab_size == load_tokenizer(run / "final").get_vocab_size()


def test_refusals_are_one_line_user_errors(data, overrides, tmp_path):
    run = tmp_path / "run"
    pretrain(data, run, budget_s=2, preset="tiny", overrides=overrides + ["train.max_steps=2"],
             quiet=True)
    with pytest.raises(UserError, match="already holds a run"):
        pretrain(data, run, budget_s=2, preset="tiny", overrides=overrides, quiet=True)
    with pytest.raises(UserError, match="already finished"):
        pretrain(data, budget_s=2, resume=run, overrides=overrides, quiet=True)
    with pytest.raises(UserError, match="vocab_size=8192.*does not match"):
        pretrain(data, tmp_path / "other", budget_s=2, preset="tiny", quiet=True)
    with pytest.raises(UserError, match="bad budget"):
        pretrain(data, tmp_path / "other", budget_s=parse_budget("2 days"), preset="tiny",
                 quiet=True)
    with pytest.raises(UserError, match="not found"):
        pretrain(tmp_path / "missing", tmp_path / "other", budget_s=2, preset="tiny")
    with pytest.raises(UserError, match="not a run dir"):
        pretrain(data, budget_s=2, resume=tmp_path / "nothing", quiet=True)
    with pytest.raises(UserError, match="not a ranked-track GPU"):
        pretrain(data, tmp_path / "ranked", budget_s=2, preset="tiny", overrides=overrides,
                 device="cpu", gpu_check="ranked", quiet=True)
    assert not (tmp_path / "ranked").exists()  # refused before anything was written
    with pytest.raises(UserError, match="seed -1 is out of range"):
        pretrain(data, tmp_path / "negative", budget_s=2, preset="tiny", overrides=overrides,
                 seed=-1, quiet=True)
    assert not (tmp_path / "negative").exists()
    (tmp_path / "afile").write_text("")
    with pytest.raises(UserError, match="cannot create run dir .*afile: File exists"):
        pretrain(data, tmp_path / "afile", budget_s=2, preset="tiny", overrides=overrides,
                 quiet=True)
    # --force replaces the earlier run; two steps end it (a budget of real seconds to spare).
    summary = pretrain(data, run, budget_s=30, preset="tiny", force=True,
                       overrides=overrides + ["train.max_steps=2"], quiet=True)
    assert summary["stopped_by"] == "steps" and summary["steps"] == 2


def test_a_corrupt_shard_is_refused_before_the_run_starts(data, overrides, tmp_path):
    copy = shutil.copytree(data, tmp_path / "data")
    shard = copy / "shards" / "train-00000.bin"
    rows = bytearray(shard.read_bytes())
    rows[64:66] = (300).to_bytes(2, "little")  # an id past the vocabulary (219 ids)
    shard.write_bytes(bytes(rows))
    with pytest.raises(UserError, match=r"train-00000.bin is corrupt: it holds token id 300, "
                                        r"but the vocabulary has 219 ids"):
        pretrain(copy, tmp_path / "run", budget_s=6, preset="tiny", overrides=overrides,
                 quiet=True)
    assert not (tmp_path / "run").exists()  # found before anything was written


def test_deadline_with_a_fake_clock(data, overrides, tmp_path):
    clock = TickingClock(0.05)
    summary = pretrain(data, tmp_path / "run", budget_s=6, preset="tiny", overrides=overrides,
                       quiet=True, clock=clock)
    assert summary["stopped_by"] == "budget"
    assert 5.0 < summary["train_elapsed_s"] <= 6.0  # stopped before, but close to, the deadline
    # Time was fake, so the number of steps is too: the same run again makes the same steps.
    again = pretrain(data, tmp_path / "again", budget_s=6, preset="tiny", overrides=overrides,
                     quiet=True, clock=TickingClock(0.05))
    assert again["steps"] == summary["steps"] and again["train_loss"] == summary["train_loss"]


def test_non_finite_loss_reloads_then_stops_if_it_repeats(data, overrides, tmp_path,
                                                          monkeypatch):
    real_forward = CrammedBert.forward
    calls = {"n": 0, "bad": {4}}

    def flaky(self, input_ids, labels=None):
        calls["n"] += 1
        loss, logits = real_forward(self, input_ids, labels)
        if calls["n"] in calls["bad"]:
            loss = loss * float("nan")
        return loss, logits

    monkeypatch.setattr(CrammedBert, "forward", flaky)
    summary = pretrain(data, tmp_path / "run", budget_s=30, preset="tiny",
                       overrides=overrides + ["train.max_steps=6"], quiet=True)
    assert summary["nonfinite_skips"] == 1 and summary["steps"] == 6
    assert summary["val_loss"] == summary["val_loss"]  # finite: the reload worked
    calls.update(n=0, bad=set(range(4, 1000)))
    with pytest.raises(UserError, match="non-finite again"):
        pretrain(data, tmp_path / "run2", budget_s=30, preset="tiny",
                 overrides=overrides + ["train.max_steps=6"], quiet=True)


def test_a_step_that_would_end_past_the_deadline_is_dropped(data, overrides, tmp_path,
                                                            at_micro_batch):
    """A stall inside step 10's last micro-batch carries it past the deadline: the step is
    dropped before the optimizer update, so the model is step 9's, timed at step 9's end."""
    clock = TickingClock(0.05)
    at_micro_batch(10, lambda: clock.stall(10.0))
    late = pretrain(data, tmp_path / "late", budget_s=6, preset="tiny", overrides=overrides,
                    quiet=True, clock=clock)
    assert late["stopped_by"] == "budget" and late["status"] == "complete"
    assert late["steps"] == 9 and late["train_elapsed_s"] <= 6.0
    assert _metrics(tmp_path / "late")[-1]["elapsed_s"] <= late["train_elapsed_s"]
    # The same nine steps without the stall: the same weights, so step 10 was never applied.
    nine = pretrain(data, tmp_path / "nine", budget_s=6, preset="tiny", quiet=True,
                    overrides=overrides + ["train.max_steps=9"], clock=TickingClock(0.05))
    assert nine["steps"] == 9 and nine["model_sha256"] == late["model_sha256"]


def test_a_run_with_no_step_or_over_budget_fails(data, overrides, tmp_path, at_micro_batch,
                                                 monkeypatch, capsys):
    from crambench.shell.cli import main
    from cramming.train import pretrain as module
    from cramming.train.summary import RunFailed

    clock = TickingClock(0.05)
    at_micro_batch(1, lambda: clock.stall(100.0))  # a first step longer than the whole budget
    with pytest.raises(RunFailed, match=r"no optimizer step in 100\.\ds of the 6s budget"):
        pretrain(data, tmp_path / "slow", budget_s=6, preset="tiny", overrides=overrides,
                 quiet=True, clock=clock)
    summary = json.loads((tmp_path / "slow" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["steps"] == 0
    assert "no optimizer step" in summary["failure"] and summary["model_sha256"] is None
    assert not (tmp_path / "slow" / "final").exists()  # nothing that looks like a model
    with pytest.raises(UserError, match="no optimizer step"):
        pretrain(data, budget_s=6, resume=tmp_path / "slow", quiet=True)

    # The optimizer update of step 3 hangs past the deadline: applied, so the run is over.
    real_update, steps = module.optimizer_update, {"n": 0}

    def hanging_update(*args):
        steps["n"] += 1
        real_update(*args)
        if steps["n"] == 3:
            over.stall(10.0)

    over = TickingClock(0.05)
    monkeypatch.setattr(module, "optimizer_update", hanging_update)
    with pytest.raises(RunFailed, match=r"training took 1\d\.\ds, over the 6s budget"):
        pretrain(data, tmp_path / "over", budget_s=6, preset="tiny", overrides=overrides,
                 quiet=True, clock=over)
    monkeypatch.undo()

    # From the command line: exit status 1 and one line (real time: the step sleeps 1.5 s).
    at_micro_batch(1, lambda: time.sleep(1.5))
    status = main(["pretrain", "--data", str(data), "--preset", "tiny", "--budget", "1s",
                   "--out", str(tmp_path / "cli"), "--quiet", *overrides])
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1
    assert err.startswith(f"cram pretrain: error: {tmp_path / 'cli'}: no optimizer step in 1.")


@pytest.mark.slow
def test_sigterm_then_resume_continues_the_same_clock(data, overrides, tmp_path):
    run = tmp_path / "run"
    budget = 14
    command = [sys.executable, "-m", "cramming", "pretrain", "--data", str(data),
               "--budget", f"{budget}s", "--quiet", *overrides]
    env = {**os.environ, "CI": "true"}
    proc = subprocess.Popen([*command, "--preset", "tiny", "--out", str(run)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        log = run / "metrics.jsonl"
        lines = log.read_text().splitlines() if log.exists() else []
        if lines and json.loads(lines[-1])["step"] >= 10:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, output
    assert f"continue with `cram pretrain --resume {run}`" in output  # a hint that works
    first = json.loads((run / "summary.json").read_text())
    assert first["stopped_by"] == "interrupt" and first["train_elapsed_s"] < budget
    assert not (run / "final").exists()

    other_budget = [c if c != f"{budget}s" else "30s" for c in command]
    refused = subprocess.run([*other_budget, "--resume", str(run)], env=env, capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode == 2 and "does not match the run's budget 14s" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1  # one line, no traceback
    other = prepare([str(data.parent / "corpus.txt")], tmp_path / "other", vocab_size=128,
                    seq_len=32, val_fraction=0.1, quiet=True)
    assert other["vocab_size"] != open_data_dir(data).vocab_size
    other_data = [c if c != str(data) else str(tmp_path / "other") for c in command]
    refused = subprocess.run([*other_data, "--resume", str(run)], env=env, capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode == 2 and "not the data dir it trained on" in refused.stderr

    alone = [sys.executable, "-m", "cramming", "pretrain", "--resume", str(run), "--quiet"]
    done = subprocess.run(alone, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stopped_by"] == "budget" and summary["budget_s"] == budget
    assert first["train_elapsed_s"] < summary["train_elapsed_s"] <= budget
    assert summary["steps"] > first["steps"]
    assert summary["started_utc"] == first["started_utc"]
    metrics = _metrics(run)
    steps = [m["step"] for m in metrics]
    elapsed = [m["elapsed_s"] for m in metrics]
    assert steps == sorted(set(steps)) and elapsed == sorted(elapsed)
    assert steps[-1] == summary["steps"] and first["steps"] in steps


def test_resume_keeps_metrics_up_to_the_checkpoint_and_refuses_damaged_lines(tmp_path):
    from cramming.train.run_dir import MetricsLog

    path = tmp_path / "metrics.jsonl"
    lines = ['{"step": 1, "elapsed_s": 0.5}', '{"step": 5, "elapsed_s": 2.0}', "",
             '{"step": 10, "elapsed_s": 4.0}']
    path.write_text("\n".join(lines) + '\n{"step": 1')  # the last line cut short by a crash
    log = MetricsLog(path, resume_step=5, resume_elapsed=2.1)
    log.append({"step": 6, "elapsed_s": 2.5})
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 5, 6]

    for damaged, reason in [
        (b'{"step": 1, "elapsed_s": 0.5}\n\xff\xfe\n{"step": 5, "elapsed_s": 2.0}\n',
         r"line 2 is damaged \(not UTF-8 text\)"),
        (b'{"step": 5, "elapsed_s": 2.0}\n{"step": 1, "elapsed_s": 0.5}\n',
         r"line 2 is damaged: step 1 at 0.5s does not follow step 5 at 2.0s"),
        (b'{"step": 5, "elapsed_s": "2.0"}\n', r"line 1 is damaged: step 5 at '2.0's"),
        (b'{"step": 4, "elapsed_s": 9.0}\n', r"line 1: step 4 was logged at 9.0s, after the "
                                               r"checkpoint's elapsed_s 2.1s"),
    ]:
        path.write_bytes(damaged)
        with pytest.raises(UserError, match=reason):
            MetricsLog(path, resume_step=5, resume_elapsed=2.1)
        assert path.read_bytes() == damaged  # refused before anything was rewritten
    # The line of the checkpoint's own step may follow it: the run's last, logged as it ended.
    path.write_text('{"step": 5, "elapsed_s": 2.5}\n')
    MetricsLog(path, resume_step=5, resume_elapsed=2.1)
    assert json.loads(path.read_text())["step"] == 5
