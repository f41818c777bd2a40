"""Corpora in, a prepared data dir out (contract `cram-data/1`).

    prepare(sources, out, ...)   build a data dir (data_prep.prepare)
    open_data_dir(path)          read one back: rows, batches, manifest (data_prep.reader)
    load_tokenizer(path)         the WordPiece tokenizer of a data dir or run

Names are imported on first use, so that importing the package does not load numpy and
tokenizers. The shared plumbing that once lived here (UserError, the atomic writers, the
contract readers and hashes) is `crambench`'s; the names stay importable from here.
"""

from crambench.lazy import lazy_exports

_LAZY = {
    "UserError": "crambench.errors",
    "DATA_FORMAT": "data_prep.manifest",
    "DataDir": "data_prep.reader",
    "atomic_dir": "crambench.files",
    "canonical_json": "crambench.contracts",
    "load_tokenizer": "data_prep.reader",
    "open_data_dir": "data_prep.reader",
    "prepare": "data_prep.prepare",
    "read_contract": "crambench.contracts",
    "read_json_object": "crambench.contracts",
    "sha256_file": "crambench.contracts",
    "write_json_atomic": "crambench.files",
}

__all__ = list(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
