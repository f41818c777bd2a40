"""The subword models `cram prepare --tokenizer-model` trains: the table TOKENIZER_MODELS.

The cramming paper ablated the tokenizer (WordPiece, BPE, Unigram at 32768 tokens: no
difference found; Geiping & Goldstein 2022, v1 section 4.3; its data config `tokenizer`).
Every model here is trained with Hugging Face `tokenizers` on the same cleaned text and shares
what every later stage relies on (data_prep.tokenizer): the folding normalizer, the special
tokens [PAD] [UNK] [CLS] [SEP] [MASK] at ids 0-4, the `[CLS] A [SEP] (B [SEP])` template and
text-only special strings. Only the subword model differs:

- wordpiece (default): BERT's pre-tokenizer (whitespace and punctuation split words), greedy
  longest-match pieces, `##` marks a piece that continues a word.
- bpe: the same pre-tokenizer and `##` marking; byte-pair merges, applied in the order they
  were learnt, instead of the longest match.
- unigram: SentencePiece's Unigram language model (the most likely split by piece
  probabilities); words split at whitespace, `▁` marks a piece that starts a word, punctuation
  split off as its own piece; decoding restores the text's spacing.

bpe and unigram also start from every character folded text can hold (lowercase printable
ASCII), so no text they encode has an [UNK], whatever the corpus lacked.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from tokenizers.trainers import BpeTrainer, UnigramTrainer

from crambench.errors import UserError
from data_prep.manifest import SPECIAL_IDS, SPECIAL_TOKENS
from data_prep.tokenizer import (
    CONTINUATION_SEEDS,
    finished,
    folding_normalizer,
    train_tokenizer,
)

# What folded text is made of (data_prep.normalize): lowercase printable ASCII, no whitespace.
ALPHABET = sorted(set(string.printable) - set(string.whitespace) - set(string.ascii_uppercase))
WORD_START = "▁"  # SentencePiece's marker (U+2581), as the Unigram model writes it
# tokenizers' Unigram trainer scores each character it must keep but its model dropped at
# the lowest score plus 0.0001 k, k in hash-set order (different on every run): a character
# piece within this span of the lowest score gets the lowest score itself.
LOWEST_SPAN = 0.0001 * (len(ALPHABET) + 1)
SCORE_DECIMALS = 6  # the trainer's other scores differ between runs in their last bits


@dataclass(frozen=True)
class TokenizerModel:
    name: str  # the --tokenizer-model value
    model_type: str  # the model's "type" in tokenizer.json
    train: Callable[[Iterable[str], int], Tokenizer]  # (cleaned documents, vocab size)
    continues_word: Callable[[str], bool]  # does this piece continue a word?


def _hash_continues(token: str) -> bool:
    return token.startswith("##")


def _unigram_continues(token: str) -> bool:
    return not token.startswith(WORD_START) and token not in SPECIAL_TOKENS


def train_bpe(documents: Iterable[str], vocab_size: int) -> Tokenizer:
    """BPE on `documents`; the same documents give the same tokenizer, always.

    The merges are learnt by the trainer WordPiece uses, with the same flaw: it creates the
    `##x` pieces in hash-map order and their ids break ties between equally frequent merges,
    so the order of the merges, which decides every split, changed between runs (measured
    here). The same cure as data_prep.tokenizer.train_tokenizer: the pieces are handed over
    first, in a fixed order, then the model is rebuilt with them as ordinary pieces."""
    trained = _bpe_tokenizer()
    trainer = BpeTrainer(vocab_size=vocab_size,
                         special_tokens=list(SPECIAL_TOKENS + CONTINUATION_SEEDS),
                         initial_alphabet=ALPHABET, continuing_subword_prefix="##",
                         show_progress=False)  # the caller shows progress
    trained.train_from_iterator(documents, trainer=trainer)
    state = json.loads(trained.to_str())["model"]
    return finished(_bpe_tokenizer(state["vocab"], [tuple(m) for m in state["merges"]]))


def _bpe_tokenizer(vocab: dict[str, int] | None = None,
                   merges: list[tuple[str, str]] | None = None) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE(vocab, merges, unk_token="[UNK]",
                                     continuing_subword_prefix="##"))
    tokenizer.normalizer = folding_normalizer()
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    return tokenizer


def train_unigram(documents: Iterable[str], vocab_size: int) -> Tokenizer:
    """Unigram on `documents`; the same documents give the same tokenizer (measured: the
    same pieces and scores on repeated runs).

    tokenizers 0.23.3 is not deterministic here either: the characters the trainer must keep
    but its model dropped get scores near the lowest in hash-set order, and the other scores
    are sums taken in hash-map order. Those characters get the lowest score, the rest are
    rounded to SCORE_DECIMALS, and the pieces are numbered in a fixed order (a Unigram split
    depends on the scores, not on the ids)."""
    trained = _unigram_tokenizer()
    trainer = UnigramTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                             unk_token="[UNK]", initial_alphabet=ALPHABET, show_progress=False)
    trained.train_from_iterator(documents, trainer=trainer)
    pieces = [(piece, score) for piece, score in json.loads(trained.to_str())["model"]["vocab"]
              if piece not in SPECIAL_TOKENS]
    lowest = round(min(score for _, score in pieces), SCORE_DECIMALS)
    canonical = sorted((piece, lowest if len(piece) == 1 and score < lowest + LOWEST_SPAN
                        else round(score, SCORE_DECIMALS)) for piece, score in pieces)
    specials = [(token, 0.0) for token in SPECIAL_TOKENS]
    return finished(_unigram_tokenizer(specials + canonical))


def _unigram_tokenizer(vocab: list[tuple[str, float]] | None = None) -> Tokenizer:
    model = (models.Unigram() if vocab is None
             else models.Unigram(vocab, unk_id=SPECIAL_IDS["unk"], byte_fallback=False))
    tokenizer = Tokenizer(model)
    tokenizer.normalizer = folding_normalizer()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Metaspace(replacement=WORD_START, prepend_scheme="always"),
        pre_tokenizers.Punctuation(),
    ])
    tokenizer.decoder = decoders.Metaspace(replacement=WORD_START, prepend_scheme="always")
    return tokenizer


TOKENIZER_MODELS = {model.name: model for model in (
    TokenizerModel("wordpiece", "WordPiece", train_tokenizer, _hash_continues),
    TokenizerModel("bpe", "BPE", train_bpe, _hash_continues),
    TokenizerModel("unigram", "Unigram", train_unigram, _unigram_continues),
)}


def model_name(tokenizer: Tokenizer) -> str:
    """The TOKENIZER_MODELS name of a tokenizer's model; another model's type, lowercased."""
    kind = type(tokenizer.model).__name__
    for model in TOKENIZER_MODELS.values():
        if model.model_type == kind:
            return model.name
    return kind.lower()


def tokenizer_model(name: str) -> TokenizerModel:
    """The table's entry for `name`, or a UserError naming the option."""
    if name not in TOKENIZER_MODELS:
        raise UserError(f"--tokenizer-model {name!r} is not one of "
                        f"{', '.join(TOKENIZER_MODELS)}")
    return TOKENIZER_MODELS[name]


def continues_word(tokenizer: Tokenizer) -> Callable[[str], bool]:
    """The rule that tells a word's later pieces for this tokenizer's model (`##` pieces for a
    model outside the table, as BERT's)."""
    model = TOKENIZER_MODELS.get(model_name(tokenizer))
    return model.continues_word if model else _hash_continues
