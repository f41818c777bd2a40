"""Source specs -> re-iterable streams of raw documents.

    demo                     the corpus embedded in Python and the pinned packages
                             (data_prep.demo_corpus)
    PATH                     a local file or folder (data_prep.local)
    hf:NAME[:CONFIG][:SPLIT] a Hugging Face Hub dataset, streamed (data_prep.hub)

Every source can be iterated any number of times and yields the same documents in the same
order each time: preparation makes one pass to train the tokenizer and a second to encode.
"""

from __future__ import annotations

import re
from pathlib import Path

from crambench.errors import UserError
from data_prep.stream import Source

# A URL-style scheme ("s3:", "gs:", "http:"); two letters or more, so "C:" stays a path.
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")


def parse_source(spec: str) -> Source:
    """Turn one `--source` value into a Source, failing early with a clear message."""
    if spec == "demo":
        from data_prep.demo_corpus import DemoSource

        return DemoSource()
    if spec.startswith("hf:"):
        from data_prep.hub import HubSource

        return HubSource.from_spec(spec)
    scheme = _SCHEME.match(spec)
    if scheme and not Path(spec).exists():
        raise UserError(f"unknown source scheme {scheme.group()!r} in {spec!r} "
                        "(use demo, hf:NAME[:CONFIG][:SPLIT] or a local path)")
    from data_prep.local import LocalSource

    return LocalSource(Path(spec))
