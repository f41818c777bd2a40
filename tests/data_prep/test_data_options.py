"""The data ablation options of `cram prepare` (--trash-cutoff, --dedup, --order,
--tokenizer-model) on small real text (the pydoc topics, plus a copied paragraph and a number
table): each does what it says, is recorded, and changes `data_sha256`; the defaults keep the
hash a data dir had before the options existed."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from pydoc_data.topics import topics

import numpy as np
import pytest
from conftest import make_grammar_data

from crambench.errors import UserError
from crambench.shell.cli import main
from data_prep import load_tokenizer, open_data_dir, prepare
from data_prep.normalize import normalize
from data_prep.settings import DEFAULTS
from data_prep.shards import data_sha256, manifest_data_sha256
from data_prep.verify import verify_data_dir

SETTINGS = {"vocab_size": 2000, "val_fraction": 0.1, "quiet": True}
COPY = ("the lighthouse keeper counted the ships that passed each night and wrote their "
        "names in a small green book that nobody else ever read.")
TABLE = " ".join(str(n * 37 % 1000) for n in range(60))  # numbers: many tokens per character
# data_sha256 of make_grammar_data's dir (vocab 256), computed before these options existed
# (with tokenizers 0.23.3, the pinned version): the defaults must keep it.
GRAMMAR_SHA256 = "976a0ff0f4c13fb08975c35170ae258c1b2c46b0cd63a01793bb42aa6399def3"
OPTIONS = {
    "dedup_off": {"dedup": "off"},
    "trash_off": {"trash_cutoff": None},
    "trash_tight": {"trash_cutoff": 0.2},
    "prevalence": {"order": "prevalence"},
    "sentence_length": {"order": "sentence-length"},
    "bpe": {"tokenizer_model": "bpe"},
    "unigram": {"tokenizer_model": "unigram"},
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """The topics, with one paragraph three times and a table of numbers (first in the walk)."""
    folder = tmp_path_factory.mktemp("corpus")
    (folder / "0-copies.txt").write_text(f"{COPY}\n\n{COPY}\n\n{COPY}\n")
    (folder / "0-table.txt").write_text(TABLE + "\n")
    for key in sorted(topics):
        (folder / f"{key}.txt").write_text(topics[key])
    return folder


@pytest.fixture(scope="module")
def made(corpus, tmp_path_factory):
    """made(name) -> (data dir, manifest) for "default" or a key of OPTIONS, prepared once."""
    root, done = tmp_path_factory.mktemp("prepared"), {}

    def make(name: str):
        if name not in done:
            done[name] = (root / name,
                          prepare([str(corpus)], root / name, **SETTINGS,
                                  **OPTIONS.get(name, {})))
        return done[name]
    return make


def rows(data_dir, split: str) -> np.ndarray:
    data = open_data_dir(data_dir)
    return data.get_rows(split, np.arange(data.num_rows(split)))


def documents(data_dir) -> list[tuple[int, ...]]:
    """Every document in the packed rows of both splits, as token ids."""
    data = open_data_dir(data_dir)
    stream = np.concatenate([rows(data_dir, split).reshape(-1) for split in ("train", "val")])
    return [tuple(doc) for doc in np.split(stream, np.flatnonzero(stream == data.special_ids[
        "sep"]) + 1)]


def occurrences(data_dir, text: str) -> int:
    ids = load_tokenizer(data_dir).encode(normalize(text), add_special_tokens=False).ids
    return documents(data_dir).count((*ids, open_data_dir(data_dir).special_ids["sep"]))


def as_set(table: np.ndarray) -> list[tuple[int, ...]]:
    return sorted(map(tuple, table.tolist()))


def test_the_defaults_keep_the_data_sha256_of_before(tmp_path):
    manifest = json.loads((make_grammar_data(tmp_path) / "manifest.json").read_text())
    assert manifest["data_sha256"] == GRAMMAR_SHA256
    lines = "".join(f"{s['split']} {s['sha256']}\n" for s in manifest["shards"])
    assert hashlib.sha256(lines.encode()).hexdigest() == GRAMMAR_SHA256  # the shards alone
    settings = manifest["pipeline"]["settings"]
    assert {key: settings[key] for key in DEFAULTS} == DEFAULTS
    assert manifest["train_order"] == "shuffle"


def test_a_dir_prepared_before_the_options_still_opens_and_verifies(made, tmp_path):
    old = Path(shutil.copytree(made("default")[0], tmp_path / "old"))
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["train_order"]  # what a manifest of before lacks
    for key in ("order", "tokenizer_model"):
        del manifest["pipeline"]["settings"][key]
    (old / "manifest.json").write_text(json.dumps(manifest))
    data = open_data_dir(old, verify_hashes=True)
    assert data.data_sha256 == made("default")[1]["data_sha256"] and not data.curriculum
    verify_data_dir(old)
    first = next(data.iter_batches("train", 16, seed=0))
    assert not np.array_equal(first, data.get_rows("train", np.arange(16)))  # shuffled


def test_the_hash_covers_only_settings_off_their_default():
    shards = [{"split": "train", "sha256": "ab"}, {"split": "val", "sha256": "cd"}]
    plain = data_sha256(shards)
    assert data_sha256(shards, dict(DEFAULTS)) == data_sha256(shards, {}) == plain
    changed = {data_sha256(shards, {**DEFAULTS, key: value}) for key, value in
               (("trash_cutoff", None), ("trash_cutoff", 0.3), ("dedup", "off"),
                ("order", "prevalence"), ("tokenizer_model", "bpe"))}
    assert len(changed) == 5 and plain not in changed


@pytest.mark.parametrize("name", list(OPTIONS))
def test_each_option_is_recorded_verified_and_changes_data_sha256(made, name):
    out, manifest = made(name)
    settings = manifest["pipeline"]["settings"]
    assert {key: settings[key] for key in OPTIONS[name]} == OPTIONS[name]
    assert manifest["data_sha256"] != made("default")[1]["data_sha256"]
    assert manifest_data_sha256(manifest) == manifest["data_sha256"]
    assert verify_data_dir(out)["data"].data_sha256 == manifest["data_sha256"]


def test_dedup_off_keeps_the_duplicates(made):
    on, off = made("default"), made("dedup_off")
    counts_on, counts_off = on[1]["pipeline"]["counts"], off[1]["pipeline"]["counts"]
    assert counts_on["dropped_duplicates"] > 2 and counts_off["dropped_duplicates"] == 0
    # every duplicate dropped before is now trained on (or dropped as trash like its original)
    assert (counts_off["documents_packed"] + counts_off["dropped_trash"]
            == counts_on["documents_packed"] + counts_on["dropped_trash"]
            + counts_on["dropped_duplicates"])
    assert occurrences(on[0], COPY) == 1 and occurrences(off[0], COPY) == 3


def test_dedup_off_without_duplicates_changes_only_the_hash(tmp_path):
    (tmp_path / "on").mkdir()
    (tmp_path / "off").mkdir()
    on = json.loads((make_grammar_data(tmp_path / "on") / "manifest.json").read_text())
    off = json.loads((make_grammar_data(tmp_path / "off", dedup="off") / "manifest.json")
                     .read_text())
    assert [s["sha256"] for s in off["shards"]] == [s["sha256"] for s in on["shards"]]
    assert off["data_sha256"] != on["data_sha256"] == data_sha256(off["shards"])


def test_the_trash_cutoff_moves_and_turns_off(made):
    default, tight, off = made("default"), made("trash_tight"), made("trash_off")
    dropped = {name: m["pipeline"]["counts"]["dropped_trash"]
               for name, (_, m) in (("default", default), ("tight", tight), ("off", off))}
    assert dropped["off"] == 0 < dropped["default"] < dropped["tight"]
    assert occurrences(default[0], TABLE) == 0 and occurrences(off[0], TABLE) == 1
    assert off[1]["pipeline"]["settings"]["trash_cutoff"] is None
    assert off[1]["timings_s"]["train_reference"] < 0.01  # no reference to train


@pytest.mark.parametrize("name", ["bpe", "unigram"])
def test_other_tokenizers_drop_the_same_trash_as_wordpiece(made, name):
    """The filter measures with the reference WordPiece whatever the model (data_prep.filters)."""
    counts, default = made(name)[1]["pipeline"]["counts"], made("default")[1]["pipeline"]
    assert counts["dropped_trash"] == default["counts"]["dropped_trash"]
    assert counts["documents_packed"] == default["counts"]["documents_packed"]
    assert made(name)[1]["pipeline"]["settings"]["tokenizer_model"] == name


def test_prevalence_sorts_train_rows_by_mean_log2_unigram_probability(made):
    out, manifest = made("prevalence")
    train = rows(out, "train")
    vocab = manifest["vocab_size"]
    counts = np.bincount(train.ravel(), minlength=vocab)
    log2_probs = np.log2((counts + 1) / (counts.sum() + vocab))
    score = log2_probs[train].mean(axis=1)
    assert np.all(np.diff(score) >= -1e-6)  # ascending: rarest tokens first
    assert score[0] < score[-1] - 1
    assert manifest["train_order"] == "curriculum"
    default = made("default")[0]
    assert as_set(train) == as_set(rows(default, "train"))  # the same rows, reordered
    np.testing.assert_array_equal(rows(out, "val"), rows(default, "val"))


def test_sentence_length_puts_rows_of_most_sentences_first(made):
    out, manifest = made("sentence_length")
    train = rows(out, "train")
    periods = (train == load_tokenizer(out).token_to_id(".")).sum(axis=1)
    assert np.all(np.diff(periods) <= 0) and periods[0] > periods[-1]
    assert manifest["train_order"] == "curriculum"
    assert as_set(train) == as_set(rows(made("default")[0], "train"))


def test_a_curriculum_is_read_in_stored_order_for_any_seed_rank_and_resume(made):
    data = open_data_dir(made("prevalence")[0])
    stored = rows(data.path, "train")
    total = len(stored)
    for seed in (0, 7):
        stream = data.iter_batches("train", 64, seed=seed)
        got = np.concatenate([next(stream) for _ in range(total // 64 + 2)])
        np.testing.assert_array_equal(got, stored[np.arange(len(got)) % total])  # epochs
        for start in (5, total - 3):
            for rank in range(3):
                batch = next(data.iter_batches("train", 4, seed=seed, start=start, rank=rank,
                                               world_size=3))
                positions = np.arange(start * 3 + rank, start * 3 + rank + 12, 3)
                np.testing.assert_array_equal(batch, stored[positions % total])
    val = next(data.iter_batches("val", 16, seed=0))
    assert not np.array_equal(val, data.get_rows("val", np.arange(16)))  # still shuffled


def test_verify_finds_a_train_order_that_disagrees_with_the_order(made, tmp_path):
    copy = Path(shutil.copytree(made("prevalence")[0], tmp_path / "data"))
    path = copy / "manifest.json"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, "train_order": "shuffle"}))
    with pytest.raises(UserError, match="train_order 'shuffle' disagrees with the order "
                                        "'prevalence'"):
        verify_data_dir(copy)
    manifest["pipeline"]["settings"]["order"] = "random"
    path.write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="data_sha256 does not match"):
        verify_data_dir(copy)
    path.write_text(json.dumps({**manifest, "train_order": "backwards"}))
    with pytest.raises(UserError, match="unknown train_order 'backwards'"):
        open_data_dir(copy)


def test_reusing_a_tokenizer_takes_its_model(made, corpus, tmp_path):
    bpe, manifest = made("bpe")
    again = prepare([str(corpus)], tmp_path / "again", tokenizer=bpe, **SETTINGS)
    assert again["pipeline"]["settings"]["tokenizer_model"] == "bpe"
    assert again["data_sha256"] == manifest["data_sha256"]
    with pytest.raises(UserError, match="--tokenizer-model unigram disagrees with --tokenizer"):
        prepare([str(corpus)], tmp_path / "other", tokenizer=bpe, tokenizer_model="unigram",
                **SETTINGS)


def test_the_options_on_the_command_line(tmp_path, capsys):
    corpus = make_grammar_data(tmp_path).parent / "corpus.txt"
    out = tmp_path / "cli"
    assert main(["prepare", "--source", str(corpus), "--out", str(out), "--vocab-size", "256",
                 "--tokenizer-model", "unigram", "--order", "sentence-length", "--dedup", "off",
                 "--trash-cutoff", "off", "--quiet"]) == 0
    settings = json.loads((out / "manifest.json").read_text())["pipeline"]["settings"]
    assert {key: settings[key] for key in DEFAULTS} == {
        "trash_cutoff": None, "dedup": "off", "order": "sentence-length",
        "tokenizer_model": "unigram", "plugin": None}
    capsys.readouterr()
    for args, message in ((["--trash-cutoff", "0"], "argument --trash-cutoff: 0 is out of range"),
                          (["--dedup", "maybe"], "argument --dedup: invalid choice: 'maybe'"),
                          (["--order", "shortest"], "--order 'shortest' is not one of random, "
                                                    "prevalence, sentence-length"),
                          (["--tokenizer-model", "spm"], "--tokenizer-model 'spm' is not one")):
        assert main(["prepare", "--source", str(corpus), "--out", str(tmp_path / "bad"),
                     *args, "--quiet"]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not (tmp_path / "bad").exists()
