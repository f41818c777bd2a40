"""How many tokens per second a BERT shape trains at on a device: the law, its fit, its probe.

The "How big should my language model be?" calculator (Le Scao, Hugging Face, 2020) models the
speed of a transformer on a GPU as

    speed = k * width^a * depth / (depth + b) * log(batch)^c

Read literally as tokens/s this grows with width, which is backwards: a wider model does more
work per token. We read the fitted quantity as an achieved *throughput in FLOP/s*, the rate at
which the calculator's compute budget (in FLOPs) is spent; the form fits that reading: wider
matmuls and bigger batches use the GPU better (width^a, log(batch)^c), and a per-step fixed cost
(kernel launches, small ops, the optimizer) is amortized over more layers (depth / (depth + b)).
On the published V100 constants it gives the reference shape ~8 TFLOP/s at micro-batch 128
(6.5% of the V100's tensor peak). Tuned mixed-precision BERT code likely does better, so token
counts from these constants are on the low side; timing the real GPU (`--measure`) fixes that.
So

    tokens/s = speed / flops_per_token(shape)

with the training cost per token from Kaplan et al. (2020, Table 1): 6 FLOPs per weight that a
token passes through (forward 2, backward 4) plus 6 * layers * seq_len * width for attention
scores. Weights here are the transformer blocks and, with sparse prediction, the decoder rows for
the 25% of tokens that are masked. Tokens/s then falls with width as width^(a-2) and with depth
as 1 / (depth + b): that is the per-token speed the cramming study found decisive.

`batch` is read as the micro-batch in sequences (what one forward/backward sees; the form does
not name its unit, and a fit on measured timings absorbs the choice into k and c); log(1) = 0,
so the law needs micro-batches of two or more.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from cramming.config import ModelConfig

FWD_BWD_FLOPS_PER_WEIGHT = 6  # Kaplan et al. 2020, Table 1: 2 forward + 4 backward


@dataclass(frozen=True)
class SpeedLaw:
    k: float  # FLOP/s scale
    a: float  # width exponent
    b: float  # depth at which half the per-step overhead is amortized
    c: float  # exponent of log(micro-batch)
    provenance: dict = field(default_factory=dict, compare=False)

    def flops_per_s(self, width: float, depth: float, micro_batch: float) -> float:
        return float(_speed(np.array([[width, depth, micro_batch]]).T, *self.constants)[0])

    def tokens_per_s(self, cfg: ModelConfig, micro_batch: int, *, mlm_fraction=0.25) -> float:
        flops = self.flops_per_s(cfg.hidden, cfg.layers, micro_batch)
        return flops / flops_per_token(cfg, mlm_fraction=mlm_fraction)

    @property
    def constants(self) -> tuple[float, float, float, float]:
        return (self.k, self.a, self.b, self.c)

    def to_dict(self) -> dict:
        return asdict(self)


def param_counts(cfg: ModelConfig) -> dict[str, int]:
    """Parameters of `CrammedBert` by part, for every component the config names (checked
    against the model in the tests).

    blocks: per layer two norms (LayerNorm: weight and bias; RMSNorm: weight), q/k/v/out
    projections (4 w^2, plus biases where the config has them) and the feed-forward (glu:
    w -> ffn in, ffn/2 -> w out; mlp: w -> ffn -> w). embedding: token table (the decoder too
    when tied), the position parameters (one scale, or a learned table), its norm and the final
    norm. head: the MLM transform (dense w -> w with bias, norm) and the decoder bias where the
    config has them, an untied decoder.
    """
    w, f, V = cfg.hidden, cfg.ffn_hidden, cfg.vocab_size
    norm = (2 if cfg.norm == "layernorm" else 1) * w
    ffn_out = f // 2 if cfg.ffn == "glu" else f
    per_layer = 2 * norm + 4 * w * w + w * f + ffn_out * w
    per_layer += 3 * w * cfg.qkv_bias + (w + f + w) * cfg.linear_bias
    blocks = cfg.layers * per_layer
    positions = {"scaled-sinusoidal": 1, "learned": cfg.seq_len * w}.get(cfg.pos_embedding, 0)
    embedding = V * w + positions + norm * (cfg.embedding_norm + cfg.final_norm)
    head = ((w * w + w + norm) * cfg.head_transform + V * cfg.decoder_bias
            + V * w * (not cfg.tie_weights))
    return {"blocks": blocks, "embedding": embedding, "head": head,
            "total": blocks + embedding + head}


def flops_per_token(cfg: ModelConfig, *, mlm_fraction: float = 0.25) -> float:
    """Training FLOPs per input token (forward + backward), Kaplan-style."""
    w = cfg.hidden
    blocks = param_counts(cfg)["blocks"]
    attention = cfg.layers * cfg.seq_len * w  # QK^T and AV per token, as Kaplan's n_ctx term
    # Sparse prediction: the head on the masked rows only; without it, on every row (a
    # fraction of 0 asks for the encoder alone either way).
    rows = mlm_fraction if cfg.sparse_prediction or not mlm_fraction else 1.0
    head = rows * (w * w * cfg.head_transform + cfg.vocab_size * w)
    return FWD_BWD_FLOPS_PER_WEIGHT * (blocks + attention + head)


def _speed(x: np.ndarray, k, a, b, c) -> np.ndarray:
    width, depth, batch = x
    return k * width**a * depth / (depth + b) * np.log(batch) ** c


def fit_speed_law(samples: list[dict], *, provenance: dict | None = None) -> SpeedLaw:
    """Least-squares fit of the four constants to measured samples, in log space.

    Each sample: {"width", "depth", "micro_batch", "flops_per_s"}. Log space weighs a 10%
    miss on a small shape like one on a big shape. Starts from the published V100 values.
    """
    from scipy.optimize import curve_fit

    if len(samples) < 5:
        raise ValueError(f"need at least 5 timed shapes to fit 4 constants, got {len(samples)}")
    x = np.array([[s["width"], s["depth"], s["micro_batch"]] for s in samples], float).T
    if np.any(x[2] < 2):
        raise ValueError("the speed law needs micro-batches of at least 2 (log(1) = 0)")
    y = np.log([s["flops_per_s"] for s in samples])

    def log_speed(x, log_k, a, b, c):
        return log_k + a * np.log(x[0]) + np.log(x[1] / (x[1] + b)) + c * np.log(np.log(x[2]))

    # Bounds keep the fit physical when few, noisy samples underdetermine it: utilization
    # cannot fall with width or batch (a, c >= 0), and overhead is amortized (b >= 0).
    p0 = (math.log(2.21e7), 1.66, 5.92, 1.33)
    lower, upper = (-math.inf, 0.0, 0.0, 0.0), (math.inf, 3.0, 200.0, 4.0)
    params, _ = curve_fit(log_speed, x, y, p0=p0, bounds=(lower, upper), maxfev=20000)
    residual = y - log_speed(x, *params)
    log_k, a, b, c = (float(p) for p in params)
    info = dict(provenance or {})
    info["rms_log_residual"] = float(np.sqrt(np.mean(residual**2)))
    info["samples"] = len(samples)
    return SpeedLaw(k=math.exp(log_k), a=a, b=b, c=c, provenance=info)


def time_shape(cfg: ModelConfig, micro_batch: int, *, device: str, seconds: float = 3.0,
               precision: str = "fp32", seed: int = 0) -> dict:
    """Tokens/s of forward+backward of the real `CrammedBert` at one micro-batch.

    Runs the same model code as `cram pretrain` on random token ids with 25% masked labels
    (speed does not depend on the token values). No optimizer step: in training one runs per
    batch of many micro-batches (8192 / 128 = 64 for the reference), so its cost is amortized
    away. One warm-up step is excluded from the clock; then steps run until `seconds` have
    passed (at least two).
    """
    import torch

    from cramming.model import CrammedBert

    torch.manual_seed(seed)
    model = CrammedBert(cfg).to(device)
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, cfg.vocab_size, (micro_batch, cfg.seq_len), generator=generator)
    labels = torch.where(torch.rand(ids.shape, generator=generator) < 0.25, ids, -100)
    ids, labels = ids.to(device), labels.to(device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    device_type = device.split(":")[0]

    def step() -> None:
        with torch.autocast(device_type=device_type, dtype=dtype, enabled=dtype is not None):
            loss, _ = model(ids, labels)
        loss.backward()  # gradients accumulate, as between optimizer steps in training

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    step()  # warm-up: allocator, kernels, gradient buffers
    sync()
    steps, start = 0, time.perf_counter()
    while steps < 2 or time.perf_counter() - start < seconds:
        step()
        steps += 1
    sync()
    elapsed = time.perf_counter() - start
    tokens_per_s = steps * micro_batch * cfg.seq_len / elapsed
    return {
        "width": cfg.hidden,
        "depth": cfg.layers,
        "heads": cfg.heads,
        "ffn_hidden": cfg.ffn_hidden,
        "micro_batch": micro_batch,
        "steps": steps,
        "seconds": elapsed,
        "tokens_per_s": tokens_per_s,
        "flops_per_s": tokens_per_s * flops_per_token(cfg),
    }
