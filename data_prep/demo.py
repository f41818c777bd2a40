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
The demo is small and fixed, so its documents are built once per process and kept.
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
from collections.abc import Iterator
from pathlib import Path

from data_prep.sources import Source

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


@functools.cache
def demo_parts() -> tuple[tuple[dict, tuple[str, ...]], ...]:
    """(record, documents) per part; built once per process."""
    python = f"python {platform.python_version()}"
    parts = [
        ("demo:python-topics", python, _topics()),
        ("demo:python-stdlib-docstrings", python,
         _package_documents(Path(sysconfig.get_paths()["stdlib"]))),
    ]
    for package in ("numpy", "scipy"):
        version = f"{package} {importlib.metadata.version(package)}"
        parts.append((f"demo:{package}-docstrings", version,
                      _package_documents(_package_root(package))))
    out = []
    for name, version, docs in parts:
        digest = hashlib.sha256()
        size = 0
        for doc in docs:
            data = doc.encode()
            digest.update(data + b"\x00")  # NUL separator: document boundaries count
            size += len(data)
        record = {"name": name, "kind": "demo", "version": version, "bytes": size,
                  "documents": len(docs), "sha256": digest.hexdigest()}
        out.append((record, tuple(docs)))
    return tuple(out)


class DemoSource(Source):
    name = "demo"
    kind = "demo"

    def documents(self) -> Iterator[str]:
        for _, docs in demo_parts():
            yield from docs

    def describe(self) -> list[dict]:
        return [record for record, _ in demo_parts()]
