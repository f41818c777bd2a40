"""`cram eval glue --run RUN --glue-dir DIR` and `cram eval probe --run RUN`.

`eval glue` fine-tunes the run's encoder on each GLUE task under one fixed protocol and writes
RUN/eval/glue.json (`--model PATH`: any `transformers` encoder instead, results to `--out`);
`--predict-test` also writes the GLUE server's test-set files and submission.zip.
`eval probe` does the same on small tasks built from the data dir's val split,
offline, and writes RUN/eval/probe.json (never rankable).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from crambench import options
from crambench.progress import QUIET_HELP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    suites = parser.add_subparsers(dest="suite", metavar="SUITE", required=True)

    glue = suites.add_parser("glue", help="fine-tune and score on GLUE dev sets",
                             description="Fine-tune and score a run on GLUE dev sets.")
    _scored(glue)
    glue.add_argument("--tasks", default="all",
                      help="all (every task but WNLI) or a comma list, e.g. cola,sst2,mrpc; "
                           "ax (with --predict-test) fine-tunes MNLI for the diagnostic set")
    glue.add_argument("--glue-dir", default=None,
                      help="local GLUE folder (CoLA/, SST-2/, ...); default: Hub nyu-mll/glue")
    glue.add_argument("--protocol", default="cramming", choices=["cramming", "quick"],
                      help="cramming: the ranked recipe; quick: capped CPU smoke run")
    glue.add_argument("--from-scratch", action="store_true",
                      help="control: same architecture from random weights")
    glue.add_argument("--predict-test", action="store_true",
                      help="also predict the test sets in --glue-dir (TASK/test.tsv, "
                           "diagnostic/diagnostic.tsv) and write the GLUE server's files and "
                           "submission.zip beside the results")
    _common(glue, "RUN/eval/glue.json (glue-from-scratch.json with --from-scratch)")
    glue.set_defaults(handler=_run_glue)

    probe = suites.add_parser("probe", help="offline probes from the data dir's val split",
                              description="Offline probe tasks built from the data dir's val "
                                          "split (not GLUE; never rankable).")
    _scored(probe)
    probe.add_argument("--data", default=None,
                       help="prepared data dir (default: data.path in RUN/config.yaml; needed "
                            "with --model)")
    _common(probe, "RUN/eval/probe.json")
    probe.set_defaults(handler=_run_probe)


def _scored(parser: argparse.ArgumentParser) -> None:
    """What is scored: a run, or an outside transformers encoder."""
    scored = parser.add_mutually_exclusive_group(required=True)
    scored.add_argument("--run", dest="run_dir", metavar="RUN", help="run dir with final/")
    scored.add_argument("--model", metavar="PATH",
                        help="an outside transformers encoder instead: a local folder (or a Hub "
                             "name) that AutoModelForSequenceClassification and AutoTokenizer "
                             "load; needs --out; never ranked")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="with --model: run the modeling code the model ships (e.g. a "
                             "`cram export` folder)")


def _common(parser: argparse.ArgumentParser, out_default: str) -> None:
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=options.seed_list, default=None, metavar="LIST",
                       help="fine-tune each task once per seed, e.g. 0,1,2,3,4; the task score is "
                            "the median over the seeds (default: the one seed 0)")
    seeds.add_argument("--seed", type=options.seed, default=None,
                       help="one fine-tuning seed (the same as --seeds N)")
    parser.add_argument("--out", default=None, help=f"results JSON (default {out_default})")
    parser.add_argument("--force", action="store_true", help="replace an existing results file")
    parser.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"],
                        help="where to fine-tune (auto: cuda if available)")
    parser.add_argument("--threads", type=options.whole(0), default=0,
                        help="CPU threads for torch (default 0: torch's choice); speed only")


def run(args: argparse.Namespace) -> int | None:
    # `--run` is stored as `run_dir`: the CLI keeps this module's `run` under `args.run`.
    from crambench.locks import dir_lock
    from glue_eval.results import default_out, recover

    if args.run_dir is None and args.out is None:  # --model without --out: the handler says why
        return args.handler(args)
    run_dir = None if args.run_dir is None else Path(args.run_dir).resolve()
    out = Path(args.out or default_out(run_dir, args.suite, getattr(args, "from_scratch", False)))
    # Results inside a run dir: its lock (no pretrain writes it meanwhile); elsewhere (or with
    # --model), the results file's own. A run dir that is not there is the handler's to report,
    # and a results folder not made yet holds nothing to guard (a refused eval writes nothing).
    inside = run_dir is not None and out.resolve().is_relative_to(run_dir)
    if not (run_dir if inside else out.parent).is_dir():
        return args.handler(args)
    with dir_lock(run_dir if inside else out, owner=f"cram eval {args.suite}"):
        recover(out)  # what an eval killed while writing its results left
        return args.handler(args)


def _run_glue(args: argparse.Namespace) -> int:
    from glue_eval import evaluate_glue
    from glue_eval.results import default_out

    result = evaluate_glue(args.run_dir, model=args.model,
                           trust_remote_code=args.trust_remote_code, tasks=args.tasks,
                           glue_dir=args.glue_dir, protocol=args.protocol, seeds=_seeds(args),
                           out=args.out, force=args.force, from_scratch=args.from_scratch,
                           predict_test=args.predict_test, quiet=args.quiet, device=args.device,
                           threads=args.threads)
    out = Path(args.out or default_out(args.run_dir, "glue", args.from_scratch))
    _summary(result, out)
    if "test_predictions" in result:  # where the server files went: a result too
        _test_summary(result["test_predictions"], out.parent)
    return 0


def _test_summary(tests: dict, folder: Path) -> None:
    files = ", ".join(f"{Path(f['file']).name} ({f['rows']} rows"
                      + (", majority class" if f["predicted_by"].startswith("majority") else "")
                      + ")" for f in tests["files"])
    print(f"wrote {folder / tests['submission']['file']}: {files}")
    if tests["missing"]:
        print(f"not in the submission (no test file in --glue-dir): {', '.join(tests['missing'])}"
              "; the GLUE server expects all eleven")


def _run_probe(args: argparse.Namespace) -> int:
    from glue_eval import evaluate_probes
    from glue_eval.results import default_out

    result = evaluate_probes(args.run_dir, model=args.model,
                             trust_remote_code=args.trust_remote_code, data=args.data,
                             seeds=_seeds(args), out=args.out, force=args.force,
                             quiet=args.quiet, device=args.device, threads=args.threads)
    _summary(result, args.out or default_out(args.run_dir, "probe"))
    return 0


def _seeds(args: argparse.Namespace):
    """--seeds LIST, or --seed N as the one seed (default 0)."""
    if args.seeds is not None:
        return args.seeds
    return 0 if args.seed is None else args.seed


def _summary(result: dict, path) -> None:
    """The deployment, the averages and where they were written: results, so printed under
    --quiet too (as every command prints its result line)."""
    from cramming.compress.deployment import describe
    from glue_eval.evaluate import print_averages

    if "deployment" in result:
        print(describe(result["deployment"]))
    print_averages(result)
    print(f"wrote {path}")
