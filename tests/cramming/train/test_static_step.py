"""A training step a GPU can run without waiting on the host: the MLM head takes a fixed number
of rows, the step traces into one graph, and no micro-batch reads a value back from the device.
"""

from __future__ import annotations

import math

import pytest
import torch

from cramming.config import load_config
from cramming.model import IGNORE_INDEX, CrammedBert
from cramming.train.objective import sparse_rows
from cramming.train.pretrain import micro_step, mlm_objective

CFG = load_config("tiny").model


def _batch(b=4, seed=0, p=0.25):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, CFG.vocab_size, (b, CFG.seq_len), generator=g)
    masked = torch.rand(ids.shape, generator=g) < p
    return ids, torch.where(masked, ids, torch.full_like(ids, IGNORE_INDEX))


def _loss_and_grads(model, ids, labels, **kwargs):
    model.zero_grad()
    loss, logits = model(ids, labels, **kwargs)
    loss.backward()
    return loss, logits, [p.grad.clone() for p in model.parameters()]


def test_fixed_head_rows_give_the_masked_rows_loss_and_gradients():
    torch.manual_seed(0)
    model = CrammedBert(CFG)
    ids, labels = _batch()
    m = int((labels != IGNORE_INDEX).sum())
    loss, logits, grads = _loss_and_grads(model, ids, labels)  # gathered with nonzero: (M, V)
    for rows in (m, m + 1, sparse_rows(ids.numel(), 0.25)):
        fixed, fixed_logits, fixed_grads = _loss_and_grads(model, ids, labels, rows=rows)
        assert fixed_logits.shape == (rows, CFG.vocab_size)
        assert torch.equal(fixed_logits[:m], logits)  # the masked rows first, in order
        # The loss sums the same terms; only the length of the (zero-padded) sum differs.
        assert fixed.item() == pytest.approx(loss.item(), rel=1e-6)
        assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(grads, fixed_grads,
                                                                   strict=True))


def test_a_training_step_traces_into_one_graph():
    torch.manual_seed(0)
    model = CrammedBert(CFG)
    ids, labels = _batch()
    rows = sparse_rows(ids.numel(), 0.25)
    explained = torch._dynamo.explain(lambda x, y: mlm_objective(model, x, y, rows=rows)[0])(
        ids, labels)
    assert explained.graph_count == 1 and explained.graph_break_count == 0
    # The data-dependent gather is what broke the graph before.
    dynamic = torch._dynamo.explain(lambda x, y: mlm_objective(model, x, y)[0])(ids, labels)
    assert dynamic.graph_break_count >= 1


def test_no_micro_batch_waits_for_the_device(monkeypatch):
    """Counting the calls that copy a device value to the host: none with a fixed head size
    (the masked count comes from the labels, drawn on the CPU); the step's loss stays a tensor.
    Without a fixed head size the gather's nonzero() is one."""
    torch.manual_seed(0)
    model = CrammedBert(CFG)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    ids, labels = _batch()
    total = int((labels != IGNORE_INDEX).sum())
    reads = []
    for name in ("item", "tolist", "nonzero"):
        real = getattr(torch.Tensor, name)

        def counted(self, *args, _real=real, _name=name, **kwargs):
            reads.append(_name)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    loss = micro_step(model, ids, labels, total, scaler, "fp32",
                      head_rows=sparse_rows(ids.numel(), 0.25))
    assert reads == [] and isinstance(loss, torch.Tensor) and loss.ndim == 0
    micro_step(model, ids, labels, total, scaler, "fp32")
    assert reads == ["nonzero"]


def test_the_fixed_row_count_covers_the_masked_count():
    # 128 sequences of 128 tokens at 25% masking: 4096 expected, 6 standard deviations (332.6)
    # above it, rounded up to a multiple of 8.
    assert sparse_rows(128 * 128, 0.25) == 4432
    assert sparse_rows(10, 0.5) == 10  # never more rows than positions
    g = torch.Generator().manual_seed(0)
    for tokens in (32 * 8, 128 * 16, 128 * 128):
        rows = sparse_rows(tokens, 0.25)
        assert rows % 8 == 0 or rows == tokens
        drawn = (torch.rand(2000, tokens, generator=g) < 0.25).sum(dim=1)
        assert int(drawn.max()) <= rows
        sd = math.sqrt(tokens * 0.25 * 0.75)
        assert rows - tokens * 0.25 <= 6 * sd + 8  # the margin is no wider than it says


def test_a_micro_batch_with_more_masked_positions_takes_them_all():
    torch.manual_seed(0)
    model = CrammedBert(CFG)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    ids, labels = _batch(p=0.9)  # far more than the fixed row count of 25% masking
    total = int((labels != IGNORE_INDEX).sum())
    head_rows = sparse_rows(ids.numel(), 0.25)
    assert total > head_rows
    fixed = micro_step(model, ids, labels, total, scaler, "fp32", head_rows=head_rows)
    model.zero_grad()
    plain = micro_step(model, ids, labels, total, scaler, "fp32")
    assert fixed.item() == pytest.approx(plain.item(), rel=1e-6)


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.mark.parametrize("queued", [False, True])
def test_with_queued_work_a_check_covers_the_rest_of_the_step(queued):
    """On a GPU the host queues micro-batches and waits once per step, so the check before a
    micro-batch must leave room for every micro-batch left in the step and the update; on a CPU
    each check covers its own micro-batch (and the update before the last)."""
    from cramming.train.budget import Budget
    from cramming.train.distributed import Dist
    from cramming.train.stop import StopCheck, StopSignal

    clock = _Clock()
    check = StopCheck(Budget(100.0, clock=clock), StopSignal(), Dist(), queued=queued)
    check.micro.update(4.0)
    check.update.update(1.0)
    clock.now = 80.0  # 20 s left: one micro-batch (4 s x 1.5) fits, four (16 s + 1 s) do not
    verdict = check.before_micro(last=False, remaining=4)
    assert verdict.stop == ("budget" if queued else None)
    clock.now = 80.0
    assert check.before_micro(last=True, remaining=1).stop is None  # (4 + 1) x 1.5 fits
