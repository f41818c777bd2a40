"""Leaderboard entries (contract 4): submit a scored run (or an outside model's results),
validate entries, build the site.

The validator and the site judge entries from their records alone: this package imports no
torch and no trainer code (the rules come from the torch-free `cramming.rules`). Heavy
libraries (jsonschema, matplotlib, numpy, jinja2) load inside functions, so importing it, as
`cram --help` does, stays cheap.
"""

from leaderboard.schema import ENTRY_FORMAT
from leaderboard.site import build_site
from leaderboard.submit import submit, submit_results
from leaderboard.validate import validate_entries

__all__ = ["ENTRY_FORMAT", "build_site", "submit", "submit_results", "validate_entries"]
