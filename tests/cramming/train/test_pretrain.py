"""`cram pretrain` end to end on a tiny data dir made here: contract 2, the deadline, resume,
the refusals, non-finite recovery, and SIGTERM followed by --resume in a subprocess."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from cramming.config import config_sha256
from cramming.model import CrammedBert
from cramming.train.pretrain import pretrain
from cramming.weights import load_classifier
from data_prep import UserError, load_tokenizer, open_data_dir, prepare

SUBJECTS = ["the cat", "a dog", "my neighbour", "the old farmer", "a child", "the teacher",
            "her brother", "the captain", "a stranger", "the baker"]
VERBS = ["sees", "likes", "follows", "paints", "carries", "finds", "remembers", "greets"]
OBJECTS = ["a red ball", "the small boat", "an apple", "the letter", "a blue kite",
           "the heavy box", "a bright lamp", "the wooden chair"]
PLACES = ["in the garden", "near the river", "at the market", "behind the house",
          "on the hill", "under the bridge", "by the station"]
SUMMARY_KEYS = {"format", "budget_s", "train_elapsed_s", "stopped_by", "steps", "tokens_seen",
                "train_loss", "val_loss", "params", "preset", "model", "hardware", "software",
                "data_sha256", "data_path", "config_sha256", "model_sha256", "code_version",
                "started_utc", "finished_utc"}
METRIC_KEYS = {"step", "elapsed_s", "tokens", "loss", "lr", "batch_size", "tokens_per_s"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A few hundred short documents of a small grammar: learnable in seconds."""
    root = tmp_path_factory.mktemp("pretrain")
    rng = random.Random(0)
    docs = [" ".join(f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} "
                     f"{rng.choice(PLACES)}." for _ in range(rng.randint(4, 8)))
            for _ in range(400)]
    (root / "corpus.txt").write_text("\n\n".join(docs) + "\n")
    prepare([str(root / "corpus.txt")], root / "data", vocab_size=256, seq_len=32,
            val_fraction=0.1, quiet=True)
    return root / "data"


@pytest.fixture
def overrides(data):
    vocab = open_data_dir(data).vocab_size
    return [f"model.vocab_size={vocab}", "model.seq_len=32", "impl.threads=1"]


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_end_to_end_writes_contract_2_within_budget(data, overrides, tmp_path):
    run = tmp_path / "run"
    summary = pretrain(data, run, budget="8s", preset="tiny", overrides=overrides, quiet=True)
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "checkpoint/model.safetensors",
                 "checkpoint/state.pt", "checkpoint/train_state.json", "final/model.safetensors",
                 "final/model_config.json", "final/tokenizer.json"):
        assert (run / name).is_file(), name
    on_disk = json.loads((run / "summary.json").read_text())
    assert on_disk == summary and SUMMARY_KEYS <= set(summary)
    assert summary["format"] == "cram-run/1" and summary["stopped_by"] == "budget"
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
    pretrain(data, run, budget="2s", preset="tiny", overrides=overrides + ["train.max_steps=2"],
             quiet=True)
    with pytest.raises(UserError, match="already holds a run"):
        pretrain(data, run, budget="2s", preset="tiny", overrides=overrides, quiet=True)
    with pytest.raises(UserError, match="already finished"):
        pretrain(data, budget="2s", resume=run, overrides=overrides, quiet=True)
    with pytest.raises(UserError, match="vocab_size=8192.*does not match"):
        pretrain(data, tmp_path / "other", budget="2s", preset="tiny", quiet=True)
    with pytest.raises(UserError, match="bad budget"):
        pretrain(data, tmp_path / "other", budget="2 days", preset="tiny", quiet=True)
    with pytest.raises(UserError, match="not found"):
        pretrain(tmp_path / "missing", tmp_path / "other", budget="2s", preset="tiny")
    with pytest.raises(UserError, match="not a run dir"):
        pretrain(data, budget="2s", resume=tmp_path / "nothing", quiet=True)
    with pytest.raises(UserError, match="not a ranked-track GPU"):
        pretrain(data, tmp_path / "ranked", budget="2s", preset="tiny", overrides=overrides,
                 device="cpu", gpu_check="ranked", quiet=True)
    assert not (tmp_path / "ranked").exists()  # refused before anything was written
    with pytest.raises(UserError, match="seed -1 must be at least 0"):
        pretrain(data, tmp_path / "negative", budget="2s", preset="tiny", overrides=overrides,
                 seed=-1, quiet=True)
    assert not (tmp_path / "negative").exists()
    (tmp_path / "afile").write_text("")
    with pytest.raises(UserError, match="cannot create run dir .*afile: File exists"):
        pretrain(data, tmp_path / "afile", budget="2s", preset="tiny", overrides=overrides,
                 quiet=True)
    summary = pretrain(data, run, budget="2s", preset="tiny", force=True,
                       overrides=overrides + ["train.max_steps=2"], quiet=True)
    assert summary["stopped_by"] == "steps" and summary["steps"] == 2


class TickingClock:
    """Fake time: every reading advances by `tick` seconds, whatever the machine's speed."""

    def __init__(self, tick):
        self.now, self.tick = 0.0, tick

    def __call__(self):
        self.now += self.tick
        return self.now


def test_deadline_with_a_fake_clock(data, overrides, tmp_path):
    clock = TickingClock(0.05)
    summary = pretrain(data, tmp_path / "run", budget="6s", preset="tiny", overrides=overrides,
                       quiet=True, clock=clock)
    assert summary["stopped_by"] == "budget"
    assert 5.0 < summary["train_elapsed_s"] <= 6.0  # stopped before, but close to, the deadline
    # Time was fake, so the number of steps is too: the same run again makes the same steps.
    again = pretrain(data, tmp_path / "again", budget="6s", preset="tiny", overrides=overrides,
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
    summary = pretrain(data, tmp_path / "run", budget="30s", preset="tiny",
                       overrides=overrides + ["train.max_steps=6"], quiet=True)
    assert summary["nonfinite_skips"] == 1 and summary["steps"] == 6
    assert summary["val_loss"] == summary["val_loss"]  # finite: the reload worked
    calls.update(n=0, bad=set(range(4, 1000)))
    with pytest.raises(UserError, match="non-finite again"):
        pretrain(data, tmp_path / "run2", budget="30s", preset="tiny",
                 overrides=overrides + ["train.max_steps=6"], quiet=True)


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
    first = json.loads((run / "summary.json").read_text())
    assert first["stopped_by"] == "interrupt" and first["train_elapsed_s"] < budget
    assert not (run / "final").exists()

    other_budget = [c if c != f"{budget}s" else "30s" for c in command]
    refused = subprocess.run([*other_budget, "--resume", str(run)], env=env, capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode == 2 and "change its recipe" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1  # one line, no traceback
    other = prepare([str(data.parent / "corpus.txt")], tmp_path / "other", vocab_size=128,
                    seq_len=32, val_fraction=0.1, quiet=True)
    assert other["vocab_size"] != open_data_dir(data).vocab_size
    other_data = [c if c != str(data) else str(tmp_path / "other") for c in command]
    refused = subprocess.run([*other_data, "--resume", str(run)], env=env, capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode == 2 and "not the data dir it trained on" in refused.stderr

    done = subprocess.run([*command, "--resume", str(run)], env=env, capture_output=True,
                          text=True, timeout=120)
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


def test_resume_drops_metrics_after_the_checkpoint_and_a_torn_last_line(tmp_path):
    from cramming.train.run_dir import MetricsLog

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 5}\n\n{"step": 10}\n{"step": 1')  # killed mid-append
    log = MetricsLog(path, resume_step=5)
    log.append({"step": 6})
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 5, 6]
