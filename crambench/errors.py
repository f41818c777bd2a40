"""The errors a user can fix: each becomes one line on stderr and a non-zero exit.

`crambench` is the root of the import graph: every stage may import these, and the `cram` CLI
(crambench.shell.cli) turns them into one line (exit status 2 unless the error says otherwise).
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from crambench.units import format_bytes


class UserError(Exception):
    """A problem with the user's input: printed as one line, never as a traceback."""


class OutOfSpace(UserError):
    """A write that ran out of disk space (ENOSPC) or quota (EDQUOT): one line naming the output
    and how much it needed; the partial output is removed and earlier outputs stay intact."""

    def __init__(self, path, err: OSError, *, needed: int | None = None, written: int = 0,
                 hint: str = "free some space and run again",
                 output: tuple[Path, int] | None = None):
        self.path, self.needed, self.written = Path(path), needed, written
        self.output = output  # (the folder being built, bytes it needs at least in all)
        self.strerror = err.strerror or os.strerror(errno.ENOSPC)
        self.hint = hint
        try:
            free = f", {format_bytes(shutil.disk_usage(_existing_parent(self.path)).free)} free"
        except OSError:
            free = ""
        if needed is not None:
            need = f"it needs {format_bytes(needed)}"
        elif written:
            need = f"it needs more than the {format_bytes(written)} written when space ran out"
        else:
            need = "not even its first bytes fit"
        if output is not None:  # the free space is after the whole partial folder is removed
            need += f", and {output[0].name}/ at least {format_bytes(output[1])} in all"
        super().__init__(f"{self.strerror.lower()} writing {self.path}: {need}{free}; {hint}")

    def moved(self, old: Path, new: Path, *, beside: int = 0) -> OutOfSpace:
        """The same error for a path under `old` reported as under `new` (a temporary dir),
        with what the folder `new` needs in all: `beside` bytes already written into `old`
        (and removed since) plus what this write needed."""
        path = new / self.path.relative_to(old) if self.path.is_relative_to(old) else new
        output = self.output
        if beside and path != new:
            output = (new, beside + (self.needed or self.written))
        return self.again(path=path, output=output)

    def again(self, *, path=None, hint: str | None = None,
              output: tuple[Path, int] | None = None) -> OutOfSpace:
        return OutOfSpace(path or self.path, OSError(errno.ENOSPC, self.strerror),
                          needed=self.needed, written=self.written, hint=hint or self.hint,
                          output=output or self.output)


OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT)


def is_out_of_space(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in OUT_OF_SPACE


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
