"""What every stage shares, and the shell that runs them.

    crambench.errors     UserError (one line, exit 2) and OutOfSpace
    crambench.contracts  JSON contract files, canonical JSON, sha256 of files
    crambench.files      atomic files and folders: whole or absent, repaired after a kill
    crambench.locks      one writer per output folder
    crambench.progress   the progress rule of every command (bars, lines, --quiet)
    crambench.units      bytes and durations as people read them
    crambench.lazy       package names imported on first use
    crambench.shell      the `cram` command line and `cram demo` (the top of the import graph)

Imports point one way: crambench (but its shell) imports no stage; data_prep → cramming →
glue_eval → leaderboard each import only what comes before them; crambench.shell imports them
all. tests/test_layout.py holds the code to that.
"""

from __future__ import annotations

from crambench.errors import OutOfSpace, UserError
from crambench.lazy import lazy_exports

_EXPORTS = {
    "atomic_dir": "crambench.files",
    "atomic_file": "crambench.files",
    "write_json_atomic": "crambench.files",
    "write_text_atomic": "crambench.files",
    "canonical_json": "crambench.contracts",
    "read_contract": "crambench.contracts",
    "read_json_object": "crambench.contracts",
    "sha256_file": "crambench.contracts",
    "dir_lock": "crambench.locks",
    "format_bytes": "crambench.units",
    "format_duration": "crambench.units",
}

__all__ = ["OutOfSpace", "UserError", *_EXPORTS]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
