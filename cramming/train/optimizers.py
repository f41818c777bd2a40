"""The pretraining optimizer, by `optim.name`: torch's own optimizers, one table entry each.

Every entry takes the two parameter groups (decayed matrices, the rest undecayed) and the
`optim` section; each checkpoints through `state_dict` like any torch optimizer. The cramming
paper tried these (section 4.3): none beat Adam(W) at its budget, so `adamw` is the reference.
"""

from __future__ import annotations

import torch

from cramming.config import OptimConfig


def _adam_family(kind):
    def build(groups, o: OptimConfig, fused: bool):
        extra = {"fused": True} if fused else {}
        return kind(groups, lr=o.lr, betas=tuple(o.betas), eps=o.eps, **extra)
    return build


def _radam(groups, o: OptimConfig, fused: bool):
    return torch.optim.RAdam(groups, lr=o.lr, betas=tuple(o.betas), eps=o.eps)


def _adafactor(groups, o: OptimConfig, fused: bool):
    # Factored second moments, no first moment (Shazeer & Stern 2018); torch's defaults for
    # its decay rate and epsilons: optim.betas and optim.eps do not apply. Its lr is a
    # relative step: a parameter moves by lr x max(1e-3, RMS(parameter)) per normalized
    # update, so an Adam-sized lr (1e-3) barely trains a model initialised at std 0.02;
    # torch's default, and the paper's relative step, is 1e-2.
    return torch.optim.Adafactor(groups, lr=o.lr)


def _sgd(groups, o: OptimConfig, fused: bool):
    return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum)


# Adam and RAdam add weight decay to the gradient (L2); AdamW decouples it (Loshchilov &
# Hutter 2019). The group's weight_decay is passed to each.
OPTIMIZERS = {
    "adamw": _adam_family(torch.optim.AdamW),
    "adam": _adam_family(torch.optim.Adam),
    "adafactor": _adafactor,
    "sgd": _sgd,
    "radam": _radam,
}


def build_optimizer(model, o: OptimConfig, device) -> torch.optim.Optimizer:
    """`o.name`'s optimizer over `model`. Weight decay only on the matrices of linear layers,
    never on norms, biases or the token embedding (cramming paper, as BERT). Fused kernels
    where torch has them, on CUDA."""
    word = model.encoder.embedding.word.weight
    decay = [p for p in model.parameters() if p.ndim >= 2 and p is not word]
    no_decay = [p for p in model.parameters() if p.ndim < 2 or p is word]
    groups = [{"params": decay, "weight_decay": o.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return OPTIMIZERS[o.name](groups, o, device.type == "cuda")
