"""Peak memory of one training step of `CrammedBert`, estimated from its shape.

The estimate counts what the model code keeps alive, tensor by tensor, rather than using a
rule of thumb, so it follows `cramming/model.py`:

- state: fp32 weights, fp32 gradients and AdamW's two moments: 16 bytes per parameter; under
  16-bit autocast also the cached 16-bit copy of each matrix that a forward casts.
- activations saved for backward, per token and block: the residual stream at both LayerNorms
  (fp32 under autocast: LayerNorm runs in fp32), the LayerNorm outputs as cast for the next
  matmul, q/k/v, the attention output and its (B, T, H) reshape, the GLU in-projection, GELU
  output and gated product. Flash/memory-efficient attention keeps one log-sum-exp per head
  and token instead of the (T x T) probabilities.
- the MLM head on the masked rows (25% of tokens): logits (M, V) in the compute dtype, their fp32
  copy (16-bit only) and the fp32 log-softmax that cross-entropy saves; in backward a gradient of
  the same size.

It does not model allocator fragmentation or the CUDA context; the planner leaves headroom.
It models the reference components (LayerNorm blocks, a GLU, AdamW's state), which are what
`cram plan` plans: shapes of the `crammed-bert` architecture.
"""

from __future__ import annotations

from cramming.config import ModelConfig
from cramming.plan.speed_law import param_counts

BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
FP32 = 4


def training_memory(cfg: ModelConfig, micro_batch: int, *, precision: str = "bf16",
                    mlm_fraction: float = 0.25) -> dict[str, float]:
    """Bytes by part and `total`, for one forward+backward+AdamW step at `micro_batch`."""
    act = BYTES[precision]
    w, f, T, V = cfg.hidden, cfg.ffn_hidden, cfg.seq_len, cfg.vocab_size
    counts = param_counts(cfg)
    tokens = micro_batch * T
    masked = (mlm_fraction if cfg.sparse_prediction else 1.0) * tokens  # rows the head takes

    state = 16 * counts["total"]  # weight, grad, exp_avg, exp_avg_sq in fp32
    if act != FP32:
        matrices = counts["blocks"] + V * w + w * w  # autocast caches 16-bit copies of matmuls
        state += act * matrices

    residual = FP32 * 2 * w  # block input at norm1 and at norm2 (LayerNorm saves its input)
    # norm1 out, q/k/v, attention out, its reshape, norm2 out, GLU up, GELU(gate), gate*value
    saved = act * (w + 3 * w + w + w + w + f + f // 2 + f // 2)
    lse = FP32 * cfg.heads  # attention log-sum-exp per head
    per_layer = tokens * (residual + saved + lse)
    # embedding norm input, final norm input and output (fp32)
    encoder_io = tokens * FP32 * 3 * w
    # head on masked rows: (the transform's dense in, GELU in, norm in) decoder in (w each,
    # compute dtype)
    head_rows = masked * act * (4 if cfg.head_transform else 1) * w
    upcast = FP32 if act != FP32 else 0  # `.float()` copies 16-bit logits; a no-op in fp32
    logits = masked * V * (act + upcast + FP32)  # logits, fp32 copy, log-softmax
    activations = cfg.layers * per_layer + encoder_io + head_rows + logits
    # Largest backward temporary: the gradient of the logits (fp32 and compute dtype).
    workspace = masked * V * (FP32 + act)
    total = state + activations + workspace
    return {
        "state": float(state),
        "activations": float(activations),
        "workspace": float(workspace),
        "total": float(total),
    }


# Largest first. 128 is the cramming code's default micro-batch (impl.microbatch_size), and the
# speed law's log(batch) term is not trusted far beyond the batches it was fitted on.
MICRO_BATCHES = (128, 64, 32, 16, 8, 4, 2)


def largest_fitting_micro_batch(cfg: ModelConfig, budget_bytes: float, *, precision: str,
                                candidates=MICRO_BATCHES) -> int | None:
    """The biggest micro-batch whose estimate fits in `budget_bytes`, or None."""
    for micro_batch in sorted(candidates, reverse=True):
        if training_memory(cfg, micro_batch, precision=precision)["total"] <= budget_bytes:
            return micro_batch
    return None
