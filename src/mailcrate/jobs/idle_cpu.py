"""How much of the machine's CPU was idle lately, from ``/proc/stat``: whether another export
worker process would have a core to run on (:class:`mailcrate.jobs.process.WorkerProcess`).

Why: a second worker process costs ~70 MiB before its first job and its own heap for the jobs
it takes; it pays for that only where a core would otherwise sit idle. When the machine is busy
(the migrate benchmark: both Dovecots, the restores and the first worker process kept the two
cores at 0.00-0.05 idle), the jobs it would take run no sooner in it than waiting for a free
worker of the first.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

__all__ = ["IdleCpu", "read_cpu_times"]


def read_cpu_times(path: str = "/proc/stat") -> tuple[int, int] | None:
    """(idle, total) clock ticks of all CPUs since boot; None where there is no such file
    (another OS). Idle counts ``idle`` and ``iowait``: a core waiting for the disk is free to
    run a worker."""
    try:
        with open(path, "rb") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    if len(fields) < 6 or fields[0] != b"cpu":
        return None
    ticks = [int(v) for v in fields[1:]]
    return ticks[3] + ticks[4], sum(ticks[:8])  # guest time is already in user/nice


class IdleCpu:
    """Idle cores over a window: :meth:`start` opens it, :meth:`cores` is None until ``window``
    seconds have passed (a reading over a shorter span is mostly noise), then the average number
    of idle cores since the start (0 .. the number of CPUs)."""

    def __init__(
        self, window: float = 1.0, read: Callable[[], tuple[int, int] | None] = read_cpu_times
    ) -> None:
        self.window = window
        self._read = read
        self._cpus = os.cpu_count() or 1
        self._start: tuple[float, tuple[int, int]] | None = None

    @property
    def running(self) -> bool:
        return self._start is not None

    def start(self) -> bool:
        """Open a window now; False where the CPU times cannot be read."""
        now = self._read()
        self._start = (time.monotonic(), now) if now is not None else None
        return self._start is not None

    def stop(self) -> None:
        self._start = None

    def cores(self) -> float | None:
        if self._start is None:
            return None
        began, (idle0, total0) = self._start
        if time.monotonic() - began < self.window:
            return None
        now = self._read()
        if now is None:
            return None
        idle, total = now[0] - idle0, now[1] - total0
        return self._cpus * idle / total if total > 0 else None
