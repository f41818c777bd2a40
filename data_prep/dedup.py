"""Exact de-duplication on normalized text, and the document digest that also picks the split.

Memory stays bounded by the number of unique documents, not their size: the set holds 16-byte
BLAKE2b digests (about 100 bytes each with Python's set overhead), never the texts.
"""

from __future__ import annotations

import hashlib

DIGEST_BYTES = 16  # 128 bits: a chance collision is negligible at any corpus size
METHOD = "exact-blake2b-128-normalized"  # as the manifest records it (`--dedup on`)


def digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=DIGEST_BYTES).digest()


class Deduplicator:
    def __init__(self) -> None:
        self._seen: set[bytes] = set()

    def is_new(self, doc_digest: bytes) -> bool:
        if doc_digest in self._seen:
            return False
        self._seen.add(doc_digest)
        return True


def is_validation(doc_digest: bytes, val_fraction: float) -> bool:
    """Deterministic split by document: the digest's first 8 bytes as a uniform fraction."""
    return int.from_bytes(doc_digest[:8], "big") < val_fraction * 2**64
