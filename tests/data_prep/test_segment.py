"""Over-long inputs: words WordPiece can only call [UNK], and documents as long as a book."""

from __future__ import annotations

import json
import random
import string
from pydoc_data.topics import topics

from data_prep import prepare
from data_prep.normalize import MAX_WORD_CHARS, normalize, normalize_counting
from data_prep.segment import MAX_DOC_CHARS, cut_document

SETTINGS = {"vocab_size": 1000, "val_fraction": 0.1, "quiet": True}


def random_word(length: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(length))


def test_words_over_the_wordpiece_limit_are_dropped_and_counted():
    longest = "a" * MAX_WORD_CHARS
    text = f"Keep {longest} but not {random_word(101)}, nor x.{random_word(5000)}.y here"
    assert normalize_counting(text) == (f"keep {longest} but not , nor x..y here", 2)
    assert normalize(f"one\n\n{random_word(300)}\n\ntwo") == "one\n\ntwo"


def test_a_150_kb_line_changes_neither_the_vocabulary_nor_the_data(tmp_path):
    """Issue example: a 150 KB line of letters and digits added to a corpus took ~600 of 8192
    vocabulary entries (pieces no word can use) and 12 s of training time."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for key in sorted(topics)[:60]:
        (corpus / f"{key}.txt").write_text(topics[key])
    before = prepare([str(corpus)], tmp_path / "before", **SETTINGS)
    (corpus / "zz-line.txt").write_text(random_word(150_000) + "\n")
    paragraph = next(block for block in topics["assert"].split("\n\n")
                     if len(normalize(block)) >= 64)
    (corpus / "zz-copy.txt").write_text(f"{paragraph} {random_word(700, seed=2)}")
    after = prepare([str(corpus)], tmp_path / "after", **SETTINGS)
    # the same tokenizer, and so the same trash-filter reference and the same rows
    assert after["tokenizer_sha256"] == before["tokenizer_sha256"]
    assert after["data_sha256"] == before["data_sha256"]
    counts, was = after["pipeline"]["counts"], before["pipeline"]["counts"]
    assert counts["words_dropped_too_long"] == 2
    # the line alone is then empty (too short); the copy of a paragraph is a duplicate once its
    # long word is gone
    assert counts["dropped_too_short"] == was["dropped_too_short"] + 1
    assert counts["dropped_duplicates"] == was["dropped_duplicates"] + 1
    assert after["pipeline"]["settings"]["max_word_chars"] == MAX_WORD_CHARS


def test_long_documents_are_cut_into_near_equal_pieces_at_line_ends():
    rng = random.Random(0)
    lines = [" ".join(rng.choice(["the", "parsonage", "of", "agnes", "grey", "x,y"])
                      for _ in range(rng.randint(4, 14))) for _ in range(4000)]
    text = "\n".join(lines)
    pieces = cut_document(text)
    assert len(pieces) == -(-len(text) // MAX_DOC_CHARS)
    assert all(MAX_DOC_CHARS // 2 <= len(p) <= MAX_DOC_CHARS for p in pieces)
    assert "\n".join(pieces) == text  # cut at line ends, nothing lost or moved
    assert cut_document("short text") == ["short text"]
    # no whitespace in reach: cut before punctuation, never inside a word
    dotted = ".".join(["ab" * 40] * 1000)
    assert "".join(cut_document(dotted)) == dotted
    assert all(p.startswith(".") for p in cut_document(dotted)[1:])


def test_a_hard_wrapped_novel_without_blank_lines_is_many_documents(shared_data, tmp_path):
    """Issue example: novels with hard-wrapped lines and no blank lines were one document per
    file, so 24 MB of them in 18 files had no val split ("corpus too small")."""
    novel = shared_data / "corpus" / "british_fiction" / "ABronte_Agnes.txt"  # CRLF, wrapped
    manifest = prepare([str(novel)], tmp_path / "data", **SETTINGS)
    counts = manifest["pipeline"]["counts"]
    assert counts["documents_read"] == 1 and counts["documents_cut"] == 1
    assert counts["pieces_from_cuts"] == -(-counts["chars_kept"] // MAX_DOC_CHARS)
    assert counts["documents_val"] >= 1 and manifest["num_sequences"]["val"] >= 1
    assert counts["documents_packed"] == counts["documents_train"] + counts["documents_val"]


def test_the_summary_counts_the_documents_packed(shared_data, tmp_path, capsys):
    from crambench.shell.cli import main

    novel = shared_data / "corpus" / "british_fiction" / "ABronte_Agnes.txt"
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "agnes.txt").write_bytes(novel.read_bytes())
    (corpus / "table.txt").write_text("\n".join(" | ".join(f"{i * j:x}" for j in range(12))
                                                for i in range(40)))  # trash: numbers
    assert main(["prepare", "--source", str(corpus), "--out", str(tmp_path / "data"),
                 "--vocab-size", "1000", "--val-fraction", "0.1", "--quiet"]) == 0
    line = capsys.readouterr().out
    counts = json.loads((tmp_path / "data" / "manifest.json").read_text())["pipeline"]["counts"]
    assert counts["dropped_trash"] >= 1  # the table at least
    # Issue example: the count was taken before the trash filter
    assert counts["documents_packed"] == counts["documents_kept"] - counts["dropped_trash"]
    assert (f"{counts['documents_packed']} documents packed (2 read, 1 over {MAX_DOC_CHARS} "
            f"characters cut into {counts['pieces_from_cuts']}; dropped 0 too short, "
            f"0 duplicates, {counts['dropped_trash']} trash)") in line
