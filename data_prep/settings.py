"""The settings of `cram prepare` for the cramming paper's data ablations, and how they enter
`data_sha256`.

DEFAULTS holds each one's default as the manifest's pipeline settings record it. A data dir
prepared before the setting existed was made with that value, and its manifest either records
it or lacks the key. `data_sha256` covers a setting only where it differs from its default, so
such a dir keeps its hash, while two dirs made with different settings never share one, even
where the shards came out the same (dedup off on a corpus without duplicates).
"""

from __future__ import annotations

import json

from data_prep.dedup import METHOD as DEDUP_METHOD
from data_prep.filters import TRASH_CUTOFF

DEFAULTS = {
    "trash_cutoff": TRASH_CUTOFF,  # tokens per character; None: no trash filter
    "dedup": DEDUP_METHOD,  # "off": duplicates kept
    "order": "random",  # a name in data_prep.order.ORDERS
    "tokenizer_model": "wordpiece",  # a name in data_prep.tokenizer_models.TOKENIZER_MODELS
    "plugin": None,  # {file, sha256, options} of a keep_document plug-in (data_prep.keep_document)
}


def hashed_lines(settings: dict) -> str:
    """`setting KEY VALUE` lines (VALUE as JSON, object keys sorted) for the settings not at
    their default, in DEFAULTS order: what data_prep.shards.data_sha256 appends to the shard
    lines."""
    return "".join(f"setting {key} {json.dumps(settings[key], sort_keys=True)}\n"
                   for key, default in DEFAULTS.items()
                   if key in settings and settings[key] != default)
