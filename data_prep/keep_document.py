"""`cram prepare --plugin FILE`: an entrant's document filter, the plug-in hook `keep_document`.

    CRAM_PLUGIN_API = 1

    def keep_document(text, options):
        return len(text.split()) >= options.get("min_words", 20)

The hook sees each document after the built-in cleaning (normalized: ASCII, lowercase,
collapsed whitespace; cut to at most MAX_DOC_CHARS; long enough; not a duplicate), before the
tokenizer is trained on it and before the trash filter, and returns True to keep it. Every pass
over the corpus asks it again, so it must be a function of the text and the options alone.
The file is loaded with crambench.plugin.load_plugin (the same API and hook-name checks as
`cram pretrain --plugin`), and the hook is called once on PROBE_TEXT before the corpus is read,
so a hook that raises or returns something else than a bool is one line before any work.
The data dir keeps a copy (`DATA/code/plugin.py`) and the manifest's pipeline settings
record `plugin: {file, sha256, options}`, which enters `data_sha256` (data_prep.settings);
verification rehashes the copy (check_plugin_copy). Torch-free.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crambench.contracts import sha256_file
from crambench.errors import UserError
from crambench.plugin import RUN_COPY, Plugin, load_plugin

HOOK = "keep_document"
# How many documents' answers are asked twice (the probe text's too): enough to catch a hook
# that draws at random, for a few more calls per corpus.
CHECK_TWICE = 64
# What the hook is first called on, before the corpus is read: a cleaned document as it sees them.
PROBE_TEXT = ("the quick brown fox jumps over the lazy dog. a cleaned document is lowercase "
              "ascii text with single spaces, at least sixty-four characters long.")
_SCALARS = (bool, int, float, str, type(None))


def option_pair(text: str) -> tuple[str, object]:
    """`--plugin-option KEY=VALUE` -> (KEY, VALUE as a YAML scalar: 0.7 and 1e-3 are numbers,
    true/false booleans, null None; anything else, lists included, the text as written)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or any(c.isspace() for c in key):
        raise UserError(f"--plugin-option {text!r} is not KEY=VALUE")
    return key, _scalar(value)


def _scalar(text: str):
    import yaml

    try:
        value = yaml.safe_load(text) if text.strip() else text
    except yaml.YAMLError:
        return text
    if isinstance(value, str) or not isinstance(value, _SCALARS):
        try:  # YAML 1.1 reads 1e-3 (no dot) as a string
            number = float(text)
        except ValueError:
            return text
        return number if math.isfinite(number) else text
    if isinstance(value, float) and not math.isfinite(value):
        return text  # .inf and .nan would not survive the manifest's JSON
    return value


def plugin_options(pairs) -> dict:
    """The (KEY, VALUE) pairs of the --plugin-option flags as a dict; a KEY given twice is
    refused."""
    options: dict = {}
    for key, value in pairs or ():
        if key in options:
            raise UserError(f"--plugin-option {key} is given twice")
        options[key] = value
    return options


@dataclass
class DocumentFilter:
    """A loaded plug-in with a keep_document hook, its bytes (copied into the data dir) and
    the options the hook is called with."""

    plugin: Plugin
    source: bytes
    options: dict
    checked: int = 0  # documents whose answer was asked twice

    def keep(self, text: str) -> bool:
        """The hook's answer for `text`. The corpus is read up to three times (tokenizer, trash
        filter, rows), so every pass must see the same documents: the first CHECK_TWICE
        answers are asked twice, and a hook that changes its mind is refused."""
        answer = self._check(self.plugin.call(HOOK, text, dict(self.options)))
        if self.checked < CHECK_TWICE:
            self.checked += 1
            if self._check(self.plugin.call(HOOK, text, dict(self.options))) != answer:
                raise UserError(f"{self.plugin.path}: hook {HOOK} answered {answer} and then "
                                f"{not answer} for the same document; it must decide from the "
                                "text and the options alone (no random draws, no state), as "
                                "each pass over the corpus asks again")
        return answer

    def _check(self, value) -> bool:
        if isinstance(value, bool | np.bool_):
            return bool(value)
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise UserError(f"{self.plugin.path}: hook {HOOK} returned {shown} "
                        f"({type(value).__name__}), not True or False")

    def record(self) -> dict:
        """The manifest's `plugin` setting."""
        return {"file": RUN_COPY, "sha256": self.plugin.sha256,
                "options": dict(sorted(self.options.items()))}

    def write_copy(self, root: Path) -> None:
        from crambench.files import write_bytes_atomic

        (root / RUN_COPY).parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(root / RUN_COPY, self.source)


def load_document_filter(path, options: dict | None = None) -> DocumentFilter:
    """Load the plug-in at `path` for `cram prepare`: it must define keep_document (other
    hooks it defines are pretraining's, and not run here), and the hook must give a bool
    on PROBE_TEXT. Raises UserError in one line."""
    plugin = load_plugin(path)
    if plugin.hook(HOOK) is None:
        raise UserError(f"{plugin.path} defines no {HOOK} hook; cram prepare runs only that "
                        "hook (pass a plug-in of the others to cram pretrain --plugin)")
    source = Path(path).read_bytes()
    if hashlib.sha256(source).hexdigest() != plugin.sha256:
        raise UserError(f"{plugin.path} changed while it was loaded; run again")
    found = DocumentFilter(plugin, source, dict(options or {}))
    found.keep(PROBE_TEXT)
    return found


def check_plugin_copy(root: Path, manifest: dict) -> None:
    """A data dir prepared with a plug-in: its copy is there and has the recorded sha256
    (without importing it). Nothing to check for a dir prepared without one."""
    from data_prep.manifest import MANIFEST

    settings = manifest.get("pipeline", {}).get("settings", {})
    record = settings.get("plugin") if isinstance(settings, dict) else None
    if record is None:
        return
    where = Path(root) / MANIFEST
    if (not isinstance(record, dict) or record.get("file") != RUN_COPY
            or not isinstance(record.get("sha256"), str)):
        raise UserError(f"{where} is corrupt: bad plugin setting {record!r}")
    copy = Path(root) / RUN_COPY
    if not copy.is_file():
        raise UserError(f"{copy} is missing: {where} records the plug-in the data was "
                        "prepared with")
    if sha256_file(copy) != record["sha256"]:
        raise UserError(f"{copy} does not match the plugin sha256 in {where}: the data "
                        "dir's plug-in was changed after preparation")
