"""The tokenizer every stage shares, and WordPiece, the default model: built and trained with
Hugging Face `tokenizers` (the other models are data_prep.tokenizer_models).

Special tokens are trained first, so their ids are fixed: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3
[MASK]=4 (every stage relies on these). The normalizer folds text as data_prep.normalize does
(NFKD, ASCII only, lowercase), so downstream text is encoded like the corpus. The
post-processor adds BERT's `[CLS] A [SEP] (B [SEP])` for fine-tuning; pretraining rows are
encoded without it (no [CLS] in the corpus, cramming recipe).

Text never produces a special id: by default `tokenizers` matches added tokens such as
"[SEP]" in the input before normalizing it, so a GLUE sentence quoting "[MASK]" would encode
as the real mask id. Every tokenizer this module hands out has `encode_special_tokens` set,
which makes such strings ordinary text ("[", "sep", "]"), exactly as the lowercased corpus
encodes them. The flag is not part of tokenizer.json (so it changes no hash) and is lost by
`Tokenizer.from_str`/`from_file`: set it again with `text_only` on any copy.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers.trainers import WordPieceTrainer

from crambench.errors import UserError
from data_prep.manifest import SPECIAL_IDS, SPECIAL_TOKENS
from data_prep.normalize import ASCII_PUNCTUATION, MAX_WORD_CHARS

# Every word-continuing piece that normalized text can produce: after NFKD/ASCII folding and
# lowercasing, the BERT pre-tokenizer leaves words of letters and digits only.
CONTINUATION_SEEDS = tuple(f"##{c}" for c in "0123456789abcdefghijklmnopqrstuvwxyz")


def folding_normalizer() -> normalizers.Normalizer:
    """data_prep.normalize's folding as a `tokenizers` normalizer; every tokenizer model
    (data_prep.tokenizer_models) carries it, so downstream text is folded like the corpus."""
    return normalizers.Sequence(
        [normalizers.Replace(src, dst) for src, dst in ASCII_PUNCTUATION.items()]
        + [
            normalizers.NFKD(),
            normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False,
                                       strip_accents=False, lowercase=True),
            normalizers.Replace(Regex(r"[^\x00-\x7F]"), ""),
        ]
    )


def new_tokenizer(vocab: dict[str, int] | None = None) -> Tokenizer:
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]",
                                           max_input_chars_per_word=MAX_WORD_CHARS))
    tokenizer.normalizer = folding_normalizer()
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    return tokenizer


def text_only(tokenizer: Tokenizer) -> Tokenizer:
    """`tokenizer`, set to encode special-token strings in text as text; returned for
    chaining. The special ids come only from the post-processor's template."""
    tokenizer.encode_special_tokens = True
    return tokenizer


def add_bert_template(tokenizer: Tokenizer) -> None:
    cls, sep = SPECIAL_IDS["cls"], SPECIAL_IDS["sep"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )


@contextlib.contextmanager
def threads(workers: int) -> Iterator[None]:
    """Thread count for the Rust side while the block runs; the environment is restored after.

    workers=1 turns parallelism off. RAYON_NUM_THREADS sizes the thread pool only if set
    before the first parallel call in the process (the pool is built once).
    """
    saved = {key: os.environ.get(key) for key in ("TOKENIZERS_PARALLELISM", "RAYON_NUM_THREADS")}
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if workers > 1 else "false"
    if workers > 1:
        os.environ["RAYON_NUM_THREADS"] = str(workers)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def train_tokenizer(documents: Iterable[str], vocab_size: int) -> Tokenizer:
    """Train WordPiece on `documents`; the same documents give the same tokenizer, always.

    tokenizers 0.23.3 alone is not deterministic (huggingface/tokenizers#1794, measured here
    too: the token set changed between runs on the same text). The trainer creates the
    `##x` continuation pieces in hash-map order, and their ids break ties between equally
    frequent merges. Handing the trainer those pieces up front, in a fixed order, as extra
    special tokens fixes their ids and so the merges. Ids are then renumbered in a fixed
    order too (the trainer assigns the rest in hash-map order as well); WordPiece encoding
    is a greedy longest match over the vocabulary as a set, so renumbering changes no split.

    `documents` are cleaned text (data_prep.clean): words longer than MAX_WORD_CHARS, which
    encode as [UNK] whatever they hold, are already gone, so they cost no training time and
    leave no unusable pieces in the vocabulary.
    """
    trained = new_tokenizer()
    trainer = WordPieceTrainer(vocab_size=vocab_size,
                               special_tokens=list(SPECIAL_TOKENS + CONTINUATION_SEEDS),
                               show_progress=False)  # the caller shows progress
    trained.train_from_iterator(documents, trainer=trainer)
    rest = sorted(token for token in trained.get_vocab() if token not in SPECIAL_TOKENS)
    return finished(new_tokenizer({t: i for i, t in enumerate(SPECIAL_TOKENS + tuple(rest))}))


def finished(tokenizer: Tokenizer) -> Tokenizer:
    """A freshly built tokenizer, made ready for every stage: the special tokens (only these:
    training seeds stay ordinary pieces), the BERT template, the ids checked, text-only."""
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    add_bert_template(tokenizer)
    check_special_ids(tokenizer, "the trained tokenizer")
    return text_only(tokenizer)


def check_special_ids(tokenizer: Tokenizer, where: str) -> None:
    for token, expected in zip(SPECIAL_TOKENS, range(len(SPECIAL_TOKENS)), strict=True):
        got = tokenizer.token_to_id(token)
        if got != expected:
            raise UserError(f"{where}: special token {token} has id {got}, expected {expected}")


def read_tokenizer_file(path) -> Tokenizer:
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as err:  # tokenizers raises a bare Exception for bad JSON
        raise UserError(f"cannot read tokenizer {path}: {str(err).splitlines()[0]}") from None
    check_special_ids(tokenizer, str(path))
    return text_only(tokenizer)
