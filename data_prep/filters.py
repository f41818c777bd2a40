"""Document filters. Each returns True to keep a document; the pipeline counts what each drops.

- too short: fewer than MIN_CHARS characters after normalization (headings, page numbers,
  stray lines carry no context for a length-128 model).
- trash: more tokens per character than TRASH_CUTOFF, the cramming recipe's rule (Geiping &
  Goldstein 2022, data config `trash_cutoff: 0.25`; it keeps `len(tokens) < 0.25 * len(text)`).
  Tables, code and number lists tokenize into many short pieces. The ratio depends on the
  vocabulary size (a small vocabulary splits words more), and the cutoff was set for a
  ~32k WordPiece vocabulary, so the ratio is measured with a reference WordPiece of
  REFERENCE_VOCAB trained on the same cleaned stream: the trained tokenizer itself when its
  vocabulary has that size, otherwise one more pass trains the reference (data_prep.prepare).
  `--trash-cutoff X` sets the cutoff (cramming's `trash_cutoff`, 0.3 in some of its configs),
  `--trash-cutoff off` drops no document as trash (cramming's `remove_trash: False`).
  The reference is a WordPiece whatever `--tokenizer-model` trains: a BPE or Unigram
  vocabulary cuts text into another number of pieces, so the cutoff would mean something
  else, and changing the tokenizer would change which documents are kept; the ablation
  compares tokenizers on the same documents. (cramming too measured with a fixed tokenizer,
  ALBERT's, unless its config said `remove_trash: self`.)
"""

from __future__ import annotations

MIN_CHARS = 64  # about a dozen words
TRASH_CUTOFF = 0.25  # cramming data config, tokens per character
REFERENCE_VOCAB = 32768  # cramming's WordPiece vocabulary size


def long_enough(text: str, min_chars: int = MIN_CHARS) -> bool:
    return len(text) >= min_chars


def not_trash(num_tokens: int, num_chars: int, cutoff: float = TRASH_CUTOFF) -> bool:
    return num_tokens < cutoff * num_chars
