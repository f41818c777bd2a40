"""Source specs -> re-iterable streams of raw documents.

    demo                     the corpus embedded in Python and the pinned packages (data_prep.demo)
    PATH                     a local file or folder (data_prep.local)
    hf:NAME[:CONFIG][:SPLIT] a Hugging Face Hub dataset, streamed (data_prep.hub)

Every source can be iterated any number of times and yields the same documents in the same
order each time: preparation makes one pass to train the tokenizer and a second to encode.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from pathlib import Path

from data_prep.errors import UserError

# Undecodable bytes become U+FFFD and are counted, so the manifest says how much was damaged.
# A URL-style scheme ("s3:", "gs:", "http:"); two letters or more, so "C:" stays a path.
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")
DECODE_ERRORS = "cram-count-replace"
_replaced_bytes = [0]


def _count_and_replace(err: UnicodeDecodeError) -> tuple[str, int]:
    _replaced_bytes[0] += err.end - err.start
    return "\ufffd", err.end


codecs.register_error(DECODE_ERRORS, _count_and_replace)


def replaced_bytes() -> int:
    """Total undecodable bytes replaced so far in this process (take differences)."""
    return _replaced_bytes[0]


def decode(data: bytes) -> str:
    return data.decode("utf-8", DECODE_ERRORS)


class Source:
    """A named, re-iterable stream of raw document texts."""

    name: str
    kind: str

    def documents(self) -> Iterator[str]:
        raise NotImplementedError

    def describe(self) -> list[dict]:
        """Manifest records: name, kind, bytes, and sha256 or revision (one per sub-source)."""
        raise NotImplementedError


def parse_source(spec: str) -> Source:
    """Turn one `--source` value into a Source, failing early with a clear message."""
    if spec == "demo":
        from data_prep.demo import DemoSource

        return DemoSource()
    if spec.startswith("hf:"):
        from data_prep.hub import HubSource

        return HubSource.from_spec(spec)
    scheme = _SCHEME.match(spec)
    if scheme and not Path(spec).exists():
        raise UserError(f"unknown source scheme {scheme.group()!r} in {spec!r} "
                        "(use demo, hf:NAME[:CONFIG][:SPLIT] or a local path)")
    from data_prep.local import LocalSource

    return LocalSource(Path(spec))
