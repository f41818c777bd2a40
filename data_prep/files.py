"""Crash-safe file writing and content hashes, shared by every stage.

A contract file is either whole or absent: writers put bytes under a temporary name in the
same directory and `os.replace` them into place, which is atomic on POSIX filesystems.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from data_prep.errors import UserError

_CHUNK = 1 << 20  # 1 MiB reads keep hashing of multi-GB shards at constant memory


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def canonical_json(obj) -> bytes:
    """The byte form that hashes are taken over: sorted keys, no whitespace."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def read_json_object(path: str | os.PathLike) -> dict:
    """A JSON object from `path`, or a one-line UserError naming the file."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise UserError(f"cannot read {path}: not UTF-8 text ({err.reason})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"cannot read {path}: not valid JSON ({err})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path} holds a JSON {type(obj).__name__}, not an object")
    return obj


def read_contract(path: str | os.PathLike, expected_format: str) -> dict:
    """A contract file: a JSON object whose `format` this version reads, else a UserError."""
    obj = read_json_object(path)
    if obj.get("format") != expected_format:
        raise UserError(f"{path} has format {obj.get('format')!r}, expected {expected_format!r}")
    return obj


class OutOfSpace(UserError):
    """A write that ran out of disk space (ENOSPC) or quota (EDQUOT): one line naming the output
    and how much it needed; the partial output is removed and earlier outputs stay intact."""

    def __init__(self, path, err: OSError, *, needed: int | None = None, written: int = 0):
        self.path, self.needed, self.written, self.strerror = Path(path), needed, written, \
            err.strerror or "No space left on device"
        try:
            free = f", {format_bytes(shutil.disk_usage(_existing_parent(self.path)).free)} free"
        except OSError:
            free = ""
        if needed is not None:
            need = f"it needs {format_bytes(needed)}"
        else:
            need = f"it needs more than the {format_bytes(written)} written when space ran out"
        super().__init__(f"{self.strerror.lower()} writing {self.path}: {need}{free}; free "
                         "some space and run again")

    def moved(self, old: Path, new: Path) -> OutOfSpace:
        """The same error for a path under `old` reported as under `new` (a temporary dir)."""
        relative = self.path.relative_to(old) if self.path.is_relative_to(old) else None
        path = new / relative if relative is not None else new
        return OutOfSpace(path, OSError(0, self.strerror), needed=self.needed,
                          written=self.written)


OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT)


def is_out_of_space(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in OUT_OF_SPACE


def format_bytes(n: float) -> str:
    """1234567 -> '1.2 MB' (decimal units, as df -H and disk vendors count)."""
    if n < 1000:
        return f"{n:.0f} B"
    for unit in ("KB", "MB", "GB", "TB"):
        n /= 1000
        if n < 1000 or unit == "TB":
            break
    return f"{n:.1f} {unit}"


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


class HashingWriter:
    """A binary file handle that hashes (sha256) and counts what passes through it, and keeps
    the first OSError: libraries that wrap write errors (torch.save raises RuntimeError) must
    not hide a full disk."""

    def __init__(self, handle):
        self._handle = handle
        self._digest = hashlib.sha256()
        self.written = 0
        self.error: OSError | None = None

    def write(self, data) -> int:
        try:
            count = self._handle.write(data)
        except OSError as err:
            self.error = self.error or err
            raise
        self._digest.update(data)
        self.written += len(data)
        return count

    def flush(self) -> None:
        try:
            self._handle.flush()
        except OSError as err:
            self.error = self.error or err
            raise

    def sha256(self) -> str:
        return self._digest.hexdigest()


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, *, size: int | None = None) -> Iterator[HashingWriter]:
    """Write `path` through a handle: the file appears whole when the block ends, or not at
    all. The handle's `sha256()` is the hash of what was written. `size` (bytes, when known)
    is reported if the disk fills. Raises OutOfSpace on ENOSPC/EDQUOT."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o666 & ~umask())  # mkstemp makes 0600; the output follows the umask
    raw = os.fdopen(fd, "wb")
    writer = HashingWriter(raw)
    try:
        yield writer
        writer.flush()
        try:
            os.fsync(raw.fileno())
            raw.close()
        except OSError as err:
            writer.error = writer.error or err
            raise
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            raw.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        cause = writer.error if writer.error is not None else err
        if is_out_of_space(cause):
            raise OutOfSpace(path, cause, needed=size, written=writer.written) from None
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> str:
    """Write `data` to `path` atomically; returns its sha256."""
    with atomic_file(path, size=len(data)) as handle:
        handle.write(data)
    return handle.sha256()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def umask() -> int:
    """The process's umask, read without changing it where Linux allows (/proc), else by the
    classic set-and-restore."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike, *, force: bool = False) -> Iterator[Path]:
    """Build a directory under a temporary sibling name; rename it to `final` on success.

    On any exception the temporary directory is removed, so `final` never exists half-built.
    With `force`, an existing `final` is replaced only once the new one is complete.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".partial"))
    try:
        yield tmp
        if final.exists() and force:
            trash = final.with_name(f".{final.name}.old")
            shutil.rmtree(trash, ignore_errors=True)
            os.replace(final, trash)
            os.replace(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
