"""The distillation objective: zero soft loss when student = teacher, Hinton's T^2 form."""

import copy

import pytest
import torch
import torch.nn.functional as F

from cramming.config import ModelConfig
from cramming.extract.distill import DistillationObjective, distillation_loss
from cramming.model import CrammedBert

CFG = ModelConfig(vocab_size=50, seq_len=12, hidden=16, layers=1, heads=2, ffn_hidden=32)


@pytest.fixture(scope="module")
def batch():
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, CFG.vocab_size, (4, CFG.seq_len), generator=generator)
    labels = torch.where(torch.rand(ids.shape, generator=generator) < 0.3, ids, -100)
    return ids, labels


def test_distillation_loss_is_zero_when_student_is_teacher(batch):
    torch.manual_seed(0)
    teacher = CrammedBert(CFG).eval()
    student = copy.deepcopy(teacher)
    objective = DistillationObjective(teacher, temperature=2.0, alpha=1.0)
    loss, mlm = objective(student, *batch)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    assert mlm.item() == pytest.approx(teacher(*batch)[0].item())
    # alpha 0.5: half the MLM loss, nothing from the (zero) soft term.
    half, _ = DistillationObjective(teacher, temperature=2.0, alpha=0.5)(student, *batch)
    assert half.item() == pytest.approx(0.5 * mlm.item(), rel=1e-6)


def test_distillation_loss_is_t_squared_kl_on_the_masked_rows(batch):
    torch.manual_seed(0)
    teacher, student = CrammedBert(CFG).eval(), CrammedBert(CFG).eval()
    objective = DistillationObjective(teacher, temperature=3.0, alpha=1.0)
    loss, _ = objective(student, *batch)
    _, t_logits = teacher(*batch)
    _, s_logits = student(*batch)
    m = int((batch[1] != -100).sum())
    assert t_logits.shape == (m, CFG.vocab_size)  # masked rows only
    p_t = F.softmax(t_logits / 3.0, dim=-1)
    kl = (p_t * (p_t.log() - F.log_softmax(s_logits / 3.0, dim=-1))).sum() / m
    assert loss.item() == pytest.approx(9.0 * kl.item(), rel=1e-3)  # float32 sums
    assert loss.item() > 0
    # The gradient reaches the student only.
    loss.backward()
    assert student.encoder.embedding.word.weight.grad is not None
    assert all(p.grad is None for p in teacher.parameters())


def test_distillation_loss_function():
    logits = torch.randn(6, 10)
    assert distillation_loss(logits, logits, 4.0).item() == pytest.approx(0.0, abs=1e-6)
    assert distillation_loss(logits, logits.flip(0), 1.0).item() > 0
