"""`python bench/compress.py`: train large, then compress, tested at CPU scale.

    python bench/compress.py                  # ../shared/data/corpus, ~25 min on 2 CPU cores
    python bench/compress.py --budget 60 --work /tmp/bench-compress --figure size.svg

"Train Large, Then Compress" (Li et al. 2020, arXiv:2002.11794): for a fixed training budget,
a larger model trained for fewer steps and then compressed hard beats a smaller model
compressed lightly at the same inference size. Here at CPU scale, with the real commands:

1. prepare the corpus (vocab 8192, the CPU presets' size; a 5% val split feeds the probes);
2. pretrain the small preset (`tiny`) for the whole budget, and the larger one (`mini`) for
   the budget less its pruning recovery time, so every variant's total training is the same
   budget;
3. compress: the small model to int8 and int4; the larger one to int8, int4 and, with the
   recovery time, prune:0.5+int4 (`cram compress`);
4. score every model (uncompressed ones too) on the offline probe suite (`cram eval probe`),
   which fine-tunes, deploys (quantizes) and measures the stored size and CPU latency of the
   deployed model the same way for all.

Prints a JSON table (preset, method, bytes, non-zero params, latency, score; score = mean
probe accuracy) and writes the score-against-size figure (`--figure`, SVG).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "data" / "corpus"
SMALL, LARGE = "tiny", "mini"
PRUNE_SHARE = 0.2  # of the budget, spent on the larger model's pruning recovery
VARIANTS = {SMALL: ["int8", "int4"], LARGE: ["int8", "int4", "prune:0.5+int4"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    parser.add_argument("--budget", type=float, default=150.0,
                        help="training seconds per model, compression training included")
    parser.add_argument("--work", default=None, help="folder for data and runs (default: temp)")
    parser.add_argument("--figure", default="compress_size_vs_score.svg")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO))
    import torch

    from cramming import pretrain
    from cramming.compress import compress
    from data_prep import prepare
    from glue_eval import evaluate_probes
    from leaderboard.plots import score_vs_size

    work = Path(args.work or tempfile.mkdtemp(prefix="bench-compress-"))
    started = time.perf_counter()
    data = work / "data"
    if not (data / "manifest.json").is_file():
        prepare([args.corpus], data, vocab_size=8192, val_fraction=0.05, quiet=True)
    recovery_s = round(PRUNE_SHARE * args.budget, 1)
    runs = {}
    for preset, budget in ((SMALL, args.budget), (LARGE, args.budget - recovery_s)):
        run = work / preset
        pretrain(data, run, budget_s=budget, preset=preset, device="cpu", force=True, quiet=True)
        runs[(preset, "none")] = run
        for method in VARIANTS[preset]:
            out = work / f"{preset}-{method.replace(':', '').replace('+', '-')}"
            compress(run, method, out, force=True, quiet=True,
                     budget=recovery_s if method.startswith("prune") else None)
            runs[(preset, method)] = out

    rows = []
    torch.set_num_threads(1)
    for (preset, method), run in runs.items():
        result = evaluate_probes(run, force=True, quiet=True, threads=1)
        deployment = result["deployment"]
        summary = json.loads((run / "summary.json").read_text())
        scores = {task: spec["metrics"]["accuracy"] for task, spec in result["tasks"].items()}
        rows.append({
            "preset": preset, "method": method, "bytes": deployment["stored_bytes"],
            "nonzero_params": deployment["nonzero_params"], "params": deployment["params"],
            "bits": deployment["bits"], "sparsity": round(deployment["sparsity"], 4),
            "latency_ms_b1": deployment["latency"]["batch_1_ms"],
            "latency_ms_b64": deployment["latency"]["batch_64_ms"],
            "train_elapsed_s": summary["train_elapsed_s"], "budget_s": summary["budget_s"],
            "val_loss": summary["val_loss"], "probes": scores,
            "score": round(sum(scores.values()) / len(scores), 2),
        })
    points = [{"name": f"{r['preset']} {r['method']}", "bytes": r["bytes"], "score": r["score"],
               "compressed": r["method"] != "none",
               "parent": None if r["method"] == "none" else f"{r['preset']} none"}
              for r in rows]
    score_vs_size(points, Path(args.figure), ylabel="probe accuracy (mean of 2 tasks)")
    print(json.dumps({
        "budget_s": args.budget, "recovery_s": recovery_s, "corpus": args.corpus,
        "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
        "figure": args.figure, "seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
