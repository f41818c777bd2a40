"""Crash-safe file writing, shared by every stage.

A contract file is either whole or absent: writers put bytes under a temporary name in the
same directory and `os.replace` them into place, which is atomic on POSIX filesystems.
Output folders (run dirs, data dirs, the site) are written under an exclusive lock
(`dir_lock`), so one process at a time writes them and the leftovers of a killed writer (a
`--force` swap cut short, temporary `.NAME.*.partial` / `.NAME.*.tmp` names) can be repaired
safely by the next (`tidy`). Outputs follow the umask; a full disk is one line (OutOfSpace).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from crambench.errors import OutOfSpace, UserError, is_out_of_space
from crambench.locks import dir_lock, holds_lock, this_command


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
        self.written += memoryview(data).nbytes
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


def refuse_output_over_inputs(out: str | os.PathLike, option: str = "--out", **inputs) -> None:
    """UserError when the output folder `out` is one of the command's inputs, a folder above
    one, or an existing folder inside one: building it (and `--force`, which replaces it)
    would delete what the command reads. A new folder inside an input is allowed
    (`--out runs/tiny/hf`). `inputs` name each input by its option, e.g. `run=RUN` for --run;
    None is skipped.
    """
    target = Path(out).resolve()
    for name, path in inputs.items():
        if path is None:
            continue
        source = Path(path).resolve()
        if source == target or source.is_relative_to(target):
            relation = "is" if source == target else "holds"
        elif target.is_relative_to(source) and target.exists():
            relation = "is inside"
        else:
            continue
        raise UserError(f"{option} {out} {relation} --{name.replace('_', '-')} {path}: "
                        "writing it would delete its own input; name another folder")


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike, *, force: bool = False) -> Iterator[Path]:
    """Build a directory under a temporary sibling name; rename it to `final` on success.

    On any exception the temporary directory is removed, so `final` never exists half-built.
    With `force`, an existing `final` is replaced only once the new one is complete: it is
    renamed to `.NAME.old`, the new one renamed into place, then the old one removed; a kill
    between the two renames leaves `.NAME.old` complete, and `tidy` (run here first, and by
    readers that find `final` missing) puts it back. That repair needs the lock of `final` or
    of a folder above it (`dir_lock`): a caller that holds neither gets `final`'s here, so two
    processes never build the same output (the second is a UserError naming the first).
    Raises OutOfSpace when the disk fills.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as held:
        if not holds_lock(final):
            held.enter_context(dir_lock(final, owner=this_command()))
        yield from _build_dir(final, force)


def _build_dir(final: Path, force: bool) -> Iterator[Path]:
    tidy(final)
    try:
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.",
                                    suffix=".partial"))
    except OSError as err:
        if is_out_of_space(err):
            raise OutOfSpace(final, err, needed=None) from None
        raise
    os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes 0700; the output follows the umask
    try:
        yield tmp
        if final.exists() and force:
            old = _old_copy(final)
            os.replace(final, old)  # from here to the next rename there is no `final` ...
            os.replace(tmp, final)  # ... and tidy() would restore `old` after a kill
            _discard(old)
        else:
            os.replace(tmp, final)
    except BaseException as err:
        written = _tree_size(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.suppress(OSError):
            tidy(final)  # a swap that failed between its renames: the old copy goes back
        if isinstance(err, OutOfSpace):
            raise err.moved(tmp, final, beside=written) from None
        if is_out_of_space(err):
            raise OutOfSpace(final, err, written=written) from None
        raise


def copy_tree(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy the folder `src` to the new folder `dst`, file contents only (shutil.copyfile).
    A full disk is OutOfSpace naming `dst` and the size of the whole copy; the partial copy is
    removed. (shutil.copytree would gather the error into a shutil.Error of strings, which no
    caller recognizes as a full disk.)"""
    src, dst = Path(src), Path(dst)
    try:
        dst.mkdir(parents=True)
        for root, _, names in os.walk(src):
            folder = dst / Path(root).relative_to(src)
            folder.mkdir(exist_ok=True)
            for name in sorted(names):
                shutil.copyfile(Path(root) / name, folder / name)
    except OSError as err:
        if not is_out_of_space(err):
            raise
        shutil.rmtree(dst, ignore_errors=True)
        raise OutOfSpace(dst, err, needed=_tree_size(src)) from None


def tidy(final: str | os.PathLike) -> None:
    """Repair what a killed writer of `final` left, under `final`'s lock: a `--force` swap cut
    between its two renames is undone (`.NAME.old`, which is complete, goes back), a finished
    swap's old copy is removed, and temporary `.NAME.*.partial` and `.NAME.*.tmp` are removed."""
    final = Path(final)
    old = _old_copy(final)
    if old.exists():
        if final.exists():
            _discard(old)
        else:
            os.replace(old, final)
    prefix = f".{final.name}."
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in os.scandir(final.parent):
            if entry.name.startswith(prefix) and _TEMPORARY.fullmatch(entry.name[len(prefix):]):
                _remove(Path(entry.path))


def interrupted_swap(final: str | os.PathLike) -> bool:
    """Is `final` missing while the complete old copy of a cut-short swap waits beside it?"""
    final = Path(final)
    return not final.exists() and _old_copy(final).is_dir()


# tempfile's names: 8 characters of [a-z0-9_]; _discard uses 8 hex digits, which match too.
_TEMPORARY = re.compile(r"[a-z0-9_]{8}\.(partial|tmp)")


def _old_copy(final: Path) -> Path:
    return final.with_name(f".{final.name}.old")


def _discard(old: Path) -> None:
    """Remove `old`, first renaming it to a temporary name: a kill during the removal must not
    leave a half-deleted `.NAME.old` that tidy() would take for a complete copy."""
    name = old.name[: -len(".old")]
    trash = old.with_name(f"{name}.{secrets.token_hex(4)}.partial")
    os.replace(old, trash)
    _remove(trash)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _tree_size(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total
