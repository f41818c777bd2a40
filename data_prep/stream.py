"""What every source is: a named, re-iterable stream of raw document texts, decoded from bytes
with each undecodable byte replaced and counted (so the manifest says how much was damaged)."""

from __future__ import annotations

import codecs
from collections.abc import Iterator

# Undecodable bytes become U+FFFD and are counted, so the manifest says how much was damaged.
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
