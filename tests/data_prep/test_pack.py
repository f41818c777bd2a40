"""Packing invariants and shard writing."""

from __future__ import annotations

import hashlib
from pydoc_data.topics import topics

import numpy as np
import pytest

from crambench.contracts import sha256_file
from data_prep.normalize import normalize
from data_prep.pack import Packer
from data_prep.shards import ShardWriter, data_sha256
from data_prep.tokenizer import SPECIAL_IDS, train_tokenizer

SEP = SPECIAL_IDS["sep"]


@pytest.fixture(scope="module")
def real_docs() -> list[list[int]]:
    """Token ids of real documents (the pydoc topics) under a small trained tokenizer."""
    texts = [normalize(topics[key]) for key in sorted(topics)]
    tokenizer = train_tokenizer(texts, 1000)
    return [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]


@pytest.mark.parametrize("seq_len", [8, 128, 509])
def test_rows_are_full_and_nothing_but_the_tail_is_lost(real_docs, seq_len):
    packer = Packer(seq_len, SEP)
    rows = np.concatenate([packer.add(real_docs[i:i + 7]) for i in range(0, len(real_docs), 7)])
    assert rows.dtype == np.uint16 and rows.shape[1] == seq_len
    expected = np.concatenate([np.array(doc + [SEP]) for doc in real_docs])
    assert len(expected) - rows.size == packer.tokens_dropped < seq_len
    np.testing.assert_array_equal(rows.reshape(-1), expected[: rows.size])
    # one [SEP] after every document that fits; the corpus has no [SEP] of its own
    assert (rows == SEP).sum() == (expected[: rows.size] == SEP).sum()
    assert not np.isin(rows, [SPECIAL_IDS["cls"], SPECIAL_IDS["pad"]]).any()


def test_batching_does_not_change_the_stream(real_docs):
    one = Packer(128, SEP).add(real_docs)
    many = Packer(128, SEP)
    pieces = [many.add(real_docs[i:i + 1]) for i in range(len(real_docs))] + [many.add([])]
    np.testing.assert_array_equal(one, np.concatenate(pieces))


def test_sep_sits_between_documents():
    rows = Packer(8, SEP).add([[10, 11, 12], [20, 21], [30, 31, 32, 33, 34]])
    assert rows.tolist() == [[10, 11, 12, SEP, 20, 21, SEP, 30]]


def test_shard_writer_rolls_over_and_hashes(tmp_path):
    rng = np.random.default_rng(0)
    writer = ShardWriter(tmp_path, "train", rows_per_shard=10)
    rows = rng.integers(0, 60000, size=(23, 16)).astype(np.uint16)
    writer.write(rows[:4])
    writer.write(rows[4:])
    records = writer.finish()
    assert [r["sequences"] for r in records] == [10, 10, 3]
    assert [r["file"] for r in records] == [f"shards/train-0000{i}.bin" for i in range(3)]
    back = np.concatenate([np.fromfile(tmp_path / r["file"], dtype="<u2") for r in records])
    np.testing.assert_array_equal(back.reshape(23, 16), rows)
    for record in records:
        assert sha256_file(tmp_path / record["file"]) == record["sha256"]
    lines = "".join(f"train {r['sha256']}\n" for r in records).encode()
    assert data_sha256(records) == hashlib.sha256(lines).hexdigest()
    assert data_sha256(records[::-1]) != data_sha256(records)

