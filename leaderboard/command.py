"""`cram leaderboard validate ENTRY... [--run RUN] [--glue-dir DIR]` and
`cram leaderboard build --entries DIR --out SITE` and `cram leaderboard compare A B`.

`validate` checks an entry's schema, Rules v1, its averages and its loss curve against its
elapsed time; with `--run` every field the run dir and its data dir can vouch for (summary,
config, checkpoint train state, metrics log, model config, manifest, results) and every hash,
and with `--glue-dir` every metric from the saved dev predictions (docs/rules.md, "What
validate checks"). An outside model's entry is checked with `--results FILE`
(and `--glue-dir`) and `--model PATH` instead of `--run`. `build` writes a static site
(index.html, style.css, SVG figures), ranking only entries verified against their run dirs and
predictions, with outside models as unranked baselines, and a page for each `--sweep DIR`.
`compare` tests whether one GLUE result beats another (paired bootstrap).
"""

from __future__ import annotations

import argparse

from crambench import options
from leaderboard.compare import MIN_REPLICATES, REPLICATES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    validate = actions.add_parser("validate", help="check entries against schema, rules, runs",
                                  description="Check entries; exit 0 if all are valid.")
    validate.add_argument("entries", nargs="+", metavar="ENTRY", help="entry JSON file(s)")
    # dest run_dir: the CLI keeps this module's `run` function under `args.run`.
    validate.add_argument("--run", dest="run_dir", default=None,
                          help="run dir to check every claim and recompute every hash against")
    validate.add_argument("--glue-dir", default=None,
                          help="GLUE folder to rescore the saved dev predictions (needs --run "
                               "or --results)")
    validate.add_argument("--results", default=None, metavar="FILE",
                          help="an outside model's entry: its results file, to check the "
                               "results, their hash and their predictions against")
    validate.add_argument("--model", default=None, metavar="PATH",
                          help="an outside model's entry: its model folder, to hash its files")
    validate.set_defaults(handler=_validate)

    build = actions.add_parser("build", help="build the static results site",
                               description="Build a static results site from entries.")
    build.add_argument("--entries", required=True, help="folder of entry JSON files")
    build.add_argument("--out", required=True, help="site folder (index.html goes here)")
    build.add_argument("--runs", default=None,
                       help="folder of run dirs: entry NAME.json is checked against RUNS/NAME; "
                            "only entries verified there (and by --glue-dir) are ranked")
    build.add_argument("--glue-dir", default=None,
                       help="GLUE folder to rescore each entry's saved dev predictions")
    build.add_argument("--outside", default=None, metavar="DIR",
                       help="folder of outside models' results: entry NAME.json of an outside "
                            "model is checked against DIR/NAME/ (its results file and "
                            "predictions); shown as a baseline, never ranked")
    build.add_argument("--sweep", action="append", default=[], metavar="DIR",
                       help="a sweep dir (cram sweep) to show on a page of its own, from the "
                            "report `cram sweep report DIR` wrote; repeat for more")
    build.add_argument("--strict", action="store_true",
                       help="exit 1 if any entry is rejected")
    build.set_defaults(handler=_build)

    compare = actions.add_parser(
        "compare", help="does B's GLUE score beat A's? (paired bootstrap)",
        description="Compare two GLUE results by a paired bootstrap over the dev examples of "
                    "their saved predictions (and over fine-tuning seeds): per task and for "
                    "the averages, B - A, its 95% interval and a two-sided p-value.")
    compare.add_argument("a", metavar="A", help="results file (RUN/eval/glue.json) or run dir")
    compare.add_argument("b", metavar="B", help="results file or run dir to compare against A")
    compare.add_argument("--glue-dir", default=None,
                         help="GLUE folder with the dev labels (default: the Hub dataset)")
    compare.add_argument("--replicates", type=options.whole(MIN_REPLICATES), default=REPLICATES,
                         help=f"bootstrap replicates (default {REPLICATES}, at least "
                              f"{MIN_REPLICATES})")
    compare.add_argument("--seed", type=options.seed, default=0,
                         help="seed of the resampling, for a repeatable result (default 0)")
    compare.add_argument("--out", default=None, help="also write the comparison as JSON here")
    compare.set_defaults(handler=_compare)


def run(args: argparse.Namespace) -> int:
    return args.handler(args)


def _validate(args: argparse.Namespace) -> int:
    from leaderboard import validate_entries

    verdicts = validate_entries(args.entries, run=args.run_dir, glue_dir=args.glue_dir,
                                results=args.results, model=args.model)
    for path, problems in verdicts.items():
        prefix = f"{path}: " if len(verdicts) > 1 else ""
        if not problems:
            print(f"{prefix}valid")
        for problem in problems:
            print(f"{prefix}{problem}")
    return 1 if any(verdicts.values()) else 0


def _build(args: argparse.Namespace) -> int:
    import sys

    from leaderboard import build_site

    lines = []

    def log(line: str) -> None:  # rejected and unverified entries, with their reasons
        lines.append(line)
        print(line, file=sys.stderr)

    # Each sweep's report, read (and refused: missing, foreign, stale) before anything is
    # written. The sweep package sits above the leaderboard: the shell gives its reader.
    sweeps = [args.read_sweep(path) for path in args.sweep]
    index = build_site(args.entries, args.out, runs=args.runs, glue_dir=args.glue_dir,
                       outside=args.outside, sweeps=sweeps, log=log)
    print(f"wrote {index}")
    rejected = [line for line in lines if ": rejected: " in line]
    return 1 if args.strict and rejected else 0


def _compare(args: argparse.Namespace) -> int:
    from crambench.files import write_json_atomic
    from leaderboard.compare import compare_results, format_report

    record = compare_results(args.a, args.b, glue_dir=args.glue_dir,
                             replicates=args.replicates, seed=args.seed)
    print(format_report(record))
    if args.out:
        write_json_atomic(args.out, record)
        print(f"wrote {args.out}")
    return 0
