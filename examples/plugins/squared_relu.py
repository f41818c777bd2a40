"""A feed-forward variant: the squared-ReLU MLP of Primer (So et al. 2021), H -> ffn_hidden ->
relu(x)^2 -> H, in place of the reference's gated GELU unit in every block.

    cram pretrain --data data/demo --preset tiny --budget 90s --out runs/relu2 \
        --plugin examples/plugins/squared_relu.py

It builds the harness's CrammedBert and swaps each block's feed-forward, so everything else
(attention, norms, the MLM head, the fine-tuning head) is the reference's. The option `bias`
(default false) adds biases to the two linears.
"""

import torch
from torch import nn

from cramming.model import CrammedBert, init_weights

CRAM_PLUGIN_API = 1


class SquaredReLU(nn.Module):
    def __init__(self, hidden, inner, bias):
        super().__init__()
        self.up = nn.Linear(hidden, inner, bias=bias)
        self.down = nn.Linear(inner, hidden, bias=bias)

    def forward(self, x):
        return self.down(torch.relu(self.up(x)).square())  # (B, T, H)


def build_model(model_cfg, options, dropout):
    model = CrammedBert(model_cfg, dropout=dropout)
    bias = bool(options.get("bias", False))
    for block in model.encoder.blocks:
        block.ffn = SquaredReLU(model_cfg.hidden, model_cfg.ffn_hidden, bias)
        block.ffn.apply(lambda m: init_weights(m, model_cfg.init_std))
    return model
