"""Span masking: whole runs of neighbouring tokens are masked together instead of single tokens
(SpanBERT, Joshi et al. 2020, masks spans of geometric length, mean 3.8 words). The cramming
paper tried other masking rates; whether spans help a crammed BERT is an open question.

    cram pretrain --data data/demo --preset tiny --budget 90s --out runs/spans \\
        --plugin examples/plugins/span_masking.py plugin.options.mean_span=3

Options: `mean_span` (default 3), the mean span length in tokens; `max_span` (default 10).
Spans start at rate train.mask_prob / mean_span, so about train.mask_prob of the tokens are
chosen (a little less where spans overlap or run over special tokens). The chosen tokens are
replaced as BERT does: 80% [MASK], 10% a random token, 10% unchanged. Every draw comes from the
generator the harness passes, so a resumed run masks exactly as an uninterrupted one.
"""

import math

import torch

CRAM_PLUGIN_API = 1


def mask_tokens(input_ids, special_ids, vocab_size, generator, train, options):
    mean_span = float(options.get("mean_span", 3))
    max_span = int(options.get("max_span", 10))
    rows, length = input_ids.shape
    starts = torch.rand((rows, length), generator=generator) < train.mask_prob / mean_span
    # Span lengths: geometric on 1, 2, ... with mean `mean_span`, cut at max_span.
    p = 1.0 / mean_span
    u = torch.rand((rows, length), generator=generator)
    spans = torch.ceil(torch.log1p(-u) / math.log1p(-p)).clamp(1, max_span) if p < 1 else \
        torch.ones((rows, length))
    selected = torch.zeros((rows, length), dtype=torch.bool)
    for k in range(min(max_span, length)):  # a start at t, span s: t .. t + s - 1
        selected[:, k:] |= (starts & (spans > k))[:, :length - k]
    for token_id in special_ids.values():
        selected &= input_ids != token_id
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, -100))
    replace = torch.rand((rows, length), generator=generator)
    first_ordinary = max(special_ids.values()) + 1
    random_ids = torch.randint(first_ordinary, vocab_size, (rows, length), generator=generator)
    inputs = torch.where(selected & (replace < train.mask_token_prob),
                         torch.full_like(input_ids, special_ids["mask"]), input_ids)
    random_part = (replace >= train.mask_token_prob) & (
        replace < train.mask_token_prob + train.random_token_prob)
    inputs = torch.where(selected & random_part, random_ids, inputs)
    return inputs, labels
