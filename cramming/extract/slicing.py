"""A candidate's starting weights: the teacher's, sliced to the candidate's shape.

Which teacher units a candidate keeps:

- **layers**: evenly spaced over the teacher's depth, first and last included
  (`round(i * (L - 1) / (L' - 1))`; one layer keeps the last, which writes what the MLM head
  reads). With pre-LN blocks a dropped layer is an identity on the residual stream.
- **hidden units** (the residual stream: embedding columns, every norm, the input columns and
  output rows of each projection, the MLM transform): one set for the whole model,
- **attention heads** and, within a head, its query/key and value dimensions, per layer,
- **feed-forward units** per layer, each a (value, gate) pair of the GLU in-projection and the
  matching column of its out-projection, so both halves stay aligned,

are ranked by group magnitude: the share of each tensor's squared norm that the unit holds,
summed over the tensors the unit touches (the group L2 criterion of structural pruning; Li et
al. 2017, "Pruning Filters for Efficient ConvNets", used its L1 form). Normalizing per tensor
keeps the large embedding table from outvoting every other weight. Kept units stay in the
teacher's order, so a candidate of the teacher's full shape is the teacher, bit for bit.

Attention: a student head has d' = H'/A' dimensions against the teacher's d = H/A. With
d' <= d, the A' strongest heads are kept and each keeps its d' strongest query/key dimensions
and, separately, its d' strongest value dimensions. With d' > d (Bort's shape merges heads:
1024/8 from 1024/16) the strongest heads are grouped, ceil(d'/d) per student head, and the
student head keeps the strongest d' dimensions of its group; a dimension no teacher head fills
starts from the model's random init. Queries are scaled by sqrt(d'/d), so each kept teacher
head's attention logits keep their scale under the student's 1/sqrt(d') softmax scaling.

Not kept exactly: LayerNorms over fewer hidden units normalize with their own mean and
variance, and the sinusoidal position table is the model's own for the new width (frequencies
depend on the width), so a narrower candidate is an approximation that distillation repairs.

Why by hand and not torch-pruning (1.6.1, tried on this model): its dependency graph split the
fused qkv projection across heads unevenly, broke the GLU's value/gate halves, missed the
tie between the MLM transform and the decoder (a functional `F.linear` on the embedding) and
the width-sized position table, so the pruned model did not run; and it has no depth pruning.
The slices below are a few index operations on the state dict, and the result loads into a
plain `CrammedBert` of the new ModelConfig, as every run's final/ must.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from crambench.errors import UserError
from cramming.extract.space import Shape, teacher_shape
from cramming.model import CrammedBert

FRESH = -1  # index of a student unit no teacher unit fills (random init)


@dataclass
class Selection:
    """Teacher indices behind every student unit (FRESH where none)."""

    layers: list[int]  # teacher layer of each student layer
    hidden: torch.Tensor  # (H',) teacher residual dims
    qk: list[torch.Tensor]  # per student layer: (H',) teacher q/k dims, head-major
    v: list[torch.Tensor]  # per student layer: (H',) teacher v dims (and out columns)
    ffn: list[torch.Tensor]  # per student layer: (F'/2,) teacher GLU units
    query_scale: float  # sqrt(d'/d)


def evenly_spaced_layers(teacher_layers: int, layers: int) -> list[int]:
    if layers == 1:
        return [teacher_layers - 1]
    return [round(i * (teacher_layers - 1) / (layers - 1)) for i in range(layers)]


def select(teacher_cfg, state: dict[str, torch.Tensor], shape: Shape) -> Selection:
    """Which teacher units the candidate `shape` keeps (see the module docstring)."""
    teacher = teacher_shape(teacher_cfg)
    layers = evenly_spaced_layers(teacher.layers, shape.layers)
    hidden = _top(_hidden_scores(state, layers), shape.hidden)
    d, d_new = teacher.hidden // teacher.heads, shape.hidden // shape.heads
    group = math.ceil(d_new / d)
    qk, v, ffn = [], [], []
    for layer in layers:
        prefix = f"encoder.blocks.{layer}."
        qkv, out = state[prefix + "attn.qkv.weight"], state[prefix + "attn.out.weight"]
        H = teacher.hidden
        # Rows of the fused projection: queries, keys, values, each head-major.
        qk_dims = _share(qkv[:H], 0) + _share(qkv[H:2 * H], 0)
        v_dims = _share(qkv[2 * H:], 0) + _share(out, 1)  # a value dim and its out column
        heads = (qk_dims + v_dims).view(teacher.heads, d).sum(1)
        kept = _top(heads, min(teacher.heads, shape.heads * group)).tolist()
        groups = np.array_split(np.array(kept), shape.heads)
        qk.append(_head_dims(groups, qk_dims, d, d_new))
        v.append(_head_dims(groups, v_dims, d, d_new))
        up, down = state[prefix + "ffn.up.weight"], state[prefix + "ffn.down.weight"]
        half = teacher.ffn // 2
        unit = _share(up[:half], 0) + _share(up[half:], 0) + _share(down, 1)
        ffn.append(_top(unit, shape.ffn // 2))
    return Selection(layers, hidden, qk, v, ffn, query_scale=math.sqrt(d_new / d))


def extract_state(state: dict[str, torch.Tensor], selection: Selection, teacher_cfg,
                  fresh: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The candidate's state dict: teacher weights at the selected indices; `fresh` (a newly
    initialized candidate's state dict) fills the FRESH ones."""
    h = selection.hidden
    H, half = teacher_cfg.hidden, teacher_cfg.ffn_hidden // 2
    out = {"encoder.embedding.word.weight": state["encoder.embedding.word.weight"][:, h]}
    # What the components put outside the blocks, where the teacher has it: the position
    # scale, the norms (RMSNorm has no bias), the MLM head's transform and vocabulary bias.
    for name in ("encoder.embedding.position.scale", "mlm_head.bias"):
        if name in state:
            out[name] = state[name]
    for name in ("encoder.embedding.norm", "encoder.final_norm", "mlm_head.norm",
                 "mlm_head.dense"):
        for part in ("weight", "bias"):
            if f"{name}.{part}" in state:
                out[f"{name}.{part}"] = state[f"{name}.{part}"][h]
    if "mlm_head.dense.weight" in out:
        out["mlm_head.dense.weight"] = out["mlm_head.dense.weight"][:, h]
    for i, layer in enumerate(selection.layers):
        src, dst = f"encoder.blocks.{layer}.", f"encoder.blocks.{i}."
        for name in ("norm1", "norm2"):
            for part in ("weight", "bias"):
                if f"{src}{name}.{part}" in state:
                    out[f"{dst}{name}.{part}"] = state[f"{src}{name}.{part}"][h]
        qkv = state[src + "attn.qkv.weight"][:, h]  # (3H, H')
        fresh_qkv = fresh[dst + "attn.qkv.weight"].chunk(3)
        q = _rows(qkv[:H], selection.qk[i], fresh_qkv[0])
        if selection.query_scale != 1.0:
            kept = selection.qk[i] != FRESH
            q[kept] = q[kept] * selection.query_scale
        k = _rows(qkv[H:2 * H], selection.qk[i], fresh_qkv[1])
        v = _rows(qkv[2 * H:], selection.v[i], fresh_qkv[2])
        out[dst + "attn.qkv.weight"] = torch.cat([q, k, v])
        attn_out = state[src + "attn.out.weight"][h]  # (H', H)
        out[dst + "attn.out.weight"] = _rows(attn_out.T, selection.v[i],
                                             fresh[dst + "attn.out.weight"].T).T
        up = state[src + "ffn.up.weight"][:, h]  # (F, H'): value rows, then gate rows
        units = selection.ffn[i]
        out[dst + "ffn.up.weight"] = torch.cat([up[:half][units], up[half:][units]])
        out[dst + "ffn.down.weight"] = state[src + "ffn.down.weight"][h][:, units]
    return {name: tensor.contiguous().clone() for name, tensor in out.items()}


# The components whose tensors the slices above know, by ModelConfig field; a teacher built
# with another is refused before any work (cram extract names the field).
SLICEABLE = {
    "ffn": ("glu",),
    "qkv_bias": (False,),
    "linear_bias": (False,),
    "pos_embedding": ("scaled-sinusoidal", "sinusoidal", "rotary", "none"),
    "tie_weights": (True,),
}


def check_sliceable(cfg, where: str = "") -> None:
    """UserError naming the first ModelConfig field whose component extract cannot slice."""
    for name, allowed in SLICEABLE.items():
        value = getattr(cfg, name)
        if value not in allowed:
            shown = ", ".join(str(v).lower() for v in allowed)
            raise UserError(f"{where}model.{name}={str(value).lower()}: extract slices models "
                            f"with model.{name} {shown} only")


def extract_model(teacher: CrammedBert, shape: Shape, *, seed: int = 0):
    """(candidate CrammedBert on the teacher's device, Selection) for one shape."""
    state = {k: v.detach() for k, v in teacher.state_dict().items()}
    selection = select(teacher.cfg, state, shape)
    torch.manual_seed(seed)  # the random init of FRESH units (and nothing else) depends on it
    student = CrammedBert(shape.model_config(teacher.cfg))
    fresh = student.state_dict()
    weights = extract_state({k: v.cpu() for k, v in state.items()}, selection, teacher.cfg,
                            fresh)
    student.load_state_dict(weights)
    return student.to(next(teacher.parameters()).device), selection


def _share(weight: torch.Tensor, dim: int) -> torch.Tensor:
    """Each unit's share of the tensor's squared norm: units are rows (dim 0) or columns
    (dim 1) of a matrix, or the entries of a vector."""
    squares = weight.detach().float().pow(2)
    per_unit = squares.sum(dim=1 - dim) if squares.ndim == 2 else squares
    total = per_unit.sum()
    return per_unit / total if total > 0 else torch.zeros_like(per_unit)


def _hidden_scores(state: dict[str, torch.Tensor], layers: list[int]) -> torch.Tensor:
    """Group magnitude of every residual dimension over the tensors of the kept layers."""
    score = _share(state["encoder.embedding.word.weight"], 1)
    if "mlm_head.dense.weight" in state:  # the head transform: (H, H), both sides residual
        dense = state["mlm_head.dense.weight"]
        score += _share(dense, 0) + _share(dense, 1)
    for name in ("encoder.embedding.norm", "encoder.final_norm", "mlm_head.norm"):
        if f"{name}.weight" in state:
            score += _share(state[f"{name}.weight"], 0)
    for layer in layers:
        prefix = f"encoder.blocks.{layer}."
        for name in ("norm1.weight", "norm2.weight"):
            score += _share(state[prefix + name], 0)
        for name, side in (("attn.qkv.weight", 1), ("attn.out.weight", 0),  # inputs, outputs
                           ("ffn.up.weight", 1), ("ffn.down.weight", 0)):
            score += _share(state[prefix + name], side)
    return score


def _top(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k largest scores, in increasing index order (ties: the lower index)."""
    order = torch.argsort(-scores, stable=True)[:k]
    return torch.sort(order).values


def _head_dims(groups, dim_scores: torch.Tensor, d: int, d_new: int) -> torch.Tensor:
    """Teacher dims of each student head, head-major: the d_new strongest of its group's
    heads, in teacher order, padded with FRESH when the group has fewer than d_new."""
    picked = []
    for heads in groups:
        dims = torch.cat([torch.arange(h * d, (h + 1) * d) for h in heads.tolist()]) \
            if len(heads) else torch.zeros(0, dtype=torch.long)
        keep = dims[_top(dim_scores[dims], min(d_new, len(dims)))]
        picked.append(torch.cat([keep, torch.full((d_new - len(keep),), FRESH)]))
    return torch.cat(picked)


def _rows(weight: torch.Tensor, index: torch.Tensor, fresh: torch.Tensor) -> torch.Tensor:
    """weight[index] row by row, with `fresh`'s row where index is FRESH."""
    rows = fresh.detach().clone()
    kept = index != FRESH
    rows[kept] = weight[index[kept]]
    return rows
