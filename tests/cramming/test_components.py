"""Every named component builds, counts, trains a step, fine-tunes and exports: the model
variants of ModelConfig, the optimizers and the schedules, each against what it claims."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from crambench.errors import UserError
from cramming.config import CHOICES, LEGACY, ModelConfig, OptimConfig, TrainConfig, load_config
from cramming.model import (
    ACTIVATIONS,
    FEED_FORWARDS,
    NORMS,
    POOLERS,
    POSITIONS,
    CrammedBert,
    CrammedBertForSequenceClassification,
    count_parameters,
)
from cramming.plan.speed_law import param_counts
from cramming.train.optimizers import OPTIMIZERS, build_optimizer
from cramming.train.schedules import SCHEDULES, lr_factor, lr_factor_at

BASE = ModelConfig(vocab_size=97, seq_len=16, hidden=32, layers=2, heads=2, ffn_hidden=64,
                   head_hidden=24)

# One variant per value each field can take away from the reference.
MODEL_VARIANTS = [
    {"norm_scheme": "post"}, {"norm": "rmsnorm"}, {"qkv_bias": True}, {"linear_bias": True},
    {"ffn": "mlp"}, {"activation": "relu"}, {"activation": "silu"},
    {"pos_embedding": "sinusoidal"}, {"pos_embedding": "learned"},
    {"pos_embedding": "rotary"}, {"pos_embedding": "none"}, {"embedding_norm": False},
    {"final_norm": False}, {"head_transform": True}, {"decoder_bias": True},
    {"sparse_prediction": False}, {"tie_weights": False}, {"pooler": "first"},
    dict(LEGACY["model"]),  # every run written before the fields existed
]


def variant_id(v: dict) -> str:
    return "legacy" if v == LEGACY["model"] else ",".join(f"{k}={v[k]}" for k in v)


def test_the_config_names_are_the_tables_names():
    tables = {"model.norm": NORMS, "model.activation": ACTIVATIONS, "model.ffn": FEED_FORWARDS,
              "model.pos_embedding": POSITIONS, "model.pooler": POOLERS,
              "optim.name": OPTIMIZERS, "train.schedule": SCHEDULES}
    for key, table in tables.items():
        assert tuple(table) == CHOICES[key], key
    assert set(CHOICES) - set(tables) == {"model.norm_scheme"}  # pre | post: one Block


def test_the_reference_is_the_papers_final_recipe():
    cfg = load_config("crammed-bert").model
    assert (cfg.head_transform, cfg.decoder_bias, cfg.pooler) == (False, False, "mean")
    model = CrammedBert(cfg)
    assert count_parameters(model) == param_counts(cfg)["total"] == 119_589_889
    assert not any(name.startswith("mlm_head.") for name, _ in model.named_parameters())


@pytest.mark.parametrize("variant", MODEL_VARIANTS, ids=variant_id)
def test_each_model_variant_counts_trains_and_fine_tunes(variant):
    cfg = dataclasses.replace(BASE, **variant)
    torch.manual_seed(0)
    model = CrammedBert(cfg)
    assert count_parameters(model) == param_counts(cfg)["total"]
    ids = torch.randint(5, cfg.vocab_size, (3, cfg.seq_len))
    labels = torch.where(torch.rand(ids.shape) < 0.25, ids, -100)
    loss, logits = model(ids, labels)
    rows = int((labels != -100).sum()) if cfg.sparse_prediction else ids.numel()
    assert logits.shape == (rows, cfg.vocab_size)
    assert abs(loss.item() - math.log(cfg.vocab_size)) < 1.0  # near uniform at init
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    # Fine-tuning: padding a row changes nothing of its logits (the pooler reads the mask).
    classifier = CrammedBertForSequenceClassification(cfg, num_labels=3).eval()
    mask = torch.ones_like(ids)
    padded, padded_mask = ids.clone(), mask.clone()
    padded[0, 10:], padded_mask[0, 10:] = 0, 0
    with torch.no_grad():
        short = classifier(ids[:1, :10], mask[:1, :10])
        long = classifier(padded[:1], padded_mask[:1])
    assert short.shape == (1, 3)
    torch.testing.assert_close(short, long, atol=1e-5, rtol=0)


def test_post_ln_normalizes_the_residual_stream():
    cfg = dataclasses.replace(BASE, norm_scheme="post", final_norm=False)
    model = CrammedBert(cfg).eval()
    with torch.no_grad():
        h = model.encode(torch.randint(5, 97, (2, 16)))
    # After the last block's norm each position has mean 0 and variance 1 (weights at init).
    torch.testing.assert_close(h.mean(-1), torch.zeros(2, 16), atol=1e-5, rtol=0)
    torch.testing.assert_close(h.var(-1, unbiased=False), torch.ones(2, 16), atol=1e-3, rtol=0)


def test_mean_pooling_and_first_token_differ_as_named():
    h = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 4)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert torch.equal(POOLERS["first"](h, mask), h[:, 0])
    torch.testing.assert_close(POOLERS["mean"](h, mask)[0], h[0, :2].mean(0))
    torch.testing.assert_close(POOLERS["mean"](h, mask)[1], h[1].mean(0))


def test_rotary_positions_make_attention_depend_on_offsets_only():
    from cramming.model import RotaryPositions

    rotary = RotaryPositions(dataclasses.replace(BASE, pos_embedding="rotary"))
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)
    at = [(rotary(q.expand(1, 1, 16, 16))[0, 0, i] @ rotary(k.expand(1, 1, 16, 16))[0, 0, j])
          for i, j in ((3, 1), (10, 8), (1, 3))]
    assert at[0].item() == pytest.approx(at[1].item(), abs=1e-4)  # same offset, same score
    assert at[0].item() != pytest.approx(at[2].item(), abs=1e-3)  # the other direction


@pytest.mark.parametrize("name", CHOICES["optim.name"])
def test_each_optimizer_steps_and_checkpoints(name):
    torch.manual_seed(0)
    model = CrammedBert(BASE)
    optimizer = build_optimizer(model, dataclasses.replace(OptimConfig(), name=name),
                                torch.device("cpu"))
    ids = torch.randint(5, 97, (4, 16))
    labels = torch.where(torch.rand(ids.shape) < 0.25, ids, -100)
    before = model.encoder.blocks[0].attn.qkv.weight.detach().clone()
    model(ids, labels)[0].backward()
    optimizer.step()
    assert not torch.equal(before, model.encoder.blocks[0].attn.qkv.weight)
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    again = build_optimizer(model, dataclasses.replace(OptimConfig(), name=name),
                            torch.device("cpu"))
    again.load_state_dict(optimizer.state_dict())
    assert again.state_dict()["state"].keys() == optimizer.state_dict()["state"].keys()


def schedule(**fields) -> TrainConfig:
    return dataclasses.replace(TrainConfig(), **fields)


def test_schedules_are_functions_of_the_budget_fraction():
    assert lr_factor_at(0.5, schedule()) == lr_factor(0.5) == 0.75  # one-cycle, the reference
    cosine = schedule(schedule="cosine", warmup_fraction=0.1)
    assert lr_factor_at(0.05, cosine) == pytest.approx(0.5)  # half-way up the warm-up
    assert lr_factor_at(0.1, cosine) == pytest.approx(1.0)
    assert lr_factor_at(0.55, cosine) == pytest.approx(0.5)  # half-way down
    assert lr_factor_at(1.0, cosine) == pytest.approx(0.0, abs=1e-12)
    linear = schedule(schedule="linear")
    assert [lr_factor_at(f, linear) for f in (0, 0.25, 1)] == pytest.approx([1, 0.75, 0])
    inverse = schedule(schedule="inverse-sqrt", warmup_fraction=0.04)
    assert lr_factor_at(0.04, inverse) == pytest.approx(1.0)
    assert lr_factor_at(0.16, inverse) == pytest.approx(0.5)  # sqrt(0.04 / 0.16)
    constant = schedule(schedule="constant", warmup_fraction=0.5)
    assert [lr_factor_at(f, constant) for f in (0.25, 0.5, 0.99)] == pytest.approx([0.5, 1, 1])


@pytest.mark.parametrize(("override", "message"), [
    ("model.norm=batchnorm", r"^model\.norm='batchnorm': choose layernorm, rmsnorm$"),
    ("model.pooler=cls", r"^model\.pooler='cls': choose first, mean$"),
    ("optim.name=lion", r"^optim\.name='lion': choose adamw, adam, adafactor, sgd, radam$"),
    ("train.schedule=cosine-decay", r"^train\.schedule='cosine-decay': choose one-cycle, "),
    ("train.schedule=inverse-sqrt", r"needs train\.warmup_fraction > 0"),
    ("train.warmup_fraction=0.1", r"train\.warmup_fraction is for the other schedules"),
    ("train.dropout=1.5", r"^train\.dropout=1\.5 must lie in \[0, 1\)$"),
    ("optim.momentum=1", r"optim\.momentum=1.0 must lie in \[0, 1\)"),
    ("model.qkv_bias=maybe", r"^bad override 'model\.qkv_bias=maybe'"),
])
def test_bad_components_are_one_line_naming_the_field(override, message):
    with pytest.raises(UserError, match=message):
        load_config("tiny", [override])


def test_rotary_needs_an_even_head_width():
    with pytest.raises(UserError, match=r"rotary needs an even head width; .* is 11"):
        load_config("tiny", ["model.hidden=22", "model.heads=2", "model.pos_embedding=rotary"])


def test_presets_layer_left_to_right():
    cfg = load_config("tiny+original-arch+original-train")
    assert (cfg.model.hidden, cfg.model.norm_scheme, cfg.model.ffn) == (128, "post", "mlp")
    assert (cfg.optim.lr, cfg.train.schedule, cfg.train.batch_size) == (1e-4, "linear", 32)
    original = load_config("bert-original")
    assert (original.model.layers, original.train.batch_size, original.train.dropout) == \
        (12, 512, 0.1)
    with pytest.raises(UserError, match="unknown preset 'orginal-arch'"):
        load_config("tiny+orginal-arch")


@pytest.mark.parametrize("variant", MODEL_VARIANTS, ids=variant_id)
def test_each_model_variant_exports_and_loads_with_transformers(variant, tmp_path):
    """The exported folder (shipped cramming/model.py) builds the variant: its MLM logits and
    its classifier's, on padded rows, are the harness's."""
    pytest.importorskip("transformers")
    from safetensors.torch import save_file
    from transformers import AutoModelForSequenceClassification

    from cramming.export.job import check_export, write_config, write_remote_code

    cfg = dataclasses.replace(BASE, **variant)
    torch.manual_seed(0)
    model = CrammedBert(cfg).eval()
    write_remote_code(tmp_path)
    write_config(tmp_path, cfg)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              tmp_path / "model.safetensors", metadata={"format": "pt"})
    assert check_export(tmp_path, model) <= 1e-5
    ours = CrammedBertForSequenceClassification(cfg, num_labels=2).eval()
    ours.encoder.load_state_dict(model.encoder.state_dict())
    theirs = AutoModelForSequenceClassification.from_pretrained(
        tmp_path, num_labels=2, trust_remote_code=True).eval()
    theirs.head.load_state_dict(ours.head.state_dict())
    ids = torch.randint(5, cfg.vocab_size, (2, cfg.seq_len))
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    with torch.no_grad():
        torch.testing.assert_close(theirs(input_ids=ids, attention_mask=mask).logits,
                                   ours(ids, mask), atol=1e-5, rtol=0)


def test_derived_stages_take_only_training_overrides():
    from cramming.config import check_derived_overrides

    check_derived_overrides(["optim.lr=5e-4", "train.batch_size=64", "impl.threads=1"],
                            "cram compress")
    for item in ("model.ffn=glu", "data.path=elsewhere", "plugin.options.x=1", "seed=3"):
        with pytest.raises(UserError, match=rf"^cram compress: override '{item}' would change "
                                            r"the parent's \w+; only optim"):
            check_derived_overrides([item], "cram compress")
