"""The encoding pass: cleaned documents -> trash filter -> split -> packed rows -> shards.

Documents go to the Rust tokenizer in batches (`encode_batch_fast`: no offsets, parallel over
documents). The text is already normalized (data_prep.normalize), so the batch encoder is a
copy of the tokenizer without its normalizer: the same ids (tested) for less work. No document
is longer than data_prep.segment.MAX_DOC_CHARS, so the threads share the work evenly.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Tokenizer

from crambench.progress import bar
from data_prep.dedup import is_validation
from data_prep.filters import TRASH_CUTOFF, not_trash
from data_prep.pack import Packer
from data_prep.shards import ShardWriter
from data_prep.tokenizer import SPECIAL_IDS, text_only

BATCH_CHARS = 4 << 20  # ~4 MiB of text per encode call: bounded memory, enough parallel work
BATCH_DOCS = 4096


def batches(stream: Iterable[tuple[str, bytes]]) -> Iterator[list[tuple[str, bytes]]]:
    batch, size = [], 0
    for item in stream:
        batch.append(item)
        size += len(item[0])
        if size >= BATCH_CHARS or len(batch) >= BATCH_DOCS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def encode_ids(encoder: Tokenizer, docs: list[str]) -> list[list[int]]:
    """Token ids per document, without special tokens, encoded in parallel."""
    return [e.ids for e in encoder.encode_batch_fast(docs, add_special_tokens=False)]


def prenormalized(tokenizer: Tokenizer) -> Tokenizer:
    copy = text_only(Tokenizer.from_str(tokenizer.to_str()))  # the flag is not serialized
    copy.normalizer = None
    return copy


def encode_corpus(stream: Iterable[tuple[str, bytes]], tokenizer: Tokenizer,
                  reference: Tokenizer | None, root: Path, *, seq_len: int, val_fraction: float,
                  quiet: bool, trash_cutoff: float | None = TRASH_CUTOFF) -> dict:
    """Encode, filter, split and pack `stream` into shards under `root`. The trash filter
    keeps documents of fewer than `trash_cutoff` tokens per character as `reference` counts
    them (data_prep.filters); with `reference` None it keeps every document."""
    encoder = prenormalized(tokenizer)
    judge = (None if reference is None
             else encoder if reference is tokenizer else prenormalized(reference))
    sep = SPECIAL_IDS["sep"]
    packers = {"train": Packer(seq_len, sep), "val": Packer(seq_len, sep)}
    writers = {"train": ShardWriter(root, "train"), "val": ShardWriter(root, "val")}
    documents = {"train": 0, "val": 0}
    dropped_trash = 0
    timings = {"read_clean": 0.0, "trash_filter": 0.0, "tokenize_pack": 0.0,
              "tokenize_pack_cpu": 0.0, "write": 0.0}
    progress = bar(desc="encoding", unit="doc", quiet=quiet)
    clock = time.perf_counter()
    for batch in batches(stream):
        now = time.perf_counter()
        timings["read_clean"] += now - clock
        progress.update(len(batch))
        texts = [text for text, _ in batch]
        if judge is not None and judge is not encoder:  # judge first: trash is encoded once
            keep = [not_trash(len(ids), len(text), trash_cutoff)
                    for ids, text in zip(encode_ids(judge, texts), texts, strict=True)]
            batch = [item for item, kept in zip(batch, keep, strict=True) if kept]
            texts = [text for text, _ in batch]
            dropped_trash += len(keep) - len(batch)
        clock = time.perf_counter()
        timings["trash_filter"] += clock - now
        cpu = time.process_time()
        encoded = encode_ids(encoder, texts)
        by_split: dict[str, list[list[int]]] = {"train": [], "val": []}
        for (text, doc_digest), ids in zip(batch, encoded, strict=True):
            if judge is encoder and not not_trash(len(ids), len(text), trash_cutoff):
                dropped_trash += 1
                continue
            split = "val" if is_validation(doc_digest, val_fraction) else "train"
            by_split[split].append(ids)
        rows = {split: packers[split].add(ids) for split, ids in by_split.items()}
        now = time.perf_counter()
        timings["tokenize_pack"] += now - clock
        timings["tokenize_pack_cpu"] += time.process_time() - cpu
        for split, split_rows in rows.items():
            writers[split].write(split_rows)
            documents[split] += len(by_split[split])
        clock = time.perf_counter()
        timings["write"] += clock - now
    progress.close()
    shards = writers["train"].finish() + writers["val"].finish()
    return {
        "shards": shards,
        "num_sequences": {split: w.num_rows for split, w in writers.items()},
        "documents": documents,
        "dropped_trash": dropped_trash,
        "tokens_packed": sum(p.tokens_in - p.tokens_dropped for p in packers.values()),
        "tokens_dropped": sum(p.tokens_dropped for p in packers.values()),
        "timings": timings,
    }
