"""`hf:NAME[:CONFIG][:SPLIT]` — a Hugging Face Hub dataset, streamed with `datasets`.

Streaming never downloads the whole dataset; each pass opens a fresh stream, so the source is
re-iterable like the others. Documents are the string field `text` (SPLIT defaults to
`train`). The manifest records the dataset name, config, split and the Hub revision that was
resolved, so the exact data can be fetched again.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

from crambench.errors import UserError
from data_prep.stream import Source

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")  # the Hub libraries' own switches


def offline_requested() -> str | None:
    """The offline switch the user set (the Hub libraries then read only their caches)."""
    for name in OFFLINE_VARIABLES:
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return name
    return None


def hub_unreachable(timeout_s: float = 5.0) -> str | None:
    """Why the Hugging Face Hub cannot be reached, or None.

    One TCP connect to the endpoint (HF_ENDPOINT, default huggingface.co), so an offline
    machine learns it at once instead of after the Hub libraries' retries (about 25 s for a
    `datasets.load_dataset` here). An offline switch counts as unreachable too.
    """
    if name := offline_requested():
        return f"{name} is set"
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as err:
        return f"cannot connect to {host}: {err}"
    return None


class HubSource(Source):
    kind = "hub"

    def __init__(self, dataset: str, config: str | None, split: str):
        self.dataset, self.config, self.split = dataset, config, split
        self.name = "hf:" + ":".join(p for p in (dataset, config, split) if p)
        self.bytes = 0
        self._revision: str | None = None

    @classmethod
    def from_spec(cls, spec: str) -> HubSource:
        parts = spec[len("hf:"):].split(":")
        if not parts[0] or len(parts) > 3 or not all(parts):
            raise UserError(f"bad Hub source {spec!r}: expected hf:NAME[:CONFIG][:SPLIT]")
        config = parts[1] if len(parts) > 1 else None
        split = parts[2] if len(parts) > 2 else "train"
        return cls(parts[0], config, split)

    def revision(self) -> str:
        """The dataset repo's commit, resolved once so every pass reads the same data."""
        if self._revision is None:
            from huggingface_hub import HfApi

            try:
                self._revision = HfApi().dataset_info(self.dataset).sha
            except Exception as err:  # network, auth, unknown name: all user-fixable
                raise UserError(f"cannot resolve Hub dataset {self.name}: "
                                f"{_first_line(err)}") from None
        return self._revision

    def _open(self):
        import datasets

        revision = self.revision()  # its own UserError, not wrapped in the one below
        try:
            return datasets.load_dataset(self.dataset, self.config, split=self.split,
                                         revision=revision, streaming=True)
        except Exception as err:  # network, auth, unknown name: all user-fixable
            raise UserError(f"cannot open Hub dataset {self.name}: {_first_line(err)}") from None

    def documents(self) -> Iterator[str]:
        stream = self._open()
        self.bytes = 0
        for number, row in enumerate(stream):
            text = row.get("text")
            if not isinstance(text, str):
                raise UserError(f"{self.name}: row {number} has no string field 'text'")
            self.bytes += len(text.encode())
            yield text

    def describe(self) -> list[dict]:
        return [{"name": self.name, "kind": self.kind, "dataset": self.dataset,
                 "config": self.config, "split": self.split, "bytes": self.bytes,
                 "revision": self.revision()}]


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
