"""`cram plan --budget 24h --gpu a6000`: rank BERT shapes for a budget and a GPU.

    cram plan --budget 24h --gpu a6000                     # stored (derived) GPU constants
    cram plan --budget 24h --gpu a6000 --json --top 10
    cram plan --budget 10m --gpu auto --measure --out planned.yaml   # time this machine
    cram pretrain --data DATA --budget 10m --preset planned.yaml --out RUN
"""

from __future__ import annotations

import argparse

from crambench import options
from crambench.progress import QUIET_HELP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--budget", type=options.budget, required=True,
                        help="training budget: 24h, 90m, 45s, ...")
    parser.add_argument("--gpu", default="auto",
                        help="a6000, a4000, rtx2080ti (stored constants) or auto (time this "
                             "machine's device)")
    parser.add_argument("--data", help="prepared data dir: its vocabulary and row length")
    parser.add_argument("--measure", action="store_true",
                        help="fit the speed law to timings on this machine (implied by auto)")
    parser.add_argument("--top", type=options.whole(1), default=5, help="rows to show (default 5)")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.add_argument("--out", metavar="PRESET.yaml", help="write the top shape as a preset")
    parser.add_argument("--quiet", action="store_true", help=QUIET_HELP)


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from cramming.plan.planner import format_table, plan, write_preset
    from cramming.train.budget import parse_budget

    result = plan(parse_budget(args.budget), args.gpu, data=args.data, measure=args.measure,
                  top=args.top, quiet=args.quiet)
    if args.out:
        result["preset_written"] = str(write_preset(result, args.out))
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        print(format_table(result))
    return 0
