"""The tokenizer models `--tokenizer-model` trains (WordPiece, BPE, Unigram): what every stage
relies on holds for each, and each is the same on every run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from pydoc_data.topics import topics

import pytest

from data_prep import load_tokenizer
from data_prep.encode import encode_ids, prenormalized
from data_prep.normalize import normalize
from data_prep.tokenizer import SPECIAL_TOKENS
from data_prep.tokenizer_models import (
    ALPHABET,
    TOKENIZER_MODELS,
    continues_word,
    model_name,
    tokenizer_model,
)

ROOT = Path(__file__).resolve().parents[2]
DOCS = [normalize(text) for _, text in sorted(topics.items())][:60]  # real prose, ~300 KB
VOCAB = 800
MODELS = list(TOKENIZER_MODELS)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """model name -> its tokenizer, trained on DOCS and read back from its tokenizer.json."""
    folder = tmp_path_factory.mktemp("tokenizers")
    found = {}
    for name, model in TOKENIZER_MODELS.items():
        (folder / f"{name}.json").write_text(model.train(DOCS, VOCAB).to_str())
        found[name] = load_tokenizer(folder / f"{name}.json")
    return found


@pytest.mark.parametrize("name", MODELS)
def test_every_model_has_the_fixed_special_ids_and_the_bert_template(trained, name):
    tokenizer = trained[name]
    assert [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert tokenizer.get_vocab_size() == VOCAB
    assert model_name(tokenizer) == name
    ids = tokenizer.encode("The cat sat.", "A dog [SEP] barked.").ids
    assert ids[0] == 2 and ids.count(3) == 2 and ids[-1] == 3  # [CLS] a [SEP] b [SEP]
    assert not {0, 2, 3, 4} & set(tokenizer.encode("a [MASK] [CLS] [PAD] [SEP]",
                                                   add_special_tokens=False).ids)


@pytest.mark.parametrize("name", MODELS)
def test_every_model_folds_text_as_the_corpus_was_folded(trained, name):
    tokenizer = trained[name]
    raw = "Café “Déjà vu” — NAÏVE\n\nline two\tend."
    assert tokenizer.encode(raw).ids == tokenizer.encode(normalize(raw)).ids
    # `cram prepare` encodes normalized text with a copy that skips the normalizer.
    fast = prenormalized(tokenizer)
    assert encode_ids(fast, DOCS[:5]) == [tokenizer.encode(d, add_special_tokens=False).ids
                                          for d in DOCS[:5]]


@pytest.mark.parametrize("name", ["bpe", "unigram"])
def test_bpe_and_unigram_spell_every_folded_character_without_unk(trained, name):
    text = " ".join(ALPHABET) + " " + "".join(ALPHABET)
    assert 1 not in trained[name].encode(text, add_special_tokens=False).ids


@pytest.mark.parametrize("name", MODELS)
def test_decoding_gives_the_words_back(trained, name):
    tokenizer = trained[name]
    text = "the interpreter reads expressions, statements and names."
    decoded = tokenizer.decode(tokenizer.encode(text).ids)
    assert decoded.replace(" ,", ",").replace(" .", ".") == text


@pytest.mark.parametrize("name", MODELS)
def test_word_continuations_are_told_apart(trained, name):
    tokenizer = trained[name]
    encoding = tokenizer.encode("unimaginably", add_special_tokens=False)
    assert len(encoding.ids) > 1  # a rare word: several pieces
    continues = continues_word(tokenizer)
    flags = [continues(token) for token in encoding.tokens]
    assert flags == [False] + [True] * (len(flags) - 1), encoding.tokens
    assert not any(continues(token) for token in SPECIAL_TOKENS)


def test_an_unknown_model_is_one_line_naming_the_option():
    with pytest.raises(Exception, match="--tokenizer-model 'sentencepiece' is not one of "
                                        "wordpiece, bpe, unigram"):
        tokenizer_model("sentencepiece")


TRAIN_AND_HASH = """
import hashlib, sys
from pydoc_data.topics import topics
from data_prep.normalize import normalize
from data_prep.tokenizer_models import TOKENIZER_MODELS
docs = [normalize(text) for _, text in sorted(topics.items())]
tokenizer = TOKENIZER_MODELS[sys.argv[1]].train(docs, 2000)
print(hashlib.sha256(tokenizer.to_str().encode()).hexdigest())
"""


@pytest.mark.subprocess
@pytest.mark.parametrize("name", ["bpe", "unigram"])
def test_the_same_text_trains_the_same_tokenizer_in_every_process(name):
    """tokenizers' trainers break ties in hash-map order, which changes with every process
    (data_prep.tokenizer_models): three processes, one and two threads, one tokenizer."""
    hashes = set()
    for threads in ("1", "2", "2"):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "RAYON_NUM_THREADS": threads,
               "TOKENIZERS_PARALLELISM": "true" if threads != "1" else "false"}
        done = subprocess.run([sys.executable, "-c", TRAIN_AND_HASH, name], env=env,
                              capture_output=True, text=True, timeout=300, check=True)
        hashes.add(done.stdout.strip())
    assert len(hashes) == 1, hashes
