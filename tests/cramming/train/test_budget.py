"""The budget parser and the clock, driven by a fake clock."""

import pytest

from crambench.errors import UserError
from cramming.train.budget import Budget, DurationEstimate, parse_budget


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("24h", 86400), ("90m", 5400), ("1h30m", 5400), ("45s", 45), ("5400", 5400),
     ("2h15m30s", 8130), ("1.5h", 5400), (" 90s ", 90), ("12.5", 12.5)],
)
def test_parse_budget(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["", "1d", "h", "90 m", "1m1h", "abc", "0", "-5", "0s", "inf",
                                  "nan"])
def test_parse_budget_rejects(text):
    with pytest.raises(UserError, match="bad budget"):
        parse_budget(text)


def test_budget_fraction_and_overrun():
    clock = FakeClock()
    budget = Budget(100, clock=clock)
    assert budget.elapsed() == 0 and budget.fraction() == 0
    clock.now += 60
    assert budget.fraction() == pytest.approx(0.6)
    assert budget.remaining() == pytest.approx(40)
    assert not budget.would_overrun(40)
    assert budget.would_overrun(40.001)
    clock.now += 100
    assert budget.fraction() == 1.0 and budget.remaining() == 0


def test_budget_resumes_the_same_clock():
    clock = FakeClock()
    budget = Budget(100, elapsed_offset=70, clock=clock)
    assert budget.fraction() == pytest.approx(0.7)
    clock.now += 10
    assert budget.elapsed() == pytest.approx(80)
    assert budget.would_overrun(21) and not budget.would_overrun(19)


def test_duration_estimate_is_cautious_after_an_outlier():
    estimate = DurationEstimate()
    assert estimate.estimate() == 0
    for _ in range(20):
        estimate.update(1.0)
    estimate.update(5.0)
    assert estimate.estimate() == 5.0  # the slow outlier counts at once
    estimate.update(1.0)
    assert 1.0 < estimate.estimate() < 5.0  # then the average remembers it


def test_window_keeps_the_outer_timeline_and_deadline():
    clock = FakeClock()
    outer = Budget(100, clock=clock)
    clock.now += 30
    phase = outer.window(20)  # from 30 s to 50 s of the outer budget
    assert phase.elapsed() == 30 and phase.fraction() == 0.0
    clock.now += 5
    assert phase.fraction() == pytest.approx(0.25)
    assert phase.remaining() == pytest.approx(15)
    assert phase.would_overrun(16) and not phase.would_overrun(14)
    clock.now += 70  # past the window and the outer deadline
    assert phase.fraction() == 1.0 and outer.fraction() == 1.0
    clock.now -= 20  # 85 s spent: the rest is a 15 s window
    rest = outer.window()
    assert rest.fraction() == 0.0 and rest.remaining() == pytest.approx(15)
    clock.now += 15
    assert rest.fraction() == 1.0 and rest.remaining() == 0


def test_window_never_ends_after_the_outer_deadline():
    clock = FakeClock()
    outer = Budget(100, clock=clock)
    clock.now += 90
    phase = outer.window(50)
    assert phase.budget_s == 100 and phase.remaining() == pytest.approx(10)
    assert outer.window().budget_s == 100
