"""`python bench/throughput.py --preset mini`: training tokens/s of the crammed BERT against
Hugging Face `BertForMaskedLM` of the same depth, width, heads, vocabulary, sequence length and
batch, measured side by side in one process.

Each repetition times a few full training steps (forward, backward, AdamW) of one model, then of
the other, alternating which goes first; the figures are medians over repetitions. Both models
get the same masked batch, no dropout (the pretraining recipe uses none) and SDPA attention.
On CUDA both run under bf16 autocast (fp16 without bf16) and MFU is reported against the GPU's
dense 16-bit tensor peak. The last line printed is one JSON object with `speedup_vs_hf`
(ours over theirs, tokens/s). Needs the `bench` extra (transformers).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import nullcontext

import torch

from cramming.config import load_config
from cramming.model import IGNORE_INDEX, CrammedBert, count_parameters
from cramming.train.hardware import detect_hardware
from cramming.train.objective import mask_tokens, step_generator
from data_prep.manifest import SPECIAL_IDS

# Dense (no sparsity) 16-bit tensor-core peaks, TFLOP/s, from NVIDIA datasheets / whitepapers,
# as (text in torch.cuda.get_device_name, the card it names, peak). The first match wins, so
# a variant comes before the name it extends (the H200 NVL before the H200 SXM); a variant
# without a sourced figure here (e.g. the H100 NVL) gets no peak rather than a wrong one.
PEAK_TFLOPS = (
    ("H200 NVL", "H200 NVL", 836.0),  # H200 NVL datasheet: 1,671 BF16 with sparsity
    ("H200", "H200 SXM", 989.4),  # H200 datasheet (same tensor cores as H100 SXM)
    ("H100 PCIe", "H100 PCIe", 756.0),  # H100 PCIe datasheet: 1,513 with sparsity
    ("H100 NVL", "H100 NVL", None),
    ("H100", "H100 SXM", 989.4),  # H100 SXM5 datasheet ("H100 80GB HBM3"): 1,979 with sparsity
    ("A100", "A100", 312.0),  # A100 datasheet: BF16 tensor core
    ("RTX A6000", "RTX A6000", 154.8),  # RTX A6000 datasheet: 309.7 with sparsity
    ("RTX A4000", "RTX A4000", 76.7),  # RTX A4000 datasheet: 153.4 with sparsity
    ("RTX 2080 Ti", "RTX 2080 Ti", 53.8),  # Turing whitepaper: FP16 tensor, FP32 accumulate
)


def hf_model(cfg):
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden, num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads, intermediate_size=cfg.ffn_hidden,
        max_position_embeddings=cfg.seq_len, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, attn_implementation="sdpa",
    )
    return BertForMaskedLM(config)


def forward_flops(cfg, n_masked_per_seq: float, sparse: bool) -> float:
    """Matmul FLOPs of one sequence's forward pass (2 per multiply-add)."""
    t, h, f, v = cfg.seq_len, cfg.hidden, cfg.ffn_hidden, cfg.vocab_size
    ffn_out = f // 2 if sparse else f  # GLU: half of the in-projection goes out
    per_layer = 2 * t * h * (3 * h + h + f + ffn_out) + 2 * 2 * t * t * h
    head_rows = n_masked_per_seq if sparse else t  # HF projects every position
    return cfg.layers * per_layer + 2 * head_rows * h * (h + v)


def peak_for(name: str) -> dict:
    """{"device": the card a device name is taken for, "tflops": its dense 16-bit peak} (None
    for a card without a figure here), e.g. "NVIDIA H200 NVL" -> H200 NVL, 836.0."""
    card, peak = next(((card, peak) for key, card, peak in PEAK_TFLOPS if key in name),
                      (name, None))
    return {"device": card, "tflops": peak}


def peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return peak_for(torch.cuda.get_device_name(device))["tflops"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mini", help="shape to measure (a cramming preset)")
    parser.add_argument("--batch", type=int, default=32, help="sequences per training step")
    parser.add_argument("--reps", type=int, default=7, help="timed repetitions per model")
    parser.add_argument("--steps", type=int, default=3, help="training steps per repetition")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    dtype = None
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    cfg = load_config(args.preset).model
    torch.manual_seed(0)
    ids = torch.randint(5, cfg.vocab_size, (args.batch, cfg.seq_len))
    inputs, labels = mask_tokens(ids, special_ids=SPECIAL_IDS, vocab_size=cfg.vocab_size,
                                 generator=step_generator(0, 0))
    inputs, labels = inputs.to(device), labels.to(device)
    masked_per_seq = (labels != IGNORE_INDEX).sum().item() / args.batch

    ours, theirs = CrammedBert(cfg).to(device), hf_model(cfg).to(device)
    models = {
        "ours": (ours, lambda: ours(inputs, labels)[0]),
        "hf": (theirs, lambda: theirs(input_ids=inputs, labels=labels).loss),
    }
    optimizers = {k: torch.optim.AdamW(m.parameters(), lr=1e-4) for k, (m, _) in models.items()}
    scaler_ctx = (lambda: torch.autocast("cuda", dtype=dtype)) if dtype else nullcontext

    def train_steps(name: str, n: int) -> float:
        model, loss_fn = models[name]
        optimizer = optimizers[name]
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(n):
            with scaler_ctx():
                loss = loss_fn()
            loss.backward()  # bf16 autocast needs no scaler; fp16 losses here stay in range
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / n

    for name in models:  # warm-up: allocator, kernels, lazy init
        train_steps(name, 2)
    times = {name: [] for name in models}
    for rep in range(args.reps):
        order = ("ours", "hf") if rep % 2 == 0 else ("hf", "ours")
        for name in order:
            times[name].append(train_steps(name, args.steps))

    tokens = args.batch * cfg.seq_len
    hardware = detect_hardware(device)
    step_s = {name: statistics.median(values) for name, values in times.items()}
    result = {
        "bench": "throughput",
        "preset": args.preset,
        "shape": {k: getattr(cfg, k) for k in ("layers", "hidden", "heads", "ffn_hidden",
                                               "vocab_size", "seq_len")},
        "batch": args.batch,
        "device": hardware["gpu_name"] or f"cpu ({hardware['cpu_name']})",
        "precision": {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype],
        "threads": torch.get_num_threads(),
        "reps": args.reps,
        "steps_per_rep": args.steps,
        "params": {"ours": count_parameters(ours), "hf": count_parameters(theirs)},
        "step_ms": {k: round(v * 1000, 2) for k, v in step_s.items()},
        "ours_tokens_per_s": round(tokens / step_s["ours"], 1),
        "hf_tokens_per_s": round(tokens / step_s["hf"], 1),
        "speedup_vs_hf": round(step_s["hf"] / step_s["ours"], 3),
        "torch": torch.__version__,
    }
    peak = peak_tflops(device)
    if peak:
        for name, sparse in (("ours", True), ("hf", False)):
            flops = 3 * forward_flops(cfg, masked_per_seq, sparse) * args.batch  # fwd + 2x bwd
            result[f"mfu_{name}"] = round(flops / step_s[name] / (peak * 1e12), 4)
        result["peak_tflops"] = peak
    if device.type == "cuda":  # which peak the MFU is against
        result["peak"] = peak_for(torch.cuda.get_device_name(device))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
