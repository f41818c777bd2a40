"""A task model as it is deployed, the same way for every run: pruning masks folded into the
weights, quantized when the run says so, written in the compact form, and timed on CPU.

`cram eval glue` / `cram eval probe` call `deploy` on every fine-tuned task model before it
predicts (so the scores are the deployed model's) and `deployment_record` on the first one:
its stored size and CPU latency stand for the run's model (every task model has the same
encoder; heads differ by a few output rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from cramming.compress import prune
from cramming.compress.method import FULL_BITS, SPEC_FILE, SPEC_FORMAT
from cramming.compress.storage import save_compact, stored_stats

LATENCY_SEQ_LEN = 128  # tokens per example, the benchmark's sequence length
LATENCY_BATCHES = (1, 64)  # one request at a time, and an offline batch
# One thread: the figure compares across machines with different core counts, and is the
# least disturbed by other work on a shared CPU.
LATENCY_THREADS = 1
LATENCY_MIN_RUN_S = 0.5  # torch.utils.benchmark repeats each batch for at least this long


def read_spec(final) -> dict | None:
    """final/compression.json of a compressed run (None for an uncompressed one)."""
    from crambench.contracts import read_contract

    path = Path(final) / SPEC_FILE
    return read_contract(path, SPEC_FORMAT) if path.is_file() else None


@dataclass
class Deployed:
    model: nn.Module
    method: str
    masks: dict = field(default_factory=dict)  # weight name -> bool keep-mask
    codes: dict = field(default_factory=dict)  # weight name -> (int codes, scales, bits)
    quantization: dict | None = None


def deploy(model: nn.Module, spec: dict | None) -> Deployed:
    """Fold `model`'s pruning masks into its weights and quantize it as `spec` says, in place.
    A model without masks and a run without spec deploy as they are (fp32)."""
    masks = prune.make_permanent(model)
    spec = spec or {"method": "none", "bits": FULL_BITS, "quantization": None}
    codes = {}
    if spec["bits"] != FULL_BITS:
        from cramming.compress.quantize import quantize_model

        codes = quantize_model(model, spec["bits"])
    model.eval()
    return Deployed(model, spec["method"], masks, codes, spec["quantization"])


def deployment_record(deployed: Deployed, path, *, task: str, results_dir) -> dict:
    """Write the deployed model to `path` (compact safetensors) and measure it: the record a
    results file carries under `deployment`."""
    model = deployed.model
    state = {name: tensor for name, tensor in model.state_dict().items()}
    save_compact(path, state, masks=deployed.masks, quantized=deployed.codes)
    stats = stored_stats(path)
    vocab_size = model.encoder.embedding.word.num_embeddings
    from crambench.contracts import sha256_file

    return {
        "method": deployed.method,
        "bits": stats["bits"],
        "quantization": deployed.quantization,
        "sparsity": stats["sparsity"],
        "params": stats["params"],
        "nonzero_params": stats["kept_params"],
        "stored_bytes": stats["stored_bytes"],
        "file": str(Path(path).relative_to(results_dir)),
        "sha256": sha256_file(path),
        "task": task,
        "latency": cpu_latency(model, vocab_size=vocab_size),
    }


@torch.no_grad()
def cpu_latency(model: nn.Module, *, vocab_size: int, seq_len: int = LATENCY_SEQ_LEN,
                batches=LATENCY_BATCHES, threads: int = LATENCY_THREADS,
                min_run_s: float = LATENCY_MIN_RUN_S) -> dict:
    """Milliseconds per example of a forward pass on CPU at each batch size: the median of
    torch.utils.benchmark's repeated runs (it warms up and pins the thread count), over
    random full-length rows (no padding; `seq_len` tokens, or the model's positions if it
    has fewer). The model is moved to the CPU for this."""
    from torch.utils.benchmark import Timer

    from cramming.train.hardware import cpu_name

    model = model.to("cpu").eval()
    # A model trained on shorter rows has fewer positions: timed at its own length (recorded).
    seq_len = min(seq_len, getattr(getattr(model, "cfg", None), "seq_len", seq_len))
    generator = torch.Generator().manual_seed(0)
    per_example = {}
    for batch in batches:
        ids = torch.randint(5, vocab_size, (batch, seq_len), generator=generator)
        mask = torch.ones_like(ids)
        timer = Timer("model(ids, mask)", globals={"model": model, "ids": ids, "mask": mask},
                      num_threads=threads)
        median_s = timer.blocked_autorange(min_run_time=min_run_s).median
        per_example[f"batch_{batch}_ms"] = round(1000 * median_s / batch, 4)
    return {**per_example, "seq_len": seq_len, "threads": threads, "cpu": cpu_name(),
            "torch": torch.__version__}


def describe(record: dict) -> str:
    """One line for the command's output."""
    latency = record["latency"]
    return (f"deployed model ({record['method']}): {record['stored_bytes']:,} bytes, "
            f"{record['bits']}-bit, sparsity {record['sparsity']:.3f}, "
            f"{record['nonzero_params']:,} of {record['params']:,} parameters kept; CPU "
            f"latency {latency['batch_1_ms']:.2f} ms/example at batch 1, "
            f"{latency['batch_64_ms']:.2f} at batch 64 ({latency['threads']} thread)")
