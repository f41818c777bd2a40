"""Corpora in, a prepared data dir out (contract `cram-data/1`).

    prepare(sources, out, ...)   build a data dir (data_prep.prepare)
    open_data_dir(path)          read one back: rows, batches, manifest (data_prep.reader)
    load_tokenizer(path)         the WordPiece tokenizer of a data dir or run
"""

from data_prep.errors import UserError
from data_prep.files import atomic_dir, canonical_json, sha256_file, write_json_atomic
from data_prep.manifest import DATA_FORMAT
from data_prep.prepare import prepare
from data_prep.reader import DataDir, load_tokenizer, open_data_dir

__all__ = [
    "DATA_FORMAT",
    "DataDir",
    "UserError",
    "atomic_dir",
    "canonical_json",
    "load_tokenizer",
    "open_data_dir",
    "prepare",
    "sha256_file",
    "write_json_atomic",
]
