"""The cleaning stream: sources -> normalized, cut, long-enough, first-seen documents.

Each pass over the corpus (tokenizer training, encoding) runs this same stream, so every pass
sees exactly the same documents; the counts of the last pass go into the manifest. Steps, in
order: normalize (data_prep.normalize, which also drops words too long for WordPiece), cut
documents longer than MAX_DOC_CHARS into pieces (data_prep.segment), then per document: drop
it when too short (data_prep.filters), drop it when seen before (data_prep.dedup; unless
`--dedup off`), drop it when a plug-in's keep_document hook says so (`--plugin`,
data_prep.keep_document). Copies of one document share a digest, so they land in the same split.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass

from data_prep.dedup import Deduplicator, digest
from data_prep.filters import MIN_CHARS, long_enough
from data_prep.normalize import normalize_counting
from data_prep.segment import cut_document
from data_prep.stream import Source, replaced_bytes


@dataclass
class CleanCounts:
    documents_read: int = 0  # as the sources hand them over
    chars_read: int = 0
    replaced_bytes: int = 0  # undecodable input bytes, replaced by U+FFFD
    words_dropped_too_long: int = 0  # over WordPiece's 100 characters (data_prep.normalize)
    documents_cut: int = 0  # longer than MAX_DOC_CHARS, each cut into pieces
    pieces_from_cuts: int = 0  # the documents those cuts made (they replace documents_cut)
    dropped_too_short: int = 0  # includes documents that normalize to nothing
    dropped_duplicates: int = 0
    dropped_by_plugin: int = 0  # the keep_document hook of --plugin said False
    documents_kept: int = 0
    chars_kept: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def clean_documents(sources: Iterable[Source], counts: CleanCounts, *, max_docs: int | None,
                    min_chars: int = MIN_CHARS, dedup: bool = True,
                    keep: Callable[[str], bool] | None = None) -> Iterator[tuple[str, bytes]]:
    """Yield (normalized text, digest) for each kept document, counting every drop. With
    `dedup` False (`--dedup off`) a document seen before is kept again. `keep` (a plug-in's
    keep_document) sees each document that passed the rest and drops it by returning False."""
    seen = Deduplicator()
    replaced_at_start = replaced_bytes()
    try:
        for source in sources:
            for raw in source.documents():
                if max_docs is not None and counts.documents_read >= max_docs:
                    return
                counts.documents_read += 1
                counts.chars_read += len(raw)
                text, long_words = normalize_counting(raw)
                counts.words_dropped_too_long += long_words
                pieces = cut_document(text)
                if len(pieces) > 1:
                    counts.documents_cut += 1
                    counts.pieces_from_cuts += len(pieces)
                for piece in pieces:
                    if not long_enough(piece, min_chars):
                        counts.dropped_too_short += 1
                        continue
                    doc_digest = digest(piece)
                    if dedup and not seen.is_new(doc_digest):
                        counts.dropped_duplicates += 1
                        continue
                    if keep is not None and not keep(piece):
                        counts.dropped_by_plugin += 1
                        continue
                    counts.documents_kept += 1
                    counts.chars_kept += len(piece)
                    yield piece, doc_digest
    finally:
        counts.replaced_bytes = replaced_bytes() - replaced_at_start


def texts(stream: Iterable[tuple[str, bytes]]) -> Iterator[str]:
    for text, _ in stream:
        yield text
