"""Corpora in, a prepared data dir out (contract `cram-data/1`).

    prepare(sources, out, ...)   build a data dir (data_prep.prepare)
    open_data_dir(path)          read one back: rows, batches, manifest (data_prep.reader)
    load_tokenizer(path)         the WordPiece tokenizer of a data dir or run

Names other than UserError are imported on first use, so that importing the package (the
`cram` CLI does, for UserError) does not load numpy and tokenizers.
"""

from data_prep.errors import UserError
from data_prep.lazy import lazy_exports

_LAZY = {
    "DATA_FORMAT": "data_prep.manifest",
    "DataDir": "data_prep.reader",
    "atomic_dir": "data_prep.files",
    "canonical_json": "data_prep.files",
    "load_tokenizer": "data_prep.reader",
    "open_data_dir": "data_prep.reader",
    "prepare": "data_prep.prepare",
    "read_contract": "data_prep.files",
    "read_json_object": "data_prep.files",
    "sha256_file": "data_prep.files",
    "write_json_atomic": "data_prep.files",
}

__all__ = ["UserError", *_LAZY]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
