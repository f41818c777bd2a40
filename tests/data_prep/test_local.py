"""Local corpus files as people have them: byte-order marks, wikiextractor --json, UTF-16."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from crambench.errors import UserError
from data_prep import prepare
from data_prep.local import UTF8_BOM, LocalSource
from data_prep.sources import parse_source


def wiki_articles(shared_data: Path, count: int) -> list[dict]:
    """The first `count` articles of a wikiextractor <doc> shard with text, as wikiextractor
    --json writes them: id, revid, url, title, and the text without the title line."""
    articles, current = [], None
    for line in (shared_data / "corpus" / "wiki" / "AA" / "wiki_00").open(encoding="utf-8"):
        if line.startswith("<doc"):
            fields = dict(re.findall(r'(\w+)="([^"]*)"', line))
            current = {"id": fields["id"], "revid": "0", "url": fields["url"],
                       "title": fields["title"], "lines": []}
        elif line.startswith("</doc>"):
            text = "".join(current.pop("lines")[1:]).strip("\n")  # drop the title line
            if len(text) > 200:
                articles.append({**current, "text": text})
            if len(articles) == count:
                return articles
            current = None
        elif current is not None:
            current["lines"].append(line)
    return articles


def write_every_format(folder: Path, articles: list[dict], *, bom: bytes) -> Path:
    """The same articles as .txt blocks, .jsonl, a .json array, <doc> and extensionless JSON
    lines (wikiextractor --json), each file starting with `bom`."""
    folder.mkdir(parents=True)
    parts = [articles[i::5] for i in range(5)]
    texts = {
        "a.txt": "\n\n".join(a["text"].replace("\n\n", "\n") for a in parts[0]) + "\n",
        "b.jsonl": "".join(json.dumps({"text": a["text"]}) + "\n" for a in parts[1]),
        "c.json": json.dumps([{"text": a["text"]} for a in parts[2]]),
        "d_doc": "".join(f'<doc id="{a["id"]}" url="{a["url"]}" title="{a["title"]}">\n'
                         f'{a["title"]}\n\n{a["text"]}\n</doc>\n' for a in parts[3]),
        "wiki_00": "".join(json.dumps({k: a[k] for k in ("id", "revid", "url", "title", "text")})
                           + "\n" for a in parts[4]),
    }
    for name, text in texts.items():
        (folder / name).write_bytes(bom + text.encode())
    return folder


@pytest.fixture(scope="module")
def articles(shared_data) -> list[dict]:
    return wiki_articles(shared_data, 150)


def test_a_byte_order_mark_changes_nothing_in_any_text_format(articles, tmp_path):
    plain = write_every_format(tmp_path / "plain", articles, bom=b"")
    marked = write_every_format(tmp_path / "bom", articles, bom=UTF8_BOM)
    source = LocalSource(marked)
    assert [kind for _, kind in source.files] == ["txt", "jsonl", "json", "wiki", "jsonl"]
    assert list(source.documents()) == list(LocalSource(plain).documents())
    settings = {"vocab_size": 1000, "val_fraction": 0.1, "quiet": True}
    one = prepare([str(plain)], tmp_path / "data-plain", **settings)
    two = prepare([str(marked)], tmp_path / "data-bom", **settings)
    assert one["data_sha256"] == two["data_sha256"]
    assert one["tokenizer_sha256"] == two["tokenizer_sha256"]
    # files joined with `cat` carry a mark at the start of a line: ignored there too
    joined = tmp_path / "joined.jsonl"
    joined.write_bytes((marked / "b.jsonl").read_bytes() * 2)
    assert len(list(LocalSource(joined).documents())) == 2 * len(articles[1::5])


def test_wikiextractor_json_output_is_read_by_its_text_field(articles, tmp_path):
    folder = tmp_path / "extracted" / "AA"
    folder.mkdir(parents=True)
    lines = [json.dumps({k: a[k] for k in ("id", "revid", "url", "title", "text")})
             for a in articles]
    (folder / "wiki_00").write_text("\n".join(lines[:75]) + "\n")
    (folder / "wiki_01").write_text("\n".join(lines[75:]) + "\n")
    expected = [a["text"] for a in articles]
    assert list(LocalSource(tmp_path / "extracted").documents()) == expected
    assert list(parse_source(str(folder / "wiki_00")).documents()) == expected[:75]
    manifest = prepare([str(tmp_path / "extracted")], tmp_path / "data", vocab_size=1000,
                       val_fraction=0.1, quiet=True)
    vocab = json.loads((tmp_path / "data" / "tokenizer.json").read_text())["model"]["vocab"]
    # trained on the articles, not on the JSON around them: no field names, no "curid" URLs
    assert "curid" not in vocab and "revid" not in vocab
    assert manifest["pipeline"]["counts"]["documents_read"] == len(articles)


def test_json_lines_without_text_are_refused_with_a_hint_or_skipped(tmp_path):
    rows = json.dumps({"id": "1", "title": "T", "body": "the article"}) + "\n"
    (tmp_path / "named").write_text(rows)
    with pytest.raises(UserError, match="without a string field 'text'.*give each object"):
        parse_source(str(tmp_path / "named"))
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "rows.txt").write_text(rows)
    with pytest.raises(UserError, match=r"rows\.txt holds JSON lines without"):
        parse_source(str(folder))
    (folder / "rows.txt").unlink()
    (folder / "metadata").write_text(rows)  # not corpus text in a folder: skipped, counted
    (folder / "doc.txt").write_text("{ a brace, then prose: not JSON }\n")
    source = LocalSource(folder)
    assert [p.name for p, _ in source.files] == ["doc.txt"] and source.skipped == 1


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_utf16_and_utf32_files_are_refused_with_the_fix(tmp_path, encoding):
    (tmp_path / "notes.txt").write_bytes("Café society, naïve résumés.\n".encode(encoding))
    with pytest.raises(UserError, match=rf"notes\.txt is {encoding.upper()}LE .* iconv -f"):
        parse_source(str(tmp_path))
    (tmp_path / "notes.txt").rename(tmp_path / "notes.csv")  # not corpus text: skipped
    (tmp_path / "a.txt").write_text("plain text")
    assert LocalSource(tmp_path).skipped == 1

