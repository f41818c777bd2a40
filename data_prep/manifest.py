"""`manifest.json` of a data dir (contract 1, format `cram-data/1`): checks on read."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from crambench.errors import UserError

DATA_FORMAT = "cram-data/1"
MANIFEST = "manifest.json"
TOKENIZER = "tokenizer.json"
SPLITS = ("train", "val")
MAX_VOCAB = 65535  # ids are stored as uint16
MIN_SEQ_LEN = 8
# Fixed ids every stage relies on: the tokenizer trains these tokens first, in this order.
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
SPECIAL_IDS = {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
# How pretraining reads the train rows: a seeded permutation per epoch, or (a curriculum,
# data_prep.order) their stored order. A manifest without the field predates curricula.
TRAIN_ORDERS = ("shuffle", "curriculum")

# key -> type every reader relies on
REQUIRED = {
    "format": str, "seq_len": int, "vocab_size": int, "dtype": str, "special_ids": dict,
    "num_sequences": dict, "num_tokens": int, "shards": list, "sources": list,
    "pipeline": dict, "tokenizer_sha256": str, "data_sha256": str,
}


def read_manifest(root: Path) -> dict:
    path = root / MANIFEST
    if not root.is_dir():
        raise UserError(f"data dir not found: {root}")
    if not path.is_file():
        raise UserError(f"{path} not found: not a prepared data dir (run cram prepare)")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path} is corrupt: not valid JSON ({err})") from None
    if not isinstance(manifest, dict):
        raise UserError(f"{path} is corrupt: expected a JSON object")
    check_manifest(manifest, path)
    return manifest


def check_manifest(manifest: dict, where) -> None:
    fmt = manifest.get("format")
    if fmt != DATA_FORMAT:
        raise UserError(f"{where}: unknown data format {fmt!r} (this version reads {DATA_FORMAT})")
    for key, kind in REQUIRED.items():
        if not isinstance(manifest.get(key), kind):
            raise UserError(f"{where} is corrupt: field {key!r} missing or not {kind.__name__}")
    if manifest["dtype"] != "uint16":
        raise UserError(f"{where}: unsupported dtype {manifest['dtype']!r} (expected uint16)")
    if not len(SPECIAL_TOKENS) < manifest["vocab_size"] <= 65535 or manifest["seq_len"] < 1:
        raise UserError(f"{where} is corrupt: vocab_size {manifest['vocab_size']} or seq_len "
                        f"{manifest['seq_len']} out of range for uint16 rows")
    if manifest.get("train_order", "shuffle") not in TRAIN_ORDERS:
        raise UserError(f"{where}: unknown train_order {manifest['train_order']!r} (this "
                        f"version reads {', '.join(TRAIN_ORDERS)})")
    if manifest["special_ids"] != SPECIAL_IDS:
        raise UserError(f"{where}: special token ids {manifest['special_ids']} differ from "
                        f"{SPECIAL_IDS}")
    counts = {split: 0 for split in SPLITS}
    for shard in manifest["shards"]:
        ok = (isinstance(shard, dict) and shard.get("split") in SPLITS
              and isinstance(shard.get("file"), str) and isinstance(shard.get("sequences"), int)
              and isinstance(shard.get("sha256"), str))
        if not ok or shard["sequences"] < 0 or not _inside(shard["file"]):
            raise UserError(f"{where} is corrupt: bad shard entry {shard!r}")
        counts[shard["split"]] += shard["sequences"]
    if manifest["num_sequences"] != counts:
        raise UserError(f"{where} is corrupt: num_sequences {manifest['num_sequences']} "
                        f"disagrees with the shard list {counts}")
    rows = sum(counts.values())
    if manifest["num_tokens"] != rows * manifest["seq_len"]:
        raise UserError(f"{where} is corrupt: num_tokens {manifest['num_tokens']} disagrees "
                        f"with its {rows} rows of {manifest['seq_len']}")


def _inside(name: str) -> bool:
    """A shard path relative to the data dir that stays inside it."""
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts and "\\" not in name
