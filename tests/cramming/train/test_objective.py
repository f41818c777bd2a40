"""The MLM masking rule: 25% of maskable tokens, 80/10/10, never a special token."""

import torch

from cramming.model import IGNORE_INDEX
from cramming.train.objective import mask_tokens, step_generator

SPECIAL = {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
VOCAB = 1000


def _rows(n=512, t=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (n, t), generator=g)
    ids[:, ::9] = SPECIAL["sep"]
    ids[:, 0] = SPECIAL["cls"]
    ids[: n // 4, -20:] = SPECIAL["pad"]
    ids[:, 5::31] = SPECIAL["unk"]
    return ids


def test_specials_are_never_masked_or_changed():
    ids = _rows()
    inputs, labels = mask_tokens(ids, special_ids=SPECIAL, vocab_size=VOCAB,
                                 generator=step_generator(0, 0))
    special = ids <= max(SPECIAL.values())
    assert (ids == SPECIAL["unk"]).any()
    assert (labels[special] == IGNORE_INDEX).all()
    assert torch.equal(inputs[special], ids[special])


def test_mask_rate_and_replacement_split():
    ids = _rows(n=2048)
    inputs, labels = mask_tokens(ids, special_ids=SPECIAL, vocab_size=VOCAB,
                                 generator=step_generator(1, 7))
    maskable = ids > max(SPECIAL.values())
    selected = labels != IGNORE_INDEX
    assert abs(selected.sum() / maskable.sum() - 0.25) < 0.005
    assert torch.equal(labels[selected], ids[selected])  # labels are the original tokens
    assert torch.equal(inputs[~selected], ids[~selected])  # unselected tokens are untouched
    n = selected.sum().item()
    as_mask = (inputs[selected] == SPECIAL["mask"]).sum().item() / n
    unchanged = (inputs[selected] == ids[selected]).sum().item() / n
    random = 1 - as_mask - unchanged
    assert abs(as_mask - 0.8) < 0.01
    assert abs(unchanged - 0.1) < 0.01  # (a random draw may hit the same id: ~0.01% extra)
    assert abs(random - 0.1) < 0.01
    replaced = selected & (inputs != SPECIAL["mask"]) & (inputs != ids)
    assert (inputs[replaced] > max(SPECIAL.values())).all()  # random ids are never special


def test_masks_are_deterministic_per_seed_and_step():
    ids = _rows(n=16)
    a = mask_tokens(ids, special_ids=SPECIAL, vocab_size=VOCAB, generator=step_generator(0, 3))
    b = mask_tokens(ids, special_ids=SPECIAL, vocab_size=VOCAB, generator=step_generator(0, 3))
    c = mask_tokens(ids, special_ids=SPECIAL, vocab_size=VOCAB, generator=step_generator(0, 4))
    assert torch.equal(a[1], b[1]) and torch.equal(a[0], b[0])
    assert not torch.equal(a[1], c[1])
