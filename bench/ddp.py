"""`python bench/ddp.py --device cpu --preset tiny --nprocs 1,2`: training tokens/s of the same
global batch on 1, 2, ... DDP ranks, and the scaling efficiency.

Each world size is a real `cram pretrain --nproc N` run for `--seconds` of budget with a fixed
global batch (train.batch_start = train.batch_size), so every step does the same work whatever
the number of ranks; tokens/s is read from the run's metrics.jsonl after the first fifth of its
log lines (compilation and warm-up left out). Scaling efficiency of N ranks is
tokens/s(N) / (N * tokens/s(1)): 1.0 is perfect linear scaling.

On the CPU each rank gets `--threads` torch threads (default 1), so N ranks use N times the
cores of one: the efficiency then measures what DDP costs (gradient all-reduce over gloo, the
stop agreement), not what more cores buy. On a multi-GPU machine use --device cuda (one rank
per GPU, NCCL) and a GPU preset, e.g. `--preset crammed-bert --nprocs 1,2,4,8 --batch 1024`.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from runs import prepared_data, pretrain_ranks, scaling_efficiency, vocab_override


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--nprocs", default="1,2", help="world sizes to measure, e.g. 1,2,4,8")
    parser.add_argument("--seconds", type=float, default=40.0, help="budget of each run")
    parser.add_argument("--batch", type=int, default=64, help="global batch, sequences")
    parser.add_argument("--micro-batch", type=int, default=16, help="sequences per micro-batch")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per CPU rank")
    parser.add_argument("--data", help="a prepared data dir (default: the demo corpus, "
                                       "prepared into --work)")
    parser.add_argument("--work", help="folder for data and runs (default: a temporary one)")
    parser.add_argument("overrides", nargs="*", help="extra key=value config overrides")
    args = parser.parse_args()

    from cramming.config import load_config

    work = Path(args.work or tempfile.mkdtemp(prefix="bench-ddp-"))
    work.mkdir(parents=True, exist_ok=True)
    cfg = load_config(args.preset)
    data = prepared_data(work, cfg.model.vocab_size, args.data)
    args.overrides += vocab_override(data, cfg.model.vocab_size)
    nprocs = [int(n) for n in args.nprocs.split(",")]
    recipe = [f"train.batch_start={args.batch}", f"train.batch_size={args.batch}",
              f"impl.micro_batch={args.micro_batch}", "impl.log_every=1",
              f"impl.threads={args.threads if args.device == 'cpu' else 0}", *args.overrides]
    env = {"OMP_NUM_THREADS": str(args.threads)}
    results = [pretrain_ranks(n, work / f"ddp-{n}", data=data, device=args.device,
                              preset=args.preset, budget=f"{args.seconds}s", overrides=recipe,
                              env=env) for n in nprocs]
    single = next((r["tokens_per_s"] for r in results if r["nproc"] == 1), None)
    for r in results:
        r["scaling_efficiency"] = scaling_efficiency(r["tokens_per_s"], r["nproc"], single)
    print(json.dumps({
        "bench": "ddp", "device": args.device, "preset": args.preset,
        "global_batch": args.batch, "micro_batch": args.micro_batch,
        "threads_per_rank": args.threads if args.device == "cpu" else None,
        "budget_s": args.seconds, "cpu_count": os.cpu_count(), "results": results,
    }))


if __name__ == "__main__":
    main()
