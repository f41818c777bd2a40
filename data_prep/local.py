"""Local files and folders as a document source.

Document rules, by file type:
- `.txt` (and any file named directly on the command line that is not one of the types
  below): one document per blank-line-separated block, the convention of BERT's
  pretraining-data format ("documents are delimited by empty lines"). A block is cut at
  1 MiB of text so a file without blank lines still streams in bounded memory; the cleaning
  stream then cuts every document longer than 16,384 characters into pieces at line ends
  (data_prep.segment), so a hard-wrapped novel without blank lines is many documents, not one.
- wikiextractor output (a file whose first line starts with `<doc`, whatever its name, such
  as `AA/wiki_00`): one document per `<doc ...>` ... `</doc>` element, the title line included.
- `.jsonl`: one JSON object per line, the document is its string field `text`.
- `.json`: JSON lines too, or a single JSON array of objects with `text` (an array is loaded
  whole, so use JSON lines for large files).
- JSON lines under any other name (a file whose first line is a JSON object with a string
  field `text`, such as wikiextractor's `--json` output `AA/wiki_00`): read as `.jsonl`. A
  `.txt` or named file whose first line is a JSON object without `text` is an error, never
  trained on as raw JSON text.
- `.parquet`: the `text` column, read in record batches with pyarrow.
Text files are UTF-8: a byte-order mark at the start of a file or of a line (files joined
with `cat`) is ignored, so it never changes the data; a UTF-16 or UTF-32 file (told by its
byte-order mark) is an error that says how to convert it.
A folder is walked recursively in sorted path order; hidden files and files of other types
are skipped (their count is recorded). Undecodable bytes are replaced and counted.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from crambench.contracts import sha256_file
from crambench.errors import UserError
from data_prep.stream import Source, decode

MAX_BLOCK_CHARS = 1 << 20  # a block longer than this is yielded in pieces (bounded memory)
UTF8_BOM = b"\xef\xbb\xbf"
# UTF-32 first: its little-endian mark begins with UTF-16's.
WIDE_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32LE"), (b"\x00\x00\xfe\xff", "UTF-32BE"),
             (b"\xff\xfe", "UTF-16LE"), (b"\xfe\xff", "UTF-16BE"))
_PARQUET_BATCH = 1024  # rows per record batch
SNIFF_BYTES = 4096  # read from every file of a folder to tell its kind
SNIFF_LINE_BYTES = 64 << 20  # a first JSON line may hold a whole long article


def _lines(handle) -> Iterator[bytes]:
    """The raw lines of a file opened in binary mode, a UTF-8 byte-order mark removed."""
    for raw in handle:
        yield raw[len(UTF8_BOM):] if raw.startswith(UTF8_BOM) else raw


def _sniff(path: Path, suffix: str) -> str | None:
    """What the file's start says: "wiki", "jsonl", "json-no-text", a UTF-16/32 encoding
    name, or None (plain text).

    A `.json`/`.jsonl` file is what its name says (its first line may be the whole file).
    Otherwise only the first 4 KiB are read, and the first line in full only when it opens
    with `{` (up to SNIFF_LINE_BYTES), so a folder of large binary files is cheap to list.
    """
    with open(path, "rb") as handle:
        head = handle.read(SNIFF_BYTES)
        wide = next((name for bom, name in WIDE_BOMS if head.startswith(bom)), None)
        if wide is not None:
            return wide
        if suffix in (".jsonl", ".json"):
            return suffix[1:]
        start = head.removeprefix(UTF8_BOM).lstrip()
        if start.startswith(b"<doc"):
            return "wiki"
        if not start.startswith(b"{"):
            return None
        handle.seek(len(head) - len(start))
        line = handle.readline(SNIFF_LINE_BYTES).strip()
    try:
        obj = json.loads(decode(line))
    except json.JSONDecodeError:  # code, or a line longer than SNIFF_LINE_BYTES
        return None
    if not isinstance(obj, dict):
        return None
    return "jsonl" if isinstance(obj.get("text"), str) else "json-no-text"


def file_kind(path: Path, *, named: bool) -> str | None:
    """The reader for `path`; None for a file in a folder that is not corpus text."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return "parquet"
    try:
        sniffed = _sniff(path, suffix)
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror or err}") from None
    text = named or suffix in (".txt", ".jsonl", ".json")
    if sniffed is not None and sniffed.startswith("UTF-"):
        if text:
            raise UserError(f"{path} is {sniffed} (told by its byte-order mark); corpus files "
                            f"must be UTF-8: convert it, e.g. iconv -f {sniffed[:6]} -t UTF-8")
        return None
    if sniffed == "json-no-text":
        if suffix == ".txt" or named:
            raise UserError(f"{path} holds JSON lines without a string field 'text' (first line); "
                            "give each object a 'text' field (the document) to train on it")
        return None
    if sniffed is not None:
        return sniffed
    if suffix == ".txt" or named:
        return "txt"
    return None


def read_txt_blocks(path: Path) -> Iterator[str]:
    lines: list[str] = []
    size = 0
    with open(path, "rb") as handle:
        for raw in _lines(handle):
            line = decode(raw)
            if line.strip():
                lines.append(line)
                size += len(line)
                if size < MAX_BLOCK_CHARS:
                    continue
            if lines:
                yield "".join(lines)
                lines, size = [], 0
    if lines:
        yield "".join(lines)


def read_wiki_docs(path: Path) -> Iterator[str]:
    lines: list[str] | None = None
    with open(path, "rb") as handle:
        for raw in _lines(handle):
            if raw.startswith(b"<doc"):
                lines = []
            elif raw.startswith(b"</doc>"):
                if lines:
                    yield "".join(lines)
                lines = None
            elif lines is not None:
                lines.append(decode(raw))


def _text_field(obj, where: str) -> str:
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        raise UserError(f"{where}: expected a JSON object with a string field 'text'")
    return obj["text"]


def read_jsonl(path: Path) -> Iterator[str]:
    with open(path, "rb") as handle:
        first = handle.read(1024).removeprefix(UTF8_BOM).lstrip()[:1]
        handle.seek(0)
        if first == b"[":
            try:
                rows = json.loads(decode(handle.read().removeprefix(UTF8_BOM)))
            except json.JSONDecodeError as err:
                raise UserError(f"{path}: not valid JSON ({err})") from None
            for number, obj in enumerate(rows):
                yield _text_field(obj, f"{path}: item {number}")
            return
        for number, raw in enumerate(_lines(handle), start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(decode(raw))
            except json.JSONDecodeError as err:
                raise UserError(f"{path}:{number}: not valid JSON ({err})") from None
            yield _text_field(obj, f"{path}:{number}")


def read_parquet(path: Path) -> Iterator[str]:
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a damaged file
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UserError(f"{path}: not a readable parquet file ({first_line})") from None
    if "text" not in table.schema_arrow.names:
        raise UserError(f"{path}: parquet file has no 'text' column")
    for batch in table.iter_batches(batch_size=_PARQUET_BATCH, columns=["text"]):
        for text in batch.column(0).to_pylist():
            if text:
                yield text


READERS = {
    "txt": read_txt_blocks,
    "wiki": read_wiki_docs,
    "jsonl": read_jsonl,
    "json": read_jsonl,
    "parquet": read_parquet,
}


class LocalSource(Source):
    kind = "local"

    def __init__(self, path: Path):
        if not path.exists():
            raise UserError(f"source path not found: {path}")
        self.path = path
        self.name = str(path)
        self.files, self.skipped = self._list_files()
        if not self.files:
            raise UserError(f"no corpus files (.txt, .jsonl, .json, .parquet, <doc>) under {path}")

    def _list_files(self) -> tuple[list[tuple[Path, str]], int]:
        if self.path.is_file():
            return [(self.path, file_kind(self.path, named=True))], 0
        found, skipped = [], 0
        for root, dirs, names in os.walk(self.path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(names):
                path = Path(root) / name
                kind = None if name.startswith(".") else file_kind(path, named=False)
                if kind is None:
                    skipped += 1
                else:
                    found.append((path, kind))
        return found, skipped

    def documents(self) -> Iterator[str]:
        for path, kind in self.files:
            try:
                yield from READERS[kind](path)
            except OSError as err:  # unreadable, or removed since the folder was listed
                raise UserError(f"cannot read {path}: {err.strerror or err}") from None

    def describe(self) -> list[dict]:
        # One digest over (relative path, file digest) pairs identifies the corpus exactly.
        digest = hashlib.sha256()
        total = 0
        for path, _ in self.files:
            rel = path.relative_to(self.path).as_posix() if path != self.path else path.name
            digest.update(f"{rel}\t{sha256_file(path)}\n".encode())
            total += path.stat().st_size
        return [
            {
                "name": self.name,
                "kind": self.kind,
                "bytes": total,
                "files": len(self.files),
                "skipped_files": self.skipped,
                "sha256": digest.hexdigest(),
            }
        ]
