"""The identity of a safetensors file's tensors, read without torch or safetensors.

Two files may hold the same tensors and differ byte for byte (metadata, tensor order, padding
of the header): the trainer's checkpoint and final/ are written by different savers. Their
`tensors_sha256` is equal exactly when they hold the same names with the same dtypes, shapes
and bytes, so the validator (which imports no deep-learning code) can tell whether final/ holds
the weights training ended with.

The format: 8 bytes little-endian header length, a JSON header {name: {dtype, shape,
data_offsets: [begin, end]}, "__metadata__": {...}}, then the data (offsets relative to it).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct

from crambench.errors import UserError

_CHUNK = 1 << 20
# A header longer than this is not one a saver of this project writes (it names every tensor
# of a model in a few kB per hundred tensors); reading it whole would be a way to exhaust memory.
MAX_HEADER_BYTES = 100 << 20


def tensors_sha256(path: str | os.PathLike) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order."""
    try:
        with open(path, "rb") as handle:
            return _digest(handle, path)
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror or err}") from None


def tensors_sha256_of_bytes(data: bytes, what: str) -> str:
    """`tensors_sha256` of a safetensors file's bytes still in memory (`what` names it)."""
    return _digest(io.BytesIO(data), what)


def _digest(handle, path) -> str:
    digest = hashlib.sha256()
    header, data_start = _header(handle, path)
    for name in sorted(k for k in header if k != "__metadata__"):
        spec = header[name]
        try:
            begin, end = (int(v) for v in spec["data_offsets"])
            described = json.dumps([name, spec["dtype"], list(spec["shape"])])
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{path}: tensor {name!r} has no dtype, shape and "
                            "data_offsets (not a safetensors file)") from None
        digest.update(described.encode() + b"\0")
        handle.seek(data_start + begin)
        left = end - begin
        while left > 0:
            chunk = handle.read(min(_CHUNK, left))
            if not chunk:
                raise UserError(f"{path} is cut short: tensor {name!r} ends past the "
                                "end of the file")
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def _header(handle, path) -> tuple[dict, int]:
    raw = handle.read(8)
    if len(raw) != 8:
        raise UserError(f"{path} is not a safetensors file (shorter than its header length)")
    (size,) = struct.unpack("<Q", raw)
    if size > MAX_HEADER_BYTES:
        raise UserError(f"{path} is not a safetensors file (a header of {size} bytes)")
    try:
        header = json.loads(handle.read(size))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UserError(f"{path} is not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise UserError(f"{path} is not a safetensors file (its header is not an object)")
    return header, 8 + size
