"""`cram demo [--budget 3m] [--out demo-out] [--glue-dir DIR]`: every stage on a CPU in minutes.

prepare -> pretrain -> eval -> submit -> site, on the embedded demo corpus and the `tiny`
preset, so it needs no download. GLUE comes from `--glue-dir` when given (quick protocol, the
tasks the folder holds), else from the Hub; when the Hub is out of reach the run is scored on
the offline probe tasks instead, which makes an open-track entry without a GLUE score.

Layout of OUT: data/ (prepared corpus, reused when complete), run/ (replaced each time),
entries/demo.json, site/index.html. This is the CLI layer: the one module that calls every
stage's library, each through its public API.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from crambench import options
from crambench.errors import UserError
from crambench.progress import QUIET_HELP, progress_line
from data_prep.hub import hub_unreachable

DEMO_PRESET = "tiny"
DEMO_NAME = "demo"
DEMO_PARTS = {"data", "run", "entries", "site"}
# Validation share of the demo corpus (about a thousand documents): the default 1% leaves a
# handful of documents, too few for the probe tasks' dev sets or a --max-docs slice.
DEMO_VAL_FRACTION = 0.05


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--budget", type=options.budget, default="3m",
                        help="pretraining budget (default 3m)")
    parser.add_argument("--out", default="demo-out", help="output folder (default demo-out)")
    parser.add_argument("--glue-dir", default=None,
                        help="local GLUE folder to score on (default: try the Hub, else the "
                             "offline probes)")
    parser.add_argument("--max-docs", type=options.whole(1), default=None,
                        help="use only the first N documents of the demo corpus (faster)")
    parser.add_argument("--force", action="store_true",
                        help="prepare the data again even if OUT/data is complete")
    parser.add_argument("--quiet", action="store_true", help=QUIET_HELP)


def run(args: argparse.Namespace) -> int:
    result = run_demo(args.out, budget=args.budget, glue_dir=args.glue_dir,
                      max_docs=args.max_docs, force=args.force, quiet=args.quiet,
                      log=lambda line: progress_line(line, quiet=args.quiet),
                      warn=lambda line: print(f"cram demo: warning: {line}", file=sys.stderr))
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


def run_demo(out, *, budget: str = "3m", glue_dir=None, max_docs: int | None = None,
             force: bool = False, quiet: bool = False, log=print, warn=print) -> dict:
    """Run every stage into `out`; return the paths written and how the run was scored.

    `log` receives one progress line per stage and `warn` what the user must hear even under
    --quiet (GLUE out of reach, so the probes are scored instead); `quiet` silences the stages'
    own progress output.
    """
    from cramming import load_config, parse_budget, pretrain

    out = Path(out)
    budget_s = parse_budget(budget)  # a bad budget fails now, not after data preparation
    _check_out(out)
    started = time.perf_counter()
    data, run = out / "data", out / "run"

    settings = load_config(DEMO_PRESET).model
    manifest = None if force else _reusable_manifest(data, settings.vocab_size, max_docs)
    if manifest is not None:
        log(f"[1/5] reusing prepared data in {data}")
    else:
        from data_prep import prepare

        log(f"[1/5] preparing the embedded demo corpus into {data}")
        manifest = prepare(["demo"], data, vocab_size=settings.vocab_size,
                           seq_len=settings.seq_len, val_fraction=DEMO_VAL_FRACTION,
                           max_docs=max_docs, force=True, quiet=quiet)

    log(f"[2/5] pretraining the {DEMO_PRESET} preset on CPU for {budget} into {run}")
    # A --max-docs slice can be too small to fill the preset's vocabulary; the model follows
    # the tokenizer the data dir actually has.
    overrides = [] if manifest["vocab_size"] == settings.vocab_size else [
        f"model.vocab_size={manifest['vocab_size']}"]
    summary = pretrain(data, run, budget_s=budget_s, preset=DEMO_PRESET, overrides=overrides,
                       device="cpu", force=True, quiet=quiet)

    log("[3/5] scoring the run")
    results_file, note = _evaluate(run, glue_dir, quiet, log, warn)

    log("[4/5] writing the leaderboard entry")
    from leaderboard import build_site, submit

    entry_path = out / "entries" / f"{DEMO_NAME}.json"
    entry = submit(run, DEMO_NAME, out=entry_path, force=True)

    log("[5/5] building the results site")
    # The demo's entry is checked against its run (and predictions), so the site ranks it.
    index = build_site(out / "entries", out / "site", runs={DEMO_NAME: run}, glue_dir=glue_dir)
    return {
        "data": data, "run": run, "results": run / results_file, "entry": entry_path,
        "site": index, "suite": entry["results"]["suite"], "note": note,
        "track": entry["track"], "track_reason": entry["track_reason"],
        "avg_cramming": entry["results"]["avg_cramming"]["value"],
        "avg_complete": entry["results"]["avg_cramming"]["complete"],
        "probe_scores": {task: spec["metrics"] for task, spec in entry["results"]["tasks"].items()},
        "train_elapsed_s": summary["train_elapsed_s"], "steps": summary["steps"],
        "val_loss": summary["val_loss"], "seconds": time.perf_counter() - started,
    }


def _check_out(out: Path) -> None:
    """OUT must be new, empty, or an earlier demo's folder: the demo replaces what it made."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir()
                         if p.name not in DEMO_PARTS and not p.name.startswith("."))
        if foreign:
            raise UserError(f"--out {out} holds {', '.join(foreign[:3])}, which the demo did "
                            "not write; choose an empty or new folder")


def _reusable_manifest(data: Path, vocab_size: int, max_docs: int | None) -> dict | None:
    """The manifest of a complete data dir (every shard present and matching its hash) with
    our settings, or None when the data must be prepared again."""
    from data_prep import open_data_dir

    if not (data / "manifest.json").is_file():
        return None
    try:
        prepared = open_data_dir(data, verify_hashes=True)
    except UserError:
        return None
    settings = prepared.manifest.get("pipeline", {}).get("settings", {})
    reusable = (settings.get("vocab_size_requested") == vocab_size
                and settings.get("max_docs") == max_docs
                and settings.get("val_fraction") == DEMO_VAL_FRACTION)
    return prepared.manifest if reusable else None


def _evaluate(run: Path, glue_dir, quiet: bool, log, warn) -> tuple[str, str]:
    """(results file relative to the run, a note on what was scored)."""
    from glue_eval import evaluate_glue, evaluate_probes

    if glue_dir is not None:
        tasks = _tasks_in(Path(glue_dir))
        log(f"      GLUE from {glue_dir}: {', '.join(tasks)} (quick protocol)")
        evaluate_glue(run, tasks=tasks, glue_dir=glue_dir, protocol="quick", force=True,
                      quiet=quiet, device="cpu")
        return "eval/glue.json", f"GLUE dev from {glue_dir}, quick protocol"
    reason = hub_unreachable()
    if reason is None:
        try:
            evaluate_glue(run, protocol="quick", force=True, quiet=quiet, device="cpu")
            return "eval/glue.json", "GLUE dev from the Hub, quick protocol"
        except (UserError, OSError, ConnectionError) as err:
            reason = " ".join(str(err).split())[:200]
    warn(f"GLUE is not reachable on the Hub ({reason}); scoring the offline probe tasks "
         "instead (no GLUE score)")
    evaluate_probes(run, force=True, quiet=quiet, device="cpu")
    return "eval/probe.json", "offline probe tasks (the Hub was not reachable): no GLUE score"


def _tasks_in(glue_dir: Path) -> list[str]:
    from glue_eval import TASKS

    if not glue_dir.is_dir():
        raise UserError(f"--glue-dir {glue_dir} does not exist")
    tasks = [name for name, spec in TASKS.items()
             if spec.in_protocol and (glue_dir / spec.folder).is_dir()]
    if not tasks:
        raise UserError(f"--glue-dir {glue_dir} holds no GLUE task folder (CoLA/, SST-2/, ...)")
    return tasks
