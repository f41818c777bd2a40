"""Leaderboard entries (contract 4): submit a scored run, validate entries, build the site.

The modules keep their heavy imports (jsonschema, matplotlib, torch) inside functions, so
importing this package, as `cram --help` does, stays cheap.
"""

from leaderboard.demo import run_demo
from leaderboard.rules import RULES_VERSION
from leaderboard.schema import ENTRY_FORMAT
from leaderboard.site import build_site
from leaderboard.submit import submit
from leaderboard.validate import validate_entries

__all__ = ["ENTRY_FORMAT", "RULES_VERSION", "build_site", "run_demo", "submit",
           "validate_entries"]
