"""Shard files: raw little-endian uint16 rows, `shards/{split}-NNNNN.bin`, hashed as written."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from data_prep.pack import TOKEN_DTYPE
from data_prep.settings import hashed_lines

ROWS_PER_SHARD = 1 << 16  # 65,536 rows x 128 x 2 bytes = 16 MiB: cheap to hash and re-read


def shard_name(split: str, index: int) -> str:
    return f"shards/{split}-{index:05d}.bin"


class ShardWriter:
    """Appends rows for one split, starting a new file every `rows_per_shard` rows."""

    def __init__(self, root: Path, split: str, *, rows_per_shard: int | None = None):
        self.root, self.split = root, split
        self.rows_per_shard = rows_per_shard or ROWS_PER_SHARD
        self.records: list[dict] = []
        self._handle = None
        self._hash = None
        self._rows = 0
        (root / "shards").mkdir(parents=True, exist_ok=True)

    @property
    def num_rows(self) -> int:
        return sum(r["sequences"] for r in self.records) + self._rows

    def write(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=TOKEN_DTYPE)
        while len(rows):
            if self._handle is None:
                self._open()
            take = min(len(rows), self.rows_per_shard - self._rows)
            data = rows[:take].tobytes()
            self._handle.write(data)
            self._hash.update(data)
            self._rows += take
            rows = rows[take:]
            if self._rows == self.rows_per_shard:
                self._close()

    def _open(self) -> None:
        name = shard_name(self.split, len(self.records))
        self._handle = open(self.root / name, "wb")
        self._hash = hashlib.sha256()
        self._name = name

    def _close(self) -> None:
        self._handle.close()
        self.records.append({"file": self._name, "split": self.split, "sequences": self._rows,
                             "sha256": self._hash.hexdigest()})
        self._handle, self._rows = None, 0

    def finish(self) -> list[dict]:
        if self._handle is not None:
            self._close()
        return self.records


def data_sha256(shards: list[dict], settings: dict | None = None) -> str:
    """The hash over the shard hashes, in manifest order, and the data settings not at their
    default: sha256 of "split sha256\\n" lines, then data_prep.settings.hashed_lines(settings)
    (none for a dir prepared with the defaults, so its hash is the shard lines' alone)."""
    lines = "".join(f"{s['split']} {s['sha256']}\n" for s in shards)
    return hashlib.sha256((lines + hashed_lines(settings or {})).encode()).hexdigest()


def manifest_data_sha256(manifest: dict) -> str:
    """`data_sha256` as a manifest's shard list and pipeline settings give it."""
    settings = manifest.get("pipeline", {}).get("settings")
    return data_sha256(manifest["shards"], settings if isinstance(settings, dict) else {})
