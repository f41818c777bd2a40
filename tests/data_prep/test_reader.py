"""Reading a data dir back: rows across shards, batch orders, ranks, resume, damage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from pydoc_data.topics import topics

import numpy as np
import pytest

import data_prep.shards
from crambench.errors import UserError
from data_prep import load_tokenizer, open_data_dir, prepare

ROWS_PER_SHARD = 50  # small shards, so reads cross shard boundaries


@pytest.fixture(scope="module")
def data_path(tmp_path_factory) -> Path:
    corpus = tmp_path_factory.mktemp("topics")
    for key in sorted(topics):
        (corpus / f"{key}.txt").write_text(topics[key])
    out = tmp_path_factory.mktemp("data") / "data"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(data_prep.shards, "ROWS_PER_SHARD", ROWS_PER_SHARD)
        prepare([str(corpus)], out, vocab_size=2000, val_fraction=0.1, quiet=True)
    return out


@pytest.fixture
def copy(data_path, tmp_path) -> Path:
    """A private copy to damage."""
    return Path(shutil.copytree(data_path, tmp_path / "data"))


def all_rows(data, split) -> np.ndarray:
    files = [s for s in data.manifest["shards"] if s["split"] == split]
    return np.concatenate([np.fromfile(data.path / s["file"], dtype="<u2") for s in files]
                          ).reshape(-1, data.seq_len).astype(np.int64)


def test_properties(data_path):
    data = open_data_dir(data_path)
    assert data.path == data_path and data.seq_len == 128 and data.vocab_size == 2000
    assert data.special_ids == {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
    assert data.tokenizer_path == data_path / "tokenizer.json"
    assert data.data_sha256 == data.manifest["data_sha256"]
    assert len([s for s in data.manifest["shards"] if s["split"] == "train"]) > 3


def test_get_rows_any_order_across_shards(data_path):
    data = open_data_dir(data_path)
    expected = all_rows(data, "train")
    assert data.num_rows("train") == len(expected)
    picks = np.array([len(expected) - 1, 0, 49, 50, 51, 149, 7, 7])
    got = data.get_rows("train", picks)
    assert got.dtype == np.int64 and got.shape == (len(picks), 128)
    np.testing.assert_array_equal(got, expected[picks])
    assert data.get_rows("val", np.array([], dtype=np.int64)).shape == (0, 128)
    with pytest.raises(IndexError):
        data.get_rows("train", [len(expected)])
    with pytest.raises(ValueError, match="unknown split"):
        data.get_rows("test", [0])


def test_file_order_pass_and_rank_slices(data_path):
    data = open_data_dir(data_path)
    expected = all_rows(data, "val")
    batches = list(data.iter_batches("val", 8))
    assert all(len(b) == 8 for b in batches[:-1]) and 0 < len(batches[-1]) <= 8
    np.testing.assert_array_equal(np.concatenate(batches), expected)
    shards = [np.concatenate(list(data.iter_batches("val", 5, rank=r, world_size=3)))
              for r in range(3)]
    assert sum(len(s) for s in shards) == len(expected)
    np.testing.assert_array_equal(shards[1], expected[1::3])
    rest = np.concatenate(list(data.iter_batches("val", 8, start=10)))
    np.testing.assert_array_equal(rest, expected[10:])


def test_seeded_order_is_a_permutation_per_epoch_and_repeatable(data_path):
    data = open_data_dir(data_path)
    n = data.num_rows("train")
    expected = all_rows(data, "train")
    stream = data.iter_batches("train", n, seed=3)
    first, second = next(stream), next(stream)  # one batch = one epoch here
    key = lambda rows: sorted(map(bytes, rows.astype(np.uint16)))  # noqa: E731
    assert key(first) == key(second) == key(expected)
    assert not np.array_equal(first, second)  # a fresh permutation per epoch
    np.testing.assert_array_equal(next(data.iter_batches("train", n, seed=3)), first)
    assert not np.array_equal(next(data.iter_batches("train", n, seed=4)), first)


def test_resume_continues_the_same_stream(data_path):
    data = open_data_dir(data_path)
    n = data.num_rows("train")
    stream = data.iter_batches("train", 32, seed=0, rank=1, world_size=2)
    reference = np.concatenate([next(stream) for _ in range(40)])  # crosses epochs
    for consumed in (0, 32, 160, 32 * 25):
        resumed = data.iter_batches("train", 32, seed=0, start=consumed, rank=1, world_size=2)
        np.testing.assert_array_equal(next(resumed), reference[consumed:consumed + 32])
    assert len(reference) > n // 2  # the comparison did cross an epoch boundary


def test_ranks_get_disjoint_rows_each_epoch(data_path):
    data = open_data_dir(data_path)
    n = data.num_rows("train")
    per_rank = n // 3
    seen = []
    for rank in range(3):
        rows = next(data.iter_batches("train", per_rank, seed=1, rank=rank, world_size=3))
        seen.append({bytes(r.astype(np.uint16)) for r in rows})
    assert all(len(s) == per_rank for s in seen)
    assert not (seen[0] & seen[1]) and not (seen[1] & seen[2]) and not (seen[0] & seen[2])


def test_ranks_read_exactly_the_rows_of_one_process_across_epochs(data_path):
    data = open_data_dir(data_path)
    total = data.num_rows("train")
    sizes = (2, 3, 5, 7)  # some leave a remainder of the epoch
    # Enough epochs of the one-process stream for `total` rows on each of 7 ranks.
    one = next(data.iter_batches("train", max(sizes) * total, seed=5))
    for world_size in sizes:
        for rank in range(world_size):
            mine = next(data.iter_batches("train", total, seed=5, rank=rank,
                                          world_size=world_size))
            np.testing.assert_array_equal(mine, one[rank::world_size][:total])
            resumed = next(data.iter_batches("train", 7, seed=5, start=total // 2, rank=rank,
                                             world_size=world_size))
            np.testing.assert_array_equal(resumed, one[rank::world_size][total // 2:][:7])


def test_bad_iteration_arguments(data_path):
    data = open_data_dir(data_path)
    for kwargs in ({"batch_size": 0}, {"batch_size": 4, "rank": 2, "world_size": 2},
                   {"batch_size": 4, "start": -1}):
        with pytest.raises(ValueError):
            next(data.iter_batches("train", **kwargs))


def test_truncated_shard(copy):
    shard = copy / "shards" / "train-00001.bin"
    shard.write_bytes(shard.read_bytes()[:-2])
    with pytest.raises(UserError, match="train-00001.bin is corrupt or truncated"):
        open_data_dir(copy)


def test_corrupt_shard_found_by_hash_check(copy):
    shard = copy / "shards" / "train-00002.bin"
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    open_data_dir(copy)  # sizes still match: hashes are optional
    with pytest.raises(UserError, match="train-00002.bin is corrupt: sha256"):
        open_data_dir(copy, verify_hashes=True)


def test_token_id_beyond_the_vocabulary_is_found_before_use(copy):
    shard = copy / "shards" / "train-00001.bin"
    data = bytearray(shard.read_bytes())
    data[256:258] = (40000).to_bytes(2, "little")  # row 1 of the shard: id 40000 >= 2000
    shard.write_bytes(bytes(data))
    opened = open_data_dir(copy)  # sizes match; ids are checked when asked or read
    message = (r"train-00001.bin is corrupt: it holds token id 40000, but the vocabulary has "
               r"2000 ids \(0-1999\); check it with `cram prepare --verify ")
    with pytest.raises(UserError, match=message):
        opened.check_token_ids()
    with pytest.raises(UserError, match=message):
        opened.get_rows("train", [ROWS_PER_SHARD + 1])
    assert opened.get_rows("train", [ROWS_PER_SHARD]).max() < 2000  # other rows still read


def test_missing_shard_and_missing_manifest(copy):
    (copy / "shards" / "val-00000.bin").unlink()
    with pytest.raises(UserError, match="shard missing"):
        open_data_dir(copy)
    (copy / "manifest.json").unlink()
    with pytest.raises(UserError, match="not a prepared data dir"):
        open_data_dir(copy)
    with pytest.raises(UserError, match="data dir not found"):
        open_data_dir(copy / "nope")


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m: "{not json", "not valid JSON"),
    (lambda m: json.dumps({**m, "format": "cram-data/2"}), "unknown data format 'cram-data/2'"),
    (lambda m: json.dumps({k: v for k, v in m.items() if k != "format"}), "unknown data format"),
    (lambda m: json.dumps({**m, "seq_len": "128"}), "field 'seq_len'"),
    (lambda m: json.dumps({**m, "num_sequences": {"train": 1, "val": 0}}), "disagrees"),
    (lambda m: json.dumps({**m, "shards": m["shards"][:-1]}), "disagrees"),
    (lambda m: m["format"][:5], "corrupt"),
])
def test_damaged_manifest(copy, edit, message):
    path = copy / "manifest.json"
    path.write_text(edit(json.loads(path.read_text())))
    with pytest.raises(UserError, match=message):
        open_data_dir(copy)


def test_load_tokenizer_from_dir_run_or_file(data_path, tmp_path):
    from_dir = load_tokenizer(data_path)
    final = tmp_path / "run" / "final"
    final.mkdir(parents=True)
    shutil.copy(data_path / "tokenizer.json", final / "tokenizer.json")
    for place in (final.parent, final, final / "tokenizer.json"):
        assert load_tokenizer(place).to_str() == from_dir.to_str()
    with pytest.raises(UserError, match="no tokenizer found"):
        load_tokenizer(tmp_path)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(UserError, match="cannot read tokenizer"):
        load_tokenizer(tmp_path / "bad.json")


def test_tokenizer_changed_after_preparation_is_refused(copy):
    # A damaged data-dir tokenizer would otherwise be copied into every run's final/.
    path = copy / "tokenizer.json"
    path.write_text(path.read_text().replace('"[MASK]"', '"[MASKED]"'))
    with pytest.raises(UserError, match="tokenizer.json does not match the tokenizer_sha256 of "
                                        ".*manifest.json"):
        open_data_dir(copy)


@pytest.mark.parametrize("name", ["../outside.bin", "/tmp/outside.bin", "shards/../../x.bin"])
def test_shard_path_outside_the_data_dir_is_refused(copy, name):
    path = copy / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["shards"][0]["file"] = name
    path.write_text(json.dumps(manifest))
    # The manifest check or the path containment: either names the manifest and the entry.
    with pytest.raises(UserError, match=r"(shard file in .*manifest.json '.*' is not a path "
                                        r"inside|manifest.json is corrupt: bad shard entry)"):
        open_data_dir(copy)


def test_shard_linked_outside_the_data_dir_is_refused(copy, tmp_path):
    shard = copy / "shards" / "val-00000.bin"
    outside = tmp_path / "elsewhere.bin"
    shutil.move(shard, outside)
    shard.symlink_to(outside)
    with pytest.raises(UserError, match=r"leads outside .* \(through a symbolic link\)"):
        open_data_dir(copy)
