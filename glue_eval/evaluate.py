"""`evaluate_glue`: fine-tune a run's encoder on each GLUE task and score the dev sets.

The loop is the same for every task (the task table says what differs); `fit_and_predict` is
shared with the offline probes so both suites use one recipe.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from data_prep import UserError
from glue_eval import data, results
from glue_eval.encoder import Encoder, final_dir, model_sha256, pick_device
from glue_eval.finetune import cpu_threads, encode_texts, finetune, predict
from glue_eval.metrics import compute_averages, compute_metrics
from glue_eval.tasks import PROTOCOL_TASKS, PROTOCOLS, TASKS, Protocol


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise UserError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def parse_tasks(tasks) -> list[str]:
    """"all" -> every task of the protocol; "cola,sst2" or a list -> those, in table order."""
    if tasks == "all" or tasks is None:
        return list(PROTOCOL_TASKS)
    names = [t.strip().lower() for t in (tasks.split(",") if isinstance(tasks, str) else tasks)]
    names = [t for t in names if t]  # "cola," or "," name no empty task
    unknown = [t for t in names if t not in TASKS]
    if unknown or not names:
        what = f"unknown GLUE task(s) {', '.join(unknown)}" if unknown else "no GLUE task given"
        raise UserError(f"{what}; known: {', '.join(TASKS)}")
    return [t for t in TASKS if t in names]


def check_glue_dir(glue_dir: Path, names: list[str]) -> None:
    """Every missing folder or split, named at once, before any fine-tuning starts."""
    if not glue_dir.is_dir():
        raise UserError(f"GLUE folder {glue_dir} does not exist")
    missing = [f"{TASKS[t].folder}/{s}.tsv" for t in names for s in data.split_names(TASKS[t])
               if not (glue_dir / TASKS[t].folder / f"{s}.tsv").is_file()]
    if missing:
        raise UserError(f"GLUE folder {glue_dir} lacks {', '.join(missing)} "
                        "(choose tasks with --tasks)")


def subsample(n: int, cap: int | None, rng: np.random.Generator) -> np.ndarray:
    """Row indices, all of them or a seeded random `cap` of them, in file order."""
    if cap is None or n <= cap:
        return np.arange(n)
    return np.sort(rng.choice(n, size=cap, replace=False))


def fit_and_predict(encoder: Encoder, train_rows, train_labels, dev_rows: dict[str, list], *,
                    num_labels: int, protocol: Protocol, seed: int, device: str, desc: str,
                    quiet: bool) -> dict[str, np.ndarray]:
    """Fine-tune a fresh classifier on the train rows; predictions for each dev split."""
    regression = num_labels == 1
    model = encoder.classifier(num_labels, dropout=protocol.dropout, seed=seed)
    finetune(model, train_rows, train_labels, protocol=protocol, regression=regression,
             pad_id=encoder.pad_id, seed=seed, device=device, desc=desc, quiet=quiet)
    preds = {split: predict(model, rows, regression=regression, pad_id=encoder.pad_id,
                            device=device) for split, rows in dev_rows.items()}
    if regression:  # float64 of the float32 outputs: exactly what the TSV's repr round-trips
        preds = {split: p.astype(np.float64) for split, p in preds.items()}
    return preds


def evaluate_glue(run, *, tasks="all", glue_dir=None, protocol="cramming", seed=0, out=None,
                  force=False, from_scratch=False, quiet=False, device="auto",
                  threads=0) -> dict:
    """Score `run` on GLUE dev sets; writes RUN/eval/glue.json (or `out`) and returns it.

    `device` and `threads` (CPU threads, 0: torch's default) change speed, not results."""
    with cpu_threads(threads):
        return _evaluate_glue(run, tasks=tasks, glue_dir=glue_dir, protocol=protocol, seed=seed,
                              out=out, force=force, from_scratch=from_scratch, quiet=quiet,
                              device=device)


def _evaluate_glue(run, *, tasks, glue_dir, protocol, seed, out, force, from_scratch, quiet,
                   device) -> dict:
    started = results.utc_now()
    final = final_dir(run)
    proto = get_protocol(protocol)
    names = parse_tasks(tasks)
    out = Path(out) if out else results.default_out(run, "glue", from_scratch)
    results.check_out_path(out, force)
    if glue_dir is not None:
        check_glue_dir(Path(glue_dir), names)
    device = pick_device(device)
    encoder = Encoder(final, from_scratch=from_scratch)
    protocol_record = proto.record(seed)
    # Rankable only as the whole ranked recipe: every protocol task, pretrained weights.
    protocol_record["rankable"] = (proto.rankable and not from_scratch
                                   and set(PROTOCOL_TASKS) <= set(names))
    record = {
        "format": results.FORMAT, "suite": "glue", "protocol": protocol_record,
        "source": "dir" if glue_dir is not None else f"hub:{data.HUB_DATASET}",
        "from_scratch": from_scratch, "model_sha256": model_sha256(final), "tasks": {},
    }
    all_preds = {}
    for name in names:
        record["tasks"][name], predictions = score_task(
            encoder, name, glue_dir, protocol=proto, seed=seed, device=device, quiet=quiet)
        all_preds.update({(name, split): p for split, p in predictions.items()})
        _report(name, record["tasks"][name], quiet)
    record.update(compute_averages({t: r["metrics"] for t, r in record["tasks"].items()}))
    record["software"] = results.software()
    record["started_utc"], record["finished_utc"] = started, results.utc_now()
    return results.write_results(out, record, all_preds, force=force)


def score_task(encoder: Encoder, name: str, glue_dir, *, protocol: Protocol, seed: int,
               device: str, quiet: bool) -> tuple[dict, dict[str, tuple]]:
    """One task's results entry, and split -> (dev row indices, predictions)."""
    spec = TASKS[name]
    t0 = time.perf_counter()
    splits = {s: data.read_split(glue_dir, name, s) for s in data.split_names(spec)}
    for split in splits.values():
        data.warn_malformed(split)
    rng = np.random.default_rng(seed)
    keep = {s: subsample(len(sp), protocol.max_train_rows if s == "train"
                         else protocol.max_dev_rows, rng) for s, sp in splits.items()}
    rows = {s: encode_texts(encoder.tokenizer, [sp.text_a[i] for i in keep[s]],
                            None if sp.text_b is None else [sp.text_b[i] for i in keep[s]],
                            cls_id=encoder.cls_id, sep_id=encoder.sep_id,
                            max_length=protocol.max_length) for s, sp in splits.items()}
    train_rows = rows.pop("train")
    preds = fit_and_predict(encoder, train_rows, splits["train"].labels[keep["train"]], rows,
                            num_labels=spec.num_labels, protocol=protocol, seed=seed,
                            device=device, desc=name, quiet=quiet)
    labels = {s: splits[s].labels[keep[s]] for s in preds}
    n_dev = {s: len(r) for s, r in rows.items()}
    entry = {
        "metrics": compute_metrics(name, labels, preds),
        "n_train": len(train_rows),
        "n_dev": n_dev if len(n_dev) > 1 else n_dev["dev"],  # MNLI: per dev split
        "epochs": protocol.epochs, "seconds": round(time.perf_counter() - t0, 2),
        "malformed_rows": {s: sp.malformed for s, sp in splits.items()},
    }
    return entry, {s: (keep[s], p) for s, p in preds.items()}


def _report(name: str, entry: dict, quiet: bool) -> None:
    # Scores are results, not progress: CI=true silences bars but still prints them.
    if quiet:
        return
    scores = ", ".join(f"{k} {v:.1f}" for k, v in entry["metrics"].items())
    print(f"{name}: {scores} ({entry['n_train']} train rows, {entry['seconds']:.1f} s)")
