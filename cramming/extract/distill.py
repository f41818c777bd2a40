"""Knowledge distillation on the MLM task (Hinton, Vinyals & Dean 2015, "Distilling the
Knowledge in a Neural Network"): the student learns the masked tokens and the teacher's whole
distribution over the vocabulary at each masked position.

    loss = (1 - alpha) * MLM + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))

over the masked positions only (both models run sparse prediction on the same rows). The T^2
factor keeps the soft term's gradients on the scale of the hard term's as T changes (Hinton et
al., section 2). `cram extract`'s defaults (extract.py): T = 2, DistilBERT's temperature (Sanh
et al. 2019), and alpha = 0.5, an even mix.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cramming.train.hardware import autocast
from cramming.train.summary import val_batches


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      temperature: float) -> torch.Tensor:
    """T^2 * KL(teacher || student) at temperature T, mean over rows; logits (M, V)."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits.float() / t, dim=-1),
                    F.log_softmax(teacher_logits.float() / t, dim=-1),
                    log_target=True, reduction="batchmean") * t * t


class DistillationObjective:
    """The training objective of a candidate, as the trainer's loop calls it for every
    micro-batch: `objective(student, inputs, labels) -> (loss, MLM loss)`; the loss is
    minimized, the MLM part logged. The teacher runs without gradients on the same inputs."""

    def __init__(self, teacher, *, temperature: float, alpha: float):
        self.teacher = teacher
        self.temperature = temperature
        self.alpha = alpha

    def __call__(self, student, inputs, labels) -> torch.Tensor:
        with torch.no_grad():
            _, teacher_logits = self.teacher(inputs, labels)
        mlm, student_logits = student(inputs, labels)
        soft = distillation_loss(student_logits, teacher_logits, self.temperature)
        return (1 - self.alpha) * mlm + self.alpha * soft, mlm


@torch.no_grad()
def validation_losses(student, teacher, data_dir, cfg, precision: str,
                      temperature: float) -> dict:
    """{"val_loss": MLM, "val_distill_loss": T^2 KL to the teacher} on the run's scored val
    rows (the same fixed masks as every run's val_loss), weighted by masked positions."""
    student.eval()
    device = next(student.parameters()).device
    mlm = soft = 0.0
    weight = 0
    for x, y, n_masked in val_batches(data_dir, cfg):
        x, y = x.to(device), y.to(device)
        with autocast(device, precision):
            loss, student_logits = student(x, y)
            _, teacher_logits = teacher(x, y)
        mlm += loss.item() * n_masked
        soft += distillation_loss(student_logits, teacher_logits, temperature).item() * n_masked
        weight += n_masked
    if not weight:
        return {"val_loss": None, "val_distill_loss": None}
    return {"val_loss": round(mlm / weight, 5), "val_distill_loss": round(soft / weight, 5)}
