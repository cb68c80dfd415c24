"""Writing files so that what a caller was told is written is on disk, whole.

Shared by the embedded S3's blob store, the embedded mail store and the admin tool's download:
each writes through a raw (unbuffered) file and makes new directory entries durable.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Protocol

__all__ = ["RawWriter", "fsync_dir", "write_all"]


class RawWriter(Protocol):
    """An unbuffered binary file (``io.FileIO``, ``open(..., buffering=0)``)."""

    def write(self, data: memoryview, /) -> int | None: ...


def write_all(out: RawWriter, data: memoryview) -> None:
    """Write all of ``data`` to an unbuffered file. A regular file takes a short write only when
    the disk fills: the next write then raises ENOSPC, which the server answers 503 and the
    admin tool reports as "no space left on device". A write that takes nothing is that same
    full disk, not a reason to loop forever."""
    done = 0
    while done < len(data):
        written = out.write(data[done:])
        if not written:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        done += written


def fsync_dir(directory: Path) -> None:
    """Make the entries created or renamed in ``directory`` durable (a file's own fsync does not
    cover its name)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
