"""Schedules are functions of the budget fraction f; values at the fractions that
docs/pretrain.md names."""

import pytest

from cramming.train.schedules import batch_size_at, lr_factor


@pytest.mark.parametrize(
    ("f", "expected"),
    [(0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0), (0.875, 0.5), (0.95, 0.2), (1.0, 0.0)],
)
def test_one_cycle_matches_design_formula(f, expected):
    assert lr_factor(f) == pytest.approx(expected)
    assert lr_factor(f) == pytest.approx(min(0.25 + f, 4 * (1 - f)))


def test_one_cycle_clamps_outside_the_budget():
    assert lr_factor(-0.1) == pytest.approx(0.25)
    assert lr_factor(1.2) == 0.0


def test_one_cycle_other_shape():
    assert lr_factor(0.0, start=0.0, peak_at=0.5) == 0.0
    assert lr_factor(0.5, start=0.0, peak_at=0.5) == pytest.approx(1.0)
    assert lr_factor(0.75, start=0.0, peak_at=0.5) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("f", "expected"), [(0.0, 128), (0.3, 4160), (0.6, 8192), (0.8, 8192), (1.0, 8192)]
)
def test_reference_batch_ramp_reaches_8192_at_60_percent(f, expected):
    assert batch_size_at(f, start=128, target=8192, ramp_until=0.6) == expected


def test_batch_ramp_is_monotone():
    sizes = [batch_size_at(i / 100, 16, 64, 0.6) for i in range(101)]
    assert sizes == sorted(sizes)
    assert sizes[0] == 16 and sizes[-1] == 64
