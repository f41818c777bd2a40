"""A kill while the end state is saved: training ended, the post-loop checkpoint never landed.

RUN/ended.json, written before that checkpoint, says how training ended and which steps the
checkpoint on disk lacks. A resume redoes exactly those steps, off the clock, and ends where
the run ended: the same steps, time, metrics and weights as a run that was never killed. A
record that does not fit the checkpoint is refused in one line before anything is written."""

import json
import shutil

import pytest
import torch
from conftest import TickingClock

from crambench.errors import UserError
from cramming.model import CrammedBert
from cramming.train import pretrain as pretrain_module
from cramming.train.pretrain import pretrain

pytestmark = pytest.mark.train

BUDGET_S = 6  # seconds on a fake clock ticking 0.05 s per reading: about 20 steps
# A periodic checkpoint every 3 fake seconds: about step 11 of 20, so the end state lacks 9.
EVERY_3S = "impl.checkpoint_every_min=0.05"
SUMMARY_KEYS = ("status", "stopped_by", "steps", "train_elapsed_s", "tokens_seen", "rows_seen",
                "train_loss", "nonfinite_skips", "model_sha256", "val_loss")


class Killed(BaseException):
    """Stands for SIGKILL: nothing catches it, nothing after it runs."""


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _train(data, run, overrides, *, kill_at_end: bool):
    """A run of BUDGET_S fake seconds; with `kill_at_end`, killed as its post-loop checkpoint
    (the only one saved with stopped_by set) starts being written."""
    real = pretrain_module.save_checkpoint

    def save_checkpoint(run_dir, **kwargs):
        if kill_at_end and kwargs["train_state"]["stopped_by"] is not None:
            raise Killed
        return real(run_dir, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pretrain_module, "save_checkpoint", save_checkpoint)
        try:
            return pretrain(data, run, budget_s=BUDGET_S, preset="tiny", overrides=overrides,
                            quiet=True, clock=TickingClock(0.05))
        except Killed:
            return None


@pytest.fixture(scope="module")
def runs(pretrain_data, tmp_path_factory):
    """(a run never killed, the same run killed while its end state was saved): tests copy the
    killed one before they resume it."""
    root = tmp_path_factory.mktemp("ended")
    vocab = json.loads((pretrain_data / "manifest.json").read_text())["vocab_size"]
    overrides = [f"model.vocab_size={vocab}", "model.seq_len=32", "impl.threads=1", EVERY_3S]
    assert _train(pretrain_data, root / "reference", overrides, kill_at_end=False)
    assert _train(pretrain_data, root / "killed", overrides, kill_at_end=True) is None
    return root / "reference", root / "killed"


@pytest.fixture
def run(runs, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(runs[1], copy)
    return copy


def _json(path):
    return json.loads(path.read_text())


def _metrics(run):
    return (run / "metrics.jsonl").read_text().splitlines()


def _snapshot(run):
    return {p.relative_to(run): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def _no_clock():
    raise AssertionError("the budget's clock was read: the resume spent budget")


def _count_micro_batches(monkeypatch):
    real, calls = pretrain_module.micro_step, {"n": 0}

    def micro_step(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(pretrain_module, "micro_step", micro_step)
    return calls


def test_the_resume_redoes_only_the_lost_steps_and_ends_where_the_run_ended(
        runs, run, monkeypatch, capsys):
    reference = runs[0]
    ended, checkpoint = _json(run / "ended.json"), _json(run / "checkpoint/train_state.json")
    assert ended["stopped_by"] == "budget" and checkpoint["stopped_by"] is None
    lost = ended["step"] - checkpoint["step"]
    assert 0 < lost < ended["step"]  # a periodic checkpoint landed; the steps after it did not
    assert len(ended["replay"]["fractions"]) == lost
    calls = _count_micro_batches(monkeypatch)

    summary = pretrain(resume=run, quiet=True, clock=_no_clock)

    # One micro-batch per step (impl.micro_batch is the largest batch): the lost steps alone.
    assert calls["n"] == lost
    assert (f"training ended at step {ended['step']} ({ended['elapsed_s']:g}s, stopped by "
            f"budget), but the process died while saving it: redoing steps "
            f"{checkpoint['step'] + 1}-{ended['step']} from the step {checkpoint['step']} "
            "checkpoint, off the clock") in capsys.readouterr().err
    # The run a kill never touched: the same end, the same weights, the same metrics lines.
    expected = _json(reference / "summary.json")
    assert {k: summary[k] for k in SUMMARY_KEYS} == {k: expected[k] for k in SUMMARY_KEYS}
    assert summary["train_elapsed_s"] == ended["elapsed_s"] <= BUDGET_S
    assert _metrics(run) == _metrics(reference)
    steps = [json.loads(line)["step"] for line in _metrics(run)]
    assert steps == sorted(set(steps)) and steps[-1] == summary["steps"]
    # The end state is the checkpoint now; the record is gone.
    assert _json(run / "checkpoint/train_state.json")["stopped_by"] == "budget"
    assert not (run / "ended.json").exists()


def test_a_checkpoint_that_is_the_end_state_is_only_written_out(pretrain_data,
                                                                 pretrain_overrides, tmp_path,
                                                                 monkeypatch):
    """A checkpoint after every step: the last one holds the end state already, so the resume
    trains nothing and finishes the write-out with the recorded end."""
    run = tmp_path / "run"
    overrides = [*pretrain_overrides, "impl.checkpoint_every_min=0", "train.max_steps=4"]
    assert _train(pretrain_data, run, overrides, kill_at_end=True) is None
    ended = _json(run / "ended.json")
    assert ended["stopped_by"] == "steps" and ended["replay"]["fractions"] == []
    assert _json(run / "checkpoint/train_state.json")["step"] == ended["step"] == 4
    calls = _count_micro_batches(monkeypatch)

    summary = pretrain(resume=run, quiet=True, clock=_no_clock)

    assert calls["n"] == 0
    assert summary["status"] == "complete" and summary["stopped_by"] == "steps"
    assert (summary["steps"], summary["train_elapsed_s"]) == (4, ended["elapsed_s"])
    assert not (run / "ended.json").exists()


def test_steps_after_a_non_finite_reload_are_redone_from_the_reload(pretrain_data,
                                                                   pretrain_overrides, tmp_path,
                                                                   monkeypatch):
    """Step 4's loss is non-finite: the model goes back to the step-0 checkpoint and the batch
    is skipped. The end record starts after that skip, so the redo ends with the weights of the
    same run never killed."""
    real_forward = CrammedBert.forward

    def flaky(self, input_ids, labels=None):
        flaky.calls += 1
        loss, logits = real_forward(self, input_ids, labels)
        return (loss * float("nan") if flaky.calls == 4 else loss), logits

    overrides = [*pretrain_overrides, "train.max_steps=6"]
    summaries = {}
    for name, kill in (("reference", False), ("killed", True)):
        flaky.calls = 0
        monkeypatch.setattr(CrammedBert, "forward", flaky)
        summaries[name] = _train(pretrain_data, tmp_path / name, overrides, kill_at_end=kill)
        monkeypatch.setattr(CrammedBert, "forward", real_forward)
    ended = _json(tmp_path / "killed" / "ended.json")
    assert ended["nonfinite_skips"] == 1 and ended["replay"]["step"] == 3  # after the reload
    assert _json(tmp_path / "killed" / "checkpoint/train_state.json")["step"] == 0

    summary = pretrain(resume=tmp_path / "killed", quiet=True, clock=_no_clock)

    expected = summaries["reference"]
    assert expected["nonfinite_skips"] == 1 and expected["steps"] == 6
    assert {k: summary[k] for k in SUMMARY_KEYS} == {k: expected[k] for k in SUMMARY_KEYS}


def test_a_record_left_beside_the_end_states_checkpoint_is_removed(pretrain_data,
                                                                    pretrain_overrides, tmp_path,
                                                                    monkeypatch):
    """Killed after the post-loop checkpoint landed, before its record was removed: the
    checkpoint holds the end, so the resume only writes out, and the record goes."""
    run = tmp_path / "run"

    def killed(run_dir):
        raise Killed

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pretrain_module, "clear_end_record", killed)
        with pytest.raises(Killed):
            pretrain(pretrain_data, run, budget_s=BUDGET_S, preset="tiny", quiet=True,
                     overrides=[*pretrain_overrides, "train.max_steps=2"])
    assert (run / "ended.json").exists()
    assert _json(run / "checkpoint/train_state.json")["stopped_by"] == "steps"
    calls = _count_micro_batches(monkeypatch)

    summary = pretrain(resume=run, quiet=True, clock=_no_clock)

    assert calls["n"] == 0 and summary["status"] == "complete" and summary["steps"] == 2
    assert not (run / "ended.json").exists()


def _edit(run, change):
    path = run / "ended.json"
    ended = _json(path)
    change(ended)
    path.write_text(json.dumps(ended))


REFUSED = {  # an edit of ended.json -> the one line that refuses it
    "stopped by a signal": (
        lambda e: e.update(stopped_by="interrupt"),
        r"ended.json is damaged: stopped_by is 'interrupt', expected budget or steps"),
    "ended before the checkpoint": (
        lambda e: e.update(elapsed_s=0.5),
        r"ended.json is damaged: elapsed_s is 0.5, expected a number of seconds >= the "
        r"checkpoint's"),
    "no ranks": (
        lambda e: e["replay"].update(world_size=0),
        r"ended.json is damaged: replay.world_size is 0, expected a whole number >= 1"),
    "a fraction past the end": (
        lambda e: e["replay"]["fractions"].__setitem__(2, 2.0),
        r"ended.json is damaged: replay.fractions\[2\] is 2.0, expected a budget fraction in "
        r"\[0.\d+, 0.9\d*\]"),
    "a step more than its steps": (
        lambda e: e.update(step=e["step"] + 1),
        r"ended.json does not continue .*checkpoint \(step \d+\); remove it to resume from "
        r"that checkpoint"),
    "another start": (
        lambda e: e["replay"].update(rows=e["replay"]["rows"] + 8),
        r"ended.json does not continue .*checkpoint"),
    "rows its steps do not reach": (
        lambda e: e.update(rows=e["rows"] + 8),
        r"ended.json is damaged: its steps end at step \d+, row \d+, not at its step \d+, "
        r"row \d+"),
}


@pytest.mark.parametrize(("change", "reason"), list(REFUSED.values()), ids=list(REFUSED))
def test_a_record_that_does_not_fit_its_checkpoint_is_refused(run, change, reason):
    _edit(run, change)
    before = _snapshot(run)
    with pytest.raises(UserError, match=reason):
        pretrain(resume=run, quiet=True, clock=TickingClock(0.05))
    assert _snapshot(run) == before  # refused before anything was saved

