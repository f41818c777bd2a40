"""`python bench/gpu_check.py --glue-dir PATH/TO/glue`: one command that checks a CUDA machine.

It trains the `crammed-bert` preset with bf16 autocast (fp16 on GPUs without bf16), fused AdamW
and `torch.compile` for a few minutes (`--budget`, default 5m) on the embedded demo corpus
(prepared once into --work), fine-tunes one GLUE task with the `cramming` protocol (bf16
autocast there too), and with two or more GPUs runs the same training through DDP on all of
them. The last line printed is one JSON object:

    tokens_per_s          steady training throughput (first fifth of the log left out)
    mfu                   model FLOPs utilisation: 3 x forward matmul FLOPs per token (the
                          sparse MLM head counted on the masked rows only) x tokens/s over the
                          device's dense bf16 peak (bench/throughput.py's table)
    peak_memory_gb        torch.cuda.max_memory_allocated
    compile_s             dynamo + inductor time, forward and backward graphs
    time_to_first_step_s  clock start (before the model is built) to the end of step 1
    budget_overrun_s      train_elapsed_s - budget_s: must be <= 0
    micro_batches_per_step  at the first and the last step (the batch ramps up)
    finetune              seconds to fine-tune and score one GLUE task
    ddp                   the same for N ranks: tokens/s, scaling efficiency, overrun

Reduced mode for a CPU (what the tests run): `--device cpu --preset tiny --budget 30s`
(fp32, no compile unless --compile, the `quick` protocol unless --protocol says otherwise).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

from runs import (
    metrics,
    prepared_data,
    pretrain_ranks,
    scaling_efficiency,
    steady_tokens_per_s,
    vocab_override,
)
from throughput import peak_for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--preset", default="crammed-bert")
    parser.add_argument("--budget", default=None, help="training budget (default 5m; 30s "
                                                       "on the CPU)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="torch.compile the encoder (default: on CUDA only)")
    parser.add_argument("--nproc", type=int, default=None,
                        help="ranks for the DDP run (default: every GPU when there are 2+; "
                             "0 skips it)")
    parser.add_argument("--glue-dir", help="local GLUE folder (default: the Hub)")
    parser.add_argument("--task", default="rte", help="the GLUE task to fine-tune")
    parser.add_argument("--protocol", default=None,
                        help="fine-tuning protocol (default: cramming; quick on the CPU)")
    parser.add_argument("--data", help="a prepared data dir (default: the demo corpus, "
                                       "prepared into --work)")
    parser.add_argument("--work", help="folder for data and runs (default: a temporary one)")
    parser.add_argument("overrides", nargs="*", help="extra key=value config overrides")
    args = parser.parse_args()

    import torch

    from cramming.config import load_config
    from cramming.train.budget import parse_budget
    from cramming.train.pretrain import pretrain

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: torch sees no CUDA GPU (use --device cpu for the reduced check)")
    cuda = args.device == "cuda"
    budget = args.budget or ("5m" if cuda else "30s")
    use_compile = cuda if args.compile is None else args.compile
    protocol = args.protocol or ("cramming" if cuda else "quick")
    nproc = args.nproc if args.nproc is not None else (
        torch.cuda.device_count() if cuda and torch.cuda.device_count() > 1 else 0)
    work = Path(args.work or tempfile.mkdtemp(prefix="gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    # bf16 where the GPU has it; fp16 with the grad scaler on older ones (RTX 2080 Ti).
    precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "fp32"
    overrides = [f"impl.precision={precision}",
                 f"impl.compile={str(use_compile).lower()}", "impl.log_every=1", *args.overrides]
    cfg = load_config(args.preset, overrides)
    data = prepared_data(work, cfg.model.vocab_size, args.data)
    if fix := vocab_override(data, cfg.model.vocab_size):
        overrides = [*overrides, *fix]
        cfg = load_config(args.preset, overrides)

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    run = work / "run"
    summary = pretrain(data, run, budget_s=parse_budget(budget), preset=args.preset,
                       overrides=overrides,
                       device=args.device, force=True, quiet=True)
    records = metrics(run)
    tokens_per_s = steady_tokens_per_s(records)
    result = {
        "bench": "gpu_check",
        "device": summary["hardware"]["gpu_name"] or f"cpu ({summary['hardware']['cpu_name']})",
        "preset": args.preset, "params": summary["params"], "precision": summary["precision"],
        "compile": use_compile, "budget_s": summary["budget_s"],
        "train_elapsed_s": summary["train_elapsed_s"], "steps": summary["steps"],
        "tokens_per_s": tokens_per_s,
        "mfu": mfu(cfg, tokens_per_s, torch.device(args.device)),
        "peak": peak_for(torch.cuda.get_device_name()) if cuda else None,  # what mfu is of
        "peak_memory_gb": (round(torch.cuda.max_memory_allocated() / 2**30, 2)
                           if cuda else None),
        "compile_s": compile_seconds() if use_compile else 0.0,
        "time_to_first_step_s": records[0]["elapsed_s"] if records else None,
        "budget_overrun_s": round(summary["train_elapsed_s"] - summary["budget_s"], 3),
        "micro_batches_per_step": {
            "first": math.ceil(records[0]["batch_size"] / cfg.impl.micro_batch),
            "last": math.ceil(records[-1]["batch_size"] / cfg.impl.micro_batch),
        } if records else None,
        "stopped_by": summary["stopped_by"],
        "finetune": finetune_seconds(run, args, protocol),
        "torch": torch.__version__, "cuda": torch.version.cuda,
    }
    if nproc > 1:
        if cuda:  # hand this process's cached blocks back: rank 0 shares GPU 0 with it
            torch.cuda.empty_cache()
        result["ddp"] = ddp_run(work, data, args, budget, nproc, overrides, tokens_per_s)
    print(json.dumps(result))


def mfu(cfg, tokens_per_s, device) -> float | None:
    """Model FLOPs utilisation against the device's dense bf16 peak (None off CUDA): forward
    and backward are 3 x the forward's matmul FLOPs (backward: 2 x, for inputs and weights)."""
    from throughput import forward_flops, peak_tflops

    peak = peak_tflops(device)
    if not peak or not tokens_per_s:
        return None
    seq_len = cfg.model.seq_len
    masked_per_seq = cfg.train.mask_prob * seq_len  # the recipe's mask rate (specials aside)
    per_token = 3 * forward_flops(cfg.model, masked_per_seq, sparse=True) / seq_len
    return round(per_token * tokens_per_s / (peak * 1e12), 4)


def compile_seconds() -> float | None:
    """Dynamo's own account of compile time (forward and backward graphs) in this process."""
    try:
        from torch._dynamo.utils import calculate_time_spent
    except ImportError:
        return None
    return round(calculate_time_spent().get("total_wall_time", 0.0), 2)


def finetune_seconds(run: Path, args, protocol: str) -> dict:
    """Fine-tune and score one GLUE task on the run's model; its seconds and score."""
    from crambench.errors import UserError
    from glue_eval import evaluate_glue

    started = time.perf_counter()
    try:
        record = evaluate_glue(run, tasks=args.task, glue_dir=args.glue_dir, protocol=protocol,
                               device=args.device, quiet=True, force=True)
    except UserError as err:  # no GLUE here (offline without --glue-dir)
        return {"task": args.task, "protocol": protocol, "skipped": str(err)}
    task = record["tasks"][args.task]
    return {"task": args.task, "protocol": protocol, "seconds": task["seconds"],
            "total_s": round(time.perf_counter() - started, 2), "n_train": task["n_train"],
            "epochs": task["epochs"], "metrics": task["metrics"]}


def ddp_run(work: Path, data: Path, args, budget: str, nproc: int, overrides: list[str],
            single_tokens_per_s: float | None) -> dict:
    """The same training on `nproc` ranks through `cram pretrain --nproc`."""
    result = pretrain_ranks(nproc, work / f"run-ddp{nproc}", data=data, device=args.device,
                            preset=args.preset, budget=budget, overrides=overrides)
    result["scaling_efficiency"] = scaling_efficiency(result["tokens_per_s"], nproc,
                                                      single_tokens_per_s)
    return result


if __name__ == "__main__":
    main()
