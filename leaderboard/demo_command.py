"""`cram demo [--budget 3m] [--out demo-out] [--glue-dir DIR]`

The whole pipeline on the embedded demo corpus, on CPU, offline: prepare, pretrain the `tiny`
preset for the budget, score it (GLUE from --glue-dir or the Hub, else the offline probes),
submit an open-track entry and build the results site. Prints where each output is.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--budget", default="3m", help="pretraining budget (default 3m)")
    parser.add_argument("--out", default="demo-out", help="output folder (default demo-out)")
    parser.add_argument("--glue-dir", default=None,
                        help="local GLUE folder to score on (default: try the Hub, else the "
                             "offline probes)")
    parser.add_argument("--max-docs", type=int, default=None,
                        help="use only the first N documents of the demo corpus (faster)")
    parser.add_argument("--force", action="store_true",
                        help="prepare the data again even if OUT/data is complete")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from leaderboard import run_demo

    result = run_demo(args.out, budget=args.budget, glue_dir=args.glue_dir,
                      max_docs=args.max_docs, force=args.force, quiet=args.quiet)
    print()
    print(f"pretrained {result['steps']} steps in {result['train_elapsed_s']:.0f} s, "
          f"val MLM loss {result['val_loss']:.3f}")
    if result["suite"] == "glue":
        partial = "" if result["avg_complete"] else " (partial: only the tasks scored)"
        print(f"scored on {result['note']}: GLUE avg (cram) {result['avg_cramming']:.1f}"
              f"{partial}")
    else:
        scores = ", ".join(f"{task} {value:.1f}" for task, metrics in
                           result["probe_scores"].items() for value in metrics.values())
        print(f"scored on {result['note']}: {scores}")
    print(f"track: {result['track']} ({result['track_reason']})")
    for label in ("data", "run", "results", "entry", "site"):
        print(f"  {label:8} {result[label]}")
    print(f"open {result['site']} in a browser; total {result['seconds'] / 60:.1f} min")
    return 0
