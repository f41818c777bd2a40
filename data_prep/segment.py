"""Long documents -> pieces of at most MAX_DOC_CHARS characters, cut at paragraph or line ends.

A document is the unit of the val split, of de-duplication, of the trash filter and of the
[SEP] between texts. A source can hand over a whole book as one document (a plain-text novel
with hard-wrapped lines and no blank lines, a JSON line holding a book): then 18 novels are 18
documents, and a 1% val split of 24 MB of text holds none of them. So every normalized document
longer than MAX_DOC_CHARS is cut into near-equal pieces, each a document from then on.

MAX_DOC_CHARS is 16,384 characters, about 3,500 WordPiece tokens or 28 rows of 128: about a
chapter of a novel, and longer than 99 in 100 articles of the project's shared Wikipedia
sample, which stay whole. Cuts fall at the last blank line in the second half of each piece,
else the last line break, else the last space, else before the last punctuation mark (after
normalize() no word is longer than 100 characters, so a window always holds one of these):
the pre-tokenizer splits words at each of those, so no word is ever cut in two.
"""

from __future__ import annotations

import re

MAX_DOC_CHARS = 1 << 14
_WORD_END = re.compile(r"[^a-z0-9][a-z0-9]*\Z")  # the last non-word character of a window


def cut_document(text: str, limit: int = MAX_DOC_CHARS) -> list[str]:
    """`text` (normalized) as pieces of at most `limit` characters, stripped, in order.

    Pieces are near-equal: a 40,000-character text becomes three of about 13,300, never two
    of 16,384 and a short tail (which the length filter would drop).
    """
    if len(text) <= limit:
        return [text]
    pieces, start = [], 0
    while len(text) - start > limit:
        remaining = len(text) - start
        count = -(-remaining // limit)  # pieces still to make
        end = start + -(-remaining // count)
        cut = _boundary(text, start + (end - start) // 2, end)
        pieces.append(text[start:cut].strip())
        start = cut
    pieces.append(text[start:].strip())
    return [piece for piece in pieces if piece]


def _boundary(text: str, low: int, high: int) -> int:
    """The best cut position in text[low:high]: the piece before it ends there."""
    for mark in ("\n\n", "\n", " "):
        at = text.rfind(mark, low, high)
        if at >= low:
            return at
    word_end = _WORD_END.search(text, low, high)
    return word_end.start() if word_end else high
