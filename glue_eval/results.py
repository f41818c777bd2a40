"""Results files (contract 3): the JSON record and one prediction TSV per task and dev split.

Prediction files sit in `<stem>-predictions/` beside the JSON (`eval/glue.json` ->
`eval/glue-predictions/cola-dev.tsv`) and are named in the JSON by a path relative to it, with
their sha256. Each has the header `index\tprediction`; `index` is the row's position in the
dev split as `read_split` returns it, `prediction` a class id (Hub order, see tasks.py) or an
STS-B score. Scores are written with `repr`, so reading them back gives the exact values the
metrics in the JSON were computed from.
"""

from __future__ import annotations

import datetime as dt
import platform
from pathlib import Path

import numpy as np

from data_prep import UserError
from data_prep.files import atomic_dir, sha256_file, write_json_atomic

FORMAT = "cram-glue/1"


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_out(run, suite: str, from_scratch: bool = False) -> Path:
    """RUN/eval/glue.json, glue-from-scratch.json (the control never overwrites the real
    scores) or probe.json."""
    return Path(run) / "eval" / f"{suite}{'-from-scratch' if from_scratch else ''}.json"


def check_out_path(out: Path, force: bool) -> None:
    """Refuse before any work is done, not after an hour of fine-tuning."""
    if out.suffix != ".json":
        raise UserError(f"results path {out} must end in .json")
    if out.exists() and not force:
        raise UserError(f"results file {out} exists; pass --force to replace it")
    if predictions_dir(out).exists() and not force:  # the results would replace it
        raise UserError(f"predictions folder {predictions_dir(out)} exists; pass --force to "
                        "replace it")


def predictions_dir(out: Path) -> Path:
    return out.with_name(f"{out.stem}-predictions")


def format_predictions(indices: np.ndarray, predictions: np.ndarray) -> str:
    if predictions.dtype.kind == "f":
        values = [repr(float(v)) for v in predictions]
    else:
        values = [str(int(v)) for v in predictions]
    lines = ["index\tprediction", *(f"{int(i)}\t{v}" for i, v in zip(indices, values, strict=True))]
    return "\n".join(lines) + "\n"


def read_predictions(path) -> tuple[np.ndarray, np.ndarray]:
    """(indices int64, predictions) of a prediction TSV: int64 class ids, or float64 scores."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise UserError(f"cannot read predictions {path}: {err.strerror}") from None
    if not lines or lines[0] != "index\tprediction":
        raise UserError(f"{path}: expected header 'index\\tprediction'")
    try:
        pairs = [line.split("\t") for line in lines[1:]]
        indices = np.array([int(i) for i, _ in pairs], dtype=np.int64)
        raw = [v for _, v in pairs]
        is_float = any(("." in v) or ("e" in v.lower()) for v in raw)
        values = np.array([float(v) if is_float else int(v) for v in raw],
                          dtype=np.float64 if is_float else np.int64)
    except ValueError:
        raise UserError(f"{path}: every row must be '<index>\\t<prediction>'") from None
    return indices, values


def software() -> dict:
    import sklearn
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "scikit_learn": sklearn.__version__,
            "platform": platform.platform()}


def write_results(out: Path, record: dict, predictions: dict[tuple[str, str], tuple], *,
                  force: bool) -> dict:
    """Write prediction files then the JSON (which names them) atomically; returns the record.

    `predictions`: (task, split) -> (indices, values). The JSON is written last, so a results
    file never names prediction files that are not there.
    """
    check_out_path(out, force)
    pred_dir = predictions_dir(out)
    with atomic_dir(pred_dir, force=True) as tmp:
        for (task, split), (indices, values) in predictions.items():
            name = f"{task}-{split}.tsv"
            (tmp / name).write_text(format_predictions(indices, values), encoding="utf-8")
            record["tasks"][task].setdefault("predictions", []).append(
                {"split": split, "file": f"{pred_dir.name}/{name}",
                 "sha256": sha256_file(tmp / name)})
    write_json_atomic(out, record)
    return record
