"""`cram submit --run RUN --name NAME [--out entries/NAME.json] [--force]`

Turns a scored run dir into a leaderboard entry (`cram-entry/1`): the run's summary, its data
sources, its GLUE (or probe) results in full, the track Rules v1 give it, and the hash chain
data -> config -> model -> results.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # dest run_dir: the CLI keeps this module's `run` function under `args.run`.
    parser.add_argument("--run", dest="run_dir", required=True,
                        help="run dir with summary.json, final/ and eval/glue.json")
    parser.add_argument("--name", required=True,
                        help="entry name: letters, digits, '.', '_' or '-'")
    parser.add_argument("--out", default=None, help="entry file (default entries/NAME.json)")
    parser.add_argument("--force", action="store_true", help="replace an existing entry file")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from leaderboard import submit

    out = Path(args.out) if args.out else Path("entries") / f"{args.name}.json"
    entry = submit(args.run_dir, args.name, out=out, force=args.force)
    results = entry["results"]
    if results["suite"] == "glue":
        score = f"GLUE avg (cram) {_fmt(results['avg_cramming']['value'])}"
    else:
        score = f"{results['suite']} results: no GLUE score"
    track = entry["track"] + (f" ({entry['track_reason']})" if entry["track_reason"] else "")
    print(f"wrote {out}: {score}; track {track}")
    return 0


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"
