"""Which harness code ran: its version string and a hash of its package files.

A run records both (summary.json `code_version`, `code_sha256`). The version alone is a label
anyone can type; the hash lets a validator running the same version compare the files it runs
with the files the run was trained with, and tell a relabelled version from a true one. Both
are computed the same way by the trainer and the validator, without importing either.
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
from pathlib import Path

# The packages of this harness, by folder name beside this one.
PACKAGES = ("crambench", "data_prep", "cramming", "glue_eval", "leaderboard", "sweep")
# What the harness runs from: sources, presets and the records shipped with them.
SUFFIXES = (".py", ".yaml", ".json", ".html", ".css", ".js", ".txt")


def code_version() -> str:
    """Package version plus the git commit of the code, when it runs from a checkout, and
    `.dirty` when the checkout's package files differ from that commit (the run keeps the
    difference: `local_changes`)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        base = version("cramming-bench")
    except PackageNotFoundError:
        base = "unknown"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    if not commit:
        return base
    return f"{base}+git.{commit}{'.dirty' if local_changes() else ''}"


@functools.cache
def local_changes() -> str:
    """`git diff HEAD` of the package folders ("" for a clean checkout or none at all): what a
    run from a modified harness ran beyond its commit. Files git does not track (and does not
    ignore) that the package hash covers follow, each as a diff from nothing."""
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              timeout=30).stdout

    try:
        diff = git("diff", "HEAD", "--", *PACKAGES)
        new = [path for path in git("ls-files", "--others", "--exclude-standard", "--",
                                    *PACKAGES).splitlines()
               if Path(path).suffix in SUFFIXES and "__pycache__" not in Path(path).parts]
        # --no-index compares two paths outside the index; a difference exits 1 (not an error)
        return diff + "".join(git("diff", "--no-index", "--", "/dev/null", path)
                              for path in sorted(new))
    except (OSError, subprocess.SubprocessError):
        return ""


@functools.cache
def code_sha256() -> str:
    """sha256 over every package file's path (relative to the packages' root) and bytes, in
    path order; caches and compiled files are left out, so the same checkout hashes the same
    on every machine."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*")):
            if (path.is_file() and path.suffix in SUFFIXES
                    and "__pycache__" not in path.parts):
                digest.update(str(path.relative_to(root).as_posix()).encode() + b"\0")
                digest.update(path.read_bytes())
                digest.update(b"\0")
    return digest.hexdigest()
