"""The numbers a command line takes, checked when it is parsed.

Every numeric option of every command names one of these as its argparse `type=`, so a seed,
budget, size, count or rate out of range is refused before anything runs, in one line with
exit status 2 (`cram pretrain: error: argument --seed: ...`), instead of a traceback from the
library that would have taken it minutes later. The stages' own functions keep their checks
for callers that do not come through the command line.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

from crambench.errors import UserError

# torch.manual_seed (and torch.Generator) take seeds in [0, 2**64 - 1]; numpy's default_rng
# takes any whole number >= 0, so torch's range is the one every seed must fit.
SEED_MAX = 2**64 - 1

_NUMBER = r"\d+(?:\.\d+)?"
_BUDGET = re.compile(rf"(?:(?P<h>{_NUMBER})h)?(?:(?P<m>{_NUMBER})m)?(?:(?P<s>{_NUMBER})s)?")


def parse_budget(text: str | float | int) -> float:
    """`24h`, `90m`, `1h30m`, `45s` or plain seconds (`5400`) -> seconds (> 0, finite).
    Raises UserError for anything else."""
    raw = str(text).strip().lower()
    try:
        seconds = float(raw)
    except ValueError:
        match = _BUDGET.fullmatch(raw)
        if not raw or match is None:
            raise UserError(
                f"bad budget {text!r}: use e.g. 24h, 90m, 1h30m, 45s or plain seconds"
            ) from None
        seconds = sum(float(match[u] or 0) * n for u, n in (("h", 3600), ("m", 60), ("s", 1)))
    if not seconds > 0 or seconds == float("inf"):
        raise UserError(f"bad budget {text!r}: must be a positive, finite duration")
    return seconds


def budget(text: str) -> str:
    """A wall-clock budget (`90m`, `45s`, seconds), checked and returned as written: commands
    pass it on (to the ranks of a DDP job, into records) as the user gave it."""
    try:
        parse_budget(text)
    except UserError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def whole(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """A whole number in [low, high] (either end open when None)."""
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text} is out of range: {_range(low, high)}")
        return value
    return parse


def number(low: float | None = None, high: float | None = None, *, open_low: bool = False,
           open_high: bool = False) -> Callable[[str], float]:
    """A finite number in [low, high]; `open_low` / `open_high` exclude that end."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        below = low is not None and (value <= low if open_low else value < low)
        above = high is not None and (value >= high if open_high else value > high)
        if not math.isfinite(value) or below or above:
            raise argparse.ArgumentTypeError(
                f"{text} is out of range: {_range(low, high, open_low, open_high, 'a number')}")
        return value
    return parse


def seed(text: str) -> int:
    """A seed: a whole number from 0 to SEED_MAX (what torch.manual_seed takes)."""
    try:
        value = int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"{text} is out of range: {SEED_RANGE}")
    return value


SEED_RANGE = f"a seed is a whole number from 0 to {SEED_MAX} (2**64 - 1)"


def seed_list(text: str) -> str:
    """Distinct seeds joined by commas (`0,1,2`), each checked as `seed`; returned as written."""
    values = [seed(item) for item in text.split(",")]
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"{text!r} names a seed twice; give distinct seeds")
    return text


def _range(low, high, open_low=False, open_high=False, what="a whole number") -> str:
    if low is not None and high is not None:
        left, right = "(" if open_low else "[", ")" if open_high else "]"
        return f"must be {what} in {left}{low:g}, {high:g}{right}"
    if low is not None:
        return f"must be {'more than' if open_low else 'at least'} {low:g}"
    if high is not None:
        return f"must be {'less than' if open_high else 'at most'} {high:g}"
    return f"must be {what}"
