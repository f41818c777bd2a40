"""Every named component through the pipeline: pretrain a few steps, be interrupted and
resume to the weights of an uninterrupted run, then a probe eval of the result.

The clock stands still (the schedules sit at f = 0 and the budget never ends), so the step
count alone decides the run and an interrupted run can be compared weight for weight."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch
from conftest import make_grammar_data
from safetensors.torch import load_file

from cramming.train import pretrain as pretrain_module
from cramming.train.pretrain import pretrain
from glue_eval import evaluate_probes

pytestmark = [pytest.mark.train, pytest.mark.usefixtures("one_torch_thread")]

STEPS = 3
# Each component away from the reference, once (test_components.py checks each one's math).
VARIANTS = [
    "model.norm_scheme=post", "model.norm=rmsnorm", "model.qkv_bias=true",
    "model.linear_bias=true", "model.ffn=mlp", "model.activation=silu",
    "model.pos_embedding=learned", "model.pos_embedding=rotary", "model.pos_embedding=none",
    "model.pos_embedding=sinusoidal", "model.embedding_norm=false", "model.final_norm=false",
    "model.head_transform=true", "model.decoder_bias=true", "model.sparse_prediction=false",
    "model.tie_weights=false", "model.pooler=first", "optim.name=adam",
    "optim.name=adafactor", "optim.name=sgd", "optim.name=radam", "train.dropout=0.1",
    "train.batch_ramp=false",
]
# f stays 0 here, so a schedule shows only its start: 0 in a warm-up, 1 without one.
SCHEDULES = ["train.schedule=cosine", "train.schedule=linear", "train.schedule=constant"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The small grammar (vocab 256, rows of 32) with a val split the probes can use."""
    return make_grammar_data(tmp_path_factory.mktemp("components"), seq_len=32,
                             val_fraction=0.3)


class StillClock:
    """Time that never passes: the budget fraction stays 0 for the whole run."""

    def __call__(self):
        return 1000.0


def _run(data, run, overrides, *, interrupt_at=None, plugin=None):
    real, calls = pretrain_module.micro_step, {"n": 0}

    def micro_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pretrain_module, "micro_step", micro_step)
        return pretrain(data, run, budget_s=60, preset="tiny", quiet=True, clock=StillClock(),
                        overrides=overrides, plugin=plugin)


@pytest.mark.parametrize("component", VARIANTS + SCHEDULES)
def test_component_trains_resumes_exactly_and_evaluates(component, data, tmp_path,
                                                        quick_probes):
    from data_prep import open_data_dir

    overrides = [f"model.vocab_size={open_data_dir(data).vocab_size}", "model.seq_len=32",
                 "impl.threads=1", "train.batch_start=8", "train.batch_size=8",
                 "impl.micro_batch=4", f"train.max_steps={STEPS}", component]
    straight = _run(data, tmp_path / "straight", overrides)
    assert straight["steps"] == STEPS and straight["status"] == "complete"
    # SIGINT during the 4th micro-batch (the 2nd step): the run stops after step 1.
    stopped = _run(data, tmp_path / "resumed", overrides, interrupt_at=4)
    assert stopped["stopped_by"] == "interrupt" and 0 < stopped["steps"] < STEPS
    resumed = pretrain(resume=tmp_path / "resumed", quiet=True, clock=StillClock())
    assert resumed["steps"] == STEPS and resumed["config_sha256"] == straight["config_sha256"]
    a = load_file(tmp_path / "straight" / "final" / "model.safetensors")
    b = load_file(tmp_path / "resumed" / "final" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), component
    saved = json.loads((tmp_path / "resumed" / "final" / "model_config.json").read_text())
    key, value = component.split("=")
    if key.startswith("model."):
        assert str(saved[key[len("model."):]]).lower() == value
    results = evaluate_probes(tmp_path / "resumed", quiet=True, device="cpu")
    assert set(results["tasks"]) == {"continuation", "word_order"}
    pooling = "first-token" if component == "model.pooler=first" else "mean-of-tokens"
    assert results["protocol"]["pooling"] == pooling
