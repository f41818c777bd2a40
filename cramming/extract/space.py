"""The candidate space of `cram extract`: sub-shapes of the teacher (depth, heads, width, FFN).

`--space layers=2,4 heads=4,8 hidden=256,512 ffn=1024` lists values per dimension; the
candidates are every combination. A dimension left out takes its default:

    layers   ceil(L/4), ceil(L/2) and L of the teacher's L
    hidden   H/2 and H
    heads    per width: the teacher's head size kept (A * h / H heads, or the nearest count
             below that divides h)
    ffn      per width: the teacher's ffn/hidden ratio kept, and half of it

The teacher's own shape (nothing extracted) is left out unless `--space` names all four
dimensions, so a 16-layer, 768-wide, 12-head teacher with ffn 3072 gets 3 x 2 x 2 - 1 = 11
default candidates. Torch-free.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from crambench.errors import UserError

SPACE_KEYS = ("layers", "heads", "hidden", "ffn")
# ModelConfig field of each dimension.
CONFIG_FIELDS = {"layers": "layers", "heads": "heads", "hidden": "hidden", "ffn": "ffn_hidden"}


@dataclass(frozen=True, order=True)
class Shape:
    """One candidate: depth, attention heads, width and GLU in-projection width."""

    layers: int
    heads: int
    hidden: int
    ffn: int

    @property
    def name(self) -> str:
        """`L4-A8-H512-F2048`: layers, heads (A as in BERT's paper), hidden, ffn."""
        return f"L{self.layers}-A{self.heads}-H{self.hidden}-F{self.ffn}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def model_config(self, teacher_cfg):
        """The teacher's ModelConfig with this shape (vocabulary, length, norms unchanged)."""
        return dataclasses.replace(teacher_cfg, **{CONFIG_FIELDS[k]: getattr(self, k)
                                                   for k in SPACE_KEYS})


def teacher_shape(cfg) -> Shape:
    return Shape(**{k: getattr(cfg, CONFIG_FIELDS[k]) for k in SPACE_KEYS})


def parse_space(items) -> dict[str, list[int]]:
    """`["layers=2,4", "hidden=256"]` -> {"layers": [2, 4], "hidden": [256]}; UserError on an
    unknown dimension, a value that is not a positive integer, or an empty list."""
    space: dict[str, list[int]] = {}
    for item in items or ():
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep:
            raise UserError(f"--space {item!r} is not DIMENSION=V1,V2 (e.g. layers=2,4)")
        if key not in SPACE_KEYS:
            hint = "; config overrides (key.name=value) go before --space" if "." in key else ""
            raise UserError(f"--space: unknown dimension {key!r} (choose from "
                            f"{', '.join(SPACE_KEYS)}){hint}")
        if key in space:
            raise UserError(f"--space: {key} is given twice; list its values once: {key}=A,B")
        words = [word.strip() for word in values.split(",") if word.strip()]
        if not words:
            raise UserError(f"--space {key}= is empty: the candidate space has no {key} value")
        try:
            numbers = [int(word) for word in words]
        except ValueError:
            raise UserError(f"--space {item!r}: values must be whole numbers") from None
        if min(numbers) < 1:
            raise UserError(f"--space {item!r}: values must be at least 1")
        space[key] = sorted(set(numbers))
    return space


def candidate_space(teacher_cfg, items=()) -> list[Shape]:
    """Every candidate shape, smallest first: the user's values where given, the default grid
    elsewhere. UserError for a shape larger than the teacher in any dimension, heads that do
    not divide the width, an odd width or ffn, or an empty space."""
    teacher = teacher_shape(teacher_cfg)
    given = parse_space(items)
    for key, values in given.items():
        over = [v for v in values if v > getattr(teacher, key)]
        if over:
            raise UserError(f"--space {key}={over[0]} is larger than the teacher's {key} "
                            f"{getattr(teacher, key)}: a candidate is a sub-shape of the "
                            f"teacher ({teacher.name})")
    layers = given.get("layers") or sorted({math.ceil(teacher.layers / 4),
                                           math.ceil(teacher.layers / 2), teacher.layers})
    widths = given.get("hidden") or sorted({_even(teacher.hidden // 2), teacher.hidden} - {0})
    shapes = set()
    for hidden in widths:
        heads = given.get("heads") or [_default_heads(teacher, hidden)]
        ffns = given.get("ffn") or _default_ffn(teacher, hidden)
        for depth in layers:
            for count in heads:
                for ffn in ffns:
                    shapes.add(Shape(depth, count, hidden, ffn))
    if len(given) < len(SPACE_KEYS):  # extracting the teacher's own shape extracts nothing;
        shapes.discard(teacher)       # it is a candidate only when asked for in full
    if not shapes:
        raise UserError(f"the candidate space is empty: the teacher ({teacher.name}) has no "
                        "smaller default shape; list candidates with --space")
    for shape in sorted(shapes):
        check_shape(shape)
    return sorted(shapes, key=lambda s: (s.layers * s.hidden * (s.hidden + s.ffn), s))


def check_shape(shape: Shape) -> None:
    if shape.hidden % shape.heads:
        raise UserError(f"--space: heads {shape.heads} do not divide hidden {shape.hidden} "
                        f"(candidate {shape.name}): each head needs hidden/heads dimensions")
    if shape.hidden % 2:
        raise UserError(f"--space: hidden {shape.hidden} is odd (candidate {shape.name}): the "
                        "sinusoidal position table pairs sine and cosine dimensions")
    if shape.ffn % 2:
        raise UserError(f"--space: ffn {shape.ffn} is odd (candidate {shape.name}): the gated "
                        "feed-forward splits it into value and gate halves")


def _default_heads(teacher: Shape, hidden: int) -> int:
    """The teacher's head size kept where it divides `hidden`; else the nearest smaller count
    of heads that divides it."""
    count = max(1, min(teacher.heads, round(teacher.heads * hidden / teacher.hidden)))
    while hidden % count:
        count -= 1
    return count


def _default_ffn(teacher: Shape, hidden: int) -> list[int]:
    full = _even(round(teacher.ffn * hidden / teacher.hidden))
    return sorted({max(2, full), max(2, _even(full // 2))})


def _even(n: int) -> int:
    return n - n % 2
