"""Training rows for one rank: its disjoint share of every global batch, in one process's order.

The data dir's seeded stream (`DataDir.iter_batches`) is the same for any number of ranks: rank
r of n reads positions r, r + n, ... of it. A global batch of `size` rows starting at stream
position p is positions p .. p + size - 1; with `size` a multiple of n, each rank holds
size / n of them, and all ranks together hold exactly the rows one process would. Positions are
counted globally, so a run can resume on another number of ranks and read on where it stopped.
"""

from __future__ import annotations

import numpy as np


class RowStream:
    """This rank's rows of each global batch. `position` counts global rows of completed steps
    only, so a resume replays a step cut off by the deadline or a signal."""

    def __init__(self, data_dir, *, seed: int, start: int, chunk: int, rank: int = 0,
                 world_size: int = 1):
        self.position, self.rank, self.world_size = start, rank, world_size
        # This rank's first stream position at or after `start` is rank + world_size * k.
        mine = max(0, -(-(start - rank) // world_size))
        self._batches = data_dir.iter_batches("train", chunk, seed=seed, start=mine, rank=rank,
                                              world_size=world_size)
        self._buffer = np.empty((0, data_dir.seq_len), dtype=np.int64)

    def peek(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, index): this rank's rows of the next global batch of `size` rows (a multiple
        of world_size), and where each sits in that batch (0 .. size - 1)."""
        share = self._share(size)
        while len(self._buffer) < share:
            self._buffer = np.concatenate([self._buffer, next(self._batches)])
        first = (self.rank - self.position) % self.world_size
        return self._buffer[:share], np.arange(first, size, self.world_size)[:share]

    def consume(self, size: int) -> None:
        """The global batch of `size` rows is done: drop this rank's share of it."""
        self._buffer = self._buffer[self._share(size):]
        self.position += size

    def _share(self, size: int) -> int:
        if size % self.world_size:
            raise ValueError(f"a global batch of {size} rows does not split over "
                             f"{self.world_size} ranks")
        return size // self.world_size
