"""Iterative magnitude pruning: the documented rule reaches exactly round(S * N) pruned
weights, and the masks survive saving, loading and fine-tuning."""

import math

import numpy as np
import pytest
import torch
from conftest import tiny_model_config

from cramming import CrammedBert, save_pretrained
from cramming.compress import prune
from cramming.weights import load_classifier, load_pretrained, load_pretrained_with_masks
from glue_eval import PROTOCOLS
from glue_eval.finetune import finetune


@pytest.mark.parametrize("total, sparsity", [(7168, 0.5), (7168, 0.9), (1000, 0.333),
                                             (10, 0.15), (3, 0.5)])
def test_round_targets_follow_the_rule(total, sparsity):
    counts = prune.round_targets(total, 0, sparsity)
    assert counts[-1] == round(sparsity * total)  # the last round hits the target exactly
    before = 0
    for count in counts[:-1]:  # every other round prunes ceil(15%) of what remains
        assert count - before == math.ceil(0.15 * (total - before))
        before = count
    assert 0 < counts[-1] - before <= math.ceil(0.15 * (total - before))


def test_round_targets_continue_from_a_pruned_model():
    assert prune.round_targets(1000, 500, 0.5) == []
    assert prune.round_targets(1000, 500, 0.6) == [575, 600]


@pytest.fixture
def model():
    torch.manual_seed(0)
    return CrammedBert(tiny_model_config(256))


@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.97])
def test_pruning_reaches_exactly_the_asked_sparsity_globally(model, sparsity):
    layers = prune.prunable(model)
    assert [name for name, _ in layers] == [
        "encoder.blocks.0.attn.qkv.weight", "encoder.blocks.0.attn.out.weight",
        "encoder.blocks.0.ffn.up.weight", "encoder.blocks.0.ffn.down.weight"]
    total = sum(module.weight.numel() for _, module in layers)
    original = torch.cat([module.weight.detach().abs().flatten() for _, module in layers])
    for count in prune.round_targets(total, 0, sparsity):
        prune.prune_to(model, count)
    assert prune.pruned_count(model) == round(sparsity * total)
    kept = torch.cat([module.weight_mask.flatten() for _, module in layers]).bool()
    # Global magnitude: no pruned weight was larger than a kept one (no training in between).
    assert original[~kept].max() <= original[kept].min()
    zeros = sum(int((module.weight == 0).sum()) for _, module in layers)
    assert zeros == round(sparsity * total)


def _pruned(model, sparsity=0.6):
    total = sum(module.weight.numel() for _, module in prune.prunable(model))
    for count in prune.round_targets(total, 0, sparsity):
        prune.prune_to(model, count)
    return prune.make_permanent(model)


def test_masks_survive_save_and_load(model, tmp_path):
    masks = _pruned(model)
    save_pretrained(model, tmp_path, masks=masks)
    cfg, state, loaded_masks = load_pretrained_with_masks(tmp_path)
    assert set(loaded_masks) == set(masks)
    for name, mask in masks.items():
        assert torch.equal(loaded_masks[name], mask)
    for name, tensor in model.state_dict().items():
        assert torch.equal(state[name], tensor), name
    assert load_pretrained(tmp_path)[1].keys() == state.keys()
    dense = tmp_path / "dense"
    dense.mkdir()
    save_pretrained(model, dense)
    assert (tmp_path / "model.safetensors").stat().st_size < \
        (dense / "model.safetensors").stat().st_size


def test_masks_stay_fixed_through_fine_tuning(model, tmp_path, one_torch_thread):
    masks = _pruned(model)
    save_pretrained(model, tmp_path, masks=masks)
    _, _, masks = load_pretrained_with_masks(tmp_path)
    torch.manual_seed(0)
    classifier = load_classifier(tmp_path, num_labels=2)
    prune.apply_masks(classifier, masks)
    before = {name: module.weight.detach().clone() for name, module in
              prune.prunable(classifier)}
    rng = np.random.default_rng(0)
    rows = [[2, *rng.integers(5, 256, 12).tolist(), 3] for _ in range(48)]
    labels = rng.integers(0, 2, 48)
    finetune(classifier, rows, labels, protocol=PROTOCOLS["quick"], regression=False, pad_id=0,
             seed=0, quiet=True)
    folded = prune.make_permanent(classifier)
    for name, module in prune.prunable(classifier):
        weight = module.weight.detach()
        assert torch.equal(folded[name], masks[name])
        assert (weight[~masks[name]] == 0).all(), name  # pruned stays exactly zero
        assert not torch.equal(weight[masks[name]], before[name][masks[name]])  # kept learnt
