"""JSON contract files and content hashes: how every stage reads the records it is handed.

A contract file is a JSON object with a `format` string that names its version (the formats and
their fields: docs/contracts.md); readers reject a version they do not know, in one line. Hashes
are sha256 over a file's bytes, or over `canonical_json` of a record.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from crambench.errors import UserError

_CHUNK = 1 << 20  # 1 MiB reads keep hashing of multi-GB shards at constant memory


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def contained_path(root: str | os.PathLike, relative: str, *, what: str) -> Path:
    """`root / relative`, refusing a recorded path that leaves `root`.

    Records (manifests, results, entries) name their files by paths relative to their folder;
    an absolute path, a `..` part or a symbolic link that resolves outside `root` would make a
    reader open (and a validator hash) any file on the machine. `what` names the record field
    in the error, e.g. "shard file in data/manifest.json". Raises UserError.
    """
    root = Path(root)
    text = str(relative)
    parts = Path(text).parts
    if not text or Path(text).is_absolute() or ".." in parts:
        raise UserError(f"{what} {text!r} is not a path inside {root}")
    path = root / text
    if not path.resolve().is_relative_to(root.resolve()):
        raise UserError(f"{what} {text!r} leads outside {root} (through a symbolic link)")
    return path


def canonical_json(obj) -> bytes:
    """The byte form that hashes are taken over: sorted keys, no whitespace."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def read_json_object(path: str | os.PathLike) -> dict:
    """A JSON object from `path`, or a one-line UserError naming the file."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise UserError(f"cannot read {path}: not UTF-8 text ({err.reason})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"cannot read {path}: not valid JSON ({err})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path} holds a JSON {type(obj).__name__}, not an object")
    return obj


def read_contract(path: str | os.PathLike, expected_format: str) -> dict:
    """A contract file: a JSON object whose `format` this version reads, else a UserError."""
    obj = read_json_object(path)
    if obj.get("format") != expected_format:
        raise UserError(f"{path} has format {obj.get('format')!r}, expected {expected_format!r}")
    return obj


def hash_pair(recorded, actual, *, shown: int = 12) -> tuple[str, str]:
    """Two hashes that differ, each cut after the character where they first differ (at least
    `shown` characters): prefixes that can never read the same, e.g. ('1a2b3c4d5e6f7a...',
    '1a2b3c4d5e6f70...'). A value that is not a string is shown whole."""
    if not isinstance(recorded, str) or not isinstance(actual, str):
        return repr(recorded), repr(actual)
    pairs = enumerate(zip(recorded, actual, strict=False))  # lengths may differ too
    first = next((i for i, (a, b) in pairs if a != b), min(len(recorded), len(actual)))
    cut = max(shown, first + 1)
    return tuple(text[:cut] + ("..." if len(text) > cut else "") for text in (recorded, actual))
