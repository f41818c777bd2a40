"""`cram plan`: ranked shapes for a GPU day, a measured CPU plan, and a preset that trains."""

from __future__ import annotations

import json
import tempfile

import pytest

from crambench.errors import UserError
from crambench.shell.cli import main
from cramming.config import load_config
from cramming.plan.gpus import GIB, GPUS
from cramming.plan.memory import training_memory
from cramming.plan.planner import (
    ASPECT_RANGE,
    REFERENCE,
    candidate_shapes,
    format_table,
    plan,
    write_preset,
)

DAY = 24 * 3600.0


@pytest.fixture(scope="module")
def a6000_day() -> dict:
    return plan(DAY, "a6000", top=5)


def test_a6000_day_recommends_a_plausible_bert(a6000_day):
    usable = GPUS["a6000"].memory_gib * GIB
    for row in a6000_day["top"]:
        assert 50e6 <= row["params"] <= 350e6, row
        assert row["memory_gib"] * GIB < usable
        assert row["micro_batch"] >= 32
    losses = [row["predicted_loss"] for row in a6000_day["top"]]
    assert losses == sorted(losses)
    assert a6000_day["speed_law"]["provenance"]["kind"] == "derived"
    assert a6000_day["extrapolated"]  # a GPU day is far beyond the CPU runs of the loss law


def test_reference_shape_is_ranked_and_marked(a6000_day):
    reference = a6000_day["reference"]
    assert reference["reference"] == REFERENCE
    assert (reference["layers"], reference["hidden"], reference["heads"]) == (16, 768, 12)
    assert reference["rank"] >= 1
    assert 100e6 < reference["params"] < 130e6
    text = format_table(a6000_day)
    assert f"<- reference {REFERENCE}" in text
    assert "EXTRAPOLATED" in text


def test_the_data_shape_assumed_without_data_is_said(a6000_day):
    text = format_table(a6000_day)
    assert ("data: no --data given, so vocab 32768, rows of 128 tokens assumed: the crammed-bert "
            "preset's (planning for a GPU)") in text
    assert "shape at vocab" not in text  # the reference row is the preset itself


@pytest.mark.slow
def test_a_cpu_plan_says_what_it_assumes_and_what_it_times(capsys):
    """Issue example: on CPU the plan assumed vocab 8192 silently, so the reference row showed
    101M parameters instead of crammed-bert's 120M."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("plans for this machine's CPU")
    result = plan(600, "auto", device="cpu", top=3, probe_seconds=0.05)
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("cram plan: timing 8 probe shapes, 0.05 s each, on ")
    assert len(err) == 9 and all(line.startswith("cram plan: timed ") for line in err[1:])
    assert result["data"]["vocab_size"] == 8192
    text = format_table(result)
    assert ("data: no --data given, so vocab 8192, rows of 128 tokens assumed: the tiny preset's "
            "(planning for this CPU); pass --data DATA") in text
    reference = result["reference"]
    assert 95e6 < reference["params"] < 105e6 and reference["preset_params"] == 119_589_889
    assert ("<- reference crammed-bert shape at vocab 8192 (the preset, vocab 32768: 120M)"
            in text)
    plan(600, "auto", device="cpu", top=1, probe_seconds=0.05, quiet=True)
    assert capsys.readouterr().err == ""


def test_smaller_gpus_get_smaller_micro_batches_or_models():
    turing = plan(DAY, "rtx2080ti", top=3)
    assert turing["device"]["precision"] == "fp16"
    for row in turing["top"]:
        assert row["memory_gib"] < 11
    a6000 = plan(DAY, "a6000", top=3)
    assert turing["top"][0]["tokens"] < a6000["top"][0]["tokens"] * 1.5
    assert turing["reference"]["micro_batch"] <= a6000["reference"]["micro_batch"]


def test_longer_budgets_pick_larger_models():
    hour = plan(3600, "a6000", top=1)["top"][0]
    week = plan(7 * DAY, "a6000", top=1)["top"][0]
    assert week["params"] >= hour["params"]


def test_candidate_grid_stays_in_the_shape_range_the_loss_law_ignores():
    shapes = candidate_shapes(32768, 128)
    assert len(shapes) > 50
    for cfg in shapes:
        assert ASPECT_RANGE[0] <= cfg.hidden / cfg.layers <= ASPECT_RANGE[1]
        assert cfg.hidden % 64 == 0 and cfg.hidden // cfg.heads == 64
        assert cfg.ffn_hidden == 4 * cfg.hidden


def test_written_preset_loads_with_the_planned_shape(a6000_day, tmp_path):
    path = write_preset(a6000_day, tmp_path / "planned.yaml")
    cfg = load_config(path)
    best = a6000_day["top"][0]
    assert (cfg.model.layers, cfg.model.hidden, cfg.model.heads, cfg.model.ffn_hidden) == (
        best["layers"], best["hidden"], best["heads"], best["ffn_hidden"])
    assert cfg.impl.micro_batch == best["micro_batch"]
    assert cfg.train.budget_s == DAY
    assert cfg.optim == load_config(REFERENCE).optim  # the recipe stays the reference's
    assert training_memory(cfg.model, cfg.impl.micro_batch)["total"] / GIB == pytest.approx(
        best["memory_gib"])
    with pytest.raises(UserError, match="cannot write preset .*: Is a directory"):
        write_preset(a6000_day, tmp_path)


def test_cli_json(capsys):
    assert main(["plan", "--budget", "24h", "--gpu", "a6000", "--json", "--top", "3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["format"] == "cram-plan/1" and len(result["top"]) == 3
    assert result["device"]["name"] == "NVIDIA RTX A6000"


def test_cli_errors_are_one_line(capsys):
    assert main(["plan", "--budget", "24h", "--gpu", "h100"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cram plan: error: unknown --gpu 'h100'") and "\n" not in err
    assert main(["plan", "--budget", "soon", "--gpu", "a6000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cram plan: error: argument --budget: bad budget 'soon'")
    assert err.count("\n") == 1
    with pytest.raises(UserError, match="--top"):
        plan(DAY, "a6000", top=0)


def test_measure_on_a_named_gpu_refuses_another_device():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(UserError, match="this machine's device"):
        plan(600, "a6000", measure=True, probe_seconds=0.05, quiet=True)


@pytest.mark.slow
def test_measured_cpu_plan_trains_with_cram_pretrain(demo_data, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("measures the local device; this test is for CPU machines")
    data = demo_data
    result = plan(600, "auto", data=data, top=3, probe_seconds=0.3, quiet=True)
    assert result["speed_law"]["provenance"]["kind"] == "measured"
    assert len(result["measured"]) >= 5
    best = result["top"][0]
    assert best["params"] < 20e6  # ten CPU minutes: a small model
    assert result["reference"]["rank"] > best["rank"]
    preset = write_preset(result, tmp_path / "planned.yaml")
    assert main(["pretrain", "--data", str(data), "--budget", "8s", "--preset", str(preset),
                 "--out", str(tmp_path / "run"), "--device", "cpu", "--quiet",
                 "impl.threads=1"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["model"]["hidden"] == best["hidden"]
    assert summary["model"]["layers"] == best["layers"]
    assert summary["steps"] >= 1


@pytest.mark.slow
def test_pretrain_preset_auto_asks_the_planner(demo_data, tmp_path, monkeypatch, capsys):
    import torch

    import cramming.plan.planner as planner

    if torch.cuda.is_available():
        pytest.skip("measures the local device; this test is for CPU machines")
    monkeypatch.setattr(planner, "PROBE_SECONDS", 0.2)
    data = demo_data
    capsys.readouterr()
    preset = planner.preset_for_budget(600, data=data)
    assert load_config(preset).model.vocab_size == 8192
    # Issue example: --preset auto planned silently for about 25 s
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("cram pretrain: --preset auto: planning the model for the budget")
    assert err[1].startswith("cram plan: timing 8 probe shapes")
    assert err[-1].startswith("cram pretrain: --preset auto chose ")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    assert main(["pretrain", "--data", str(data), "--budget", "5s", "--preset", "auto",
                 "--out", str(tmp_path / "run"), "--device", "cpu", "--quiet"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["params"] < 20e6
    assert not list((tmp_path / "tmp").glob("cram-plan-*"))  # the planned preset is not left

