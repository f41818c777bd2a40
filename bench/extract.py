"""python bench/extract.py [--corpus ../shared/data/corpus] [--teacher-budget 3m]
                         [--extract-budget 4m] [--space layers=1,2 hidden=64,128 ffn=256]

Does extraction beat training the same small shape from scratch for the same time?

1. prepare the corpus (vocab 8192, 5% of documents for val, so the probe tasks have rows);
2. pretrain a `tiny` teacher for --teacher-budget;
3. `cram extract` from it with a small grid for --extract-budget (half search, half training
   of the chosen shape);
4. pretrain the chosen shape from scratch (the `tiny` recipe, that shape) for the same
   --extract-budget;
5. score teacher, extracted and scratch runs: val MLM loss (the same val rows and masks for
   all three) and the offline probe tasks (`cram eval probe`); with --glue-dir, also the
   `quick` GLUE protocol on --tasks.

Everything runs in a temporary folder (or --work) on CPU; the last line printed is one JSON
object with every figure. Run it alone on the machine: the budgets are wall-clock.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "data" / "corpus"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--teacher-budget", default="3m")
    parser.add_argument("--extract-budget", default="4m")
    parser.add_argument("--space", nargs="+", default=["layers=1,2", "hidden=64,128", "ffn=256"])
    parser.add_argument("--glue-dir", type=Path, default=None,
                        help="a GLUE folder: also score the quick protocol on --tasks")
    parser.add_argument("--tasks", default="sst2,rte")
    parser.add_argument("--work", type=Path, default=None, help="keep the runs here")
    args = parser.parse_args()
    if args.work is None:
        with tempfile.TemporaryDirectory(prefix="bench-extract-") as tmp:
            run_bench(args, Path(tmp))
    else:
        args.work.mkdir(parents=True, exist_ok=True)
        run_bench(args, args.work)


def run_bench(args, work: Path) -> None:
    from cramming import parse_budget, pretrain
    from cramming.extract.job import extract
    from data_prep import prepare

    started = time.perf_counter()
    data = work / "data"
    prepare([str(args.corpus)], data, vocab_size=8192, val_fraction=0.05, quiet=True,
            force=True)
    teacher = pretrain(data, work / "teacher", budget_s=parse_budget(args.teacher_budget),
                       preset="tiny",
                       device="cpu", force=True, quiet=True)
    extracted = extract(work / "teacher", data, work / "extracted", budget=args.extract_budget,
                        space=args.space, device="cpu", force=True, quiet=True)
    shape = extracted["model"]
    overrides = [f"model.{key}={shape[key]}" for key in ("layers", "heads", "hidden",
                                                         "ffn_hidden")]
    scratch = pretrain(data, work / "scratch", budget_s=parse_budget(args.extract_budget),
                       preset="tiny",
                       overrides=overrides, device="cpu", force=True, quiet=True)
    runs = {"teacher": teacher, "extracted": extracted, "scratch": scratch}
    result = {
        "teacher_budget_s": teacher["budget_s"],
        "extract_budget_s": extracted["lineage"]["stage_budget_s"],
        "chosen": extracted["extracted_from"]["chosen"],
        "candidates": extracted["extracted_from"]["candidates"],
        "runs": {name: score(work / name, summary, args) for name, summary in runs.items()},
        "seconds": round(time.perf_counter() - started, 1),
    }
    search = json.loads((work / "extracted" / "search.json").read_text())
    result["search"] = [{key: row[key] for key in ("name", "params", "latency_b1_ms",
                                                    "latency_b64_ms", "val_loss",
                                                    "val_distill_loss", "steps", "w", "pareto")}
                        for row in search["candidates"]]
    extracted_loss = result["runs"]["extracted"]["val_loss"]
    result["val_loss_gain_vs_scratch"] = round(result["runs"]["scratch"]["val_loss"]
                                               - extracted_loss, 5)
    print(json.dumps(result))


def score(run: Path, summary: dict, args) -> dict:
    from glue_eval import evaluate_glue, evaluate_probes

    probes = evaluate_probes(run, quiet=True, device="cpu", force=True)
    record = {
        "val_loss": summary["val_loss"],
        "params": summary["params"],
        "shape": summary["model"],
        "steps": summary["steps"],
        "train_elapsed_s": summary["train_elapsed_s"],
        "probe": {task: spec["metrics"]["accuracy"] for task, spec in probes["tasks"].items()},
    }
    if args.glue_dir is not None:
        glue = evaluate_glue(run, tasks=args.tasks, glue_dir=args.glue_dir, protocol="quick",
                             quiet=True, device="cpu", force=True)
        record["glue_quick"] = {task: spec["metrics"] for task, spec in glue["tasks"].items()}
        record["glue_quick_avg"] = glue["avg_glue"]["value"]
    return record


if __name__ == "__main__":
    main()
