"""`python bench/ablations.py --budget 90s --out ablations`: the cramming paper's main ablations
as one sweep of the `tiny` preset on the embedded demo corpus (three pretraining seeds), and
its report, printed as JSON beside each finding of the paper.

Each variant undoes one of the final recipe's choices (its code's `arch/crammed-bert` and
`train/bert-o4`), as the paper's tables do; the findings are those of its section 4
(Geiping & Goldstein 2022, arXiv 2212.14034 v1). At CPU scale, with minutes per run, the
measured verdicts may well disagree with the paper's 24-hour runs: the script reports what it
measured. `--dry-run` prints the plan.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.runs import prepared_data  # noqa: E402

# name -> (overrides that undo one choice of the final recipe, the paper's finding)
ABLATIONS = {
    "post-ln": (["model.norm_scheme=post"],
                "pre-LN: a small win, for stability; it allows lr 1e-3"),
    "mlp": (["model.ffn=mlp"], "gated (GLU) feed-forward: a small win"),
    "biases": (["model.linear_bias=true", "model.qkv_bias=true"],
               "no linear or QKV biases: a small win, from speed"),
    "learned-pos": (["model.pos_embedding=learned"],
                    "scaled sinusoidal positions over learned: a small win"),
    "head-transform": (["model.head_transform=true"],
                       "MLM head transform removed without ill effect"),
    # Adafactor's lr is a relative step (cramming.train.optimizers): torch's default 1e-2.
    "adafactor": (["optim.name=adafactor", "optim.lr=1e-2"],
                  "other optimizers: no gain over AdamW"),
    "cosine": (["train.schedule=cosine", "train.warmup_fraction=0.05"],
               "one-cycle schedule: the minimal loss"),
}


def spec(data: Path, budget: str, seeds: list[int]) -> dict:
    """The sweep spec (cram-sweep/1): `tiny` against each ablation, val MLM loss."""
    return {"format": "cram-sweep/1", "data": str(data), "budget": budget, "seeds": seeds,
            "device": "cpu", "baseline": {"name": "crammed", "preset": "tiny"},
            "variants": [{"name": name, "overrides": overrides}
                         for name, (overrides, _) in ABLATIONS.items()],
            "eval": {"suite": "none"}, "metric": "val_loss", "alpha": 0.05}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="90s",
                        help="pretraining budget of each run (default: tiny's own)")
    parser.add_argument("--seeds", default="0,1,2", help="pretraining seeds")
    parser.add_argument("--out", required=True, help="sweep dir")
    parser.add_argument("--data", help="prepared data dir (default: the demo corpus, prepared)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan only")
    args = parser.parse_args(argv)
    import yaml

    from sweep.job import run_sweep
    from sweep.report import sweep_report

    out = Path(args.out)
    data = prepared_data(out.parent if out.parent != Path("") else Path("."), 8192, args.data)
    seeds = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "ablations.yaml"
        path.write_text(yaml.safe_dump(spec(data.resolve(), args.budget, seeds)))
        # Progress and each run's line go to stderr: stdout is the JSON alone.
        with contextlib.redirect_stdout(sys.stderr if not args.dry_run else sys.stdout):
            status = run_sweep(path, out, dry_run=args.dry_run)
    if args.dry_run or status:
        return status
    record = sweep_report(out)
    rows = [{"variant": name, "diff": row["diff"], "interval": row["interval"], "p": row["p"],
             "p_holm": row["p_holm"], "verdict": row["verdict"],
             "tokens_per_s": record["arms"][name]["tokens_per_s"],
             "paper": ABLATIONS[name][1]} for name, row in record["comparisons"].items()]
    print(json.dumps({"budget": args.budget, "seeds": seeds,
                      "baseline": record["arms"]["crammed"], "ablations": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
