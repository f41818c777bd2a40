"""Numbers as people read them: bytes and durations in one style for every command and page."""

from __future__ import annotations


def format_bytes(n: float) -> str:
    """1234567 -> '1.2 MB' (decimal units, as df -H and disk vendors count)."""
    if n < 1000:
        return f"{n:.0f} B"
    for unit in ("KB", "MB", "GB", "TB"):
        n /= 1000
        if n < 1000 or unit == "TB":
            break
    return f"{n:.1f} {unit}"


def format_duration(seconds: float | None, *, unknown: str = "unknown") -> str:
    """14.2 -> '14.2 s', 852 -> '14.2 min', 86400 -> '24 h' (3 significant digits); None ->
    `unknown`. For people reading a time; a budget to paste back is cramming.train.budget's."""
    if seconds is None:
        return unknown
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    if seconds >= 60:
        return f"{seconds / 60:.3g} min"
    return f"{seconds:.3g} s"
