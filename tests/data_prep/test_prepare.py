"""`prepare()` and `cram prepare` end to end on small real text (the pydoc topics)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from pydoc_data.topics import topics

import numpy as np
import pytest

from crambench.errors import UserError
from data_prep import DATA_FORMAT, load_tokenizer, open_data_dir, prepare
from data_prep.encode import prenormalized
from data_prep.normalize import normalize
from data_prep.tokenizer import SPECIAL_TOKENS

SETTINGS = {"vocab_size": 2000, "val_fraction": 0.1, "quiet": True}


def write_topics(folder: Path) -> Path:
    """The Python language reference topics as .txt files: real English prose, offline."""
    folder.mkdir(parents=True, exist_ok=True)
    for key in sorted(topics):
        (folder / f"{key}.txt").write_text(topics[key])
    return folder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_topics(tmp_path_factory.mktemp("topics") / "corpus")


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("prepared") / "data"
    return out, prepare([str(corpus)], out, **SETTINGS)


def test_manifest_follows_contract_1(prepared):
    out, manifest = prepared
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert manifest["format"] == DATA_FORMAT and manifest["dtype"] == "uint16"
    assert manifest["seq_len"] == 128 and manifest["vocab_size"] == 2000
    assert manifest["special_ids"] == {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
    rows = manifest["num_sequences"]
    assert rows["train"] > 100 and rows["val"] > 0
    assert manifest["num_tokens"] == (rows["train"] + rows["val"]) * 128
    counts = manifest["pipeline"]["counts"]
    assert counts["documents_kept"] == (counts["documents_train"] + counts["documents_val"]
                                        + counts["dropped_trash"])
    assert counts["documents_packed"] == counts["documents_train"] + counts["documents_val"]
    # a document cut into pieces is replaced by them; every one is then kept or dropped
    assert (counts["documents_read"] - counts["documents_cut"] + counts["pieces_from_cuts"]
            == counts["documents_kept"] + counts["dropped_too_short"]
            + counts["dropped_duplicates"])
    assert counts["tokens_packed"] == manifest["num_tokens"]
    [source] = manifest["sources"]
    assert source["kind"] == "local" and source["files"] == len(topics)
    assert open_data_dir(out, verify_hashes=True).data_sha256 == manifest["data_sha256"]


def test_rows_hold_real_text_with_sep_and_no_cls_or_padding(prepared):
    out, _ = prepared
    data = open_data_dir(out)
    rows = data.get_rows("train", np.arange(data.num_rows("train")))
    assert rows.min() >= 0 and rows.max() < data.vocab_size
    assert not np.isin(rows, [data.special_ids["cls"], data.special_ids["pad"],
                              data.special_ids["mask"]]).any()
    assert (rows == data.special_ids["sep"]).sum() > 100
    text = load_tokenizer(out).decode(rows[0].tolist())
    assert len(text.split()) > 40 and text == text.lower()


def test_val_documents_never_reach_train(prepared):
    out, _ = prepared
    data = open_data_dir(out)
    tokenizer = load_tokenizer(out)
    sep = data.special_ids["sep"]

    def documents(split):
        ids = data.get_rows(split, np.arange(data.num_rows(split))).reshape(-1).tolist()
        text = tokenizer.decode(ids, skip_special_tokens=False)
        # whole documents only: drop the pieces cut by row boundaries at either end
        return set(text.split(tokenizer.id_to_token(sep))[1:-1])

    train, val = documents("train"), documents("val")
    assert val and train and not (train & val)


def test_tokenizer_specials_and_normalizer(prepared):
    out, _ = prepared
    tokenizer = load_tokenizer(out)
    assert [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    raw = [topics[key] for key in sorted(topics)[:30]] + ["“Café” — naïve\r\nRÉSUMÉ"]
    clean = [normalize(text) for text in raw]
    full = [e.ids for e in tokenizer.encode_batch(raw, add_special_tokens=False)]
    assert full == [e.ids for e in tokenizer.encode_batch(clean, add_special_tokens=False)]
    fast = prenormalized(tokenizer).encode_batch_fast(clean, add_special_tokens=False)
    assert full == [e.ids for e in fast]
    pair = tokenizer.encode("a cat", "a dog")
    assert pair.ids[0] == 2 and pair.ids.count(3) == 2


@pytest.mark.subprocess
def test_same_inputs_same_data_across_processes_and_thread_counts(corpus, prepared, tmp_path):
    _, manifest = prepared
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        subprocess.run(
            [sys.executable, "-m", "crambench", "prepare", "--source", str(corpus), "--out",
             str(out), "--vocab-size", "2000", "--val-fraction", "0.1", "--quiet",
             "--workers", str(workers)],
            check=True, env={**os.environ, "PYTHONHASHSEED": str(workers)}, capture_output=True)
        again = json.loads((out / "manifest.json").read_text())
        assert again["data_sha256"] == manifest["data_sha256"]
        assert again["tokenizer_sha256"] == manifest["tokenizer_sha256"]


def test_reusing_the_tokenizer_reproduces_the_data(corpus, prepared, tmp_path):
    out, manifest = prepared
    again = prepare([str(corpus)], tmp_path / "reuse", tokenizer=out, **SETTINGS)
    assert again["tokenizer_sha256"] == manifest["tokenizer_sha256"]
    assert again["data_sha256"] == manifest["data_sha256"]
    assert again["pipeline"]["settings"]["tokenizer"] == str(out)


def test_refuses_to_overwrite_unless_forced(corpus, tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="already exists"):
        prepare([str(corpus)], out, **SETTINGS)
    assert (out / "keep.txt").exists()
    prepare([str(corpus)], out, force=True, max_docs=800, **SETTINGS)
    assert not (out / "keep.txt").exists() and (out / "manifest.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no temporary left


def test_max_docs_limits_the_corpus(prepared, corpus, tmp_path):
    _, full = prepared
    small = prepare([str(corpus)], tmp_path / "small", max_docs=800, **SETTINGS)
    assert small["pipeline"]["counts"]["documents_read"] == 800
    assert small["num_sequences"]["train"] < full["num_sequences"]["train"]


def test_undecodable_bytes_are_counted_in_the_manifest(corpus, tmp_path):
    folder = write_topics(tmp_path / "mixed")
    (folder / "latin1.txt").write_bytes(("Déjà vu, naïve café. " * 10).encode("latin-1"))
    manifest = prepare([str(folder)], tmp_path / "out", **SETTINGS)
    assert manifest["pipeline"]["counts"]["replaced_bytes"] == 40  # é, à, ï, é per repeat


def bad_inputs(tmp_path: Path, corpus: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "blank.txt").write_text("\n\n  \n")
    short = tmp_path / "short"
    short.mkdir()
    (short / "lines.txt").write_text("Call me Ishmael.\n\nIt was the best of times.\n")
    trash = tmp_path / "trash"
    trash.mkdir()
    for n in range(5):  # number tables: one token per two characters
        (trash / f"table{n}.txt").write_text(" ".join(str(n * 100 + i % 10) for i in range(90)))
    src = str(corpus)
    return [
        (["--source", str(tmp_path / "missing")], "source path not found"),
        (["--source", str(empty)], "no documents"),
        (["--source", str(short)], "all 2 documents were filtered out"),
        (["--source", str(trash)], "all 5 cleaned documents were dropped as trash"),
        (["--source", src, "--vocab-size", "70000"],
         "argument --vocab-size: 70000 is out of range"),
        (["--source", src, "--vocab-size", "4"], "argument --vocab-size: 4 is out of range"),
        (["--source", src, "--seq-len", "7"],
         "argument --seq-len: 7 is out of range: must be at least 8"),
        (["--source", "ftp://host/corpus"], "unknown source scheme 'ftp:'"),
        (["--source", src, "--val-fraction", "0.0001"], "corpus too small for --val-fraction"),
        (["--source", src, "--tokenizer", str(tmp_path / "nothing")], "no tokenizer found"),
    ]


def test_bad_inputs_fail_with_one_line_and_leave_nothing(corpus, tmp_path, capsys):
    from crambench.shell.cli import main

    for args, message in bad_inputs(tmp_path, corpus):
        out = tmp_path / "out"
        status = main(["prepare", *args, "--out", str(out), "--quiet"])
        err = capsys.readouterr().err
        assert status == 2, args
        assert message in err and err.count("\n") == 1, (args, err)
        assert not out.exists()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_out_below_a_file_fails_with_one_line(corpus, tmp_path, capsys):
    from crambench.shell.cli import main

    (tmp_path / "afile").write_text("")
    assert main(["prepare", "--source", str(corpus), "--out", str(tmp_path / "afile" / "data"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "cannot create" in err and "File exists" in err and err.count("\n") == 1


def test_cli_prepare_and_verify(corpus, tmp_path, capsys):
    from crambench.shell.cli import main

    out = tmp_path / "data"
    assert main(["prepare", "--source", str(corpus), "--out", str(out), "--vocab-size",
                 "2000", "--val-fraction", "0.1", "--quiet"]) == 0
    assert "data_sha256" in capsys.readouterr().out
    assert main(["prepare", "--verify", str(out)]) == 0
    line = capsys.readouterr().out
    assert line.startswith(f"OK {out}: cram-data/1") and line.count("\n") == 1
    shard = out / "shards" / "train-00000.bin"
    shard.write_bytes(shard.read_bytes()[:-128])
    assert main(["prepare", "--verify", str(out)]) == 2
    err = capsys.readouterr().err
    assert "train-00000.bin is corrupt or truncated" in err and err.count("\n") == 1


def test_thread_settings_are_restored(corpus, tmp_path, monkeypatch):
    monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)
    monkeypatch.setenv("RAYON_NUM_THREADS", "7")
    prepare([str(corpus)], tmp_path / "out", max_docs=800, workers=2, **SETTINGS)
    assert "TOKENIZERS_PARALLELISM" not in os.environ and os.environ["RAYON_NUM_THREADS"] == "7"
