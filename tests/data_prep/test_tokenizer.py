"""The WordPiece tokenizer: literal special-token strings in text are text, on every path."""

from __future__ import annotations

import pytest

from data_prep import load_tokenizer
from data_prep.encode import encode_ids, prenormalized
from data_prep.tokenizer import SPECIAL_TOKENS, train_tokenizer

SPECIAL_IDS = set(range(len(SPECIAL_TOKENS)))  # [PAD] [UNK] [CLS] [SEP] [MASK] = 0..4
NEVER_FROM_TEXT = SPECIAL_IDS - {1}  # [UNK] stands for any word the vocabulary cannot spell
DOCS = ["the cat sat on the mat [see page 2] and left.",
        "a dog [barked] at the [sep] marker, the [mask] and the [cls] sign [pad] [unk]."] * 20


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    path.write_text(train_tokenizer(DOCS, vocab_size=120).to_str())
    return path


@pytest.mark.parametrize("token", SPECIAL_TOKENS)
def test_special_token_strings_encode_as_the_characters_they_spell(saved, token):
    text = f"the cat {token} sat"
    # As `cram eval glue` reads it (load_tokenizer, which lowercases), and as `cram prepare`
    # encodes (a copy without the normalizer, given text that data_prep.normalize lowercased).
    for tokenizer in (load_tokenizer(saved), prenormalized(load_tokenizer(saved))):
        ids = tokenizer.encode(text.lower(), add_special_tokens=False).ids
        assert not SPECIAL_IDS & set(ids), ids  # every piece of "[sep]" is in this vocabulary
        if tokenizer.normalizer is not None:
            assert tokenizer.encode(text, add_special_tokens=False).ids == ids
    # Even text that skipped normalization never matches a special token.
    raw = prenormalized(load_tokenizer(saved))
    assert not NEVER_FROM_TEXT & set(raw.encode(text, add_special_tokens=False).ids)
    assert not NEVER_FROM_TEXT & {i for ids in encode_ids(raw, [text]) for i in ids}


def test_the_template_still_adds_the_real_specials(saved):
    tokenizer = load_tokenizer(saved)
    ids = tokenizer.encode("[SEP] cat", "[CLS] mat").ids
    assert ids[0] == 2 and ids.count(3) == 2 and ids[-1] == 3  # [CLS] a [SEP] b [SEP]
    assert tokenizer.decode(ids) == "[ sep ] cat [ cls ] mat"
