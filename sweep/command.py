"""`cram sweep SPEC --out DIR` and `cram sweep report DIR`: a baseline against its variants.

    cram sweep examples/sweeps/tiny.yaml --out sweeps/tiny --dry-run
    cram sweep examples/sweeps/tiny.yaml --out sweeps/tiny
    cram sweep report sweeps/tiny
    cram sweep examples/sweeps/tiny.yaml --out sweeps/tiny --cell 3   # one job of an array
"""

from __future__ import annotations

import argparse

from crambench import options
from crambench.progress import QUIET_HELP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="SPEC|report",
                        help="a sweep spec (cram-sweep/1 YAML) to run into --out, or `report` "
                             "to compare the arms of the sweep in DIR")
    parser.add_argument("dir", nargs="?", metavar="DIR",
                        help="with report: the sweep dir (DIR/runs/ARM/seed-S)")
    parser.add_argument("--out", metavar="DIR",
                        help="sweep dir: DIR/runs/ARM/seed-S, one run dir per arm and seed")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan (every arm and seed, what is done) and the "
                             "pretraining time it needs; run nothing")
    parser.add_argument("--cell", type=options.whole(0), metavar="I",
                        help="run only cell I of the plan (--dry-run lists them), e.g. "
                             "$SLURM_ARRAY_TASK_ID; other cells may run at the same time")
    parser.add_argument("--spec", metavar="SPEC",
                        help="report: the spec of run dirs collected by hand (default: the "
                             "one DIR/sweep.json recorded)")
    parser.add_argument("--metric", help="report: another metric than the spec's (val_loss, "
                                         "avg_cramming, avg_glue, probe_avg, TASK.METRIC)")
    parser.add_argument("--alpha", type=options.number(0, 1, open_low=True, open_high=True),
                        help="report: another family-wise error rate than the spec's")
    parser.add_argument("--quiet", action="store_true", help=QUIET_HELP)


def run(args: argparse.Namespace) -> int:
    from crambench.errors import UserError

    if args.target == "report":
        if args.dir is None:
            raise UserError("give the sweep dir: cram sweep report DIR")
        if args.out or args.dry_run or args.cell is not None:
            raise UserError("--out, --dry-run and --cell are for running a sweep, not report")
        from sweep.report import format_report, sweep_report

        record = sweep_report(args.dir, spec_path=args.spec, metric=args.metric,
                              alpha=args.alpha)
        print(format_report(record))
        return 0
    if args.dir is not None:
        raise UserError(f"{args.dir}: give one spec file: cram sweep SPEC --out DIR")
    if args.out is None:
        raise UserError("--out DIR is required: where the sweep's run dirs go")
    if args.spec or args.metric or args.alpha is not None:
        raise UserError("--spec, --metric and --alpha are for cram sweep report")
    from sweep.job import run_sweep

    return run_sweep(args.target, args.out, dry_run=args.dry_run, cell=args.cell, quiet=args.quiet)
