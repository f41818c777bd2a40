"""The shared fine-tuning recipe: input layout, schedule, and that training moves a model."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from conftest import tiny_model_config
from tokenizers import Tokenizer, models, pre_tokenizers

from cramming import CrammedBertForSequenceClassification
from glue_eval.finetune import cosine_with_warmup, encode_texts, finetune, join_pair, predict
from glue_eval.tasks import PROTOCOLS

CLS, SEP, PAD = 2, 3, 0
TINY = tiny_model_config(vocab_size=64)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_pairs_are_joined_with_sep_and_trimmed_longest_first():
    assert join_pair([10, 11], [20], cls_id=CLS, sep_id=SEP, max_length=8) == \
        [CLS, 10, 11, SEP, 20, SEP]
    row = join_pair(list(range(10, 20)), [30, 31], cls_id=CLS, sep_id=SEP, max_length=8)
    assert row == [CLS, 10, 11, 12, SEP, 30, 31, SEP]  # the short text is kept whole
    row = join_pair(list(range(10, 20)), list(range(30, 40)), cls_id=CLS, sep_id=SEP,
                    max_length=9)
    assert row == [CLS, 10, 11, 12, SEP, 30, 31, 32, SEP] and len(row) == 9


def test_texts_are_encoded_without_the_tokenizers_own_specials():
    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "a": 5, "b": 6, "c": 7}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    rows = encode_texts(tok, ["a b", "c c c c c c"], ["c", "zzz"], cls_id=CLS, sep_id=SEP,
                        max_length=6)
    assert rows == [[CLS, 5, 6, SEP, 7, SEP], [CLS, 7, 7, SEP, 1, SEP]]
    assert encode_texts(tok, ["a b c a"], None, cls_id=CLS, sep_id=SEP, max_length=4) == \
        [[CLS, 5, 6, SEP]]


def test_special_token_strings_in_glue_text_never_become_special_ids(tiny_run):
    """"[SEP]" quoted in a sentence is the text it spells, as `cram prepare` encodes it (the
    corpus is lowercased): only the [CLS]/[SEP] of the input layout are special."""
    from glue_eval.encoder import Encoder

    encoder = Encoder(tiny_run / "final")
    texts = ["the cat [SEP] sees [MASK] a dog [CLS]", "[PAD] [UNK] the ball"]
    rows = encode_texts(encoder.tokenizer, texts, texts[::-1], cls_id=CLS, sep_id=SEP,
                        max_length=128)
    lower = [t.lower() for t in texts]
    assert rows == encode_texts(encoder.tokenizer, lower, lower[::-1], cls_id=CLS, sep_id=SEP,
                                max_length=128)
    for row in rows:
        a_end = row.index(SEP)
        assert row[0] == CLS and row[-1] == SEP and SEP not in row[a_end + 1:-1]
        assert not {PAD, CLS, SEP, 4} & set(row[1:a_end] + row[a_end + 1:-1])


def test_cosine_schedule_warms_up_then_decays_to_zero():
    f = cosine_with_warmup(total_steps=100, warmup_fraction=0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f(100) == pytest.approx(0.0)
    assert all(f(s) >= f(s + 1) for s in range(10, 100))


def _toy_task(n: int, rng: np.random.Generator):
    """Label 1 iff token 9 occurs in the row: learnable in a few steps."""
    rows, labels = [], []
    for _ in range(n):
        body = rng.integers(10, 64, size=rng.integers(3, 12)).tolist()
        label = int(rng.random() < 0.5)
        if label:
            body[rng.integers(len(body))] = 9
        rows.append([CLS, *body, SEP])
        labels.append(label)
    return rows, np.array(labels)


def test_finetuning_changes_predictions_and_learns_a_toy_task():
    rng = np.random.default_rng(0)
    rows, labels = _toy_task(160, rng)
    torch.manual_seed(0)
    model = CrammedBertForSequenceClassification(TINY, num_labels=2, dropout=0.1)
    logits_before = _logits(model, rows)
    # A toy-sized recipe: more epochs and a larger lr than any protocol, to learn in seconds.
    protocol = dataclasses.replace(PROTOCOLS["quick"], epochs=6, lr=3e-3)
    info = finetune(model, rows, labels, protocol=protocol, regression=False, pad_id=PAD,
                    seed=0, quiet=True)
    assert info["steps"] == 6 * 10
    assert not torch.allclose(logits_before, _logits(model, rows))
    assert (predict(model, rows, regression=False, pad_id=PAD) == labels).mean() > 0.8


def test_regression_head_trains_with_mse_and_predicts_scores():
    rng = np.random.default_rng(1)
    rows, labels = _toy_task(64, rng)
    scores = labels.astype(np.float32) * 5.0
    torch.manual_seed(0)
    model = CrammedBertForSequenceClassification(TINY, num_labels=1)
    before = predict(model, rows, regression=True, pad_id=PAD)
    finetune(model, rows, scores, protocol=PROTOCOLS["quick"], regression=True, pad_id=PAD,
             seed=0, quiet=True)
    after = predict(model, rows, regression=True, pad_id=PAD)
    assert after.dtype == np.float32 and after.shape == (64,)
    assert np.abs(after - scores).mean() < np.abs(before - scores).mean()


def test_padding_does_not_change_a_rows_prediction():
    torch.manual_seed(0)
    model = CrammedBertForSequenceClassification(TINY, num_labels=2).eval()
    short, long = [CLS, 20, 21, SEP], [CLS, *range(10, 40), SEP]
    alone = _logits(model, [short])
    batched = _logits(model, [short, long])[:1]
    assert torch.allclose(alone, batched, atol=1e-5)


@torch.no_grad()
def _logits(model, rows):
    model.eval()
    width = max(map(len, rows))
    ids = torch.tensor([r + [PAD] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return model(ids, mask)
