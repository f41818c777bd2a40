"""A run dir written before the model, optimizer and schedule had named components
(tests/fixtures/legacy_run, by cramming-bench 0.1.0): it reads as what it was trained with
(MLM head transform and decoder bias, first-token pooling), keeps its config_sha256, resumes,
evaluates, and its entry validates."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import TickingClock

from cramming import config_sha256
from cramming.config import load_saved_config
from cramming.train.pretrain import pretrain

pytestmark = [pytest.mark.train, pytest.mark.usefixtures("one_torch_thread")]

FIXTURE = Path(__file__).parents[1] / "fixtures" / "legacy_run"
RECORDED_SHA256 = "7ae7e82b1be59125d99d699a04ade610967f320662a891290d8f0d6987674c0a"


@pytest.fixture
def legacy(tmp_path) -> Path:
    """A copy of the fixture with its data dir's path put back where the placeholder is."""
    shutil.copytree(FIXTURE, tmp_path, dirs_exist_ok=True)
    for name in ("config.yaml", "summary.json"):
        path = tmp_path / "run" / name
        path.write_text(path.read_text().replace("DATA_DIR", str(tmp_path / "data")))
    return tmp_path / "run"


def test_the_saved_config_reads_as_it_was_trained_and_keeps_its_hash(legacy):
    assert "head_transform" not in (legacy / "config.yaml").read_text()
    cfg = load_saved_config(legacy / "config.yaml")
    m = cfg.model
    assert (m.head_transform, m.decoder_bias, m.pooler) == (True, True, "first")
    assert (m.norm_scheme, m.ffn, m.pos_embedding) == ("pre", "glu", "scaled-sinusoidal")
    assert (cfg.optim.name, cfg.train.schedule, cfg.train.batch_ramp) == ("adamw", "one-cycle",
                                                                          True)
    state = json.loads((legacy / "checkpoint" / "train_state.json").read_text())
    assert config_sha256(legacy / "config.yaml") == config_sha256(cfg) == \
        state["config_sha256"] == RECORDED_SHA256


def test_it_resumes_evaluates_submits_and_validates(legacy, capsys):
    from crambench.shell.cli import main
    from cramming import load_pretrained
    from glue_eval import evaluate_probes

    summary = pretrain(resume=legacy, quiet=True, clock=TickingClock(0.05))
    assert summary["status"] == "complete" and summary["steps"] > 3
    assert summary["config_sha256"] == RECORDED_SHA256
    cfg, state = load_pretrained(legacy / "final")
    assert cfg.head_transform and cfg.decoder_bias and cfg.pooler == "first"
    assert {"mlm_head.dense.weight", "mlm_head.norm.weight", "mlm_head.bias"} <= set(state)
    results = evaluate_probes(legacy, quiet=True, device="cpu")
    assert results["protocol"]["pooling"] == "first-token"
    entry = legacy.parent / "entry.json"
    assert main(["submit", "--run", str(legacy), "--name", "legacy-tiny", "--out", str(entry)]) == 0
    assert main(["leaderboard", "validate", str(entry), "--run", str(legacy)]) == 0
    assert capsys.readouterr().out.strip().endswith("valid")
