"""`cram submit --run RUN --name NAME [--out entries/NAME.json] [--force]`
`cram submit --results FILE --name NAME [--model PATH] [--out ...] [--force]`

Turns a scored run dir into a leaderboard entry (`cram-entry/2`): the run's summary, its data
sources, its GLUE (or probe) results in full, the track Rules v1 give it, and the hash chain
data -> config -> model -> results. With `--results`, an outside model's results file
(`cram eval glue|probe --model PATH --out FILE`) becomes an entry instead: no run, the model
folder's hash, the results in full, the open track; shown among the baselines, never ranked.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    scored = parser.add_mutually_exclusive_group(required=True)
    # dest run_dir: the CLI keeps this module's `run` function under `args.run`.
    scored.add_argument("--run", dest="run_dir", metavar="RUN",
                        help="run dir with summary.json, final/ and eval/glue.json")
    scored.add_argument("--results", metavar="FILE",
                        help="an outside model's results instead (the --out of `cram eval glue "
                             "--model PATH`): an unranked baseline entry")
    parser.add_argument("--model", metavar="PATH",
                        help="with --results: the model folder whose files are hashed into the "
                             "entry (default: the local folder the results name)")
    parser.add_argument("--name", required=True,
                        help="entry name: letters, digits, '.', '_' or '-'")
    parser.add_argument("--out", default=None, help="entry file (default entries/NAME.json)")
    parser.add_argument("--force", action="store_true", help="replace an existing entry file")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from crambench.errors import UserError
    from leaderboard import submit, submit_results

    out = Path(args.out) if args.out else Path("entries") / f"{args.name}.json"
    if args.results is not None:
        entry = submit_results(args.results, args.name, out=out, force=args.force,
                               model=args.model)
    elif args.model is not None:
        raise UserError("--model goes with --results (an outside model's results), not --run")
    else:
        entry = submit(args.run_dir, args.name, out=out, force=args.force)
    results = entry["results"]
    if results["suite"] == "glue":
        score = f"GLUE avg (cram) {_fmt(results['avg_cramming']['value'])}"
    else:
        score = f"{results['suite']} results: no GLUE score"
    track = entry["track"] + (f" ({entry['track_reason']})" if entry["track_reason"] else "")
    if args.results is not None:
        model = entry["outside_model"]
        print(f"wrote {out}: outside model {model['source']} ({model['model_type']}, "
              f"{model['params']:,} parameters, folder_sha256 {model['folder_sha256'][:12]}...), "
              f"protocol {results['protocol']['name']}, {score}; track {track}: a baseline, "
              "never ranked")
        return 0
    print(f"wrote {out}: {score}; track {track}")
    return 0


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"
