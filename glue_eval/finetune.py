"""The one fine-tuning recipe every task shares: encode, train for N epochs, predict.

Inputs are `[CLS] a [SEP] b [SEP]` (or `[CLS] a [SEP]`), cut to `max_length` by trimming the
longer text first, padded with [PAD] to the longest row of each batch, with an attention mask.
Optimisation: AdamW, linear warm-up over the first `warmup_fraction` of steps, then cosine
decay to 0; classification uses cross-entropy, STS-B regression uses MSE on one output.
On a CUDA GPU with bf16 the forward passes run under bf16 autocast, as pretraining does (the
loss is taken in fp32); on the CPU everything stays fp32.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from crambench.progress import progress_disabled
from glue_eval.tasks import Protocol

EVAL_BATCH = 64  # rows per forward pass when predicting; does not change any result


@contextlib.contextmanager
def cpu_threads(threads: int):
    """torch's CPU thread count for a block; 0 keeps the default. Speed only: on a shared or
    small machine one thread can be many times faster than contended ones."""
    before = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def mixed_precision(device):
    """bf16 autocast on a CUDA GPU that supports it, else nothing: speed, not the recipe."""
    if torch.device(device).type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def encode_texts(tokenizer, text_a: list[str], text_b: list[str] | None, *, cls_id: int,
                 sep_id: int, max_length: int) -> list[list[int]]:
    """Token id rows `[CLS] a [SEP] (b [SEP])`, at most `max_length` long."""
    ids_a = [enc.ids for enc in tokenizer.encode_batch(text_a, add_special_tokens=False)]
    if text_b is None:
        return [[cls_id, *a[: max_length - 2], sep_id] for a in ids_a]
    ids_b = [enc.ids for enc in tokenizer.encode_batch(text_b, add_special_tokens=False)]
    return [join_pair(a, b, cls_id=cls_id, sep_id=sep_id, max_length=max_length)
            for a, b in zip(ids_a, ids_b, strict=True)]


def join_pair(a: list[int], b: list[int], *, cls_id: int, sep_id: int,
              max_length: int) -> list[int]:
    # Longest-first trimming (as BERT's run_classifier): the shorter text keeps all it can.
    room = max_length - 3
    keep_a, keep_b = len(a), len(b)
    while keep_a + keep_b > room:
        if keep_a >= keep_b:
            keep_a -= 1
        else:
            keep_b -= 1
    return [cls_id, *a[:keep_a], sep_id, *b[:keep_b], sep_id]


def _batch(rows: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids.to(device), mask.to(device)


def cosine_with_warmup(total_steps: int, warmup_fraction: float):
    warmup = max(1, round(total_steps * warmup_fraction))

    def factor(step: int) -> float:  # step = optimizer steps already taken
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def finetune(model: nn.Module, rows: list[list[int]], labels: np.ndarray, *,
             protocol: Protocol, regression: bool, pad_id: int, seed: int, device="cpu",
             desc: str = "", quiet: bool = False) -> dict:
    """Train `model` in place on (rows, labels); returns {"steps", "final_loss"}."""
    model.to(device).train()
    # No weight decay on biases and norm weights (vectors), as in BERT fine-tuning.
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": protocol.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=protocol.lr)
    steps_per_epoch = math.ceil(len(rows) / protocol.batch_size)
    total = steps_per_epoch * protocol.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, cosine_with_warmup(total, protocol.warmup_fraction))
    loss_fn = nn.MSELoss() if regression else nn.CrossEntropyLoss()
    target_dtype = torch.float32 if regression else torch.long
    rng = np.random.default_rng(seed)
    loss = torch.tensor(float("nan"))
    for epoch in range(protocol.epochs):
        order = rng.permutation(len(rows))
        bar = tqdm(range(steps_per_epoch), desc=f"{desc} epoch {epoch + 1}/{protocol.epochs}",
                   leave=False, disable=progress_disabled(quiet))
        for step in bar:
            idx = order[step * protocol.batch_size: (step + 1) * protocol.batch_size]
            ids, mask = _batch([rows[i] for i in idx], pad_id, device)
            target = torch.as_tensor(labels[idx], dtype=target_dtype, device=device)
            with mixed_precision(device):
                logits = model(ids, mask).float()
            loss = loss_fn(logits.squeeze(-1) if regression else logits, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if step % 10 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
    return {"steps": total, "final_loss": float(loss.item())}


@torch.no_grad()
def predict(model: nn.Module, rows: list[list[int]], *, regression: bool, pad_id: int,
            device="cpu") -> np.ndarray:
    """Predicted class ids (int64), or scores (float32) for regression."""
    model.to(device).eval()
    out = []
    for start in range(0, len(rows), EVAL_BATCH):
        ids, mask = _batch(rows[start: start + EVAL_BATCH], pad_id, device)
        with mixed_precision(device):
            logits = model(ids, mask).float()
        out.append(logits.squeeze(-1) if regression else logits.argmax(-1))
    return torch.cat(out).cpu().numpy()
