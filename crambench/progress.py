"""What long work shows while it runs: one rule for every `cram` command.

- Results (scores, the final summary line), warnings and errors always print, `--quiet` or not.
- A live progress bar (tqdm) shows only where it can redraw itself in place: stderr is a
  terminal and `CI` is not "true". In a log file, a pipe or CI a bar would write one
  carriage-return frame per update, so there is none there.
- Each long step ends with one progress line on stderr (what it did, how many, how long), so
  a log shows where the time went; on a terminal the step's bar is left off the screen when
  that line prints.
- `--quiet`: no progress of any kind, neither bars nor progress lines.
The Hugging Face libraries (datasets, huggingface_hub) draw bars of their own while they
resolve and stream Hub data; `cram` turns those off by the same rule (library_bars).
"""

from __future__ import annotations

import os
import sys

# The --quiet help line of every command, so that it reads (and means) the same everywhere.
QUIET_HELP = "no progress output (bars, progress lines); results, warnings and errors still print"


def bars_enabled(quiet: bool, stream=None) -> bool:
    """Whether a live bar may be drawn on `stream` (default stderr, where tqdm writes)."""
    if quiet or os.environ.get("CI", "").lower() == "true":
        return False
    stream = sys.stderr if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_disabled(quiet: bool) -> bool:
    """tqdm's `disable=`: True unless a live bar may be drawn (see bars_enabled)."""
    return not bars_enabled(quiet)


def library_bars(quiet: bool) -> None:
    """Apply the rule to the bars of `datasets` and `huggingface_hub` (their environment
    switches, read when they are first imported; a switch the user set is kept)."""
    if not bars_enabled(quiet):
        for switch in ("HF_DATASETS_DISABLE_PROGRESS_BARS", "HF_HUB_DISABLE_PROGRESS_BARS"):
            os.environ.setdefault(switch, "1")


def bar(iterable=None, *, desc: str, quiet: bool, **kwargs):
    """A tqdm bar on stderr that follows the rule above; it leaves no trace on close (the
    step's progress line says what it did)."""
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, disable=progress_disabled(quiet), file=sys.stderr,
                leave=False, dynamic_ncols=True, **kwargs)


def progress_line(message: str, *, quiet: bool) -> None:
    """One progress line on stderr (a step done, a stage started), unless --quiet."""
    if not quiet:
        print(message, file=sys.stderr, flush=True)
