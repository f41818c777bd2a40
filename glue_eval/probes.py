"""`evaluate_probes`: offline sanity tasks built from a data dir's val split (not GLUE).

The val split is packed token rows with documents joined by [SEP], so cutting the
concatenated rows at [SEP] gives back token-level documents. Two binary tasks come from them:

- `continuation`: is segment B the text that follows segment A in the same document, or a
  segment of another document? (both segments have the same fixed length, so length is no cue)
- `word_order`: is this segment's word order original, or are its words shuffled? (words are
  tokens grouped with the pieces that continue them, `##` pieces for WordPiece and BPE, pieces
  without a leading `▁` for Unigram: data_prep.tokenizer_models; a shuffle never splits a word)

Train and dev examples come from disjoint documents. They are fine-tuned and scored with the
same recipe as GLUE (the `quick` protocol, 5 epochs), recorded as `suite: "probe"`, never
rankable. An outside model (`--model`) gets the same examples as text, decoded with the data
dir's tokenizer and encoded with its own.
Accuracy of a model that learnt nothing is 50%.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score

from crambench.errors import UserError
from glue_eval import results
from glue_eval.encoder import Encoder, final_dir, model_sha256, pick_device, tokenizer_sha256
from glue_eval.evaluate import (
    check_model_source,
    fit_and_predict,
    over_seeds,
    parse_seeds,
    report,
    save_results,
)
from glue_eval.finetune import cpu_threads, join_pair
from glue_eval.outside_model import OutsideEncoder
from glue_eval.tasks import PROTOCOLS

SEGMENT = 32  # tokens per segment: short enough that most paragraphs hold two
DEV_FRACTION = 0.3  # share of the val split's tokens held out for dev
MAX_TRAIN, MAX_DEV = 1000, 400  # examples per probe; a tiny model trains on CPU in seconds
# The quick recipe with the cramming paper's 5 epochs: probe train sets are a few hundred
# examples, too few updates in 2 epochs for any model to move off chance.
PROBE_PROTOCOL = dataclasses.replace(PROTOCOLS["quick"], name="probe", epochs=5,
                                     max_train_rows=MAX_TRAIN, max_dev_rows=MAX_DEV)
MIN_DEV = 20  # fewer dev examples than this gives no usable accuracy
PROBES = ("continuation", "word_order")


def documents(rows: np.ndarray, sep_id: int) -> list[np.ndarray]:
    """Token arrays of the documents in packed rows (the first and last may be partial)."""
    stream = rows.reshape(-1)
    cuts = np.flatnonzero(stream == sep_id)
    pieces = np.split(stream, cuts)
    return [p[1:] if len(p) and p[0] == sep_id else p for p in pieces]


def continuation_examples(docs: list[np.ndarray], rng: np.random.Generator, *, cls_id: int,
                          sep_id: int, max_length: int):
    # Every segment boundary of every document is one example (A before it, B after it).
    pairs = [(d, doc[i - SEGMENT: i], doc[i: i + SEGMENT]) for d, doc in enumerate(docs)
             for i in range(SEGMENT, len(doc) - SEGMENT + 1, SEGMENT)]
    if len({d for d, _, _ in pairs}) < 2:
        return [], np.zeros(0, dtype=np.int64)
    rows, labels = [], []
    for d, a, b in pairs:
        label = int(rng.random() < 0.5)  # 1 = B is A's true continuation
        if not label:  # B from another document: draw until the document differs
            while True:
                other_doc, _, other_b = pairs[rng.integers(len(pairs))]
                if other_doc != d:
                    b = other_b
                    break
        rows.append(join_pair(a.tolist(), b.tolist(), cls_id=cls_id, sep_id=sep_id,
                              max_length=max_length))
        labels.append(label)
    return rows, np.asarray(labels, dtype=np.int64)


def word_order_examples(docs: list[np.ndarray], rng: np.random.Generator, *,
                        is_continuation: np.ndarray, cls_id: int, sep_id: int,
                        max_length: int = SEGMENT + 2):
    rows, labels = [], []
    for doc in docs:
        for words in _word_segments(doc, is_continuation):
            # Whole words that fit the row beside [CLS] and [SEP] (a model with fewer
            # positions than a segment gets the segment's first words).
            sizes = np.cumsum([len(word) for word in words])
            words = words[: int(np.searchsorted(sizes, max_length - 2, side="right"))]
            if len(words) < 3:
                continue  # too few words for a shuffle to be told from the original
            label = int(rng.random() < 0.5)  # 1 = original order
            if not label:
                order = rng.permutation(len(words))
                if (order == np.arange(len(words))).all():
                    order = np.roll(order, 1)
                words = [words[i] for i in order]
            rows.append([cls_id, *np.concatenate(words).tolist(), sep_id])
            labels.append(label)
    return rows, np.asarray(labels, dtype=np.int64)


def _word_segments(doc: np.ndarray, is_continuation: np.ndarray) -> list[list[np.ndarray]]:
    """Consecutive whole words packed into segments of at most SEGMENT tokens."""
    starts = np.flatnonzero(~is_continuation[doc])
    if not len(starts):
        return []
    words = np.split(doc[starts[0]:], starts[1:] - starts[0])  # drop a leading word piece
    segments, current, size = [], [], 0
    for word in words:
        if size + len(word) > SEGMENT and current:
            segments.append(current)
            current, size = [], 0
        if len(word) <= SEGMENT:
            current.append(word)
            size += len(word)
    return segments


def split_documents(docs: list[np.ndarray], rng: np.random.Generator) -> dict[str, list]:
    """{"train": docs, "dev": docs}, disjoint. Documents in random order go to dev until it
    holds DEV_FRACTION of the tokens (document lengths vary by orders of magnitude, so counting
    documents would not size the split)."""
    order = rng.permutation(len(docs))
    tokens_before = np.cumsum([0, *(len(docs[i]) for i in order)])[:-1]
    to_dev = tokens_before < DEV_FRACTION * sum(len(d) for d in docs)
    return {"dev": [docs[i] for i, d in zip(order, to_dev, strict=True) if d],
            "train": [docs[i] for i, d in zip(order, to_dev, strict=True) if not d]}


def build_probes(data_dir, tokenizer, *, seed: int, max_length: int) -> dict[str, dict]:
    """probe -> {"train": (rows, labels), "dev": (rows, labels)} from the val split."""
    from data_prep.tokenizer_models import continues_word

    special = data_dir.special_ids
    n = data_dir.num_rows("val")
    if n == 0:
        raise UserError(f"data dir {data_dir.path} has no val rows to build probes from")
    docs = [d for d in documents(data_dir.get_rows("val", np.arange(n)), special["sep"])
            if len(d) >= SEGMENT]
    rng = np.random.default_rng(seed)
    parts = split_documents(docs, rng)
    vocab = tokenizer.get_vocab()
    continues = continues_word(tokenizer)
    is_continuation = np.zeros(max(vocab.values()) + 1, dtype=bool)
    for token, idx in vocab.items():
        is_continuation[idx] = continues(token)
    probes = {}
    for name in PROBES:
        probes[name] = {}
        for part, part_docs in parts.items():
            if name == "continuation":
                rows, labels = continuation_examples(part_docs, rng, cls_id=special["cls"],
                                                     sep_id=special["sep"], max_length=max_length)
            else:
                rows, labels = word_order_examples(part_docs, rng, cls_id=special["cls"],
                                                   sep_id=special["sep"],
                                                   is_continuation=is_continuation,
                                                   max_length=max_length)
            cap = MAX_DEV if part == "dev" else MAX_TRAIN
            keep = np.sort(rng.permutation(len(rows))[:cap])
            probes[name][part] = ([rows[i] for i in keep], labels[keep])
        n_dev_rows = len(probes[name]["dev"][0])
        if n_dev_rows < MIN_DEV or len(probes[name]["train"][0]) < MIN_DEV:
            raise UserError(
                f"val split of {data_dir.path} too small for the {name} probe "
                f"({len(probes[name]['train'][0])} train / {n_dev_rows} dev examples from "
                f"{len(docs)} documents); prepare with a larger --val-fraction")
    return probes


def reencode(encoder: OutsideEncoder, tokenizer, rows: list[list[int]], sep_id: int,
              max_length: int) -> list[list[int]]:
    """Rows `[CLS] a [SEP] (b [SEP])` of the data dir's token ids as the outside model's rows:
    each segment decoded to text with the data dir's tokenizer, then encoded by the model."""
    text_a, text_b = [], []
    for row in rows:
        cut = row.index(sep_id, 1)
        text_a.append(tokenizer.decode(row[1:cut]))
        text_b.append(tokenizer.decode(row[cut + 1:-1]))
    pairs = any(row.index(sep_id, 1) < len(row) - 1 for row in rows)
    return encoder.encode(text_a, text_b if pairs else None, max_length=max_length)


def _data_path(run: Path, data) -> Path:
    if data is not None:
        return Path(data)
    from cramming import config_from_yaml

    config = run / "config.yaml"
    if not config.is_file():
        raise UserError(f"run dir {run} has no config.yaml; pass --data with the data dir")
    path = config_from_yaml(config).data.path
    if not path:
        raise UserError(f"{config} names no data.path; pass --data with the data dir")
    return Path(path)


def evaluate_probes(run=None, *, model=None, trust_remote_code=False, data=None, seeds=(0,),
                    out=None, force=False, quiet=False, device="auto", threads=0) -> dict:
    """Score a run (`run`) or an outside `transformers` encoder (`model`, with `data` and
    `out`) on the offline probes; writes RUN/eval/probe.json (or `out`).

    The probe examples are drawn with the first of `seeds`; each probe is fine-tuned once per
    seed and scored by the median. `device` and `threads` (CPU threads, 0: torch's default)
    change speed, not results."""
    with cpu_threads(threads):
        return _evaluate_probes(run, model=model, trust_remote_code=trust_remote_code, data=data,
                                seeds=parse_seeds(seeds), out=out, force=force, quiet=quiet,
                                device=device)


def _evaluate_probes(run, *, model, trust_remote_code, data, seeds, out, force, quiet,
                     device) -> dict:
    from data_prep import load_tokenizer, open_data_dir

    started = results.utc_now()
    out = check_model_source(run, model, out, from_scratch=False)
    if model is not None and data is None:
        raise UserError(f"--model {model} needs --data (a prepared data dir: the probes are "
                        "built from its val split)")
    final = final_dir(run) if model is None else None
    out = Path(out) if out else results.default_out(run, "probe")
    results.check_out_path(out, force)
    data_dir = open_data_dir(_data_path(Path(run), data) if model is None else Path(data))
    if model is None:
        encoder = Encoder(final)
        if data_dir.vocab_size != encoder.config.vocab_size:
            raise UserError(f"data dir {data_dir.path} has vocab {data_dir.vocab_size}, the "
                            f"run's model {encoder.config.vocab_size}: not the run's data")
        tokenizer, sha256 = encoder.tokenizer, model_sha256(final)
    else:
        encoder = OutsideEncoder(model, trust_remote_code=trust_remote_code)
        tokenizer, sha256 = load_tokenizer(data_dir.tokenizer_path), encoder.model_sha256
    proto = PROBE_PROTOCOL
    if model is None and encoder.config.seq_len < proto.max_length:
        # A run trained on shorter rows has fewer positions: the probes' pairs are cut to fit
        # (the record says so); a GLUE row that long is refused instead (rules v1 §4).
        proto = dataclasses.replace(proto, max_length=encoder.config.seq_len)
    device = pick_device(device)
    probes = build_probes(data_dir, tokenizer, seed=seeds[0], max_length=proto.max_length)
    if model is not None:  # the same examples, as text, in the model's own input format
        probes = {name: {part: (reencode(encoder, tokenizer, rows, data_dir.special_ids["sep"],
                                         proto.max_length), labels)
                         for part, (rows, labels) in parts.items()}
                  for name, parts in probes.items()}
    record = {
        "format": results.FORMAT, "suite": "probe",
        "protocol": proto.record(seeds, encoder.pooling),
        "source": f"probe:{data_dir.path.name}/val", "data_sha256": data_dir.data_sha256,
        "from_scratch": False, "model_sha256": sha256,
        # An outside model is probed with the data dir's tokenizer (checked on open).
        "tokenizer_sha256": tokenizer_sha256(final) if model is None
        else data_dir.manifest["tokenizer_sha256"], "tasks": {},
    }
    if model is not None:
        record["outside_model"] = encoder.record()
    all_preds = {}
    for name, parts in probes.items():
        t0 = time.perf_counter()
        (train_rows, train_labels), (dev_rows, dev_labels) = parts["train"], parts["dev"]

        def run_seed(seed: int, name=name, train_rows=train_rows, train_labels=train_labels,
                     dev_rows=dev_rows, dev_labels=dev_labels):
            preds = fit_and_predict(encoder, train_rows, train_labels, {"dev": dev_rows},
                                    num_labels=2, protocol=proto, seed=seed, device=device,
                                    desc=name, quiet=quiet)["dev"]
            accuracy = 100.0 * float(accuracy_score(dev_labels, preds))
            return {"accuracy": accuracy}, {"dev": (np.arange(len(dev_rows)), preds)}

        scores, predictions = over_seeds(seeds, run_seed, label=f"probe {name}")
        record["tasks"][name] = {
            "metrics": scores["metrics"], "spread": scores["spread"],
            "n_train": len(train_rows), "n_dev": len(dev_rows), "epochs": proto.epochs,
            "seconds": round(time.perf_counter() - t0, 2),
            "malformed_rows": {"train": 0, "dev": 0},
            "dev_positive_fraction": 100.0 * float(dev_labels.mean()),
            "seeds": scores["seeds"],
        }
        all_preds.update({(name, split, seed): p for (split, seed), p in predictions.items()})
        report(f"probe {name}", record["tasks"][name],
               f"{len(train_rows)} train, {len(dev_rows)} dev")
    label = "not applicable: probe tasks are not GLUE"
    for key in ("avg_cramming", "avg_glue"):
        record[key] = {"value": None, "label": label, "components": [], "complete": False}
    record["software"] = results.software()
    record["started_utc"], record["finished_utc"] = started, results.utc_now()
    return save_results(out, record, all_preds, force=force, deploy=encoder.deployment_record)
