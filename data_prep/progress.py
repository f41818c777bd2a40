"""When long work shows progress: never under `--quiet`, nor under `CI=true` (DESIGN)."""

import os


def progress_disabled(quiet: bool) -> bool:
    return quiet or os.environ.get("CI", "").lower() == "true"
