"""The order of the train rows, `cram prepare --order`: the table ORDERS.

The cramming paper tried curricula for its data (Geiping & Goldstein 2022, v1 section 4.3:
sorting by unigram prevalence "some positive effect"; its Pile and C4 configs use the
sentence-length one). Its code (data config `ordering`, `curriculum_sorting.py`) sorts the
packed rows of `seq_len` tokens, not documents, and its trainer reads them in that order. So do
these, which makes an order a permutation of the same rows the default packs:

- random (default; cramming's `randomized`): rows stay in packing order and pretraining draws a
  fresh permutation every epoch from the run's seed (data_prep.reader).
- prevalence (cramming's `unigram-curriculum`): by the mean log2 unigram probability of a row's
  tokens, ascending, so the rows of rarest tokens come first. A token's probability is its
  count in the train split plus one over the split's tokens plus the vocabulary size (add-one
  smoothing, as cramming's); [SEP] counts as a token.
- sentence-length (cramming's `sentence-length-curriculum`): by the number of "." tokens in a
  row, most first: rows of many short sentences first, of long sentences last.

A curriculum's rows are stored sorted and the manifest's `train_order` says "curriculum", which
makes pretraining read them in stored order every epoch (the seed still draws the masks).
Ties keep packing order (a stable sort) and every key is a whole number, so the order is the
same on any machine. Only the train split is sorted: the val split's loss does not depend on
order. Sorting holds a key and an index per train row (16 bytes; 1.4 GB at cramming's 85M
rows) and writes the train split a second time before the first is deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from crambench.errors import UserError
from data_prep.pack import TOKEN_DTYPE
from data_prep.shards import ShardWriter

BLOCK_ROWS = 1 << 15  # rows per read and per write: 8 MiB of rows of 128
# log2 probabilities in fixed point (2**-24 bits), so a row's sum is exact in int64 whatever
# the machine's floating-point summation order: the sort cannot differ between machines.
FIXED_POINT = 2**24

Blocks = Callable[[], Iterator[np.ndarray]]  # the train rows again, in blocks, in order


@dataclass(frozen=True)
class Order:
    name: str  # the --order value
    curriculum: bool  # pretraining keeps the stored order
    # (blocks of the train rows, tokenizer, vocab size) -> one whole-number key per row;
    # rows are stored by ascending key. None: packing order, shuffled by pretraining.
    keys: Callable[[Blocks, Tokenizer, int], np.ndarray] | None


def prevalence_keys(blocks: Blocks, tokenizer: Tokenizer, vocab_size: int) -> np.ndarray:
    """Each row's sum of log2 unigram probabilities (fixed point): rows all hold seq_len
    tokens, so the sum orders them as the mean does."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for block in blocks():
        counts += np.bincount(block.ravel(), minlength=vocab_size)
    log2_probs = np.log2((counts + 1) / (counts.sum() + vocab_size))
    fixed = np.rint(log2_probs * FIXED_POINT).astype(np.int64)
    return np.concatenate([fixed[block].sum(axis=1) for block in blocks()])


def sentence_keys(blocks: Blocks, tokenizer: Tokenizer, vocab_size: int) -> np.ndarray:
    """Minus the number of "." tokens in each row (most sentences first)."""
    period = tokenizer.token_to_id(".")
    if period is None:
        raise UserError("--order sentence-length counts '.' tokens, and the tokenizer has none")
    return np.concatenate([-(block == period).sum(axis=1) for block in blocks()])


ORDERS = {order.name: order for order in (
    Order("random", curriculum=False, keys=None),
    Order("prevalence", curriculum=True, keys=prevalence_keys),
    Order("sentence-length", curriculum=True, keys=sentence_keys),
)}


def get_order(name: str) -> Order:
    """The table's entry for `name`, or a UserError naming the option."""
    if name not in ORDERS:
        raise UserError(f"--order {name!r} is not one of {', '.join(ORDERS)}")
    return ORDERS[name]


def sort_train_rows(root: Path, shards: list[dict], order: Order, tokenizer: Tokenizer, *,
                    vocab_size: int, seq_len: int) -> list[dict]:
    """Rewrite the train shards under `root` with their rows sorted by `order`; returns the
    shard list with the new train records (val records unchanged)."""
    train = [s for s in shards if s["split"] == "train"]
    unsorted = root / "unsorted"
    unsorted.mkdir()
    maps = []
    for shard in train:
        moved = unsorted / Path(shard["file"]).name
        (root / shard["file"]).rename(moved)
        maps.append(np.memmap(moved, dtype=TOKEN_DTYPE, mode="r",
                              shape=(shard["sequences"], seq_len)))

    def blocks() -> Iterator[np.ndarray]:
        for rows in maps:
            for start in range(0, len(rows), BLOCK_ROWS):
                yield np.asarray(rows[start:start + BLOCK_ROWS])

    ranked = np.argsort(order.keys(blocks, tokenizer, vocab_size), kind="stable")
    first_row = np.cumsum([0] + [len(rows) for rows in maps])
    writer = ShardWriter(root, "train")
    for start in range(0, len(ranked), BLOCK_ROWS):
        picks = ranked[start:start + BLOCK_ROWS]
        which = np.searchsorted(first_row, picks, side="right") - 1
        block = np.empty((len(picks), seq_len), dtype=TOKEN_DTYPE)
        for index in np.unique(which):
            here = which == index
            block[here] = maps[index][picks[here] - first_row[index]]
        writer.write(block)
    maps.clear()  # close the memory maps before their files go
    for file in unsorted.iterdir():
        file.unlink()
    unsorted.rmdir()
    return writer.finish() + [s for s in shards if s["split"] != "train"]
