"""Reading a prepared data dir: rows by index, batches in order or shuffled, the tokenizer.

Nothing here assumes one process: every rank of a multi-GPU job opens the same dir and asks
`iter_batches(..., rank=r, world_size=n)` for its own disjoint rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from crambench.contracts import contained_path, sha256_file
from crambench.errors import UserError
from crambench.files import interrupted_swap, tidy
from crambench.locks import dir_lock
from data_prep.manifest import MANIFEST, SPLITS, TOKENIZER, read_manifest
from data_prep.pack import TOKEN_DTYPE
from data_prep.shards import manifest_data_sha256


class DataDir:
    """An opened data dir. Shards are memory-mapped on first use."""

    def __init__(self, path: Path, manifest: dict):
        self.path = path
        self.manifest = manifest
        self.seq_len: int = manifest["seq_len"]
        self.vocab_size: int = manifest["vocab_size"]
        self.special_ids: dict[str, int] = dict(manifest["special_ids"])
        self.tokenizer_path = path / TOKENIZER
        self.data_sha256: str = manifest["data_sha256"]
        # A curriculum (data_prep.order) is the stored order of the train rows: kept.
        self.curriculum: bool = manifest.get("train_order") == "curriculum"
        self._shards = {s: [x for x in manifest["shards"] if x["split"] == s] for s in SPLITS}
        # offsets[split][i] = first global row of shard i; the last entry is the total
        self._offsets = {s: np.cumsum([0] + [x["sequences"] for x in self._shards[s]])
                         for s in SPLITS}
        self._maps: dict[str, np.memmap] = {}

    def __repr__(self) -> str:
        rows = ", ".join(f"{split}={self.num_rows(split)}" for split in SPLITS)
        return f"DataDir({str(self.path)!r}, {rows})"

    def _split(self, split: str) -> str:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        return split

    def num_rows(self, split: str) -> int:
        return int(self._offsets[self._split(split)][-1])

    def _map(self, shard: dict) -> np.memmap:
        name = shard["file"]
        if name not in self._maps:
            self._maps[name] = np.memmap(self.path / name, dtype=TOKEN_DTYPE, mode="r",
                                         shape=(shard["sequences"], self.seq_len))
        return self._maps[name]

    def get_rows(self, split: str, indices) -> np.ndarray:
        """Rows at global `indices` of `split`, any order, as int64 of shape (len, seq_len)."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        total = self.num_rows(split)
        if len(indices) and (indices.min() < 0 or indices.max() >= total):
            raise IndexError(f"row index out of range for {split} split of {total} rows")
        offsets = self._offsets[split]
        which = np.searchsorted(offsets, indices, side="right") - 1
        out = np.empty((len(indices), self.seq_len), dtype=np.int64)
        for shard_index in np.unique(which):
            picked = which == shard_index
            local = indices[picked] - offsets[shard_index]
            shard = self._shards[split][shard_index]
            rows = self._map(shard)[local]
            if rows.size and rows.max() >= self.vocab_size:  # one pass over rows in memory
                raise self._out_of_range(shard, int(rows.max()))
            out[picked] = rows
        return out

    def check_token_ids(self) -> None:
        """Every token id in every shard is below vocab_size, else a UserError naming the shard:
        an embedding lookup would fail mid-training (on a GPU, as a device-side assert). Reads
        each shard once (memory-mapped), as `--verify` does, without hashing."""
        for shard in self.manifest["shards"]:
            if shard["sequences"]:
                top = int(self._map(shard).max())
                if top >= self.vocab_size:
                    raise self._out_of_range(shard, top)

    def _out_of_range(self, shard: dict, token_id: int) -> UserError:
        return UserError(f"{self.path / shard['file']} is corrupt: it holds token id {token_id}, "
                         f"but the vocabulary has {self.vocab_size} ids (0-{self.vocab_size - 1}"
                         f"); check it with `cram prepare --verify {self.path}`")

    def iter_batches(self, split: str, batch_size: int, *, seed: int | None = None,
                     start: int = 0, rank: int = 0, world_size: int = 1) -> Iterator[np.ndarray]:
        """Batches of rows, int64 (B, seq_len).

        seed=None: one pass in file order; the last batch may be short.
        seed given: the stream of one process, forever: a fresh permutation per epoch (from
        (seed, epoch)), the epochs one after another; every batch is full and may run across an
        epoch boundary. The train split of a curriculum dir (`curriculum`) keeps its stored
        order in every epoch instead: the order is the recipe, so the seed does not change it.
        Rank `rank` of `world_size` reads positions rank, rank + world_size, ... of that stream
        (or of the file order), so the ranks together read exactly the rows one process would,
        in the same order, with nothing dropped at an epoch boundary. `start` skips the rows
        this rank has already consumed (resume): its next row is at position
        start * world_size + rank.
        """
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size or start < 0:
            raise ValueError("need batch_size >= 1, world_size >= 1, 0 <= rank < world_size, "
                             "start >= 0")
        total = self.num_rows(split)
        if seed is None:
            mine = np.arange(rank, total, world_size, dtype=np.int64)[start:]
            for begin in range(0, len(mine), batch_size):
                yield self.get_rows(split, mine[begin:begin + batch_size])
            return
        if total == 0:
            raise ValueError(f"{split} split has no rows")
        epoch, offset = divmod(start * world_size + rank, total)
        pending = np.empty(0, dtype=np.int64)
        # int32 halves the permutation's memory (340 MB at cramming's 85M sequences)
        index_dtype = np.int32 if total < 2**31 else np.int64
        stored = self.curriculum and split == "train"
        while True:
            if offset < total:
                order = np.arange(total, dtype=index_dtype)
                if not stored:
                    order = np.random.default_rng([seed, epoch]).permutation(order)
                mine = order[offset::world_size]
                pending = np.concatenate([pending, mine])
                offset += world_size * len(mine)
            offset -= total  # this rank's first position in the next epoch
            epoch += 1
            while len(pending) >= batch_size:
                yield self.get_rows(split, pending[:batch_size])
                pending = pending[batch_size:]

    def verify_hashes(self) -> None:
        """Recompute every shard's sha256 and the data hash, and rehash a plug-in's copy
        (data_prep.keep_document); UserError on any mismatch."""
        from data_prep.keep_document import check_plugin_copy

        for shard in self.manifest["shards"]:
            if sha256_file(self.path / shard["file"]) != shard["sha256"]:
                raise UserError(f"{self.path / shard['file']} is corrupt: sha256 does not match "
                                "the manifest")
        if manifest_data_sha256(self.manifest) != self.data_sha256:
            raise UserError(f"{self.path / MANIFEST} is corrupt: data_sha256 does not match its "
                            "shard hashes and settings")
        check_plugin_copy(self.path, self.manifest)


def open_data_dir(path, *, verify_hashes: bool = False) -> DataDir:
    """Open and check a data dir: format, shard files inside it and of the right sizes, the
    tokenizer the manifest names (its sha256: a small file, checked on every open, so a damaged
    tokenizer never reaches a run's final/)."""
    path = Path(path)
    if interrupted_swap(path):  # `prepare --force` killed mid-swap: its old copy is complete
        with dir_lock(path, owner="cram (restoring an interrupted --force)"):
            tidy(path)
    manifest = read_manifest(path)
    seq_len = manifest["seq_len"]
    for shard in manifest["shards"]:
        file = contained_path(path, shard["file"], what=f"shard file in {path / MANIFEST}")
        expected = shard["sequences"] * seq_len * TOKEN_DTYPE.itemsize
        if not file.is_file():
            raise UserError(f"shard missing: {file}")
        size = file.stat().st_size
        if size != expected:
            raise UserError(f"{file} is corrupt or truncated: {size} bytes, expected {expected}")
    if not (path / TOKENIZER).is_file():
        raise UserError(f"tokenizer missing: {path / TOKENIZER}")
    if sha256_file(path / TOKENIZER) != manifest["tokenizer_sha256"]:
        raise UserError(f"{path / TOKENIZER} does not match the tokenizer_sha256 of "
                        f"{path / MANIFEST}: the tokenizer was changed or damaged after "
                        "preparation")
    data = DataDir(path, manifest)
    if verify_hashes:
        data.verify_hashes()
    return data


def load_tokenizer(path):
    """A `tokenizers.Tokenizer` from a data dir, a run's final dir or run dir, or a .json file."""
    from data_prep.tokenizer import read_tokenizer_file

    path = Path(path)
    candidates = [path] if path.is_file() else [path / TOKENIZER, path / "final" / TOKENIZER]
    for candidate in candidates:
        if candidate.is_file():
            return read_tokenizer_file(candidate)
    raise UserError(f"no tokenizer found at {path} (expected a tokenizer.json, a data dir or a "
                    "run dir)")
