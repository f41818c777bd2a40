"""`python bench/scaling.py`: fit the planner's loss law from a grid of short CPU pretraining runs.

    python bench/scaling.py                      # corpus from ../shared/data/corpus, ~15 min
    python bench/scaling.py --corpus DIR --work /tmp/scaling --out cramming/plan/scaling_law.json

Prepares a data dir from the corpus (vocab 8192, the CPU presets' size), then trains each shape
of a small grid for each of a few wall-clock budgets with the real `cram pretrain` machinery
(the `tiny` preset's recipe, the shape overridden), one thread per run, one run at a time. Each
run gives (N block parameters, D tokens seen, validation MLM loss); SciPy fits
L = E + A/N^alpha + B/D^beta to them and the constants, the runs and the residuals go to
`cramming/plan/scaling_law.json`, which `cram plan` loads. `--refit` refits stored runs without
training again.

The runs are tiny (N up to ~3M, D up to ~2M tokens); a plan for a GPU day extrapolates this law
by orders of magnitude, and `cram plan` reports by how much.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "data" / "corpus"

# (width, depth): block parameters span ~30x. Head size 64 as the planner's shapes.
SHAPES = [(64, 2), (128, 2), (128, 4), (256, 2), (256, 4)]
BUDGETS_S = [30, 75]  # every shape at every budget: D varies ~2.5x at fixed N
EXTRA = [(128, 4, 140), (256, 4, 140)]  # longer runs stretch the D range at two sizes


def grid() -> list[tuple[int, int, float]]:
    return [(w, d, b) for b in BUDGETS_S for w, d in SHAPES] + EXTRA


def run_grid(data, work: Path, runs: list[tuple[int, int, float]]) -> list[dict]:
    import torch

    from cramming import pretrain
    from cramming.plan.speed_law import param_counts

    torch.set_num_threads(1)
    records = []
    for i, (width, depth, budget_s) in enumerate(runs, 1):
        heads = max(1, width // 64)
        overrides = [f"model.hidden={width}", f"model.layers={depth}", f"model.heads={heads}",
                     f"model.ffn_hidden={4 * width}", f"model.head_hidden={width}",
                     "impl.threads=1", "impl.checkpoint_every_min=60"]
        started = time.perf_counter()
        summary = pretrain(data, work / f"w{width}-d{depth}-{budget_s:g}s", budget_s=budget_s,
                           preset="tiny", overrides=overrides, device="cpu", force=True,
                           quiet=True)
        cfg_counts = param_counts(_model_config(summary))
        record = {
            "width": width, "depth": depth, "heads": heads, "budget_s": budget_s,
            "block_params": cfg_counts["blocks"], "params": summary["params"],
            "tokens": summary["tokens_seen"], "steps": summary["steps"],
            "val_loss": summary["val_loss"], "train_loss": summary["train_loss"],
            "train_elapsed_s": summary["train_elapsed_s"],
        }
        records.append(record)
        print(f"[{i}/{len(runs)}] {depth} x {width}, {budget_s:g}s: N={record['block_params']:,} "
              f"D={record['tokens']:,} val loss {record['val_loss']:.4f} "
              f"({time.perf_counter() - started:.0f}s wall)", flush=True)
    return records


def _model_config(summary: dict):
    from cramming import ModelConfig

    fields = ModelConfig.__dataclass_fields__
    return ModelConfig(**{k: v for k, v in summary["model"].items() if k in fields})


def fit_and_write(records: list[dict], meta: dict, out: Path) -> None:
    """Fit the free and the prior-anchored law; ship the anchored one with both recorded."""
    from crambench.files import write_json_atomic
    from cramming.plan.scaling_law import CHINCHILLA, fit_loss_law

    columns = ([r["block_params"] for r in records], [r["tokens"] for r in records],
               [r["val_loss"] for r in records])
    free = fit_loss_law(*columns)
    law = fit_loss_law(*columns, prior=CHINCHILLA)
    for record in records:
        record["predicted_loss"] = float(law.loss(record["block_params"], record["tokens"]))
        record["residual"] = record["val_loss"] - record["predicted_loss"]
    # Sources as paths relative to the repo: a law file names no folder of one machine.
    data = meta.get("data", {})
    data["sources"] = [os.path.relpath(src, REPO) if os.path.isabs(src) else src
                       for src in data.get("sources", [])]
    result = law.to_dict()
    unconstrained = free.to_dict()
    del unconstrained["format"]
    result["fit"].update(meta)
    result["fit"]["unconstrained"] = unconstrained
    result["runs"] = records
    write_json_atomic(out, result)
    for name, fitted in (("unconstrained", free), ("shipped (Chinchilla prior)", law)):
        print(f"{name}: L = {fitted.E:.3f} + {fitted.A:.4g}/N^{fitted.alpha:.3f} + "
              f"{fitted.B:.4g}/D^{fitted.beta:.3f}  rms residual "
              f"{fitted.fit['rms_residual']:.4f}, max {fitted.fit['max_abs_residual']:.4f}")
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--work", type=Path, help="where data and runs go (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=REPO / "cramming" / "scaling_law.json")
    parser.add_argument("--refit", type=Path, metavar="LAW.json",
                        help="refit the runs stored in a law file instead of training again")
    args = parser.parse_args(argv)
    os.environ.setdefault("CI", "true")  # no progress bars in the log

    import json

    from cramming.train.hardware import software_info
    from data_prep import prepare

    if args.refit:
        stored = json.loads(args.refit.read_text())
        meta = {k: v for k, v in stored["fit"].items() if k in META_KEYS}
        fit_and_write(stored["runs"], meta, args.out)
        return 0
    if not args.corpus.is_dir():
        print(f"scaling: corpus folder not found: {args.corpus}", file=sys.stderr)
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="cram-scaling-"))
    data = work / "data"
    started = time.perf_counter()
    # 5% of documents for validation: the 1% default leaves only ~50 rows of this corpus.
    manifest = prepare([str(args.corpus)], data, vocab_size=8192, seq_len=128,
                       val_fraction=0.05, force=True, quiet=True)
    print(f"data: {manifest['num_sequences']} rows ({time.perf_counter() - started:.0f}s)",
          flush=True)
    records = run_grid(data, work, grid())
    meta = {
        "source": "bench/scaling.py: grid of short CPU runs of cram pretrain (tiny recipe, "
                  "shape overridden), validation MLM loss at the end of each budget",
        "fitted_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} CPU, 1 torch thread per run",
        "software": software_info(),
        "data": {"sources": [s.get("name") for s in manifest.get("sources", [])],
                 "data_sha256": manifest.get("data_sha256"), "vocab_size": 8192,
                 "seq_len": 128, "val_fraction": 0.05},
        "wall_s": round(time.perf_counter() - started, 1),
        "note": "N = transformer-block parameters, D = tokens seen; vocabulary 8192. Losses "
                "of models with another vocabulary are on another scale: use the law to rank "
                "shapes, not as an absolute prediction.",
    }
    fit_and_write(records, meta, args.out)
    return 0


META_KEYS = ("source", "fitted_utc", "machine", "software", "data", "wall_s", "note")


if __name__ == "__main__":
    sys.exit(main())
