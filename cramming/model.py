"""The crammed BERT: the reference encoder of the cramming paper, in one file, top to bottom.

    embedding (tokens + scaled sinusoidal positions, LayerNorm)
    -> layers x pre-LN block (self-attention, gated-GELU feed-forward), no biases in linears
    -> final LayerNorm
    -> MLM head on the masked rows only: the decoder tied to the token embedding, no transform
       and no bias (the paper's final recipe)
    or the fine-tuning head on the mean of the tokens.

Each of those choices is a field of `ModelConfig` (cramming.config) naming one entry of a small
table below (NORMS, ACTIVATIONS, POSITIONS, FEED_FORWARDS, POOLERS), so the paper's ablations
(post-LN, MLP, biases, learned or rotary positions, the head transform, ...) build from here too.

Shapes: B batch, T sequence length, H hidden, M masked positions in the batch, V vocabulary.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cramming.config import ModelConfig

IGNORE_INDEX = -100  # label of positions that carry no loss (torch cross_entropy default)

NORMS = {"layernorm": nn.LayerNorm, "rmsnorm": nn.RMSNorm}
ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu, "silu": F.silu}


def norm_layer(cfg: ModelConfig) -> nn.Module:
    return NORMS[cfg.norm](cfg.hidden, eps=cfg.norm_eps)


def sinusoid_table(seq_len: int, width: int) -> torch.Tensor:
    """(seq_len, width): sin in even columns, cos in odd ones (Vaswani et al. 2017)."""
    position = torch.arange(seq_len, dtype=torch.float32)[:, None]
    inv_freq = torch.exp(torch.arange(0, width, 2, dtype=torch.float32)
                         * (-math.log(10000.0) / width))
    table = torch.zeros(seq_len, width)
    table[:, 0::2] = torch.sin(position * inv_freq)
    table[:, 1::2] = torch.cos(position * inv_freq)
    return table


class ScaledSinusoidal(nn.Module):
    """Fixed sinusoidal positions times one learned scalar (Hua et al. 2022, used by cramming).

    The scalar starts at 1/sqrt(H) so positions do not drown the token embedding at init;
    `scaled=False` is the plain sinusoid of the original Transformer (no parameter).
    """

    def __init__(self, cfg: ModelConfig, scaled: bool = True):
        super().__init__()
        # (T, H), not saved: recomputed on load (persistent=False keeps it out of the weights)
        self.register_buffer("table", torch.zeros(cfg.seq_len, cfg.hidden), persistent=False)
        self.scale = nn.Parameter(torch.empty(())) if scaled else None
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Fill the table and set the scale to its initial value. Loaders that build modules on
        the meta device (transformers, for an exported model) call it to refill the table."""
        seq_len, hidden = self.table.shape
        self.table.copy_(sinusoid_table(seq_len, hidden))
        if self.scale is not None:
            nn.init.constant_(self.scale, hidden**-0.5)

    def forward(self, seq_len: int) -> torch.Tensor:
        table = self.table[:seq_len]  # (T, H)
        return table if self.scale is None else self.scale * table


class LearnedPositions(nn.Embedding):
    """One trained vector per position (original BERT): weight (T, H)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg.seq_len, cfg.hidden)

    def forward(self, seq_len: int) -> torch.Tensor:
        return self.weight[:seq_len]  # (T, H)


# Absolute positions added to the token embedding; rotary (and none) add nothing there.
POSITIONS = {
    "scaled-sinusoidal": ScaledSinusoidal,
    "sinusoidal": lambda cfg: ScaledSinusoidal(cfg, scaled=False),
    "learned": LearnedPositions,
    "rotary": None,  # RotaryPositions, inside attention
    "none": None,
}


def dropout_layer(p: float) -> nn.Module:
    # Pretraining runs without dropout (cramming paper: it only slows a one-epoch budget);
    # fine-tuning turns it back on. Identity at p = 0 keeps the pretraining graph free of it.
    return nn.Dropout(p) if p > 0 else nn.Identity()


class Embedding(nn.Module):
    def __init__(self, cfg: ModelConfig, dropout: float = 0.0):
        super().__init__()
        self.word = nn.Embedding(cfg.vocab_size, cfg.hidden)
        position = POSITIONS[cfg.pos_embedding]
        self.position = position(cfg) if position is not None else None
        # Normalizing the embedding keeps the first block's input at unit scale (cramming).
        self.norm = norm_layer(cfg) if cfg.embedding_norm else nn.Identity()
        self.dropout = dropout_layer(dropout)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.word(input_ids)  # (B, T, H)
        if self.position is not None:
            x = x + self.position(input_ids.shape[1])
        return self.dropout(self.norm(x))


class RotaryPositions(nn.Module):
    """Rotary position embedding (Su et al. 2021) on each head's queries and keys."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        # (T, head_dim/2) angles, not saved: recomputed on load like the sinusoid table
        self.register_buffer("angles", torch.zeros(cfg.seq_len, cfg.hidden // cfg.heads // 2),
                             persistent=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        seq_len, half = self.angles.shape
        inv_freq = 10000.0 ** (-torch.arange(half, dtype=torch.float32) / half)
        self.angles.copy_(torch.arange(seq_len, dtype=torch.float32)[:, None] * inv_freq)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, heads, T, head_dim) -> the same, each pair of halves rotated by its angle."""
        angles = self.angles[: x.shape[-2]]
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        first, second = x.chunk(2, dim=-1)
        return torch.cat((first * cos - second * sin, first * sin + second * cos), dim=-1)


class SelfAttention(nn.Module):
    """Multi-head attention via scaled_dot_product_attention (flash / memory-efficient kernels)."""

    def __init__(self, cfg: ModelConfig, dropout: float = 0.0):
        super().__init__()
        self.heads = cfg.heads
        self.dropout = dropout  # on the attention probabilities, as in BERT fine-tuning
        self.qkv = nn.Linear(cfg.hidden, 3 * cfg.hidden, bias=cfg.qkv_bias)
        self.out = nn.Linear(cfg.hidden, cfg.hidden, bias=cfg.linear_bias)
        self.rotary = RotaryPositions(cfg) if cfg.pos_embedding == "rotary" else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        B, T, H = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, H // self.heads).permute(2, 0, 3, 1, 4)
        # q, k, v: (B, heads, T, H/heads); mask: (B, 1, 1, T) bool, True = may attend.
        if self.rotary is not None:
            q, k = self.rotary(q), self.rotary(k)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.out(y.transpose(1, 2).reshape(B, T, H))  # (B, T, H)


class GatedFeedForward(nn.Module):
    """Gated linear unit (Shazeer 2020): H -> ffn_hidden, split in halves, act(gate) * value -> H.

    At ffn_hidden = 4H this costs as much as a plain 4H MLP's first layer but only half of its
    second, and trains better per FLOP (cramming paper, section 4.2). GELU: GEGLU; SiLU: SwiGLU.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.act = ACTIVATIONS[cfg.activation]
        self.up = nn.Linear(cfg.hidden, cfg.ffn_hidden, bias=cfg.linear_bias)
        self.down = nn.Linear(cfg.ffn_hidden // 2, cfg.hidden, bias=cfg.linear_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.up(x).chunk(2, dim=-1)  # 2 x (B, T, ffn_hidden/2)
        return self.down(self.act(gate) * value)  # (B, T, H)


class FeedForward(nn.Module):
    """The original two-layer MLP: H -> ffn_hidden -> act -> H."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.act = ACTIVATIONS[cfg.activation]
        self.up = nn.Linear(cfg.hidden, cfg.ffn_hidden, bias=cfg.linear_bias)
        self.down = nn.Linear(cfg.ffn_hidden, cfg.hidden, bias=cfg.linear_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.act(self.up(x)))  # (B, T, H)


FEED_FORWARDS = {"glu": GatedFeedForward, "mlp": FeedForward}


class Block(nn.Module):
    """Residual block. Pre-LN (the reference) puts the norms inside the branches, keeping the
    residual path clean, which is what lets the cramming recipe train at lr 1e-3 without
    warm-up tricks; post-LN (original BERT) normalizes after each branch joins."""

    def __init__(self, cfg: ModelConfig, dropout: float = 0.0):
        super().__init__()
        self.pre_norm = cfg.norm_scheme == "pre"
        self.norm1 = norm_layer(cfg)
        self.attn = SelfAttention(cfg, dropout)
        self.norm2 = norm_layer(cfg)
        self.ffn = FEED_FORWARDS[cfg.ffn](cfg)
        self.dropout = dropout_layer(dropout)  # on each branch, before it joins the residual

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if self.pre_norm:
            x = x + self.dropout(self.attn(self.norm1(x), mask))
            return x + self.dropout(self.ffn(self.norm2(x)))
        x = self.norm1(x + self.dropout(self.attn(x, mask)))
        return self.norm2(x + self.dropout(self.ffn(x)))


class Encoder(nn.Module):
    """Embedding, blocks and the final norm: everything a downstream task reuses."""

    def __init__(self, cfg: ModelConfig, dropout: float = 0.0):
        super().__init__()
        self.embedding = Embedding(cfg, dropout)
        self.blocks = nn.ModuleList(Block(cfg, dropout) for _ in range(cfg.layers))
        # Pre-LN leaves the residual stream unnormalized: a last norm rescales it.
        self.final_norm = norm_layer(cfg) if cfg.final_norm else nn.Identity()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        mask = None  # packed pretraining rows have no padding: no mask keeps the flash path
        if attention_mask is not None:
            mask = attention_mask[:, None, None, :].bool()  # (B, 1, 1, T)
        x = self.embedding(input_ids)
        for block in self.blocks:
            x = block(x, mask)
        return self.final_norm(x)  # (B, T, H)


class MLMHead(nn.Module):
    """Optionally a transform (dense, GELU, norm: original BERT), then the decoder to the
    vocabulary: the token embedding itself when tied, with a bias when `decoder_bias`. The
    paper's final recipe drops the transform "without ill effect" and the bias."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.dense = self.norm = None
        if cfg.head_transform:
            self.dense = nn.Linear(cfg.hidden, cfg.hidden)
            self.norm = norm_layer(cfg)
        # Untied: a decoder of its own, (V, H) like the embedding.
        self.decoder = None if cfg.tie_weights else nn.Parameter(
            torch.empty(cfg.vocab_size, cfg.hidden))
        # The bias learns the unigram frequencies.
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size)) if cfg.decoder_bias else None

    def forward(self, h: torch.Tensor, word_embedding: torch.Tensor) -> torch.Tensor:
        if self.dense is not None:
            h = self.norm(F.gelu(self.dense(h)))
        weight = word_embedding if self.decoder is None else self.decoder
        return F.linear(h, weight, self.bias)  # (..., V)


def init_weights(module: nn.Module, std: float) -> None:
    """Normal(0, std) for matrices (BERT's initializer_range 0.02), zeros for biases, ones and
    zeros for norms."""
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=std)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.LayerNorm | nn.RMSNorm):
        nn.init.ones_(module.weight)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)
    if isinstance(module, MLMHead) and module.decoder is not None:
        nn.init.normal_(module.decoder, mean=0.0, std=std)


class CrammedBert(nn.Module):
    """Encoder + masked-language-model head, with sparse prediction unless the config turns it
    off. `dropout`: inside the encoder during pretraining (0 in the reference)."""

    def __init__(self, cfg: ModelConfig, dropout: float = 0.0):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg, dropout)
        self.mlm_head = MLMHead(cfg)
        self.apply(lambda m: init_weights(m, cfg.init_std))

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        return self.encoder(input_ids, attention_mask)  # (B, T, H), final-normed

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None, *,
                rows: int | None = None):
        """-> (loss, logits). With labels (IGNORE_INDEX where unmasked): mean cross-entropy over
        the masked positions and their logits (M, V), or (B*T, V) without sparse prediction.
        Without labels: (None, logits (B, T, V)).

        `rows` fixes how many positions the head takes (at least the masked count M): the
        masked ones in order, then unmasked ones that carry no loss, logits (rows, V). A fixed
        shape needs no host sync and traces into one graph (cramming's static sparse
        prediction); the loss is the same."""
        h = self.encode(input_ids)  # (B, T, H)
        word = self.encoder.embedding.word.weight
        if labels is None:
            return None, self.mlm_head(h, word)
        labels = labels.reshape(-1)
        h = h.reshape(-1, h.shape[-1])  # (B*T, H)
        if self.cfg.sparse_prediction:
            # Only ~25% of positions carry a loss, so gather those rows before the vocab
            # projection, the largest matmul of a small model, instead of after it (cramming).
            masked = labels != IGNORE_INDEX
            if rows is None:
                picked = masked.nonzero().squeeze(1)  # (M,): a data-dependent size
            else:  # masked positions first, in order (a stable sort), then the padding
                picked = torch.argsort(masked.to(torch.uint8), descending=True,
                                       stable=True)[:rows]
            h, labels = h.index_select(0, picked), labels.index_select(0, picked)
        logits = self.mlm_head(h, word)
        loss = F.cross_entropy(logits.float(), labels)  # IGNORE_INDEX rows carry no loss
        return loss, logits


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def first_token(h: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    return h[:, 0]  # (B, H): [CLS]


def mean_of_tokens(h: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """(B, T, H) -> (B, H): the mean over the tokens the mask keeps (all without a mask).
    Pretraining never shows the model a [CLS] to summarize the row (cramming's `avg` pooler)."""
    if attention_mask is None:
        return h.mean(dim=1)
    keep = attention_mask.to(h.dtype)[:, :, None]  # (B, T, 1)
    return (h * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)


POOLERS = {"first": first_token, "mean": mean_of_tokens}


class ClassificationHead(nn.Module):
    """Pooled tokens (`cfg.pooler`) -> dense -> tanh -> dropout -> classifier (docs/eval.md,
    "The protocol"). num_labels = 1 makes a regression head (STS-B)."""

    def __init__(self, cfg: ModelConfig, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.pool = POOLERS[cfg.pooler]
        self.dense = nn.Linear(cfg.hidden, cfg.head_hidden)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(cfg.head_hidden, num_labels)

    def forward(self, h: torch.Tensor, attention_mask: torch.Tensor | None = None):
        pooled = torch.tanh(self.dense(self.pool(h, attention_mask)))  # (B, head_hidden)
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
        h = self.encoder(input_ids, attention_mask)  # (B, T, H)
        return self.head(h, attention_mask)  # (B, num_labels)
