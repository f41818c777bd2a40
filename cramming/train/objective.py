"""Masked-language-modelling targets: 25% of maskable tokens, replaced 80/10/10 (BERT, cramming).

Special tokens are never selected: [CLS], [SEP] and [PAD] carry no content to predict ([SEP]
marks document boundaries in packed rows), and [UNK] or [MASK] as a target would teach the model
to predict "unknown" (BERT's data collator likewise skips every special token). Masks are drawn
from a generator seeded per optimizer step, so a resumed run draws exactly the masks an
uninterrupted one would.
"""

from __future__ import annotations

import math

import torch

from cramming.model import IGNORE_INDEX


def step_generator(seed: int, step: int) -> torch.Generator:
    """A CPU generator for one optimizer step's masks, independent of every other step."""
    # Modulo 2**64, the generator's seed range: any run seed (up to 2**64 - 1) is valid, and
    # small seeds give the same masks as before.
    return torch.Generator().manual_seed((seed * 1_000_003 + step) % 2**64)


def mask_tokens(
    input_ids: torch.Tensor,
    *,
    special_ids: dict[str, int],
    vocab_size: int,
    generator: torch.Generator,
    mask_prob: float = 0.25,
    mask_token_prob: float = 0.8,
    random_token_prob: float = 0.1,
    batch_rows: int | None = None,
    row_index=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) ids -> (inputs, labels): labels hold the original id where selected, else -100.

    `input_ids` may be some rows of a larger batch: then `batch_rows` is that batch's row count
    and `row_index` (B,) says which rows these are; the draws are made for the whole batch."""
    shape = input_ids.shape
    full = (batch_rows if batch_rows is not None else shape[0], shape[1])
    mine = slice(None) if row_index is None else torch.as_tensor(row_index)  # rows of `full`
    maskable = torch.ones(shape, dtype=torch.bool)
    for token_id in special_ids.values():
        maskable &= input_ids != token_id
    selected = (torch.rand(full, generator=generator)[mine] < mask_prob) & maskable
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))

    # One draw decides the replacement: [0, 0.8) -> [MASK], [0.8, 0.9) -> random, else unchanged.
    replace = torch.rand(full, generator=generator)[mine]
    to_mask = selected & (replace < mask_token_prob)
    to_random = selected & (replace >= mask_token_prob) & (
        replace < mask_token_prob + random_token_prob)
    # Random replacements come from the ordinary vocabulary, never a special token.
    first_ordinary = max(special_ids.values()) + 1
    random_ids = torch.randint(first_ordinary, vocab_size, full, generator=generator)[mine]
    inputs = torch.where(to_mask, torch.full_like(input_ids, special_ids["mask"]), input_ids)
    inputs = torch.where(to_random, random_ids, inputs)
    return inputs, labels


def pad_rows(inputs, labels, rows: int):
    """Fill a short micro-batch up to `rows` with [PAD] rows that carry no labels: a compiled
    encoder then sees one shape, and rows never attend across each other, so the loss and
    gradients are those of the short batch."""
    missing = rows - inputs.shape[0]
    if missing <= 0:
        return inputs, labels
    fill = torch.zeros(missing, inputs.shape[1], dtype=inputs.dtype)  # [PAD] is id 0
    return torch.cat([inputs, fill]), torch.cat([labels, torch.full_like(fill, IGNORE_INDEX)])


def sparse_rows(tokens: int, mask_prob: float) -> int:
    """A fixed row count for the MLM head of a micro-batch of `tokens` positions: the expected
    masked count plus 6 standard deviations of the binomial (a larger draw is about 1e-9 per
    micro-batch, and then takes its own count), rounded up to a multiple of 8 for the kernels.
    """
    mean = tokens * mask_prob
    bound = mean + 6 * math.sqrt(tokens * mask_prob * (1 - mask_prob))
    return min(tokens, 8 * math.ceil(bound / 8))
