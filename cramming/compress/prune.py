"""Iterative magnitude pruning of the encoder's linear weights (torch.nn.utils.prune).

The rule, exactly:
- What is pruned: the weight matrix of every `nn.Linear` inside the encoder (attention qkv and
  out, feed-forward up and down, in every block); never embeddings, norms, the MLM head or a
  fine-tuning head. N is their total number of entries.
- Global, not per layer: each round removes the weights of smallest magnitude among all those
  still unpruned in all these matrices together (`prune.global_unstructured` with L1
  importance), so layers that matter less lose more.
- Rounds: a round removes ceil(15% of the weights still unpruned) (Li et al. 2020, "Train Large,
  Then Compress", arXiv:2002.11794, after Frankle & Carbin's iterative magnitude pruning),
  except the last, which removes exactly what is left to reach Z = round(SPARSITY * N) pruned
  weights. So the reached sparsity is Z / N: the asked sparsity to within 1/(2N).
- Masks are buffers (`weight_mask`) beside `weight_orig`; the effective weight is their product,
  so a pruned weight stays exactly zero through any later training, recovery or fine-tuning.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import prune

ROUND_FRACTION = 0.15  # Li et al. 2020: each round prunes 15% of the remaining weights


def prunable(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """(parameter name of the weight, module) of every linear layer of `model.encoder`."""
    return [(f"encoder.{name}.weight", module) for name, module in model.encoder.named_modules()
            if isinstance(module, nn.Linear)]


def round_targets(total: int, already_pruned: int, sparsity: float) -> list[int]:
    """Cumulative pruned counts after each round, ending exactly at round(sparsity * total)."""
    final = round(sparsity * total)
    counts, pruned = [], already_pruned
    while pruned < final:
        pruned = min(final, pruned + math.ceil(ROUND_FRACTION * (total - pruned)))
        counts.append(pruned)
    return counts


def pruned_count(model: nn.Module) -> int:
    """Weights removed so far: zeros of the masks (0 when the model carries no mask)."""
    return sum(int((module.weight_mask == 0).sum()) for _, module in prunable(model)
               if prune.is_pruned(module))


def prune_to(model: nn.Module, count: int) -> None:
    """Prune the smallest-magnitude unpruned weights, globally, until `count` are pruned."""
    layers = prunable(model)
    new = count - pruned_count(model)
    if new <= 0:
        return
    # global_unstructured scores only the weights each existing mask still keeps, so `new`
    # counts weights that are removed in this round.
    prune.global_unstructured([(module, "weight") for _, module in layers],
                              pruning_method=prune.L1Unstructured, amount=new)


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Re-attach saved masks (parameter name -> bool tensor) so they stay fixed in training."""
    by_name = dict(prunable(model))
    unknown = sorted(set(masks) - set(by_name))
    if unknown:
        raise ValueError(f"masks for weights the model does not have: {unknown[:3]}")
    for name, mask in masks.items():
        module = by_name[name]
        prune.custom_from_mask(module, "weight", mask.to(module.weight.device))


def masks_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """parameter name -> bool mask (True: kept) of every pruned layer."""
    return {name: module.weight_mask.detach().bool().cpu() for name, module in prunable(model)
            if prune.is_pruned(module)}


def make_permanent(model: nn.Module) -> dict[str, torch.Tensor]:
    """Fold every mask into its weight (zeros stay zeros) and drop the re-parametrization, for
    saving or deployment; returns the masks it folded."""
    masks = masks_of(model)
    for _, module in prunable(model):
        if prune.is_pruned(module):
            prune.remove(module, "weight")
    return masks
