"""A stated value against a recomputed or recorded one, for the checks' problem lines.

`close` says whether two numbers agree within the tolerance; `format_number` writes a
recomputed number as a problem line shows it; `differences` lists every dotted place where two
JSON values differ, and `first_difference` the first, so a line names
`compression.rounds.0.elapsed_s`, not the whole record twice.
"""

from __future__ import annotations

# Scores are stored unrounded and JSON floats round-trip exactly, so a recomputation differs
# only by summation order; any edited score moves its average far more than this.
TOLERANCE = 1e-6

_ABSENT = object()


def close(stated, actual, tolerance: float = TOLERANCE) -> bool:
    """Whether `stated` is `actual` within `tolerance`; None agrees only with None."""
    if stated is None or actual is None:
        return stated is None and actual is None
    return abs(stated - actual) <= tolerance


def format_number(value) -> str:
    """A recomputed number in a problem line: four decimals, or "nothing"."""
    return "nothing" if value is None else f"{value:.4f}"


def differences(a, b, path: str = "") -> list[str]:
    """Dotted paths of every leaf where two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [where for key in sorted(set(a) | set(b))
                for where in differences(a.get(key), b.get(key),
                                         f"{path}.{key}" if path else key)]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [where for i, (x, y) in enumerate(zip(a, b, strict=True))
                for where in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [path or "(whole)"]


def first_difference(field: str, stated, recorded) -> tuple[str, object, object]:
    """Where two different records first differ, as (dotted field, stated, recorded)."""
    if isinstance(stated, dict) and isinstance(recorded, dict):
        for key in sorted(stated.keys() | recorded.keys(), key=str):
            if stated.get(key, _ABSENT) != recorded.get(key, _ABSENT):
                return first_difference(f"{field}.{key}", stated.get(key), recorded.get(key))
    if (isinstance(stated, list) and isinstance(recorded, list)
            and len(stated) == len(recorded)):
        for i, (a, b) in enumerate(zip(stated, recorded, strict=True)):
            if a != b:
                return first_difference(f"{field}.{i}", a, b)
    return field, stated, recorded
