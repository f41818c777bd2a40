"""The entry format (`cram-entry/2`; an earlier one is refused in one line): its JSON Schema,
reading entries from disk, and which kind of entry one is (a trained run's, or an outside
model's).

The schema itself is data (`entry.schema.json`, shipped in the package) so that anyone can
check an entry without this code; this module only turns its verdicts into readable lines.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path

from crambench.errors import UserError

ENTRY_FORMAT = "cram-entry/2"
# Formats this validator knows but no longer accepts, with why: one line instead of a page of
# schema errors.
RETIRED_FORMATS = {
    "cram-entry/1": "an earlier entry format that did not require the run's ranks "
                    "(hardware.world_size, device_names), its category and which claims were "
                    "cross-checked; submit the run again with `cram submit`",
}
RUN_FORMAT = "cram-run/1"  # contract 2, what `cram submit` reads
# The claims a run's entry says were cross-checked or are the submitter's word
# (`leaderboard.cross_checks`), each listed once.
CLAIMS = ("hardware", "throughput", "code", "final_model")


def is_outside(entry) -> bool:
    """Whether `entry` is an outside model's (it names one at its top level)."""
    return isinstance(entry, dict) and "outside_model" in entry


@functools.cache
def entry_schema() -> dict:
    return json.loads(resources.files("leaderboard").joinpath("entry.schema.json").read_text())


def schema_errors(entry) -> list[str]:
    """Every way `entry` breaks the schema, one line each, as `where: what`.

    An unknown `format` is reported alone: checking fields of a format we do not know would
    only produce noise.
    """
    if not isinstance(entry, dict):
        return [f"entry is a JSON {type(entry).__name__}, not an object"]
    fmt = entry.get("format")
    if fmt in RETIRED_FORMATS:
        return [f"format {fmt!r} is {RETIRED_FORMATS[fmt]}"]
    if fmt != ENTRY_FORMAT:
        return [f"unknown format {fmt!r} (expected {ENTRY_FORMAT!r})"]
    import jsonschema  # imported here: keeps `cram --help` fast

    validator = jsonschema.Draft202012Validator(entry_schema())
    lines = []
    for error in sorted(validator.iter_errors(entry), key=lambda e: list(map(str, e.path))):
        where = ".".join(str(part) for part in error.path) or "entry"
        lines.append(f"{where}: {_short(_message(error))}")
    return lines


def _message(error) -> str:
    # A `not` says nothing readable on its own ("{...} should not be valid under {...}"): the
    # schema gives each one a description of the rule instead.
    rule = error.validator_value
    if error.validator == "not" and isinstance(rule, dict) and "description" in rule:
        return rule["description"]
    return error.message


def _short(message: str) -> str:
    # jsonschema quotes the whole offending value; a results dict can be pages long.
    return message if len(message) <= 160 else message[:157] + "..."


def read_entry(path: str | Path) -> dict:
    """Parse one entry file; a missing or non-JSON file is a UserError naming the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"entry {path} not found") from None
    except IsADirectoryError:
        raise UserError(f"entry {path} is a folder; name the entry files in it "
                        f"({path}/*.json)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"entry {path} cannot be read: {err}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"entry {path} is not valid JSON: {err}") from None
