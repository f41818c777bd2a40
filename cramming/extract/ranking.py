"""Ranking candidates: one scalar that trades error against size and speed, and the Pareto
front for users who would rather pick by hand. Torch-free: the validator recomputes both.

The scalar follows the W-coefficient of de Wynter & Perry, "Optimal Subarchitecture
Extraction for BERT" (2020, arXiv:2010.10499), which takes it from the approximation
algorithm of de Wynter (2020, arXiv:2010.08512): a candidate is judged by its parameter size,
inference speed and error *relative to the largest architecture of the search* (there
BERT-large, here the teacher), so that one number ranks architectures of any size. We keep
that idea, not the paper's exact expression, in a form whose one constant says what the trade
is worth:

    W(c) = (ppl_T / ppl_c) * [(P_T/P_c)^(1/2) * (t1_T/t1_c)^(1/4) * (t64_T/t64_c)^(1/4)]^beta

    ln W(c) = -(L_c - L_T) + beta * [1/2 ln(P_T/P_c) + 1/4 ln(t1_T/t1_c) + 1/4 ln(t64_T/t64_c)]

with L the val MLM loss in nats (ppl = e^L), P the parameter count, t1 and t64 the measured
latency at batch 1 and 64, T the teacher and c the candidate. Higher is better; the teacher
itself scores W = 1. `beta` (`--tradeoff`, default 0.1) is how many nats of val loss one
e-fold (2.7x) cut of size and latency together is worth: at 0.1, a candidate 4x smaller and
4x faster may be up to 0.139 nats worse than the teacher and still tie with it.
"""

from __future__ import annotations

import math

TRADEOFF = 0.1
# Weights of the cost terms inside the bracket: size half, the two latencies a quarter each.
WEIGHTS = {"params": 0.5, "latency_b1_ms": 0.25, "latency_b64_ms": 0.25}
# The Pareto front's axes, all minimized (latency at batch 1: one request at a time).
FRONT_AXES = ("params", "latency_b1_ms", "val_loss")


def w_coefficient(row: dict, reference: dict, tradeoff: float = TRADEOFF) -> float:
    """W(c) of the formula above for one candidate `row` against the teacher `reference`
    (both dicts with val_loss, params, latency_b1_ms and latency_b64_ms)."""
    gain = sum(weight * math.log(reference[key] / row[key]) for key, weight in WEIGHTS.items())
    return math.exp(-(row["val_loss"] - reference["val_loss"]) + tradeoff * gain)


def pareto_front(rows: list[dict], axes=FRONT_AXES) -> list[bool]:
    """For each row, whether no other row is at least as good on every axis and better on
    one (lower is better on every axis)."""
    def dominates(a: dict, b: dict) -> bool:
        return (all(a[k] <= b[k] for k in axes) and any(a[k] < b[k] for k in axes))

    return [not any(dominates(other, row) for other in rows if other is not row)
            for row in rows]


def rank_candidates(rows: list[dict], reference: dict, tradeoff: float = TRADEOFF) -> list[dict]:
    """Copies of `rows` with `w` (rounded to 6 digits), `pareto` and `rank` (1 = the highest
    W; ties broken by fewer parameters, then by name), in rank order. Rows without a val
    loss (a candidate that made no step) rank last, off the front."""
    scored = [row for row in rows if row.get("val_loss") is not None]
    front = dict(zip(map(id, scored), pareto_front(scored), strict=True))
    ranked = []
    for row in rows:
        w = round(w_coefficient(row, reference, tradeoff), 6) if id(row) in front else None
        ranked.append({**row, "w": w, "pareto": front.get(id(row), False)})
    ranked.sort(key=lambda r: (r["w"] is None, -(r["w"] or 0.0), r["params"], r["name"]))
    for position, row in enumerate(ranked, 1):
        row["rank"] = position
    return ranked
