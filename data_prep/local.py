"""Local files and folders as a document source.

Document rules, by file type:
- `.txt` (and any file named directly on the command line that is not one of the types
  below): one document per blank-line-separated block, the convention of BERT's
  pretraining-data format ("documents are delimited by empty lines"). A block is cut at
  1 MiB of text so a file without blank lines still streams in bounded memory.
- wikiextractor output (a file whose first line starts with `<doc`, whatever its name, such
  as `AA/wiki_00`): one document per `<doc ...>` ... `</doc>` element, the title line included.
- `.jsonl`: one JSON object per line, the document is its string field `text`.
- `.json`: JSON lines too, or a single JSON array of objects with `text` (an array is loaded
  whole, so use JSON lines for large files).
- `.parquet`: the `text` column, read in record batches with pyarrow.
A folder is walked recursively in sorted path order; hidden files and files of other types
are skipped (their count is recorded). Undecodable bytes are replaced and counted.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from data_prep.errors import UserError
from data_prep.files import sha256_file
from data_prep.sources import Source, decode

MAX_BLOCK_CHARS = 1 << 20  # a block longer than this is yielded in pieces (bounded memory)
STRUCTURED = {".jsonl", ".json", ".parquet"}
_PARQUET_BATCH = 1024  # rows per record batch


def _is_wikiextractor(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == b"<doc"


def file_kind(path: Path, *, named: bool) -> str | None:
    """The reader for `path`; None for a file in a folder that is not corpus text."""
    suffix = path.suffix.lower()
    if suffix in STRUCTURED:
        return suffix[1:]
    try:
        wiki = _is_wikiextractor(path)
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror or err}") from None
    if wiki:
        return "wiki"
    if suffix == ".txt" or named:
        return "txt"
    return None


def read_txt_blocks(path: Path) -> Iterator[str]:
    lines: list[str] = []
    size = 0
    with open(path, "rb") as handle:
        for raw in handle:
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
        for raw in handle:
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
        first = handle.read(1024).lstrip()[:1]
        handle.seek(0)
        if first == b"[":
            try:
                rows = json.loads(decode(handle.read()))
            except json.JSONDecodeError as err:
                raise UserError(f"{path}: not valid JSON ({err})") from None
            for number, obj in enumerate(rows):
                yield _text_field(obj, f"{path}: item {number}")
            return
        for number, raw in enumerate(handle, start=1):
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
