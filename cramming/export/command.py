"""`cram export --run RUN --out DIR [--force]`

Writes DIR, a folder that Hugging Face `transformers` loads with AutoConfig, AutoModel,
AutoModelForMaskedLM, AutoModelForSequenceClassification and AutoTokenizer
(`trust_remote_code=True`): the run's weights, its tokenizer, the modeling code and a model card.
Needs the `hf` extra (`pip install 'cramming-bench[hf]'`).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # dest run_dir: the CLI keeps this module's `run` function under `args.run`.
    parser.add_argument("--run", dest="run_dir", metavar="RUN", required=True,
                        help="run dir with final/ (a pretrained, compressed or extracted run)")
    parser.add_argument("--out", required=True, help="folder to write (must not exist)")
    parser.add_argument("--force", action="store_true",
                        help="replace an earlier export at --out")


def run(args: argparse.Namespace) -> int:
    from crambench.locks import dir_lock
    from cramming.export import export_run
    from cramming.export.tensors import AS_TRAINED, DEQUANTIZED

    with dir_lock(args.out, owner="cram export"):
        report = export_run(args.run_dir, args.out, force=args.force)
    diff = report["max_abs_diff"]
    check = "identical to" if diff == 0 else f"within {diff:.1e} of"
    reference = "the run's model" + (" with its encoder quantized"
                                     if report["weights"] == DEQUANTIZED else "")
    print(f"wrote {report['out']}: transformers folder, {report['params']:,} parameters, "
          f"vocab {report['vocab_size']}, model_sha256 {report['model_sha256'][:12]}...; "
          f"loaded back with transformers: MLM logits {check} {reference}")
    if report["weights"] != AS_TRAINED:
        sparsity = report["sparsity"]
        zeros = (f", {sparsity['zeros']:,} of {sparsity['entries']:,} pruned-weight entries "
                 f"zero (sparsity {sparsity['zeros'] / sparsity['entries']:.4f})"
                 if sparsity else "")
        what = ("dequantized to fp32" if report["weights"] == DEQUANTIZED
                else "dense fp32 from the run's compact sparse file")
        print(f"weights: {what}{zeros}; sha256 {report['weights_sha256'][:12]}... (see the "
              "model card)")
    print(f'use: AutoModelForMaskedLM.from_pretrained("{report["out"]}", '
          "trust_remote_code=True)")
    return 0
