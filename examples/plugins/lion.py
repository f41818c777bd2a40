"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"): the sign of an
interpolated momentum as the update, one moment buffer instead of Adam's two.

    cram pretrain --data data/demo --preset tiny --budget 90s --out runs/lion \
        --plugin examples/plugins/lion.py plugin.options.lr_scale=0.3

Options: `lr_scale` multiplies optim.lr (the paper runs Lion at 3-10x smaller rates than
AdamW; default 0.3), `beta1` and `beta2` (the paper's 0.9 and 0.99). Weight decay is decoupled
as in AdamW and taken from the harness's parameter groups (none on norms, biases and the
token embedding).
"""

import torch

CRAM_PLUGIN_API = 1


class Lion(torch.optim.Optimizer):
    def __init__(self, params, lr, betas=(0.9, 0.99), weight_decay=0.0):
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p)
                exp_avg = state["exp_avg"]
                p.mul_(1 - group["lr"] * group["weight_decay"])
                update = exp_avg.mul(beta1).add_(p.grad, alpha=1 - beta1).sign_()
                p.add_(update, alpha=-group["lr"])
                exp_avg.mul_(beta2).add_(p.grad, alpha=1 - beta2)


def build_optimizer(model, optim, options):
    """The harness's two groups (decayed matrices, the rest) with Lion's update."""
    word = model.encoder.embedding.word.weight
    decay = [p for p in model.parameters() if p.ndim >= 2 and p is not word]
    rest = [p for p in model.parameters() if p.ndim < 2 or p is word]
    groups = [{"params": decay, "weight_decay": optim.weight_decay},
              {"params": rest, "weight_decay": 0.0}]
    betas = (float(options.get("beta1", 0.9)), float(options.get("beta2", 0.99)))
    return Lion(groups, lr=optim.lr * float(options.get("lr_scale", 0.3)), betas=betas)
