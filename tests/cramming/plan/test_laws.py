"""The planner's laws: speed and loss fits recover known constants; counts match the model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from crambench.errors import UserError
from cramming.config import ModelConfig
from cramming.model import CrammedBert, count_parameters
from cramming.plan.gpus import GPUS, V100, V100_LAW, derived_law, find_gpu
from cramming.plan.scaling_law import LossLaw, fit_loss_law, load_loss_law
from cramming.plan.speed_law import SpeedLaw, fit_speed_law, flops_per_token, param_counts
from cramming.rules import RANKED_GPUS

PROBES = [(128, 2, 16), (128, 4, 16), (256, 2, 16), (256, 4, 8), (64, 2, 32), (192, 3, 32),
          (128, 8, 16), (128, 2, 4)]


def synthetic_speed(law: SpeedLaw, noise: float, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {"width": w, "depth": d, "micro_batch": b,
         "flops_per_s": law.flops_per_s(w, d, b) * float(np.exp(rng.normal(0, noise)))}
        for w, d, b in PROBES
    ]


@pytest.mark.parametrize("true", [SpeedLaw(k=3e6, a=1.8, b=3.0, c=0.9),
                                  SpeedLaw(k=2.21e7, a=1.66, b=5.92, c=1.33)])
def test_speed_fit_recovers_known_constants(true):
    fitted = fit_speed_law(synthetic_speed(true, noise=0.02))
    assert fitted.a == pytest.approx(true.a, abs=0.05)
    assert fitted.b == pytest.approx(true.b, rel=0.25)
    assert fitted.c == pytest.approx(true.c, abs=0.1)
    # k trades off against a; compare what matters, the predicted speed across the probes
    for w, d, b in PROBES:
        assert fitted.flops_per_s(w, d, b) == pytest.approx(true.flops_per_s(w, d, b), rel=0.05)
    assert fitted.provenance["rms_log_residual"] < 0.04


def test_speed_fit_without_noise_is_exact():
    true = SpeedLaw(k=5e6, a=1.5, b=8.0, c=1.1)
    fitted = fit_speed_law(synthetic_speed(true, noise=0.0))
    assert fitted.constants == pytest.approx(true.constants, rel=1e-3)


def test_speed_fit_needs_enough_valid_samples():
    samples = synthetic_speed(V100_LAW, noise=0.0)
    with pytest.raises(ValueError, match="at least 5"):
        fit_speed_law(samples[:4])
    samples[0]["micro_batch"] = 1
    with pytest.raises(ValueError, match="at least 2"):
        fit_speed_law(samples)


def test_tokens_per_s_falls_with_width_and_depth():
    base = ModelConfig()
    speed = V100_LAW.tokens_per_s(base, 128)
    wider = ModelConfig(hidden=1024, heads=16, ffn_hidden=4096)
    deeper = ModelConfig(layers=24)
    assert V100_LAW.tokens_per_s(wider, 128) < speed
    assert V100_LAW.tokens_per_s(deeper, 128) < speed
    assert V100_LAW.tokens_per_s(base, 64) < speed  # smaller micro-batch: lower utilization
    # The reference shape on the published V100 fit: ~13k tokens/s, a plausible BERT-base rate.
    assert 5e3 < speed < 5e4


@pytest.mark.parametrize("cfg", [
    ModelConfig(),
    ModelConfig(vocab_size=8192, hidden=128, layers=2, heads=2, ffn_hidden=512),
    ModelConfig(vocab_size=1000, hidden=192, layers=3, heads=3, ffn_hidden=640),
])
def test_param_counts_match_the_model(cfg):
    with torch.device("meta"):
        model = CrammedBert(cfg)
    assert param_counts(cfg)["total"] == count_parameters(model)
    blocks = sum(p.numel() for p in model.encoder.blocks.parameters())
    assert param_counts(cfg)["blocks"] == blocks


def test_flops_per_token_is_dominated_by_six_n():
    cfg = ModelConfig()
    ratio = flops_per_token(cfg) / (6 * param_counts(cfg)["blocks"])
    assert 1.0 < ratio < 1.2  # attention scores and the sparse head add a few percent


def test_derived_gpu_laws_scale_k_by_tensor_flops():
    for spec in GPUS.values():
        law = derived_law(spec)
        assert law.k == pytest.approx(V100_LAW.k * spec.tensor_tflops / V100.tensor_tflops)
        assert (law.a, law.b, law.c) == (V100_LAW.a, V100_LAW.b, V100_LAW.c)
        assert law.provenance["kind"] == "derived"
        assert law.provenance["spec_source"] == spec.source
        assert f"{spec.tensor_tflops} / {V100.tensor_tflops}" in law.provenance["method"]
    a6000, a4000, turing = GPUS["a6000"], GPUS["a4000"], GPUS["rtx2080ti"]
    assert (a6000.memory_gib, a4000.memory_gib, turing.memory_gib) == (48, 16, 11)
    assert derived_law(a6000).k > derived_law(a4000).k > derived_law(turing).k


def test_every_ranked_gpu_has_stored_constants():
    for name in RANKED_GPUS:
        assert find_gpu(name) is not None, name
        assert find_gpu(f"NVIDIA GeForce {name}") or find_gpu(f"NVIDIA {name}")
    assert find_gpu("a6000") is GPUS["a6000"]
    assert find_gpu("NVIDIA RTX A6000") is GPUS["a6000"]
    assert find_gpu("Tesla T4") is None


def synthetic_runs(law: LossLaw, noise: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    n, d = np.meshgrid(np.geomspace(5e4, 3e6, 5), np.geomspace(1e5, 3e6, 3))
    n, d = n.ravel(), d.ravel()
    return n, d, law.loss(n, d) + rng.normal(0, noise, n.size)


@pytest.mark.parametrize("true", [LossLaw(E=1.69, A=406.4, alpha=0.34, B=410.7, beta=0.28),
                                  LossLaw(E=3.0, A=60.0, alpha=0.3, B=900.0, beta=0.45)])
def test_loss_fit_recovers_known_constants(true):
    n, d, y = synthetic_runs(true, noise=0.003)
    fitted = fit_loss_law(n, d, y)
    assert fitted.alpha == pytest.approx(true.alpha, abs=0.03)
    assert fitted.beta == pytest.approx(true.beta, abs=0.03)
    assert fitted.E == pytest.approx(true.E, abs=0.25)
    assert fitted.fit["rms_residual"] < 0.01
    assert fitted.fit["n_range"] == [pytest.approx(5e4), pytest.approx(3e6)]
    # It predicts well one decade beyond the fitted range, where planning happens.
    assert fitted.loss(3e7, 3e7) == pytest.approx(true.loss(3e7, 3e7), rel=0.03)


def test_loss_law_reports_extrapolation():
    law = LossLaw(E=2, A=10, alpha=0.3, B=10, beta=0.3,
                  fit={"n_range": [1e4, 1e6], "d_range": [1e5, 1e7]})
    assert law.extrapolation(5e5, 1e6) == {"n_factor": 1.0, "d_factor": 1.0}
    assert law.extrapolation(1e8, 1e9) == {"n_factor": pytest.approx(100),
                                           "d_factor": pytest.approx(100)}
    assert law.optimal_size_exponent() == pytest.approx(0.5)


def test_loss_law_file_round_trip_and_errors(tmp_path):
    law = LossLaw(E=2, A=10, alpha=0.3, B=20, beta=0.2, fit={"runs": 6})
    path = tmp_path / "law.json"
    path.write_text(json.dumps(law.to_dict()))
    assert load_loss_law(path) == law
    path.write_text(json.dumps({**law.to_dict(), "format": "other/9"}))
    with pytest.raises(UserError, match="format"):
        load_loss_law(path)
    with pytest.raises(UserError, match="cannot read"):
        load_loss_law(tmp_path / "missing.json")


def test_shipped_loss_law_matches_its_runs():
    from cramming.plan.scaling_law import LAW_FILE

    law = load_loss_law()
    runs = json.loads(LAW_FILE.read_text())["runs"]
    assert law.fit["runs"] == len(runs) >= 10
    n = [r["block_params"] for r in runs]
    d = [r["tokens"] for r in runs]
    assert law.fit["n_range"] == [min(n), max(n)] and law.fit["d_range"] == [min(d), max(d)]
    for run in runs:  # the stored residuals are those of the stored constants
        predicted = float(law.loss(run["block_params"], run["tokens"]))
        assert run["val_loss"] - predicted == pytest.approx(run["residual"], abs=1e-9)
    assert law.fit["rms_residual"] < 0.2


def test_shipped_prior_costs_the_runs_almost_nothing():
    """The prior only fills in what the runs cannot tell: it must not fight them."""
    law = load_loss_law()
    free = law.fit["unconstrained"]
    assert law.fit["prior"]["centre"]["alpha"] == 0.34
    assert law.fit["rms_residual"] <= 1.1 * free["fit"]["rms_residual"]
