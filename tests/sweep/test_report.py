"""`cram sweep report` over run dirs collected by hand (no sweep.json: the spec is given), with
failed and missing runs, two variants under Holm's correction, and the guards on what the
runs recorded. Fast: the run dirs are written here, nothing trains."""

import json

import numpy as np
import pytest
import yaml
from conftest import write_sweep_run as write_run
from scipy import stats as scipy_stats

from crambench.errors import UserError
from crambench.shell.cli import main
from sweep.report import sweep_report

LOSSES = {"baseline": [2.50, 2.46, 2.53], "fast": [2.31, 2.29, 2.35], "same": [2.49, 2.55, 2.47]}


@pytest.fixture
def collected(tmp_path):
    spec = {"format": "cram-sweep/1", "data": "data/demo", "budget": "40s", "seeds": [0, 1, 2],
            "baseline": {"preset": "tiny"},
            "variants": [{"name": "fast", "overrides": ["train.batch_size=16"]},
                         {"name": "same", "overrides": ["model.ffn=mlp"]}],
            "eval": {"suite": "none"}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    for arm, losses in LOSSES.items():
        for seed, loss in enumerate(losses):
            write_run(tmp_path / "sweep" / "runs" / arm / f"seed-{seed}", val_loss=loss)
    return tmp_path / "sweep", tmp_path / "spec.yaml"


def test_the_report_equals_a_computation_by_hand(collected):
    out, spec = collected
    record = sweep_report(out, spec_path=spec)
    assert record["format"] == "cram-sweep-report/1" and record["lower_is_better"]
    p = {}
    for arm in ("fast", "same"):
        reference = scipy_stats.ttest_ind(LOSSES[arm], LOSSES["baseline"], equal_var=False)
        p[arm] = reference.pvalue
        row = record["comparisons"][arm]
        assert row["p"] == pytest.approx(reference.pvalue)
        assert row["interval"] == pytest.approx(list(reference.confidence_interval(0.95)))
    # Holm with two tests: the smaller p doubled, the larger kept (never below the first)
    small, large = sorted(p, key=p.get)
    assert record["comparisons"][small]["p_holm"] == pytest.approx(2 * p[small])
    assert record["comparisons"][large]["p_holm"] == pytest.approx(
        max(2 * p[small], min(1.0, p[large])))
    assert record["comparisons"]["fast"]["verdict"] == "better"
    assert record["comparisons"]["same"]["verdict"] == "no detectable difference with n = 3"
    assert record["arms"]["fast"]["tokens_per_s"] == pytest.approx(409600 / 40)
    assert json.loads((out / "report.json").read_text())["comparisons"]["fast"]["verdict"] == \
        "better"
    figure = (out / "report.svg").read_text()
    assert figure.startswith("<?xml") and "tokens/s" in figure and "fast" in figure


def test_failed_and_missing_runs_are_shown_not_dropped(collected, capsys):
    out, spec = collected
    failed = out / "runs" / "fast" / "seed-2"
    (failed / "summary.json").unlink()
    (failed / "config.yaml").unlink()
    failed.rmdir()
    write_run(failed, val_loss=None, status="failed")
    import shutil
    shutil.rmtree(out / "runs" / "same" / "seed-1")
    assert main(["sweep", "report", str(out), "--spec", str(spec)]) == 0
    printed = capsys.readouterr().out
    assert "2:failed" in printed and "1:not-started" in printed
    assert "arm fast: 2 of 3 runs scored (seed 2 failed): n counts the scored ones" in printed
    record = json.loads((out / "report.json").read_text())
    assert record["arms"]["fast"]["n"] == 2 and record["arms"]["same"]["n"] == 2


def test_the_report_refuses_what_its_runs_cannot_compare(collected, capsys):
    out, spec = collected
    run = out / "runs" / "same" / "seed-0"
    for name in ("summary.json", "config.yaml"):
        (run / name).unlink()
    run.rmdir()
    write_run(run, val_loss=2.5, hardware="NVIDIA H100")
    assert main(["sweep", "report", str(out), "--spec", str(spec)]) == 2
    error = capsys.readouterr().err.strip()
    assert error == ("cram sweep: error: arms baseline (seed 0) and same (seed 0) ran on "
                     "different hardware (cpu (x86) vs NVIDIA H100): a sweep compares recipes "
                     "on one kind")
    for name in ("summary.json", "config.yaml"):
        (run / name).unlink()
    run.rmdir()
    write_run(run, val_loss=2.5, mask_prob=0.4)
    with pytest.raises(UserError, match=r"^metric val_loss cannot compare arms baseline and "
                                        r"same: train.mask_prob differs \(0.25 vs 0.4\)"):
        sweep_report(out, spec_path=spec)


def test_a_dir_without_a_recorded_spec_asks_for_one(collected):
    out, _ = collected
    with pytest.raises(UserError, match=r"sweep.json not found: not a sweep dir \(give --spec"):
        sweep_report(out)


def write_glue_dev(glue, labels):
    """A GLUE folder holding only RTE's dev split, with these labels (0 entailment)."""
    names = ("entailment", "not_entailment")
    (glue / "RTE").mkdir(parents=True)
    rows = [f"{i}\tpremise {i}\thypothesis {i}\t{names[y]}" for i, y in enumerate(labels)]
    (glue / "RTE" / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n"
                                          + "\n".join(rows) + "\n")


def write_glue_results(run, labels, error_rate, seed):
    """RUN/eval/glue.json scoring RTE from predictions that miss `error_rate` of the labels."""
    from crambench.contracts import sha256_file
    from glue_eval.results import format_predictions

    predictions = np.where(np.random.default_rng(seed).random(len(labels)) < error_rate,
                           1 - labels, labels)
    folder = run / "eval" / "glue-predictions"
    folder.mkdir(parents=True)
    (folder / "rte-dev-seed0.tsv").write_text(format_predictions(np.arange(len(labels)),
                                                                 predictions))
    accuracy = 100.0 * float((predictions == labels).mean())
    record = {"format": "cram-glue/2", "suite": "glue", "protocol": {"name": "quick",
                                                                     "seeds": [0]},
              "tasks": {"rte": {"metrics": {"accuracy": accuracy}, "seeds": [{
                  "seed": 0, "metrics": {"accuracy": accuracy},
                  "predictions": [{"split": "dev", "file": "glue-predictions/rte-dev-seed0.tsv",
                                   "sha256": sha256_file(folder / "rte-dev-seed0.tsv")}]}]}}}
    (run / "eval" / "glue.json").write_text(json.dumps(record))
    return accuracy


def test_glue_metrics_take_the_two_level_bootstrap(tmp_path):
    labels = np.random.default_rng(0).integers(0, 2, 200)
    write_glue_dev(tmp_path / "glue", labels)
    spec = {"format": "cram-sweep/1", "data": "data/demo", "budget": "40s", "seeds": [0, 1, 2],
            "baseline": {"preset": "tiny"},
            "variants": [{"name": "good", "overrides": ["model.ffn=mlp"]}],
            "eval": {"suite": "glue", "tasks": ["rte"], "protocol": "quick",
                     "glue_dir": str(tmp_path / "glue")}, "metric": "rte.accuracy"}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    scores = {}
    for arm, rate in (("baseline", 0.45), ("good", 0.1)):
        for seed in range(3):
            run = tmp_path / "sweep" / "runs" / arm / f"seed-{seed}"
            write_run(run, val_loss=2.5)
            scores.setdefault(arm, []).append(write_glue_results(run, labels, rate, 10 * seed))
    record = sweep_report(tmp_path / "sweep", spec_path=tmp_path / "spec.yaml")
    assert record["method"]["test"].startswith("two-level bootstrap")
    row = record["comparisons"]["good"]
    assert record["arms"]["good"]["values"] == scores["good"]
    assert row["diff"] == pytest.approx(np.mean(scores["good"]) - np.mean(scores["baseline"]))
    assert row["interval"][0] > 0 and row["p"] < 0.01 and row["verdict"] == "better"
