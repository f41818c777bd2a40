"""`cram prepare --verify DATA`: check every claim the manifest makes against the files.

open_data_dir() already checks what it needs to read a dir fast (the manifest's fields and
format, per-split row counts against the shard list, each shard's size against its rows, the
tokenizer file present). This adds what needs a full read:
- the tokenizer: it loads, its special tokens have the fixed ids the manifest states, and its
  vocabulary has the manifest's `vocab_size`; its sha256 is `tokenizer_sha256`;
- the pipeline's `tokens_packed` equals the rows times `seq_len` (as `num_tokens` does);
- every shard: its sha256, every token id below `vocab_size`, and none of the ids packing
  never writes ([PAD], [CLS], [MASK]: rows are documents joined by [SEP], no padding);
- `data_sha256` over the shard hashes and the data settings (data_prep.settings);
- `train_order` (stored or shuffled train rows) as the `order` setting makes it;
- a plug-in's copy (`code/plugin.py`) against the sha256 its setting records, unimported.
Each failure is one UserError naming the file and what disagrees with what.
"""

from __future__ import annotations

import hashlib

import numpy as np

from crambench.contracts import sha256_file
from crambench.errors import UserError
from data_prep.keep_document import check_plugin_copy
from data_prep.manifest import MANIFEST, SPECIAL_TOKENS
from data_prep.pack import TOKEN_DTYPE
from data_prep.reader import DataDir, open_data_dir
from data_prep.settings import DEFAULTS
from data_prep.shards import manifest_data_sha256

_ROWS_PER_READ = 1 << 15  # 4 MiB of uint16 rows of 128 per read: constant memory
NEVER_PACKED = ("pad", "cls", "mask")


def verify_data_dir(path) -> dict:
    """Check the data dir at `path` in full; return what was found (for the OK line)."""
    data = open_data_dir(path)
    manifest, where = data.manifest, data.path / MANIFEST
    tokenizer_size = _check_tokenizer(data)
    packed = manifest["pipeline"].get("counts", {}).get("tokens_packed")
    if packed != manifest["num_tokens"]:
        raise UserError(f"{where}: pipeline tokens_packed {packed} disagrees with num_tokens "
                        f"{manifest['num_tokens']}")
    max_id = max((_check_shard(data, shard) for shard in manifest["shards"]), default=0)
    if manifest_data_sha256(manifest) != data.data_sha256:
        raise UserError(f"{where}: data_sha256 does not match its shard hashes and settings")
    _check_train_order(manifest, where)
    check_plugin_copy(data.path, manifest)
    return {"data": data, "tokenizer_size": tokenizer_size, "max_token_id": max_id}


def _check_tokenizer(data: DataDir) -> int:
    from data_prep.tokenizer import read_tokenizer_file

    where = data.path / MANIFEST
    tokenizer = read_tokenizer_file(data.tokenizer_path)  # special ids 0..4 or a UserError
    for name, token in zip(("pad", "unk", "cls", "sep", "mask"), SPECIAL_TOKENS, strict=True):
        if data.special_ids[name] != tokenizer.token_to_id(token):
            raise UserError(f"{where}: special id {name}={data.special_ids[name]} disagrees "
                            f"with {data.tokenizer_path} ({token} is "
                            f"{tokenizer.token_to_id(token)})")
    size = tokenizer.get_vocab_size()
    if size != data.vocab_size:
        raise UserError(f"{where}: vocab_size {data.vocab_size} disagrees with "
                        f"{data.tokenizer_path} ({size} tokens)")
    if sha256_file(data.tokenizer_path) != data.manifest["tokenizer_sha256"]:
        raise UserError(f"{data.tokenizer_path} does not match the manifest's "
                        "tokenizer_sha256")
    return size


def _check_shard(data: DataDir, shard: dict) -> int:
    """Hash one shard and scan its ids in one read; return its largest id."""
    file = data.path / shard["file"]
    digest, max_id = hashlib.sha256(), 0
    if shard["sequences"] == 0:  # packing writes none, but an empty shard is not wrong
        return _check_digest(file, digest, shard, max_id)
    never = {data.special_ids[name]: name for name in NEVER_PACKED}
    rows = np.memmap(file, dtype=TOKEN_DTYPE, mode="r", shape=(shard["sequences"], data.seq_len))
    for start in range(0, len(rows), _ROWS_PER_READ):
        block = np.ascontiguousarray(rows[start:start + _ROWS_PER_READ])
        digest.update(block.tobytes())
        max_id = max(max_id, int(block.max()))
        found = np.isin(block, list(never))
        if found.any():
            row, col = (int(i[0]) for i in np.nonzero(found))
            token = never[int(block[row, col])]
            raise UserError(f"{file}: row {start + row} holds the [{token.upper()}] id "
                            f"{block[row, col]}, which packing never writes")
    del rows
    if max_id >= data.vocab_size:
        raise UserError(f"{file}: token id {max_id} is out of range for vocab_size "
                        f"{data.vocab_size} ({data.path / MANIFEST})")
    return _check_digest(file, digest, shard, max_id)


def _check_digest(file, digest, shard: dict, max_id: int) -> int:
    if digest.hexdigest() != shard["sha256"]:
        raise UserError(f"{file} is corrupt: sha256 does not match the manifest")
    return max_id


def _check_train_order(manifest: dict, where) -> None:
    """`train_order`, which the reader obeys, must be what the hashed `order` setting makes."""
    from data_prep.order import ORDERS

    name = manifest["pipeline"].get("settings", {}).get("order", DEFAULTS["order"])
    if name not in ORDERS:
        raise UserError(f"{where}: unknown order {name!r} in the pipeline settings")
    expected = "curriculum" if ORDERS[name].curriculum else "shuffle"
    found = manifest.get("train_order", "shuffle")
    if found != expected:
        raise UserError(f"{where}: train_order {found!r} disagrees with the order {name!r} "
                        f"it was prepared with ({expected!r})")
