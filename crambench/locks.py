"""Locks on folders: one writer at a time, and no writer while another command reads.

Every command that writes an output folder (data dir, run dir, results, site) holds its
exclusive lock while it reads and writes; a second process is refused in one line naming the
first's PID and command. A command that derives a run from another (compress, extract) holds
the parent's shared lock while it reads it, so a writer of the parent (`cram pretrain --force`
or `--resume`) is refused meanwhile, and readers do not exclude each other. Locks are released
when the process ends, however it ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from crambench.errors import OutOfSpace, UserError, is_out_of_space

_HELD: dict[Path, int] = {}  # lock files this process holds -> nesting depth


def _lock_file(target: Path) -> Path:
    return target.with_name(f".{target.name}.lock")


def holds_lock(path: str | os.PathLike) -> bool:
    """Does this process hold the lock of `path` or of a folder above it?"""
    path = Path(os.path.abspath(path))
    return any(_lock_file(p) in _HELD for p in (path, *path.parents) if p.name)


def this_command() -> str:
    """'cram extract' for a lock's owner line, from this process's command line."""
    argv = sys.argv or [""]
    return " ".join([Path(argv[0]).name, *argv[1:2]]) if argv[0] else "python"


@contextlib.contextmanager
def dir_lock(target: str | os.PathLike, *, owner: str) -> Iterator[None]:
    """Hold the exclusive lock on the output folder `target` while writing it.

    The lock is `flock` on `.NAME.lock` beside the folder (so it can be taken before the
    folder exists, and a data dir built under a temporary name is covered), released when the
    process ends however it ends. Another process holding it is a UserError naming its PID and
    `owner` (e.g. "cram pretrain"); the same process may take it again (nested). The lock file
    is removed on release.
    """
    target = Path(os.path.abspath(target))
    path = _lock_file(target)
    if path in _HELD:
        _HELD[path] += 1
        try:
            yield
        finally:
            _HELD[path] -= 1
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = _acquire(path, target)
    except OSError as err:
        if is_out_of_space(err):
            raise OutOfSpace(path, err, needed=None) from None
        raise UserError(f"cannot lock {target}: {err.filename or path}: "
                        f"{err.strerror or err}") from None
    try:
        with contextlib.suppress(OSError):  # who holds it, for the refusal; a full disk
            os.ftruncate(fd, 0)             # must not stop the command here
            os.write(fd, f"{os.getpid()}\n{owner}\n".encode())
        _HELD[path] = 1
        yield
    finally:
        _HELD.pop(path, None)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # while still held, so no one can lock the file being removed
        os.close(fd)


@contextlib.contextmanager
def read_lock(target: str | os.PathLike) -> Iterator[None]:
    """Hold the shared lock on the folder `target` while reading it: writers (`dir_lock`) are
    refused meanwhile, other readers are not. A writer holding it is a UserError naming its
    PID and command. The lock file stays while other readers may hold it; the last reader out
    removes it."""
    target = Path(os.path.abspath(target))
    path = _lock_file(target)
    if path in _HELD:  # this process writes it: reading it too needs no other lock
        yield
        return
    try:
        fd = _acquire(path, target, shared=True)
    except OSError as err:
        if is_out_of_space(err):
            raise OutOfSpace(path, err, needed=None) from None
        raise UserError(f"cannot lock {target}: {err.filename or path}: "
                        f"{err.strerror or err}") from None
    with contextlib.suppress(OSError):  # a killed writer's name: no writer holds it now
        os.ftruncate(fd, 0)
    try:
        yield
    finally:
        # The last reader removes the file: only when no one else holds it, which taking it
        # exclusively (without waiting) proves; the upgrade holds it for an instant only.
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        except BlockingIOError:
            pass
        os.close(fd)


def _acquire(path: Path, target: Path, *, shared: bool = False) -> int:
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    tries = 0
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            if holder is None and shared and tries < 20:
                tries += 1  # a reader removing the file as the last one out: an instant
                time.sleep(0.025)
                continue
            raise UserError(f"{target} is in use by {holder or READER}; wait for it to finish "
                            "(or stop it) and run again") from None
        # The previous holder may have removed the file between our open and flock: then this
        # lock is on a file no one else will find; take the one at `path` instead.
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _holder(fd: int) -> str | None:
    """'PID 1234 (cram pretrain)' from a held lock file; its writer writes it just after
    locking, so give it a moment. None when no one wrote it: readers (shared) write nothing."""
    for _ in range(20):
        text = os.pread(fd, 4096, 0).decode(errors="replace").split("\n")
        if len(text) >= 2 and text[0].isdigit():
            return f"PID {text[0]} ({text[1]})" if text[1] else f"PID {text[0]}"
        time.sleep(0.025)
    return None


# Who holds a lock no writer wrote its name into: readers share the lock and write nothing.
READER = "another command reading it (cram compress or cram extract)"
