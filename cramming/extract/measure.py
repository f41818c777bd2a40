"""What a candidate costs to deploy: parameters, FLOPs per token, and measured latency.

Sizes and FLOPs come from the planner's counts (`cramming.plan.speed_law`); latency is timed
here, on the device the extraction runs on, because that is where the user will deploy it.
"""

from __future__ import annotations

import statistics
import time

import torch

from cramming.plan.speed_law import flops_per_token, param_counts

LATENCY_BATCHES = (1, 64)  # one request at a time, and a batch of requests
# Timed repeats after one warm-up; the median resists a stray slow run on a shared machine.
LATENCY_REPEATS = {1: 7, 64: 3}


def costs(model_cfg) -> dict:
    """Parameters with and without the embedding, and FLOPs per token.

    `params_no_embedding` leaves out the token table, its LayerNorm, the position scale and
    the final norm (speed_law's "embedding" part), as Bort's "effective size" does.
    `inference_flops_per_token`: the encoder's forward pass (2 per weight plus attention),
    the third of the planner's training count that is the forward pass, without the MLM head.
    """
    counts = param_counts(model_cfg)
    return {
        "params": counts["total"],
        "params_no_embedding": counts["total"] - counts["embedding"],
        "inference_flops_per_token": round(flops_per_token(model_cfg, mlm_fraction=0.0) / 3),
        "train_flops_per_token": round(flops_per_token(model_cfg)),
    }


@torch.no_grad()
def latency_ms(model, *, batch: int, precision: str = "fp32", seed: int = 0) -> float:
    """Median wall-clock milliseconds of one encoder forward pass on `batch` full-length rows
    (random ids: the cost does not depend on their values), in eval mode."""
    from cramming.train.hardware import autocast

    model.eval()
    device = next(model.parameters()).device
    cfg = model.cfg
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, cfg.vocab_size, (batch, cfg.seq_len), generator=generator).to(device)

    def forward() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        with autocast(device, precision):
            model.encode(ids)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    forward()  # warm-up: allocator, kernels, caches
    repeats = LATENCY_REPEATS.get(batch, 3)
    return round(1000 * statistics.median(forward() for _ in range(repeats)), 3)


def latencies(model, precision: str = "fp32") -> dict:
    return {f"latency_b{batch}_ms": latency_ms(model, batch=batch, precision=precision)
            for batch in LATENCY_BATCHES}
