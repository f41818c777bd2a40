"""The embedded `demo` source: real prose from Python and the pinned packages, offline."""

from __future__ import annotations

import hashlib
import platform

import pytest

from data_prep import open_data_dir, prepare
from data_prep.demo_corpus import PART_COUNT, DemoSource, demo_part

# Building the whole corpus (docstrings of the standard library, numpy and scipy) takes seconds.
pytestmark = pytest.mark.slow


def test_demo_parts_are_recorded_with_versions_and_hashes():
    records = DemoSource().describe()
    assert [r["name"] for r in records] == [
        "demo:python-topics", "demo:python-stdlib-docstrings", "demo:numpy-docstrings",
        "demo:scipy-docstrings"]
    assert records[0]["version"] == f"python {platform.python_version()}"
    assert records[2]["version"].startswith("numpy ")
    assert sum(r["bytes"] for r in records) > 3_000_000  # "at least a few MB"
    for record, docs in map(demo_part, range(PART_COUNT)):
        digest = hashlib.sha256(b"".join(d.encode() + b"\x00" for d in docs)).hexdigest()
        assert record["sha256"] == digest and record["documents"] == len(docs)


def test_demo_is_english_prose_without_interactive_examples():
    docs = list(DemoSource().documents())
    words = " ".join(docs[:200]).lower().split()
    assert words.count("the") / len(words) > 0.03  # English: "the" is ~5% of running words
    assert not any(">>> " in doc for doc in docs)


def test_a_short_read_builds_and_records_only_the_parts_reached():
    source = DemoSource()
    for _, _ in zip(range(100), source.documents(), strict=False):
        pass
    assert [r["name"] for r in source.describe()] == ["demo:python-topics",
                                                      "demo:python-stdlib-docstrings"]


def test_prepare_demo_end_to_end(tmp_path):
    manifest = prepare(["demo"], tmp_path / "demo", vocab_size=8192, quiet=True)
    data = open_data_dir(tmp_path / "demo", verify_hashes=True)
    assert data.num_rows("train") > 3000 and data.num_rows("val") > 0
    assert [s["kind"] for s in manifest["sources"]] == ["demo"] * 4
