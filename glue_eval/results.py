"""Results files (contract 3): the JSON record and one prediction TSV per task, dev split and
fine-tuning seed.

Prediction files sit in `<stem>-predictions/` beside the JSON (`eval/glue.json` ->
`eval/glue-predictions/cola-dev-seed0.tsv`) and are named in the JSON by a path relative to it,
with their sha256. Test-set predictions for the GLUE server (`--predict-test`) sit in
`<stem>-test/` (`eval/glue-test/RTE.tsv`, ..., `submission.zip`), recorded under
`test_predictions`.

Each dev prediction file has the header `index\tprediction`; `index` is the row's position in the
dev split as `read_split` returns it, `prediction` a class id (Hub order, see tasks.py) or an
STS-B score. Scores are written with `repr`, so reading them back gives the exact values the
metrics in the JSON were computed from.

Format `cram-glue/2` (written now) holds every seed: `protocol.seeds` lists them, and each task
has `seeds: [{seed, metrics, seconds, predictions}]`, its score `metrics` (the per-metric median
over the seeds, what the averages are computed from) and `spread` (mean, sample std, min, max
per metric). `cram-glue/1` (one seed: `protocol.seed`, the predictions on the task itself) is
still read; `seed_runs` gives the per-seed view of either.
"""

from __future__ import annotations

import datetime as dt
import platform
import shutil
from pathlib import Path

import numpy as np

from data_prep import UserError
from data_prep.files import atomic_dir, read_json_object, sha256_file, write_json_atomic

FORMAT = "cram-glue/2"
FORMAT_V1 = "cram-glue/1"  # one seed per results file; still read, no longer written
READABLE_FORMATS = (FORMAT_V1, FORMAT)


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_out(run, suite: str, from_scratch: bool = False) -> Path:
    """RUN/eval/glue.json, glue-from-scratch.json (the control never overwrites the real
    scores) or probe.json."""
    return Path(run) / "eval" / f"{suite}{'-from-scratch' if from_scratch else ''}.json"


def check_out_path(out: Path, force: bool) -> None:
    """Refuse before any work is done, not after an hour of fine-tuning."""
    _check_results_paths(out, force)
    if deployed_path(out).exists() and not force:
        raise UserError(f"deployed model {deployed_path(out)} exists; pass --force to "
                        "replace it")


def _check_results_paths(out: Path, force: bool) -> None:
    if out.suffix != ".json":
        raise UserError(f"results path {out} must end in .json")
    if out.exists() and not force:
        raise UserError(f"results file {out} exists; pass --force to replace it")
    folders = {"predictions": predictions_dir(out), "test predictions": test_dir(out)}
    for what, folder in folders.items():  # the results would replace them
        if folder.exists() and not force:
            raise UserError(f"{what} folder {folder} exists; pass --force to replace it")


def predictions_dir(out: Path) -> Path:
    return out.with_name(f"{out.stem}-predictions")


def test_dir(out: Path) -> Path:
    return out.with_name(f"{out.stem}-test")


def deployed_path(out: Path) -> Path:
    """The first task model as deployed, whose stored size and CPU latency the results report
    (`eval/glue.json` -> `eval/glue-model.safetensors`)."""
    return out.with_name(f"{out.stem}-model.safetensors")


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


def read_results(path) -> dict:
    """A results file of a readable format, or a one-line UserError naming the file."""
    path = Path(path)
    record = read_json_object(path)
    if record.get("format") not in READABLE_FORMATS:
        raise UserError(f"{path} has format {record.get('format')!r}, expected one of "
                        f"{', '.join(READABLE_FORMATS)}")
    tasks = record.get("tasks")
    if not isinstance(tasks, dict) or not all(isinstance(t, dict) for t in tasks.values()):
        raise UserError(f"{path}: 'tasks' is not an object of task results")
    return record


def seed_runs(results: dict, task: str) -> list[dict]:
    """Each fine-tuning seed's run of `task`: [{"seed", "metrics", "predictions"}, ...].

    `results` is a parsed results record of either readable format (a cram-glue/1 file holds
    one run: its seed in the protocol, its metrics and predictions on the task itself).
    """
    spec = results["tasks"][task]
    if results.get("format") == FORMAT_V1:
        return [{"seed": results.get("protocol", {}).get("seed"), "metrics": spec["metrics"],
                 "predictions": spec.get("predictions", [])}]
    return spec.get("seeds", [])


def software() -> dict:
    import sklearn
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "scikit_learn": sklearn.__version__,
            "platform": platform.platform()}


def write_results(out: Path, record: dict, predictions: dict[tuple[str, str, int], tuple], *,
                  force: bool, server_files: dict[str, dict] | None = None) -> dict:
    """Write prediction files then the JSON (which names them) atomically; returns the record.

    `predictions`: (task, split, seed) -> (indices, values); each file is named in the run of
    that seed (`record["tasks"][task]["seeds"]`). `server_files`: GLUE server file name ->
    {"text", "test_set", "rows", "predicted_by"} (None: no test predictions; an earlier
    run's test folder is removed, as it would not match these results). The JSON is written
    last, so a results file never names prediction files that are not there.
    """
    _check_results_paths(out, force)  # the deployed model, written just before, is ours
    if server_files is not None:
        record["test_predictions"] = write_server_files(test_dir(out), server_files)
    elif test_dir(out).exists():
        shutil.rmtree(test_dir(out))
    pred_dir = predictions_dir(out)
    with atomic_dir(pred_dir, force=True) as tmp:
        for (task, split, seed), (indices, values) in predictions.items():
            name = f"{task}-{split}-seed{seed}.tsv"
            (tmp / name).write_text(format_predictions(indices, values), encoding="utf-8")
            run = next(r for r in record["tasks"][task]["seeds"] if r["seed"] == seed)
            run.setdefault("predictions", []).append(
                {"split": split, "file": f"{pred_dir.name}/{name}",
                 "sha256": sha256_file(tmp / name)})
    write_json_atomic(out, record)
    return record


def write_server_files(folder: Path, server_files: dict[str, dict]) -> dict:
    """The server's TSVs and submission.zip in `folder` (replaced whole); their record, with
    paths relative to the results JSON."""
    from glue_eval.submission import SUBMISSION, TEST_SETS, submission_zip

    texts = {name: spec["text"] for name, spec in server_files.items()}
    with atomic_dir(folder, force=True) as tmp:
        (tmp / SUBMISSION).write_bytes(submission_zip(texts))
        files = []
        for name in sorted(server_files):
            (tmp / name).write_text(texts[name], encoding="utf-8")
            files.append({key: server_files[name][key]
                          for key in ("test_set", "rows", "predicted_by")}
                         | {"file": f"{folder.name}/{name}", "sha256": sha256_file(tmp / name)})
        zip_sha256 = sha256_file(tmp / SUBMISSION)
    written = set(server_files)
    return {"files": files,
            "submission": {"file": f"{folder.name}/{SUBMISSION}", "sha256": zip_sha256},
            "missing": [t.server_file for t in TEST_SETS.values() if t.server_file not in written]}
