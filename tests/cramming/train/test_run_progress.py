"""What a pretraining run shows: a line per tenth of the budget in a log, nothing when quiet."""

from __future__ import annotations

from cramming.train.budget import Budget
from cramming.train.metrics_log import BudgetProgress


def test_a_log_gets_a_line_per_tenth_of_the_budget(capsys):
    now = [0.0]
    budget = Budget(100.0, clock=lambda: now[0])
    record = {"step": 1, "loss": 7.25, "tokens_per_s": 12345.0}
    progress = BudgetProgress(budget, quiet=False)  # tests run as under CI: no live bar
    assert progress.bar.disable
    for elapsed in (1, 5, 12, 15, 19, 31, 99):
        now[0] = elapsed
        progress.show(budget, {**record, "step": elapsed})
    progress.close()
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "cram pretrain: 12% of 100s", "cram pretrain: 31% of 100s", "cram pretrain: 99% of 100s"]
    assert "step 12 loss 7.250 12,345 tok/s 1m28s left" in lines[0]
    quiet = BudgetProgress(budget, quiet=True)
    quiet.show(budget, record)
    assert capsys.readouterr().err == ""


def test_a_window_of_the_budget_counts_its_own_seconds(capsys):
    # An extraction candidate trained from 60 s to 100 s of a 100 s clock: its lines say how
    # far through its own 40 s it is, and name the command.
    now = [0.0]
    budget = Budget(100.0, clock=lambda: now[0])
    now[0] = 60.0
    window = budget.window()
    progress = BudgetProgress(window, quiet=False, command="cram extract")
    assert (progress.bar.total, progress.bar.n) == (40, 0)
    for elapsed in (62, 65, 80):
        now[0] = elapsed
        progress.show(window, {"step": elapsed, "loss": 7.0, "tokens_per_s": 10.0})
    progress.close()
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "cram extract: 12% of 40s", "cram extract: 50% of 40s"]
