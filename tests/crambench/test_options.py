"""Every number a command takes is checked for its range when the command line is parsed: one
line, exit status 2, before anything runs."""

import argparse

import pytest

from crambench import options
from crambench.shell.cli import build_parser, main

TOO_BIG_SEED = str(2**64)  # one past what torch.manual_seed takes

REFUSED = [
    (["pretrain", "--data", "d", "--budget", "20s", "--out", "r", "--seed", TOO_BIG_SEED],
     "argument --seed: 18446744073709551616 is out of range"),
    (["pretrain", "--data", "d", "--budget", "0", "--out", "r"], "argument --budget: bad budget"),
    (["pretrain", "--data", "d", "--budget", "-5", "--out", "r"], "argument --budget"),
    (["pretrain", "--data", "d", "--budget", "20s", "--out", "r", "--nproc", "0"],
     "argument --nproc: 0 is out of range: must be at least 1"),
    (["eval", "glue", "--run", "r", "--seeds", f"0,{TOO_BIG_SEED}"],
     "argument --seeds: 18446744073709551616 is out of range"),
    (["eval", "glue", "--run", "r", "--seeds", "1,1"], "names a seed twice"),
    (["eval", "probe", "--run", "r", "--seed", "-1"], "argument --seed: -1 is out of range"),
    (["eval", "glue", "--run", "r", "--threads", "-2"], "argument --threads"),
    (["prepare", "--source", "demo", "--out", "d", "--vocab-size", "70000"],
     "argument --vocab-size: 70000 is out of range: must be a whole number in [6, 65535]"),
    (["prepare", "--source", "demo", "--out", "d", "--val-fraction", "nan"],
     "argument --val-fraction"),
    (["prepare", "--source", "demo", "--out", "d", "--seq-len", "4"], "argument --seq-len"),
    (["prepare", "--source", "demo", "--out", "d", "--max-docs", "0"], "argument --max-docs"),
    (["prepare", "--source", "demo", "--out", "d", "--workers", "0"], "argument --workers"),
    (["compress", "--run", "r", "--method", "prune:0.5", "--out", "c", "--budget", "inf"],
     "argument --budget"),
    (["extract", "--teacher", "r", "--data", "d", "--budget", "1m", "--out", "x",
      "--temperature", "0"], "argument --temperature: 0 is out of range: must be more than 0"),
    (["extract", "--teacher", "r", "--data", "d", "--budget", "1m", "--out", "x",
      "--alpha", "1.5"], "argument --alpha"),
    (["extract", "--teacher", "r", "--data", "d", "--budget", "1m", "--out", "x",
      "--tradeoff", "-1"], "argument --tradeoff"),
    (["extract", "--teacher", "r", "--data", "d", "--budget", "1m", "--out", "x",
      "--search-budget", "soon"], "argument --search-budget: bad budget 'soon'"),
    (["plan", "--budget", "1h", "--top", "0"], "argument --top"),
    (["leaderboard", "compare", "a", "b", "--replicates", "10"],
     "argument --replicates: 10 is out of range: must be at least 100"),
    (["leaderboard", "compare", "a", "b", "--seed", TOO_BIG_SEED], "argument --seed"),
    (["demo", "--budget", "nope"], "argument --budget: bad budget 'nope'"),
    (["demo", "--max-docs", "-3"], "argument --max-docs"),
]


@pytest.mark.parametrize(("argv", "message"), REFUSED, ids=[" ".join(a[:2]) + " " + m.split(":")[0]
                                                           for a, m in REFUSED])
def test_a_number_out_of_range_is_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cram "), err
    assert message in err


def test_every_numeric_option_takes_a_checked_type():
    """No option parses a number with bare int or float: each names its range in one place."""
    def actions(parser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from actions(sub)
            else:
                yield action

    bare = [action.option_strings for action in actions(build_parser())
            if action.type in (int, float)]
    assert bare == []


def test_seeds_in_range_pass_as_given():
    assert options.seed(str(2**64 - 1)) == 2**64 - 1
    assert options.seed_list("0,1,2") == "0,1,2"
    assert options.budget("1h30m") == "1h30m"
    assert options.whole(1)("3") == 3
    assert options.number(0, 1, open_high=True)("0") == 0.0


def test_the_library_takes_the_same_seed_range():
    from crambench.errors import UserError
    from glue_eval.evaluate import parse_seeds

    assert parse_seeds(f"0,{2**64 - 1}") == [0, 2**64 - 1]
    with pytest.raises(UserError, match="out of range"):
        parse_seeds([0, 2**64])


def test_a_large_run_seed_still_masks():
    """The step generator takes any run seed the options accept."""
    from cramming.train.objective import step_generator

    assert step_generator(2**64 - 1, 10).initial_seed() < 2**64  # no overflow
    assert step_generator(3, 7).initial_seed() == 3 * 1_000_003 + 7
