"""Sources, normalization, filters and de-duplication, on small real text."""

from __future__ import annotations

import json
from pydoc_data.topics import topics

import pytest

from crambench.errors import UserError
from data_prep.clean import CleanCounts, clean_documents
from data_prep.dedup import Deduplicator, digest, is_validation
from data_prep.filters import MIN_CHARS, long_enough, not_trash
from data_prep.local import LocalSource
from data_prep.normalize import normalize
from data_prep.sources import parse_source

# Opening of Pride and Prejudice (public domain), with typographic marks as in UTF-8 editions.
AUSTEN = ("It is a truth universally acknowledged, that a single man in possession of a good "
          "fortune, must be in want of a wife.\r\n\r\n“My dear Mr. Bennet,” said his lady to him "
          "one day, “have you heard that Netherfield Park is let at last?”")


def test_normalize_lowercases_folds_and_keeps_quotes():
    text = normalize(AUSTEN)
    assert text.isascii() and text == text.lower()
    assert '"my dear mr. bennet," said his lady' in text
    assert "\r" not in text and "\n\n" in text  # CRLF -> LF, the paragraph break survives


def test_normalize_strips_accents_and_collapses_whitespace():
    assert normalize("  Café \t naïve\u00a0  résumé  ") == "cafe naive resume"
    assert normalize("Ærø — Straße") == "r - strae"  # letters without a decomposition go
    assert normalize("line one   \n\n\n\n   line two\x00") == "line one\n\nline two"
    assert normalize("   \r\n\t ") == ""


def test_normalize_is_idempotent_on_real_text():
    for key in sorted(topics)[:20]:
        once = normalize(topics[key])
        assert normalize(once) == once


def test_length_filter_and_trash_rule():
    assert not long_enough("call me ishmael.")
    assert long_enough("x" * MIN_CHARS) and not long_enough("x" * (MIN_CHARS - 1))
    # cramming keeps len(tokens) < 0.25 * len(chars): 25 tokens in 100 chars is trash
    assert not_trash(24, 100) and not not_trash(25, 100)


def test_dedup_on_normalized_text_counts_drops():
    docs = [AUSTEN, AUSTEN.upper(), AUSTEN.replace(" ", "   "), "too short", AUSTEN + " the end."]

    class Fixed:
        def documents(self):
            yield from docs

    counts = CleanCounts()
    kept = list(clean_documents([Fixed()], counts, max_docs=None))
    assert len(kept) == 2
    assert (counts.documents_read, counts.dropped_duplicates, counts.dropped_too_short) == (5, 2, 1)
    assert kept[0][1] == digest(normalize(AUSTEN))
    counts = CleanCounts()
    assert len(list(clean_documents([Fixed()], counts, max_docs=1))) == 1
    assert counts.documents_read == 1


def test_deduplicator_and_split_are_deterministic():
    seen = Deduplicator()
    assert seen.is_new(digest("a")) and not seen.is_new(digest("a")) and seen.is_new(digest("b"))
    digests = [digest(f"document {i}") for i in range(20000)]
    val = sum(is_validation(d, 0.1) for d in digests)
    assert 1800 < val < 2200
    assert not any(is_validation(d, 0.0) for d in digests)
    assert [is_validation(d, 0.1) for d in digests[:50]] == [
        is_validation(digest(f"document {i}"), 0.1) for i in range(50)]


def test_txt_one_document_per_blank_line_block(tmp_path):
    (tmp_path / "a.txt").write_bytes(AUSTEN.encode())
    docs = list(LocalSource(tmp_path / "a.txt").documents())
    assert len(docs) == 2 and docs[1].startswith("“My dear")


def test_wikiextractor_docs(tmp_path, shared_data):
    wiki = shared_data / "corpus" / "wiki" / "AA" / "wiki_00"
    docs = list(LocalSource(wiki).documents())
    # MANIFEST.md: 1530 <doc> articles; those with no text after the tags yield nothing
    assert 1400 < len(docs) <= 1530
    assert not any("<doc" in d or "</doc>" in d for d in docs)


def test_folder_walk_formats_and_skips(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "sub").mkdir()
    (tmp_path / "b.txt").write_text("first block\n\nsecond block\n")
    (tmp_path / "sub" / "c.jsonl").write_text(
        json.dumps({"text": "from jsonl"}) + "\n\n" + json.dumps({"text": "two"}) + "\n")
    (tmp_path / "sub" / "d.json").write_text(json.dumps([{"text": "from a json array"}]))
    pq.write_table(pa.table({"text": ["from parquet", None, "p2"]}), tmp_path / "e.parquet")
    (tmp_path / "wiki_07").write_text('<doc id="1" title="T">\nT\n\nBody text.\n</doc>\n')
    (tmp_path / "notes.md").write_text("not corpus")
    (tmp_path / ".hidden.txt").write_text("hidden")
    source = LocalSource(tmp_path)
    assert list(source.documents()) == [
        "first block\n", "second block\n", "from parquet", "p2", "T\n\nBody text.\n",
        "from jsonl", "two", "from a json array"]
    record = source.describe()[0]
    assert record["files"] == 5 and record["skipped_files"] == 2 and len(record["sha256"]) == 64


def test_undecodable_bytes_are_replaced_and_counted(tmp_path):
    (tmp_path / "latin1.txt").write_bytes(("caf\xe9 " * 40).encode("latin-1"))
    counts = CleanCounts()
    [(text, _)] = list(clean_documents([LocalSource(tmp_path)], counts, max_docs=None))
    assert counts.replaced_bytes == 40 and text.startswith("caf caf")


@pytest.mark.parametrize(("spec", "message"), [
    ("no/such/dir", "source path not found"),
    ("s3://bucket/corpus", "unknown source scheme 's3:'"),
    ("hf:", "expected hf:NAME"),
    ("hf:a:b:c:d", "expected hf:NAME"),
])
def test_bad_source_specs(spec, message):
    with pytest.raises(UserError, match=message):
        parse_source(spec)


def test_folder_without_corpus_files(tmp_path):
    (tmp_path / "readme.md").write_text("x")
    with pytest.raises(UserError, match="no corpus files"):
        parse_source(str(tmp_path))


@pytest.mark.parametrize(("name", "content", "message"), [
    ("bad.jsonl", '{"text": "ok"}\n{oops\n', r"bad.jsonl:2: not valid JSON"),
    ("bad.jsonl", '{"title": "no text"}\n', "string field 'text'"),
    ("bad.json", "[{]", "not valid JSON"),
])
def test_bad_json_rows(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(UserError, match=message):
        list(parse_source(str(tmp_path / name)).documents())


def test_parquet_without_text_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "x.parquet")
    with pytest.raises(UserError, match="no 'text' column"):
        list(parse_source(str(tmp_path / "x.parquet")).documents())
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(UserError, match="not a readable parquet"):
        list(parse_source(str(tmp_path / "broken.parquet")).documents())


def test_hub_source_fails_in_one_line_when_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = parse_source("hf:wikimedia/wikipedia:20231101.en")
    assert (source.dataset, source.config, source.split) == (
        "wikimedia/wikipedia", "20231101.en", "train")
    with pytest.raises(UserError, match="cannot resolve Hub dataset") as err:
        next(source.documents())
    assert "\n" not in str(err.value)
