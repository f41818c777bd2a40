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
import errno
import hashlib
import json
import os
import platform
import shutil
import tempfile
from pathlib import Path

import numpy as np

from crambench.contracts import read_json_object, sha256_file
from crambench.errors import OutOfSpace, UserError, is_out_of_space
from crambench.files import tidy, umask, write_bytes_atomic

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
    """Refuse before any work is done, not after an hour of fine-tuning. What an interrupted
    write left is repaired first (`recover`), so only a complete results file blocks a rerun:
    a predictions folder or a deployed model without its results file is not a result and is
    replaced."""
    if out.suffix != ".json":
        raise UserError(f"results path {out} must end in .json")
    repaired = recover(out)
    if out.exists() and not force:
        how = (" (completed now from what an eval interrupted while writing it left)"
               if repaired else "")
        raise UserError(f"results file {out} exists{how}; pass --force to replace it")


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
        raise UserError(f"cannot read predictions {path}: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise UserError(f"cannot read predictions {path}: not UTF-8 text ({err.reason})") from None
    if not lines or lines[0] != "index\tprediction":
        raise UserError(f"{path}: expected header 'index\\tprediction'")
    pairs = [line.split("\t") for line in lines[1:]]
    raw = [pair[-1] for pair in pairs]
    is_float = any(("." in v) or ("e" in v.lower()) for v in raw)
    indices, values = [], []
    for number, pair in enumerate(pairs, start=2):
        try:
            index, value = pair
            indices.append(int(index))
            values.append(float(value) if is_float else int(value))
        except ValueError:
            raise UserError(f"{path} line {number}: {lines[number - 1][:60]!r} is not "
                            "'<index>\\t<prediction>'") from None
    return (np.array(indices, dtype=np.int64),
            np.array(values, dtype=np.float64 if is_float else np.int64))


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


def labels_verdict(results: dict, task: str, split: str, labels_sha: str) -> str:
    """Whether `task`'s `split` was scored against labels hashing to `labels_sha`: "same",
    "other", or "unknown" (results from before the hashes were recorded)."""
    recorded = results["tasks"][task].get("dev_labels_sha256")
    if not isinstance(recorded, dict) or split not in recorded:
        return "unknown"
    return "same" if recorded[split] == labels_sha else "other"


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
                  force: bool, server_files: dict[str, dict] | None = None,
                  deploy=None) -> dict:
    """Write the results as one set: the JSON `out`, its prediction files, the deployed model
    and the GLUE server files; returns the record.

    `predictions`: (task, split, seed) -> (indices, values); each file is named in the run of
    that seed (`record["tasks"][task]["seeds"]`). `server_files`: GLUE server file name ->
    {"text", "test_set", "rows", "predicted_by"} for `<stem>-test/` (None: no test
    predictions). `deploy(path)`: writes the deployed model to `path` and returns its
    `deployment` record (None: the model has none, e.g. an outside model).

    Everything is first written in full into a staging folder beside `out`, so a full disk
    (OutOfSpace, naming `out` and how much was needed) or a crash there leaves earlier results
    untouched. The set then lands by renames alone: the previous set is moved aside, the
    staging folder becomes `<stem>-predictions/`, the server files and the model leave it for
    their places and its JSON becomes `out`, last. A kill in between is repaired by `recover`
    on the next start: forward to the new set once its folder is in place, else back to the
    old one. Parts of the previous set that the new one lacks (a test folder, a deployed
    model) are removed, as they would not match these results.
    """
    check_out_path(out, force)
    pred_dir = predictions_dir(out)
    files = {}
    for (task, split, seed), (indices, values) in predictions.items():
        name = f"{task}-{split}-seed{seed}.tsv"
        files[name] = format_predictions(indices, values).encode()
        run = next(r for r in record["tasks"][task]["seeds"] if r["seed"] == seed)
        run.setdefault("predictions", []).append(
            {"split": split, "file": f"{pred_dir.name}/{name}",
             "sha256": hashlib.sha256(files[name]).hexdigest()})
    staging = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{pred_dir.name}.",
                                        suffix=".partial"))
        os.chmod(staging, 0o777 & ~umask())  # mkdtemp makes 0700; outputs follow the umask
        deployment = None if deploy is None else deploy(staging / STAGED_MODEL)
        if deployment is not None:
            deployment["file"] = deployed_path(out).name  # where it lands, beside `out`
            record["deployment"] = deployment
        if server_files is not None:
            record["test_predictions"] = write_server_files(staging / STAGED_TEST, server_files,
                                                            recorded_as=test_dir(out).name)
        files[STAGED_RESULTS] = (json.dumps(record, indent=2) + "\n").encode()
        for name, data in files.items():
            write_bytes_atomic(staging / name, data)
    except BaseException as err:
        full = isinstance(err, OutOfSpace) or is_out_of_space(err)
        # What the set needs: its files, and the model as written or as it would have been.
        model_failed = isinstance(err, OutOfSpace) and err.path.name == STAGED_MODEL
        needed = sum(map(len, files.values())) + (
            (err.needed or err.written) if model_failed
            else _size(staging / STAGED_MODEL) if staging is not None else 0)
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if full:  # one line naming the results file, for the whole set
            raise OutOfSpace(out, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
                             needed=needed) from None
        raise
    for path in _result_set(out):  # the previous set waits under tidy()'s name for old copies
        if path.exists():
            os.replace(path, _old_copy(path))
    os.replace(staging, pred_dir)  # from here on, recover() completes the new set
    recover(out)
    return record


def write_server_files(folder: Path, server_files: dict[str, dict], *, recorded_as: str) -> dict:
    """The server's TSVs and submission.zip in the new folder `folder` (inside the results'
    staging folder); their record, with paths relative to the results JSON, where the folder
    lands as `recorded_as`."""
    from glue_eval.submission import SUBMISSION, TEST_SETS, submission_zip

    texts = {name: spec["text"] for name, spec in server_files.items()}
    folder.mkdir()
    (folder / SUBMISSION).write_bytes(submission_zip(texts))
    files = []
    for name in sorted(server_files):
        (folder / name).write_text(texts[name], encoding="utf-8")
        files.append({key: server_files[name][key]
                      for key in ("test_set", "rows", "predicted_by")}
                     | {"file": f"{recorded_as}/{name}", "sha256": sha256_file(folder / name)})
    written = set(server_files)
    return {"files": files,
            "submission": {"file": f"{recorded_as}/{SUBMISSION}",
                           "sha256": sha256_file(folder / SUBMISSION)},
            "missing": [t.server_file for t in TEST_SETS.values() if t.server_file not in written]}


# Inside the staging folder until they are renamed out, the JSON last.
STAGED_TEST, STAGED_MODEL, STAGED_RESULTS = ".test", ".model.safetensors", ".results.json"


def _result_set(out: Path) -> tuple[Path, ...]:
    return out, predictions_dir(out), test_dir(out), deployed_path(out)


def recover_for_reading(out, *, lock) -> bool:
    """For readers of results (submit, compare): when `out` is missing but an eval killed
    between its renames left a complete set beside it, put the set in place, under the
    exclusive lock of `lock` (the run dir holding the results, or `out`; refused while an eval
    writes there). Returns whether `out` was repaired."""
    out = Path(out)
    if out.exists() or not (_staged(out) or _old_copy(out).is_file()):
        return False
    from crambench.locks import dir_lock, this_command

    with dir_lock(lock, owner=this_command()):
        return recover(out)


def _staged(out: Path) -> bool:
    return (predictions_dir(out) / STAGED_RESULTS).is_file()


def recover(out: Path) -> bool:
    """Repair what a write of `out` cut short left beside it (call before writing `out`, under
    the lock of the folder holding it): once the new predictions folder is in place, the rest
    of its set leaves it and lands, and the previous set's old copies go; before that, `tidy`
    puts the old set back. Staging folders and temporary files are removed. Returns whether a
    missing `out` was put back (completed or restored)."""
    missing = not out.exists()
    pred_dir = predictions_dir(out)
    if (pred_dir / STAGED_RESULTS).is_file():
        for staged, final in ((STAGED_TEST, test_dir(out)), (STAGED_MODEL, deployed_path(out)),
                              (STAGED_RESULTS, out)):
            if (pred_dir / staged).exists():
                os.replace(pred_dir / staged, final)
    if out.exists():  # a whole set is in place: whatever is left of an earlier one goes
        for path in _result_set(out):
            old = _old_copy(path)
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
            elif old.exists() or old.is_symlink():
                old.unlink()
    for path in _result_set(out):
        tidy(path)
    return missing and out.exists()


def _old_copy(path: Path) -> Path:
    return path.with_name(f".{path.name}.old")  # the name crambench.files.tidy restores from


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
