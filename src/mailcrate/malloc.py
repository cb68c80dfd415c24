"""glibc malloc settings for the long-running, many-threaded processes (``serve``, ``migrate
run``): capped arenas and a trimmer thread.

Each thread that allocates would otherwise get an arena of its own (up to 8 per core), and the
freed megabyte-sized buffers of one thread's work (S3 part pieces in serve, message bodies and
MULTIAPPEND batches in migrate) stay mapped in its arena; glibc also keeps freed heap pages
until the heap's top is trimmed. Measured: BENCHMARKS.md (serve; migrate).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
import threading
import time
from typing import Any

__all__ = [
    "BUSY_FREE_BOUND",
    "BUSY_TRIM_INTERVAL",
    "MALLOC_ARENA_MAX",
    "MIGRATE_MMAP_THRESHOLD",
    "MIGRATE_TRIM_THRESHOLD",
    "TRIM_INTERVAL",
    "PacedTrim",
    "heap_free",
    "limit_arenas",
    "map_large_blocks",
    "start_trimmer",
    "trim_malloc",
]

#: Arenas per process (mallopt M_ARENA_MAX); the worker child gets the same through its
#: environment (:data:`mailcrate.jobs.process.MALLOC_ARENA_MAX`).
MALLOC_ARENA_MAX = 2
_M_ARENA_MAX = -8
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Seconds between :func:`trim_malloc` calls in the worker, the server and ``migrate run``.
TRIM_INTERVAL = 1.0
#: Seconds between :func:`trim_malloc` calls in the export worker while it runs a job. Why not
#: every second: an export allocates and frees its in-flight buffers (IMAP bodies, deflate
#: output, ~50 MiB) over and over, and each trim hands their free pages back, so the next
#: buffers fault them in again: ~100,000 page faults per GiB exported, most of the worker's
#: faults. Measured (BENCHMARKS.md, issue 22): 512 MiB from IMAP, worker CPU -3 %.
BUSY_TRIM_INTERVAL = 10.0
#: ... unless its heap holds more than this free: with several jobs in one worker process the
#: jobs' freed bodies and batches fragment the heap, and between 10-second trims it held 50-85
#: MiB free around 25-45 MiB in use (mallinfo2, 512 MiB of the migrate benchmark, four jobs in
#: one process). Measured: BENCHMARKS.md, "Tenth session".
BUSY_FREE_BOUND = 16 << 20
#: ``migrate run``'s :func:`map_large_blocks`: read buffers, large bodies and MULTIAPPEND
#: pieces of 1 MiB and more are mmapped. Peak RSS of the migrate process (512 MiB, 25 users,
#: four restores): 197 MiB with glibc's dynamic threshold, 159 at 1 MiB, 154 at 64 KiB (where
#: most messages would be an mmap and a munmap each).
MIGRATE_MMAP_THRESHOLD = 1 << 20
MIGRATE_TRIM_THRESHOLD = 2 << 20


@functools.cache
def _libc() -> Any:
    """glibc, loaded once; None where there is none (another platform or C library)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def _mallopt(env: str, *settings: tuple[int, int]) -> None:
    """``mallopt(param, value)`` for each of ``settings``, unless the environment variable
    ``env`` set them already (glibc reads it at start-up: the operator's choice wins)."""
    libc = _libc()
    if os.environ.get(env) or libc is None:
        return
    with contextlib.suppress(AttributeError):
        for param, value in settings:
            libc.mallopt(param, value)


def limit_arenas() -> None:
    """Cap glibc's arenas before any thread starts (unless MALLOC_ARENA_MAX already did)."""
    _mallopt("MALLOC_ARENA_MAX", (_M_ARENA_MAX, MALLOC_ARENA_MAX))


def map_large_blocks(threshold: int, trim_threshold: int) -> None:
    """Blocks of ``threshold`` bytes or more mmapped (handed back to the OS when freed), and the
    heap's top trimmed above ``trim_threshold`` (mallopt M_MMAP_THRESHOLD, M_TRIM_THRESHOLD), unless
    MALLOC_MMAP_THRESHOLD_ already set it. glibc's default threshold is dynamic: once a large
    block is freed it rises (up to 32 MiB), and from then on message-sized buffers churn through
    the heap, whose freed space between live blocks stays resident until the next trim."""
    _mallopt("MALLOC_MMAP_THRESHOLD_", (_M_MMAP_THRESHOLD, threshold), (_M_TRIM_THRESHOLD, trim_threshold))


def trim_malloc() -> None:
    """Hand glibc's free heap pages back to the OS (``malloc_trim(0)``). Freed part buffers and
    request pieces otherwise stay in RSS, and the peak creeps up with the export's length."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is not None:
        trim(0)


class _Mallinfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (2.33 and later): the heap's figures in ``size_t``."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


@functools.cache
def _mallinfo2() -> Any:
    info = getattr(_libc(), "mallinfo2", None)
    if info is not None:
        info.restype = _Mallinfo2
    return info


def heap_free() -> int | None:
    """Bytes glibc holds free in its heaps (``mallinfo2().fordblks``): resident until trimmed,
    unless never touched. None where it cannot be read (no glibc, or one before 2.33)."""
    info = _mallinfo2()
    return None if info is None else int(info().fordblks)


class PacedTrim:
    """:func:`trim_malloc` once a :data:`TRIM_INTERVAL` while idle; while busy, at most once a
    :data:`BUSY_TRIM_INTERVAL`, unless several jobs run and the heap holds more than
    :data:`BUSY_FREE_BOUND` free (the export worker's loop calls it every
    :data:`TRIM_INTERVAL`): an idle worker still gives its pages back within a second of its
    last job, a long job's heap is still trimmed now and then, and several jobs in one process
    do not keep their freed buffers resident. One job alone keeps issue 22's pace: with the
    bound applied to it too, export-imap's worker used 7.30 CPU-s/GiB against base's 6.88."""

    def __init__(self, free_bound: int | None = None) -> None:
        self._last = 0.0
        self.free_bound = BUSY_FREE_BOUND if free_bound is None else free_bound

    def __call__(self, *, busy: bool, jobs: int = 1) -> bool:
        """Trim if due (``jobs``: how many run now); whether it did."""
        now = time.monotonic()
        if busy and now - self._last < BUSY_TRIM_INTERVAL:
            free = heap_free() if jobs > 1 else None
            if free is None or free < self.free_bound:
                return False
        self._last = now
        trim_malloc()
        return True


def start_trimmer() -> None:
    """Return freed heap pages to the OS once a second (:func:`trim_malloc`): otherwise the peak
    grows with the work done, not with the work in flight."""

    def run() -> None:
        while True:
            time.sleep(TRIM_INTERVAL)
            trim_malloc()

    threading.Thread(target=run, name="malloc-trim", daemon=True).start()
