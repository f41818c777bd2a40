"""`cram extract --teacher RUN --data DATA --budget 2h --out XRUN`: a smaller model of a
trained run, chosen among sub-shapes of it and distilled from it (de Wynter & Perry's Bort).

    cram extract --teacher runs/tiny --data data/corpus --budget 10m --out runs/tiny-x
    cram extract --teacher runs/ref --data data/c4 --budget 2h --out runs/ref-x \
        --space layers=2,4,8 heads=4,8 hidden=256,512
"""

from __future__ import annotations

import argparse

from crambench import options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from crambench.progress import QUIET_HELP
    from cramming.extract.job import ALPHA, TEMPERATURE
    from cramming.extract.ranking import TRADEOFF

    parser.add_argument("--teacher", required=True, metavar="RUN",
                        help="a finished run dir (cram pretrain, or a derived run)")
    parser.add_argument("--data", required=True,
                        help="prepared data dir with the teacher's tokenizer")
    parser.add_argument("--budget", type=options.budget, required=True,
                        help="wall-clock time for the whole extraction (search and final "
                             "training): 2h, 90m, 45s or seconds; it adds to the teacher's")
    parser.add_argument("--out", required=True, metavar="XRUN", help="run dir to create")
    parser.add_argument("--space", nargs="+", default=(), metavar="DIM=V1,V2",
                        help="candidate values per dimension (layers, heads, hidden, ffn); "
                             "dimensions not given take the default grid")
    parser.add_argument("--search-budget", type=options.budget, default=None,
                        help="the part of --budget shared by the candidates (default: half)")
    parser.add_argument("--tradeoff", type=options.number(0), default=TRADEOFF,
                        help="nats of val loss worth an e-fold cut of size and latency, in the "
                             f"W-coefficient that picks the candidate (default {TRADEOFF})")
    parser.add_argument("--temperature", type=options.number(0, open_low=True), default=TEMPERATURE,
                        help=f"distillation temperature (default {TEMPERATURE})")
    parser.add_argument("--alpha", type=options.number(0, 1), default=ALPHA,
                        help=f"weight of the soft (teacher) targets (default {ALPHA})")
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"),
                        help="where to distill and train: auto (cuda when available, else "
                             "cpu), cuda or cpu")
    parser.add_argument("--seed", type=options.seed, default=None,
                        help="seed (default: the teacher's)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    parser.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="overrides of the teacher's recipe for the candidates, e.g. "
                             "optim.lr=5e-4 impl.micro_batch=64 (before --space)")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from crambench.locks import dir_lock
    from cramming.extract.job import SEARCH_FILE, extract, ranking_table

    with dir_lock(args.out, owner="cram extract"):  # refused now, not after the search
        summary = extract(
            args.teacher, args.data, args.out, budget=args.budget,
            search_budget=args.search_budget, space=args.space, tradeoff=args.tradeoff,
            temperature=args.temperature, alpha=args.alpha, device=args.device, seed=args.seed,
            overrides=args.overrides, force=args.force, quiet=args.quiet)
    # Results, printed under --quiet too: the ranked search, then the run written.
    print(ranking_table(json.loads((Path(args.out) / SEARCH_FILE).read_text())))
    lineage = summary["lineage"]
    print(f"cram extract: {args.out}: {summary['extracted_from']['chosen']}, "
          f"{summary['params']:,} params, val loss {summary['val_loss']}; extraction "
          f"{lineage['stage_train_elapsed_s']:.1f}s of {lineage['stage_budget_s']:g}s, "
          f"training in all {summary['train_elapsed_s']:.1f}s of {summary['budget_s']:g}s "
          f"(teacher {lineage['parent_train_elapsed_s']:.1f}s)")
    return 0
