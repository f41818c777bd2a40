"""The W-coefficient, the Pareto front and the ranking on a hand-made table."""

import math

import pytest

from cramming.extract.ranking import pareto_front, rank_candidates, w_coefficient

TEACHER = {"name": "T", "params": 1000, "latency_b1_ms": 8.0, "latency_b64_ms": 400.0,
           "val_loss": 2.0}


def row(name, params, b1, b64, loss):
    return {"name": name, "params": params, "latency_b1_ms": b1, "latency_b64_ms": b64,
            "val_loss": loss}


TABLE = [
    row("big", 800, 6.0, 300.0, 2.05),     # front: the lowest loss
    row("mid", 400, 4.0, 150.0, 2.20),     # front
    row("worse", 500, 5.0, 160.0, 2.30),   # dominated by mid on every axis
    row("small", 100, 1.0, 20.0, 2.90),    # front: the smallest and fastest
    row("tie", 400, 4.0, 150.0, 2.20),     # equal to mid: neither dominates the other
]


def test_w_is_one_for_the_teacher_and_follows_the_formula():
    assert w_coefficient(TEACHER, TEACHER) == pytest.approx(1.0)
    small = TABLE[3]
    gain = 0.5 * math.log(1000 / 100) + 0.25 * math.log(8 / 1) + 0.25 * math.log(400 / 20)
    expected = math.exp(-(2.90 - 2.0) + 0.1 * gain)
    assert w_coefficient(small, TEACHER, 0.1) == pytest.approx(expected)
    # 4x smaller and faster at 0.1 nats per e-fold: ties with the teacher at +0.1386 nats.
    quarter = row("q", 250, 2.0, 100.0, 2.0 + 0.1 * math.log(4))
    assert w_coefficient(quarter, TEACHER, 0.1) == pytest.approx(1.0)


def test_pareto_front_on_params_latency_and_loss():
    assert pareto_front(TABLE) == [True, True, False, True, True]


def test_ranking_by_w_with_ties_broken_by_size_then_name():
    ranked = rank_candidates(TABLE, TEACHER, tradeoff=0.1)
    assert [r["name"] for r in ranked] == ["big", "mid", "tie", "worse", "small"]
    assert [r["rank"] for r in ranked] == [1, 2, 3, 4, 5]
    assert ranked[1]["w"] == ranked[2]["w"]
    by_name = {r["name"]: r for r in ranked}
    assert not by_name["worse"]["pareto"] and by_name["small"]["pareto"]
    # A steep trade-off makes size and speed win.
    assert rank_candidates(TABLE, TEACHER, tradeoff=1.0)[0]["name"] == "small"
    assert TABLE[0].keys() == {"name", "params", "latency_b1_ms", "latency_b64_ms", "val_loss"}


def test_a_candidate_without_a_val_loss_ranks_last_off_the_front():
    ranked = rank_candidates([*TABLE[:2], {**row("none", 50, 0.5, 10.0, 0.0), "val_loss": None}],
                             TEACHER)
    assert ranked[-1]["name"] == "none" and ranked[-1]["w"] is None
    assert not ranked[-1]["pareto"] and ranked[0]["pareto"]
