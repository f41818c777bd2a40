"""The crammed BERT: the reference encoder of the cramming paper, in one file, top to bottom.

    embedding (tokens + scaled sinusoidal positions, LayerNorm)
    -> layers x pre-LN block (self-attention, gated-GELU feed-forward), no biases in linears
    -> final LayerNorm
    -> MLM head on the masked rows only (decoder tied to the token embedding)
    or the fine-tuning head on the first token.

Shapes: B batch, T sequence length, H hidden, M masked positions in the batch, V vocabulary.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cramming.config import ModelConfig

IGNORE_INDEX = -100  # label of positions that carry no loss (torch cross_entropy default)


class ScaledSinusoidal(nn.Module):
    """Fixed sinusoidal positions times one learned scalar (Hua et al. 2022, used by cramming).

    The scalar starts at 1/sqrt(H) so positions do not drown the token embedding at init.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        # (T, H), not saved: recomputed on load (persistent=False keeps it out of the weights)
        self.register_buffer("table", torch.zeros(cfg.seq_len, cfg.hidden), persistent=False)
        self.scale = nn.Parameter(torch.empty(()))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Fill the table and set the scale to its initial value. Loaders that build modules on
        the meta device (transformers, for an exported model) call it to refill the table."""
        seq_len, hidden = self.table.shape
        position = torch.arange(seq_len, dtype=torch.float32)[:, None]
        inv_freq = torch.exp(
            torch.arange(0, hidden, 2, dtype=torch.float32) * (-math.log(10000.0) / hidden)
        )
        table = torch.zeros(seq_len, hidden)
        table[:, 0::2] = torch.sin(position * inv_freq)
        table[:, 1::2] = torch.cos(position * inv_freq)
        self.table.copy_(table)
        nn.init.constant_(self.scale, hidden**-0.5)

    def forward(self, seq_len: int) -> torch.Tensor:
        return self.scale * self.table[:seq_len]  # (T, H)


def dropout_layer(p: float) -> nn.Module:
    # Pretraining runs without dropout (cramming paper: it only slows a one-epoch budget);
    # fine-tuning turns it back on. Identity at p = 0 keeps the pretraining graph free of it.
    return nn.Dropout(p) if p > 0 else nn.Identity()


class Embedding(nn.Module):
    def __init__(self, cfg: ModelConfig, dropout: float = 0.0):
        super().__init__()
        self.word = nn.Embedding(cfg.vocab_size, cfg.hidden)
        self.position = ScaledSinusoidal(cfg)
        # Normalizing the embedding keeps the first block's input at unit scale (cramming).
        self.norm = nn.LayerNorm(cfg.hidden, eps=cfg.norm_eps)
        self.dropout = dropout_layer(dropout)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.word(input_ids) + self.position(input_ids.shape[1])  # (B, T, H)
        return self.dropout(self.norm(x))


class SelfAttention(nn.Module):
    """Multi-head attention via scaled_dot_product_attention (flash / memory-efficient kernels)."""

    def __init__(self, cfg: ModelConfig, dropout: float = 0.0):
        super().__init__()
        self.heads = cfg.heads
        self.dropout = dropout  # on the attention probabilities, as in BERT fine-tuning
        self.qkv = nn.Linear(cfg.hidden, 3 * cfg.hidden, bias=False)
        self.out = nn.Linear(cfg.hidden, cfg.hidden, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        B, T, H = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, H // self.heads).permute(2, 0, 3, 1, 4)
        # q, k, v: (B, heads, T, H/heads); mask: (B, 1, 1, T) bool, True = may attend.
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.out(y.transpose(1, 2).reshape(B, T, H))  # (B, T, H)


class GatedFeedForward(nn.Module):
    """GELU-gated linear unit (Shazeer 2020): H -> ffn_hidden, split in halves, gate * value -> H.

    At ffn_hidden = 4H this costs as much as a plain 4H MLP's first layer but only half of its
    second, and trains better per FLOP (cramming paper, section 4.2).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.up = nn.Linear(cfg.hidden, cfg.ffn_hidden, bias=False)
        self.down = nn.Linear(cfg.ffn_hidden // 2, cfg.hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.up(x).chunk(2, dim=-1)  # 2 x (B, T, ffn_hidden/2)
        return self.down(F.gelu(gate) * value)  # (B, T, H)


class Block(nn.Module):
    """Pre-LayerNorm residual block: norms inside the branches keep the residual path clean,
    which is what lets the cramming recipe train at lr 1e-3 without warm-up tricks."""

    def __init__(self, cfg: ModelConfig, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.hidden, eps=cfg.norm_eps)
        self.attn = SelfAttention(cfg, dropout)
        self.norm2 = nn.LayerNorm(cfg.hidden, eps=cfg.norm_eps)
        self.ffn = GatedFeedForward(cfg)
        self.dropout = dropout_layer(dropout)  # on each branch, before it joins the residual

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.norm1(x), mask))
        return x + self.dropout(self.ffn(self.norm2(x)))


class Encoder(nn.Module):
    """Embedding, blocks and the final norm: everything a downstream task reuses."""

    def __init__(self, cfg: ModelConfig, dropout: float = 0.0):
        super().__init__()
        self.embedding = Embedding(cfg, dropout)
        self.blocks = nn.ModuleList(Block(cfg, dropout) for _ in range(cfg.layers))
        self.final_norm = nn.LayerNorm(cfg.hidden, eps=cfg.norm_eps)  # pre-LN needs a last norm

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        mask = None  # packed pretraining rows have no padding: no mask keeps the flash path
        if attention_mask is not None:
            mask = attention_mask[:, None, None, :].bool()  # (B, 1, 1, T)
        x = self.embedding(input_ids)
        for block in self.blocks:
            x = block(x, mask)
        return self.final_norm(x)  # (B, T, H)


class MLMHead(nn.Module):
    """Transform (dense, GELU, norm) then the decoder, whose weight is the token embedding."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden, cfg.hidden)
        self.norm = nn.LayerNorm(cfg.hidden, eps=cfg.norm_eps)
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))  # learns unigram frequencies

    def forward(self, h: torch.Tensor, word_embedding: torch.Tensor) -> torch.Tensor:
        h = self.norm(F.gelu(self.dense(h)))
        return F.linear(h, word_embedding, self.bias)  # (..., V)


def init_weights(module: nn.Module, std: float) -> None:
    """Normal(0, std) for matrices (BERT's initializer_range 0.02), zeros for biases."""
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=std)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class CrammedBert(nn.Module):
    """Encoder + masked-language-model head with sparse prediction."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.mlm_head = MLMHead(cfg)
        self.apply(lambda m: init_weights(m, cfg.init_std))

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        return self.encoder(input_ids, attention_mask)  # (B, T, H), final-normed

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None, *,
                rows: int | None = None):
        """-> (loss, logits). With labels (IGNORE_INDEX where unmasked): mean cross-entropy over
        the masked positions and their logits (M, V). Without: (None, logits (B, T, V)).

        `rows` fixes how many positions the head takes (at least the masked count M): the
        masked ones in order, then unmasked ones that carry no loss, logits (rows, V). A fixed
        shape needs no host sync and traces into one graph (cramming's static sparse
        prediction); the loss is the same."""
        h = self.encode(input_ids)  # (B, T, H)
        word = self.encoder.embedding.word.weight
        if labels is None:
            return None, self.mlm_head(h, word)
        # Sparse prediction (cramming): only ~25% of positions carry a loss, so gather those rows
        # before the vocab projection, the largest matmul of a small model, instead of after it.
        labels = labels.reshape(-1)
        masked = labels != IGNORE_INDEX
        if rows is None:
            picked = masked.nonzero().squeeze(1)  # (M,): a data-dependent size
        else:  # masked positions first, in order (a stable sort), then the padding
            picked = torch.argsort(masked.to(torch.uint8), descending=True, stable=True)[:rows]
        logits = self.mlm_head(h.reshape(-1, h.shape[-1]).index_select(0, picked), word)
        loss = F.cross_entropy(logits.float(), labels.index_select(0, picked))
        return loss, logits


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class ClassificationHead(nn.Module):
    """First token -> dense -> tanh -> dropout -> classifier (docs/eval.md, "The protocol").
    num_labels = 1 makes a regression head (STS-B)."""

    def __init__(self, cfg: ModelConfig, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden, cfg.head_hidden)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(cfg.head_hidden, num_labels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        pooled = torch.tanh(self.dense(h[:, 0]))  # (B, head_hidden)
        return self.classifier(self.dropout(pooled))  # (B, num_labels)


class CrammedBertForSequenceClassification(nn.Module):
    """Fine-tuning model: the encoder and a fresh `ClassificationHead`.

    `dropout` (0.1 in Rules v1) also applies inside the encoder, as in BERT fine-tuning: on the
    embedding, the attention probabilities and each residual branch."""

    def __init__(self, cfg: ModelConfig, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg, dropout)
        self.head = ClassificationHead(cfg, num_labels, dropout)
        self.apply(lambda m: init_weights(m, cfg.init_std))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        return self.head(self.encoder(input_ids, attention_mask))  # (B, num_labels)
