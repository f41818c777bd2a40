"""`cram compress --run RUN --method METHOD --out CRUN`: a compressed copy of a finished run.

    cram compress --run runs/mini --method prune:0.5 --budget 10m --out runs/mini-p50
    cram compress --run runs/mini --method int8 --out runs/mini-int8
    cram compress --run runs/mini --method prune:0.7+int4 --budget 10m --out runs/mini-p70-int4
"""

from __future__ import annotations

import argparse

from crambench import options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from crambench.progress import QUIET_HELP

    parser.add_argument("--run", dest="run_dir", metavar="RUN", required=True,
                        help="finished run dir to compress (its final/ model)")
    parser.add_argument("--method", required=True,
                        help="prune:SPARSITY (iterative magnitude pruning with recovery "
                             "training), int8 or int4 (weight quantization after fine-tuning), "
                             "or both joined by +, e.g. prune:0.5+int8")
    parser.add_argument("--out", required=True, help="compressed run dir to create")
    parser.add_argument("--budget", type=options.budget, default=None,
                        help="wall-clock budget of pruning's recovery training (required with "
                             "prune:, e.g. 20m); it counts against the day's budget")
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"),
                        help="where recovery training runs")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    parser.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="recovery-training overrides of the run's config, e.g. "
                             "optim.lr=5e-4 train.batch_size=64")


def run(args: argparse.Namespace) -> int:
    # `--run` is stored as `run_dir`: the CLI keeps this module's `run` under `args.run`.
    from cramming.compress.job import compress

    summary = compress(args.run_dir, args.method, args.out, budget=args.budget,
                       device=args.device, overrides=args.overrides, force=args.force,
                       quiet=args.quiet)
    record, lineage = summary["compression"], summary["lineage"]
    bits = f", int{record['bits']} after fine-tuning" if record["bits"] != 32 else ""
    rounds = f", {len(record['rounds'])} pruning rounds" if record["rounds"] else ""
    print(f"cram compress: {args.out}: {record['method']}: sparsity {record['sparsity']:.4f} "
          f"({record['nonzero_params']:,} of {record['params']:,} parameters kept){bits}"
          f"{rounds}; final/ {record['stored_bytes']:,} bytes; compression trained "
          f"{lineage['stage_train_elapsed_s']:.1f}s of {lineage['stage_budget_s']:g}s, run "
          f"total {summary['train_elapsed_s']:.1f}s of {summary['budget_s']:g}s")
    return 0
