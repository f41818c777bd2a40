"""`evaluate_glue`: fine-tune a run's encoder (or an outside `transformers` encoder) on each
GLUE task and score the dev sets.

The loop is the same for every task (the task table says what differs); `fit_and_predict` is
shared with the offline probes so both suites use one recipe.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from crambench.errors import OutOfSpace, UserError
from crambench.options import SEED_MAX, SEED_RANGE
from glue_eval import data, results
from glue_eval.encoder import Encoder, final_dir, model_sha256, pick_device, tokenizer_sha256
from glue_eval.finetune import cpu_threads, finetune, predict
from glue_eval.metrics import compute_averages, compute_metrics, median_over_seeds, seed_spread
from glue_eval.outside_model import OutsideEncoder
from glue_eval.submission import AX, TestRows, majority_label, read_test_sets, server_file
from glue_eval.tasks import PROTOCOL_TASKS, PROTOCOLS, TASKS, Protocol


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise UserError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def task_names(tasks) -> list[str]:
    """The names in a --tasks value, lowercase, as given ("all" stays "all")."""
    if tasks == "all" or tasks is None:
        return ["all"]
    names = [t.strip().lower() for t in (tasks.split(",") if isinstance(tasks, str) else tasks)]
    return [t for t in names if t]  # "cola," or "," name no empty task


def parse_tasks(tasks) -> list[str]:
    """"all" -> every task of the protocol; "cola,sst2" or a list -> those, in table order.
    "ax" (GLUE's diagnostic set, which has no training data) stands for MNLI, whose model
    predicts it."""
    names = task_names(tasks)
    if names == ["all"]:
        return list(PROTOCOL_TASKS)
    names = ["mnli" if t == AX else t for t in names]
    unknown = [t for t in names if t not in TASKS]
    if unknown or not names:
        what = f"unknown GLUE task(s) {', '.join(unknown)}" if unknown else "no GLUE task given"
        raise UserError(f"{what}; known: {', '.join(TASKS)}, {AX} (with --predict-test)")
    return [t for t in TASKS if t in names]


def parse_seeds(seeds) -> list[int]:
    """"0,1,2", one int, or a sequence -> distinct non-negative seeds, in the order given."""
    items = [seeds] if isinstance(seeds, int) else (
        seeds.split(",") if isinstance(seeds, str) else list(seeds))
    try:
        values = [int(str(item).strip()) for item in items]
    except ValueError:
        values = []
    if not values or min(values) < 0 or len(set(values)) != len(values):
        raise UserError(f"seeds {seeds!r}: give distinct whole numbers >= 0, e.g. --seeds "
                        "0,1,2,3,4")
    wrong = [value for value in values if not 0 <= value <= SEED_MAX]
    if wrong:
        raise UserError(f"seeds {seeds!r}: {wrong[0]} is out of range: {SEED_RANGE}")
    return values


def check_glue_dir(glue_dir: Path, names: list[str]) -> None:
    """Every missing folder or split, named at once, then every split read once, so that a
    file with no usable row stops the run before any fine-tuning (not hours later, at the
    last task). Parsing all of GLUE takes seconds; the rows are read again task by task."""
    if not glue_dir.is_dir():
        raise UserError(f"GLUE folder {glue_dir} does not exist")
    missing = [f"{TASKS[t].folder}/{s}.tsv" for t in names for s in data.split_names(TASKS[t])
               if not (glue_dir / TASKS[t].folder / f"{s}.tsv").is_file()]
    if missing:
        raise UserError(f"GLUE folder {glue_dir} lacks {', '.join(missing)} "
                        "(choose tasks with --tasks)")
    for name in names:
        for split in data.split_names(TASKS[name]):
            data.read_split(glue_dir, name, split)


def subsample(n: int, cap: int | None, rng: np.random.Generator) -> np.ndarray:
    """Row indices, all of them or a seeded random `cap` of them, in file order."""
    if cap is None or n <= cap:
        return np.arange(n)
    return np.sort(rng.choice(n, size=cap, replace=False))


def fit_and_predict(encoder: Encoder | OutsideEncoder, train_rows, train_labels,
                    dev_rows: dict[str, list], *, num_labels: int, protocol: Protocol,
                    seed: int, device: str, desc: str, quiet: bool) -> dict[str, np.ndarray]:
    """Fine-tune a fresh classifier on the train rows; predictions for each dev split."""
    regression = num_labels == 1
    model = encoder.classifier(num_labels, dropout=protocol.dropout, seed=seed)
    finetune(model, train_rows, train_labels, protocol=protocol, regression=regression,
             pad_id=encoder.pad_id, seed=seed, device=device, desc=desc, quiet=quiet)
    model = encoder.deploy(model, desc)  # scores are those of the model as deployed
    preds = {split: predict(model, rows, regression=regression, pad_id=encoder.pad_id,
                            device=device) for split, rows in dev_rows.items()}
    if regression:  # float64 of the float32 outputs: exactly what the TSV's repr round-trips
        preds = {split: p.astype(np.float64) for split, p in preds.items()}
    return preds


def over_seeds(seeds: list[int], run_seed, *, label: str) -> tuple[dict, dict]:
    """Fine-tune once per seed: the task's score fields and every seed's predictions.

    `run_seed(seed)` -> (metrics, {split: (dev row indices, predictions)}). Returns
    ({"metrics": per-metric median, "spread": ..., "seeds": [per-seed runs]},
     {(split, seed): (indices, predictions)}).
    """
    runs, predictions = [], {}
    for seed in seeds:
        t0 = time.perf_counter()
        metrics, preds = run_seed(seed)
        runs.append({"seed": seed, "metrics": metrics,
                     "seconds": round(time.perf_counter() - t0, 2)})
        predictions.update({(split, seed): p for split, p in preds.items()})
        if len(seeds) > 1:  # a result, so printed under --quiet and CI=true too
            print(f"{label} seed {seed}: {_scores(metrics)} ({runs[-1]['seconds']:.1f} s)")
    per_seed = [run["metrics"] for run in runs]
    return {"metrics": median_over_seeds(per_seed), "spread": seed_spread(per_seed),
            "seeds": runs}, predictions


def report(label: str, entry: dict, sizes: str) -> None:
    """One line per task: its score (over several seeds the median and its spread), then
    `sizes` (e.g. "800 train rows") and the seconds it took."""
    n_seeds = len(entry["seeds"])
    if n_seeds == 1:
        scores = _scores(entry["metrics"])
    else:
        scores = ", ".join(f"{k} {v:.1f} (mean {entry['spread'][k]['mean']:.1f} +- "
                           f"{entry['spread'][k]['std']:.1f})"
                           for k, v in entry["metrics"].items())
        scores += f"; median of {n_seeds} seeds"
    print(f"{label}: {scores} ({sizes}, {entry['seconds']:.1f} s)")


def print_averages(record: dict) -> None:
    for name in ("avg_cramming", "avg_glue"):
        avg = record.get(name) or {}
        if avg.get("value") is not None:
            print(f"{name}: {avg['value']:.2f}  [{avg['label']}]")


def save_results(out: Path, record: dict, predictions: dict, *, force: bool,
                 server_files: dict | None = None, deploy=None) -> dict:
    """`results.write_results`; when the disk is full the scores are printed once more, with
    the averages, before the one-line error, so hours of fine-tuning are not lost with the
    file. The previous results, if any, are left as they were."""
    try:
        return results.write_results(out, record, predictions, force=force,
                                     server_files=server_files, deploy=deploy)
    except OutOfSpace:
        print(f"not saved (disk full), the scores for {out}:")
        for name, entry in record["tasks"].items():
            print(f"{name}: {_scores(entry['metrics'])}")
        print_averages(record)
        raise


def _scores(metrics: dict) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in metrics.items())


def evaluate_glue(run=None, *, model=None, trust_remote_code=False, tasks="all",
                  glue_dir=None, protocol="cramming", seeds=(0,), out=None, force=False,
                  from_scratch=False, predict_test=False, quiet=False, device="auto",
                  threads=0) -> dict:
    """Score a run (`run`: RUN/final/) or an outside `transformers` encoder (`model`: a local
    folder or a Hub name, results to `out`) on GLUE dev sets; writes the results file
    (default RUN/eval/glue.json) and returns it.

    `predict_test`: also predict every test set in `glue_dir` that the tasks' models predict
    (and AX, WNLI), writing the GLUE server's files and submission.zip beside the results.

    Each task is fine-tuned once per seed in `seeds` ("0,1,2", an int or a sequence); its score
    is the per-metric median over the seeds. `device` and `threads` (CPU threads, 0: torch's
    default) change speed, not results."""
    with cpu_threads(threads):
        return _evaluate_glue(run, model=model, trust_remote_code=trust_remote_code, tasks=tasks,
                              glue_dir=glue_dir, protocol=protocol, seeds=parse_seeds(seeds),
                              out=out, force=force, from_scratch=from_scratch,
                              predict_test=predict_test, quiet=quiet, device=device)


def _evaluate_glue(run, *, model, trust_remote_code, tasks, glue_dir, protocol, seeds, out,
                   force, from_scratch, predict_test, quiet, device) -> dict:
    started = results.utc_now()
    out = check_model_source(run, model, out, from_scratch)
    final = final_dir(run) if model is None else None
    proto = get_protocol(protocol)
    names = parse_tasks(tasks)
    out = Path(out) if out else results.default_out(run, "glue", from_scratch)
    results.check_out_path(out, force)
    if glue_dir is not None:
        check_glue_dir(Path(glue_dir), names)
    else:
        data.check_hub()
    if AX in task_names(tasks) and not predict_test:
        raise UserError("--tasks ax: the diagnostic set has no labels to score; it is predicted "
                        "by the MNLI model with --predict-test")
    # Every test file is read (and its layout checked) before any fine-tuning.
    tests = read_test_sets(glue_dir, names, ax=AX in task_names(tasks)) if predict_test else {}
    device = pick_device(device)
    if model is None:
        encoder = Encoder(final, from_scratch=from_scratch)
        sha256 = model_sha256(final)
    else:
        encoder = OutsideEncoder(model, trust_remote_code=trust_remote_code)
        sha256 = encoder.model_sha256
    protocol_record = proto.record(seeds, encoder.pooling)
    # Rankable only as the whole ranked recipe: every protocol task, pretrained weights of a
    # run trained by this harness.
    protocol_record["rankable"] = (proto.rankable and not from_scratch and model is None
                                   and set(PROTOCOL_TASKS) <= set(names))
    record = {
        "format": results.FORMAT, "suite": "glue", "protocol": protocol_record,
        "source": "dir" if glue_dir is not None else f"hub:{data.HUB_DATASET}",
        "from_scratch": from_scratch, "model_sha256": sha256,
        "tokenizer_sha256": tokenizer_sha256(final) if model is None else None, "tasks": {},
    }
    if model is not None:
        record["outside_model"] = encoder.record()
    all_preds, server_files = {}, {}
    for name in names:
        task_tests = [rows for rows in tests.values() if rows.test.task == name]
        record["tasks"][name], predictions, test_preds = score_task(
            encoder, name, glue_dir, protocol=proto, seeds=seeds, device=device, quiet=quiet,
            tests=task_tests)
        all_preds.update({(name, split, seed): p for (split, seed), p in predictions.items()})
        server_files.update(test_preds)
        report(name, record["tasks"][name], f"{record['tasks'][name]['n_train']} train rows")
    if "wnli" in tests:
        server_files.update(predict_majority(glue_dir, tests["wnli"]))
    record.update(compute_averages({t: r["metrics"] for t, r in record["tasks"].items()}))
    record["software"] = results.software()
    record["started_utc"], record["finished_utc"] = started, results.utc_now()
    return save_results(out, record, all_preds, force=force,
                        server_files=server_files if predict_test else None,
                        deploy=encoder.deployment_record)


def check_model_source(run, model, out, from_scratch: bool):
    """Exactly one of a run and an outside model; an outside model has no run dir to hold its
    results, so it needs `out`. Returns `out`."""
    if (run is None) == (model is None):
        raise UserError("score either a run (--run RUN) or an outside model (--model PATH)"
                        + (", not both" if run is not None else ""))
    if model is not None:
        if from_scratch:
            raise UserError("--from-scratch is a control for a run's own architecture; it does "
                            "not apply to --model")
        if out is None:
            raise UserError(f"--model {model} needs --out (the results file, e.g. "
                            "outside/bert-base/glue.json): there is no run dir to put it in")
    return out


def score_task(encoder: Encoder | OutsideEncoder, name: str, glue_dir, *, protocol: Protocol,
               seeds: list[int], device: str, quiet: bool, tests: list[TestRows] = ()
               ) -> tuple[dict, dict[tuple, tuple], dict[str, dict]]:
    """One task's results entry, (split, seed) -> (dev row indices, predictions), and for each
    of `tests` (test sets this task's model predicts, every row) server file name ->
    {"text", "test_set", "rows", "predicted_by"}. The test sets are predicted by the first
    seed's model (the one a one-seed evaluation fine-tunes): the server takes one file per
    task, and a median over seeds is a score, not a model."""
    spec = TASKS[name]
    t0 = time.perf_counter()
    splits = {s: data.read_split(glue_dir, name, s) for s in data.split_names(spec)}
    for split in splits.values():
        data.warn_malformed(split)
    # Rows are drawn once, with the first seed: every seed fine-tunes on the same train rows
    # and scores the same dev rows, so seeds differ only in the new head's initial weights,
    # the batch order and dropout (and runs of one seed match a one-seed evaluation).
    rng = np.random.default_rng(seeds[0])
    keep = {s: subsample(len(sp), protocol.max_train_rows if s == "train"
                         else protocol.max_dev_rows, rng) for s, sp in splits.items()}
    rows = {s: encoder.encode([sp.text_a[i] for i in keep[s]],
                              None if sp.text_b is None else [sp.text_b[i] for i in keep[s]],
                              max_length=protocol.max_length) for s, sp in splits.items()}
    train_rows = rows.pop("train")
    test_rows = {f"test:{t.test.name}": encoder.encode(t.text_a, t.text_b,
                                                       max_length=protocol.max_length)
                 for t in tests}
    train_labels = splits["train"].labels[keep["train"]]
    labels = {s: splits[s].labels[keep[s]] for s in rows}
    test_preds = {}

    def run_seed(seed: int):
        first = seed == seeds[0]
        preds = fit_and_predict(encoder, train_rows, train_labels,
                                rows | test_rows if first else rows,
                                num_labels=spec.num_labels, protocol=protocol, seed=seed,
                                device=device, desc=name if len(seeds) == 1
                                else f"{name} seed {seed}", quiet=quiet)
        if first:
            test_preds.update({t.test.server_file: server_record(
                t, preds.pop(f"test:{t.test.name}"), name) for t in tests})
        return (compute_metrics(name, labels, preds),
                {s: (keep[s], p) for s, p in preds.items()})

    scores, predictions = over_seeds(seeds, run_seed, label=name)
    n_dev = {s: len(r) for s, r in rows.items()}
    entry = {
        "metrics": scores["metrics"], "spread": scores["spread"],
        "n_train": len(train_rows),
        "n_dev": n_dev if len(n_dev) > 1 else n_dev["dev"],  # MNLI: per dev split
        "epochs": protocol.epochs, "seconds": round(time.perf_counter() - t0, 2),
        # What the scores rest on: a rescore or comparison against other labels is refused.
        "dev_labels_sha256": {s: data.labels_sha256(splits[s].labels) for s in rows},
        "malformed_rows": {s: sp.malformed for s, sp in splits.items()},
        "seeds": scores["seeds"],
    }
    return entry, predictions, test_preds


def server_record(rows: TestRows, predictions: np.ndarray, predicted_by: str) -> dict:
    return {"text": server_file(rows, predictions), "test_set": rows.test.name,
            "rows": len(rows), "predicted_by": predicted_by}


def predict_majority(glue_dir, rows: TestRows) -> dict[str, dict]:
    """WNLI's server file: the majority class of its train set for every row (see
    glue_eval.submission)."""
    label = majority_label(data.read_split(glue_dir, "wnli", "train").labels,
                           TASKS["wnli"].num_labels)
    predictions = np.full(len(rows), label, dtype=np.int64)
    return {rows.test.server_file: server_record(
        rows, predictions, f"majority class of WNLI train ({TASKS['wnli'].labels[label]})")}
