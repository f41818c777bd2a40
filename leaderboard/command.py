"""`cram leaderboard validate ENTRY... [--run RUN] [--glue-dir DIR]` and
`cram leaderboard build --entries DIR --out SITE`.

`validate` checks an entry's schema, Rules v1, its averages and its loss curve against its
elapsed time; with `--run` every field the run dir and its data dir can vouch for (summary,
config, checkpoint train state, metrics log, model config, manifest, results) and every hash,
and with `--glue-dir` every metric from the saved dev predictions (README, "What `cram
leaderboard validate` checks"). `build` writes a static site (index.html, style.css, two SVG
figures).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    validate = actions.add_parser("validate", help="check entries against schema, rules, runs",
                                  description="Check entries; exit 0 if all are valid.")
    validate.add_argument("entries", nargs="+", metavar="ENTRY", help="entry JSON file(s)")
    # dest run_dir: the CLI keeps this module's `run` function under `args.run`.
    validate.add_argument("--run", dest="run_dir", default=None,
                          help="run dir to check every claim and recompute every hash against")
    validate.add_argument("--glue-dir", default=None,
                          help="GLUE folder to rescore the saved dev predictions (needs --run)")
    validate.set_defaults(handler=_validate)

    build = actions.add_parser("build", help="build the static results site",
                               description="Build a static results site from entries.")
    build.add_argument("--entries", required=True, help="folder of entry JSON files")
    build.add_argument("--out", required=True, help="site folder (index.html goes here)")
    build.set_defaults(handler=_build)


def run(args: argparse.Namespace) -> int:
    return args.handler(args)


def _validate(args: argparse.Namespace) -> int:
    from leaderboard import validate_entries

    verdicts = validate_entries(args.entries, run=args.run_dir, glue_dir=args.glue_dir)
    for path, problems in verdicts.items():
        prefix = f"{path}: " if len(verdicts) > 1 else ""
        if not problems:
            print(f"{prefix}valid")
        for problem in problems:
            print(f"{prefix}{problem}")
    return 1 if any(verdicts.values()) else 0


def _build(args: argparse.Namespace) -> int:
    from leaderboard import build_site

    index = build_site(args.entries, args.out)
    print(f"wrote {index}")
    return 0
