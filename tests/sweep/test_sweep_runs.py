"""A real sweep on the small grammar corpus and the fake clock: seed-major run dirs, a kill
midway and a rerun that redoes nothing finished, a changed spec refused, and a report whose
figures equal a computation by hand from the run dirs."""

import json
import os
import signal
import statistics

import pytest
import torch
import yaml
from conftest import TickingClock
from scipy import stats as scipy_stats

from crambench.errors import UserError
from cramming.train import pretrain as pretrain_module
from sweep.job import run_sweep
from sweep.report import format_report, sweep_report

pytestmark = pytest.mark.train

SMALL = ["model.hidden=32", "model.heads=2", "model.layers=1", "model.ffn_hidden=64",
         "model.head_hidden=32", "impl.threads=1"]
ARMS = ("baseline", "mlp")


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def write_spec(path, data, **changes):
    spec = {"format": "cram-sweep/1", "data": str(data), "budget": "6s", "seeds": [0, 1],
            "baseline": {"preset": "tiny", "overrides": SMALL},
            "variants": [{"name": "mlp", "overrides": ["model.ffn=mlp"]}],
            "eval": {"suite": "none"}, "metric": "val_loss", "alpha": 0.05, "device": "cpu"}
    spec.update(changes)
    path.write_text(yaml.safe_dump(spec))
    return path


def fake_clock():
    return TickingClock(0.05)  # about 20 optimizer steps in the 6 s budget


def snapshot(run):
    return {p.name: p.read_bytes() for p in (run / "summary.json", run / "metrics.jsonl")}


def count_runs(patch, started: list, interrupt_run: int | None = None):
    """Record each run the sweep trains (its run dir); SIGINT, as a user's Ctrl-C, at the
    third micro-batch of run number `interrupt_run`."""
    real_pretrain, real_step = pretrain_module.pretrain, pretrain_module.micro_step

    def pretrain(*args, **kwargs):
        started.append(str(kwargs.get("resume") or args[1]))
        step = real_step
        if len(started) == interrupt_run:
            calls = {"n": 0}

            def step(*step_args, **step_kwargs):
                calls["n"] += 1
                if calls["n"] == 3:
                    os.kill(os.getpid(), signal.SIGINT)
                return real_step(*step_args, **step_kwargs)

        patch.setattr(pretrain_module, "micro_step", step)
        return real_pretrain(*args, **kwargs)

    patch.setattr(pretrain_module, "pretrain", pretrain)


def test_a_sweep_killed_midway_finishes_on_rerun_and_reports_what_its_runs_say(
        pretrain_data, tmp_path, capsys):
    spec = write_spec(tmp_path / "sweep.yaml", pretrain_data)
    out = tmp_path / "out"
    assert run_sweep(spec, out, dry_run=True) == 0
    plan = capsys.readouterr().out
    assert "2 arms x 2 seeds = 4 runs" in plan and "4 of 4 runs, 24 s of pretraining" in plan
    assert not out.exists()

    # Ctrl-C during the third run (baseline, seed 1): two runs finished before it, seed-major
    started = []
    with pytest.MonkeyPatch.context() as patch:
        count_runs(patch, started, interrupt_run=3)
        assert run_sweep(spec, out, quiet=True, clock_factory=fake_clock) == 130
    runs = {(arm, seed): out / "runs" / arm / f"seed-{seed}" for seed in (0, 1) for arm in ARMS}
    assert [str(p) for p in started] == [str(runs["baseline", 0]), str(runs["mlp", 0]),
                                         str(runs["baseline", 1])]
    summary = json.loads((runs["baseline", 1] / "summary.json").read_text())
    assert summary["stopped_by"] == "interrupt"
    assert not runs["mlp", 1].exists()
    kept = {key: snapshot(runs[key]) for key in (("baseline", 0), ("mlp", 0))}

    # A spec whose runs differ is refused in one line; the metric may change.
    with pytest.raises(UserError, match=r"holds a sweep of another spec \(seeds differ\)"):
        run_sweep(write_spec(tmp_path / "other.yaml", pretrain_data, seeds=[0, 1, 2]), out)

    # The rerun resumes the interrupted run, runs the last one, and keeps the finished ones.
    started.clear()
    with pytest.MonkeyPatch.context() as patch:
        count_runs(patch, started)
        assert run_sweep(spec, out, quiet=True, clock_factory=fake_clock) == 0
    assert [str(p) for p in started] == [str(runs["baseline", 1]), str(runs["mlp", 1])]
    for key, files in kept.items():
        assert snapshot(runs[key]) == files
    summaries = {key: json.loads((run / "summary.json").read_text()) for key, run in runs.items()}
    assert all(s["status"] == "complete" for s in summaries.values())
    assert summaries["baseline", 1]["steps"] > 3  # went on from its checkpoint

    # The report, against a computation by hand from the run dirs' summaries.
    record = sweep_report(out)
    assert json.loads((out / "report.json").read_text()) == json.loads(json.dumps(record))
    losses = {arm: [summaries[arm, s]["val_loss"] for s in (0, 1)] for arm in ARMS}
    for arm in ARMS:
        row = record["arms"][arm]
        assert row["values"] == losses[arm] and row["n"] == 2
        assert row["mean"] == pytest.approx(statistics.fmean(losses[arm]))
        assert row["sd"] == pytest.approx(statistics.stdev(losses[arm]))
        runs_of_arm = [summaries[arm, s] for s in (0, 1)]
        assert row["steps"] == pytest.approx(statistics.fmean(s["steps"] for s in runs_of_arm))
        assert row["tokens_per_s"] == pytest.approx(statistics.fmean(
            s["tokens_seen"] / s["train_elapsed_s"] for s in runs_of_arm))
    comparison = record["comparisons"]["mlp"]
    reference = scipy_stats.ttest_ind(losses["mlp"], losses["baseline"], equal_var=False)
    assert comparison["diff"] == pytest.approx(statistics.fmean(losses["mlp"])
                                               - statistics.fmean(losses["baseline"]))
    assert comparison["p"] == pytest.approx(reference.pvalue)
    assert comparison["p_holm"] == pytest.approx(reference.pvalue)  # one variant: unchanged
    assert comparison["interval"] == pytest.approx(list(reference.confidence_interval(0.95)))
    assert comparison["verdict"] in ("better", "worse", "no detectable difference with n = 2")
    assert any("fewer than the first 1,000,000,000" in w for w in record["warnings"])
    table = format_report(record)
    assert "baseline" in table and "mlp" in table and comparison["verdict"] in table


def test_a_val_loss_sweep_over_other_masking_is_refused_before_training(pretrain_data,
                                                                         tmp_path):
    spec = write_spec(tmp_path / "s.yaml", pretrain_data,
                      variants=[{"name": "mask40", "overrides": ["train.mask_prob=0.4"]}])
    with pytest.raises(UserError, match=r"^metric val_loss cannot compare arms baseline and "
                                        r"mask40: train.mask_prob differs \(0.25 vs 0.4\)"):
        run_sweep(spec, tmp_path / "out", quiet=True)
    assert not (tmp_path / "out").exists()


def test_one_cell_of_the_plan_runs_alone_as_a_job_of_an_array(pretrain_data, tmp_path, capsys):
    spec = write_spec(tmp_path / "sweep.yaml", pretrain_data)
    out = tmp_path / "out"
    assert run_sweep(spec, out, cell=1, quiet=True, clock_factory=fake_clock) == 0
    assert [p.relative_to(out / "runs").as_posix() for p in (out / "runs").glob("*/*")] == \
        ["mlp/seed-0"]
    with pytest.raises(UserError, match=r"--cell 4: the plan has cells 0 to 3"):
        run_sweep(spec, out, cell=4)
    assert run_sweep(spec, out, dry_run=True) == 0
    assert "   1  mlp                 0  done" in capsys.readouterr().out


def test_a_run_killed_before_its_first_checkpoint_trains_again(pretrain_data, tmp_path, capsys):
    import shutil

    spec = write_spec(tmp_path / "sweep.yaml", pretrain_data)
    out = tmp_path / "out"
    assert run_sweep(spec, out, cell=0, quiet=True, clock_factory=fake_clock) == 0
    run = out / "runs" / "baseline" / "seed-0"
    for name in ("checkpoint", "final"):  # as a kill before the first checkpoint leaves it
        shutil.rmtree(run / name)
    (run / "summary.json").unlink()
    assert run_sweep(spec, out, dry_run=True) == 0
    assert "   0  baseline            0  restart" in capsys.readouterr().out
    assert run_sweep(spec, out, cell=0, quiet=True, clock_factory=fake_clock) == 0
    assert json.loads((run / "summary.json").read_text())["status"] == "complete"
