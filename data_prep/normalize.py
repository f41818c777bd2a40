"""Step 1 of cleaning: one canonical form for every document.

The rule (cramming recipe: lowercase, accents stripped, ASCII keyboard only):
CRLF/CR -> LF; typographic quotes and dashes -> their ASCII look-alikes (NFKD keeps them
non-ASCII, so without this the fold below would delete them); Unicode NFKD, then anything
still outside ASCII is dropped (accents go, letters stay: "café" -> "cafe"); ASCII control
characters are dropped; lowercase; runs of spaces/tabs -> one space; spaces at line ends
removed; runs of blank lines -> one blank line; leading/trailing whitespace stripped.
Words longer than MAX_WORD_CHARS are dropped (counted by `normalize_counting`): WordPiece
encodes such a word as one [UNK] whatever it holds, so it carries nothing to learn, and in
tokenizer training one such word (a 150 KB line of base64, say) costs seconds per 100 KB and
fills the vocabulary with hundreds of pieces no word can ever use. A "word" here is what the
BERT pre-tokenizer sees in the folded text: a run of letters and digits (it splits at
whitespace and at every ASCII punctuation mark). Text that downstream stages encode (GLUE
sentences) is not cleaned this way: there such a word becomes [UNK], as in BERT.
Line breaks survive (they mark structure in the text that is hashed for de-duplication);
the WordPiece pre-tokenizer treats them as spaces anyway.

The trained tokenizer carries the same folding as its `normalizer` (data_prep.tokenizer), so
text that downstream stages encode (GLUE sentences) is folded the same way.
"""

from __future__ import annotations

import re
import unicodedata

# Typographic punctuation without an NFKD decomposition, mapped to ASCII so it is kept.
ASCII_PUNCTUATION = {
    "\u2018": "'",  # left single quote
    "\u2019": "'",  # right single quote / apostrophe
    "\u201a": "'",
    "\u201b": "'",
    "\u2032": "'",  # prime
    "\u201c": '"',  # left double quote
    "\u201d": '"',  # right double quote
    "\u201e": '"',
    "\u00ab": '"',  # guillemets
    "\u00bb": '"',
    "\u2010": "-",  # hyphen
    "\u2012": "-",  # figure dash
    "\u2013": "-",  # en dash
    "\u2014": "-",  # em dash
    "\u2015": "-",  # horizontal bar
    "\u2212": "-",  # minus sign
}
_TRANSLATE = str.maketrans(ASCII_PUNCTUATION)
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_HSPACE = re.compile(r"[ \t\f\v]+")
_LINE_EDGE = re.compile(r" ?\n ?")
_BLANK_LINES = re.compile(r"\n{3,}")
MAX_WORD_CHARS = 100  # WordPiece's max_input_chars_per_word (BERT's default): longer is [UNK]
_LONG_WORD = re.compile(f"[a-z0-9]{{{MAX_WORD_CHARS + 1},}}")


def fold_ascii(text: str) -> str:
    """Typographic punctuation to ASCII, NFKD, then drop what is still not ASCII."""
    if text.isascii():  # the common case costs one C-level scan
        return text
    text = unicodedata.normalize("NFKD", text.translate(_TRANSLATE))
    return text.encode("ascii", "ignore").decode("ascii")


def normalize(text: str) -> str:
    return normalize_counting(text)[0]


def normalize_counting(text: str) -> tuple[str, int]:
    """(the normalized text, how many over-long words were dropped from it)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = fold_ascii(text)
    text = _CONTROL.sub("", text).lower()
    text, long_words = _LONG_WORD.subn("", text)
    text = _HSPACE.sub(" ", text)
    text = _LINE_EDGE.sub("\n", text)
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip(), long_words
