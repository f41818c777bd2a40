"""The `demo` source: real English prose that ships with Python and the pinned packages.

No download. The rule:
1. `pydoc_data.topics` — the language reference topics behind `help()`; one document per topic.
2. The docstrings of the standard library's `.py` modules (found with `ast`, never imported),
   walked in sorted path order, skipping test suites, idlelib and installed packages; one
   document per module (module, class and function docstrings joined by blank lines).
3. Because 1 + 2 come to about 2.2 MB on CPython 3.11 (under the ~3 MB a demo needs), the
   docstrings of the installed `numpy` and `scipy` (core dependencies, pinned) are added by
   the same rule.
In all parts, interactive examples (a `>>>` line up to the next blank line) are removed: they
are code, not prose, and the trash filter would drop whole documents for them.
Each part is recorded in the manifest's `sources` with the Python or package version and the
sha256 of the text it produced, so a different Python or package build is visible there.
The demo is small and fixed, so each part's documents are built once per process and kept.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata
import importlib.util
import platform
import re
import sysconfig
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from data_prep.stream import Source

SKIP_DIRS = {
    "test", "tests", "testing", "idlelib", "site-packages", "dist-packages", "__pycache__",
}
DOCTEST = re.compile(r"^[ \t]*>>>.*?(?:\n[ \t]*\n|\Z)", re.MULTILINE | re.DOTALL)


def _module_docstrings(path: Path) -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences in old sources
            tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError):
        return ""  # e.g. grammar test fixtures that are deliberately not valid Python
    docs = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=True)
            doc = DOCTEST.sub("", doc).strip() if doc else ""
            if doc:
                docs.append(doc)
    return "\n\n".join(docs)


def _package_documents(root: Path) -> list[str]:
    docs = []
    for path in sorted(root.rglob("*.py")):
        if SKIP_DIRS.intersection(path.relative_to(root).parts[:-1]):
            continue
        text = _module_docstrings(path)
        if text:
            docs.append(text)
    return docs


def _topics() -> list[str]:
    from pydoc_data.topics import topics

    docs = (DOCTEST.sub("", topics[key]).strip() for key in sorted(topics))
    return [doc for doc in docs if doc]


def _package_root(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    return Path(next(iter(spec.submodule_search_locations)))


def _installed_package_documents(name: str) -> list[str]:
    return _package_documents(_package_root(name))


def _parts() -> list[tuple[str, str, Callable[[], list[str]]]]:
    """(name, version, builder) of each part, in order."""
    python = f"python {platform.python_version()}"
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    parts = [
        ("demo:python-topics", python, _topics),
        ("demo:python-stdlib-docstrings", python, lambda: _package_documents(stdlib)),
    ]
    for package in ("numpy", "scipy"):
        parts.append((f"demo:{package}-docstrings",
                      f"{package} {importlib.metadata.version(package)}",
                      functools.partial(_installed_package_documents, package)))
    return parts


PART_COUNT = 4


@functools.cache
def demo_part(index: int) -> tuple[dict, tuple[str, ...]]:
    """(manifest record, documents) of part `index`; built on first use, then kept."""
    name, version, build = _parts()[index]
    docs = tuple(build())
    digest = hashlib.sha256()
    for doc in docs:
        digest.update(doc.encode() + b"\x00")  # NUL separator: document boundaries count
    record = {"name": name, "kind": "demo", "version": version,
              "bytes": sum(len(doc.encode()) for doc in docs), "documents": len(docs),
              "sha256": digest.hexdigest()}
    return record, docs


class DemoSource(Source):
    """Parts are built only when reached, so `max_docs` runs skip the later ones; the
    manifest records the parts that were read."""

    name = "demo"
    kind = "demo"

    def __init__(self) -> None:
        self._reached: set[int] = set()

    def documents(self) -> Iterator[str]:
        for index in range(PART_COUNT):
            self._reached.add(index)
            yield from demo_part(index)[1]

    def describe(self) -> list[dict]:
        reached = sorted(self._reached) or range(PART_COUNT)
        return [demo_part(index)[0] for index in reached]
