"""Packing: token ids of whole documents -> full rows of `seq_len`, [SEP] after each document.

The stream is `doc1 [SEP] doc2 [SEP] doc3 [SEP] ...`, cut into rows of exactly `seq_len` ids:
no [CLS], no padding (cramming recipe). Tokens that do not fill a last row are dropped and
counted. Work is done on numpy arrays, one batch of documents at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

import numpy as np

TOKEN_DTYPE = np.dtype("<u2")  # uint16, little-endian: vocabularies up to 65535 ids


class Packer:
    def __init__(self, seq_len: int, sep_id: int):
        self.seq_len = seq_len
        self.sep_id = sep_id
        self._carry = np.empty(0, dtype=TOKEN_DTYPE)
        self.tokens_in = 0  # including the [SEP]s

    def add(self, docs: Sequence[Sequence[int]]) -> np.ndarray:
        """Append documents; return the rows completed so far, shape (n, seq_len)."""
        if not docs:
            return np.empty((0, self.seq_len), dtype=TOKEN_DTYPE)
        lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
        ids = np.fromiter(chain.from_iterable(docs), dtype=TOKEN_DTYPE, count=int(lengths.sum()))
        stream = np.empty(len(self._carry) + len(ids) + len(docs), dtype=TOKEN_DTYPE)
        stream[: len(self._carry)] = self._carry
        body = stream[len(self._carry):]
        sep_at = np.cumsum(lengths + 1) - 1  # position of each document's trailing [SEP]
        is_token = np.ones(len(body), dtype=bool)
        is_token[sep_at] = False
        body[sep_at] = self.sep_id
        body[is_token] = ids
        self.tokens_in += len(body)
        full = len(stream) // self.seq_len * self.seq_len
        self._carry = stream[full:].copy()
        return stream[:full].reshape(-1, self.seq_len)

    @property
    def tokens_dropped(self) -> int:
        """Tokens held back for a row that never filled (dropped when the stream ends)."""
        return len(self._carry)
