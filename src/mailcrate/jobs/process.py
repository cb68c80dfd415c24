"""Export workers in a process of their own: ``mailcrate serve`` starts ``mailcrate worker``.

Why a process: an export reads, deflates and hashes on one side and pushes parts through HTTP
into the embedded S3 on the other. In one process the producer, the upload threads, the S3
request threads and the event loop all share one GIL; profiles showed the producer waiting for
it. A worker process has its own GIL (and its own heap, which the OS returns whole when it
ends), and it is the same program that runs on other machines against a shared PostgreSQL
database (``mailcrate worker --server-url URL``), which is the scale-out design.

Parent and child share the data directory and the database (jobs, leases and heartbeats live
there, so nothing else needs to pass between them). The parent's Start handler sets an event;
:class:`WorkerProcess` turns each wake-up into one byte on the child's stdin, and the child
also polls the database every ``poll_interval`` seconds (which is all a worker on another
machine has). End of stdin means the parent is gone (stopped, or killed with ``kill -9``):
the child stops like on SIGTERM, its running jobs abort their uploads and are released for
the next server to resume at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from typing import Any

log = logging.getLogger("mailcrate.jobs")

__all__ = ["WorkerProcess", "run_worker", "worker_env"]

#: glibc malloc arenas for the worker process. Each upload/reader thread would otherwise get an
#: arena of its own, and freed part-sized blocks stay mapped in each (measured: see BENCHMARKS.md).
MALLOC_ARENA_MAX = "2"
#: A fixed mmap threshold for the worker. glibc's default is dynamic: once one 8 MiB part buffer
#: (mmapped) is freed the threshold rises to 8 MiB, later parts come from the heap, the heap
#: fragments around the 1 MiB deflate/seal buffers, and the worker's RSS grows with the length of
#: the export (5 GiB peak +22 % over 100 MiB). At 2 MiB, parts stay mmapped (returned on free)
#: and 1 MiB buffers stay on the reused heap: +11 %, throughput unchanged (1 MiB: every chunk
#: an mmap, -25-35 % throughput). Measured with ``benchmarks export-scaling --only size,big``.
MALLOC_MMAP_THRESHOLD = str(2 * 1024 * 1024)
#: The heap-top trim threshold that goes with it. Setting the mmap threshold turns glibc's
#: dynamic tuning off, which leaves the trim threshold at 128 KiB (dynamic tuning keeps it at
#: twice the mmap threshold): every freed 1 MiB read buffer at the top of the heap was then
#: handed back with ``brk`` and faulted in again on the next item. Archiving 1,000 small
#: messages took 0.133 s with that, 0.118 s with glibc's defaults, 0.106 s with both set
#: (medians of 5 interleaved rounds). :func:`trim_malloc` still returns free pages every second.
MALLOC_TRIM_THRESHOLD = str(4 * 1024 * 1024)


def trim_malloc() -> None:
    """Hand glibc's free heap pages back to the OS (``malloc_trim(0)``). Freed part buffers and
    request pieces otherwise stay in RSS, and the peak creeps up with the export's length."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes

            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim: Any = None

#: Seconds between :func:`trim_malloc` calls in the worker and the server.
TRIM_INTERVAL = 1.0


def worker_env(settings: Any) -> dict[str, str]:
    """The environment of a worker child: the parent's, plus every setting as its MAILCRATE_*
    variable (secrets such as a database URL stay out of ``ps``)."""
    from dataclasses import fields

    env = dict(os.environ)
    for f in fields(settings):
        value = getattr(settings, f.name)
        if value is not None:
            env[f.metadata["env"]] = str(value)
    env.setdefault("MALLOC_ARENA_MAX", MALLOC_ARENA_MAX)
    env.setdefault("MALLOC_MMAP_THRESHOLD_", MALLOC_MMAP_THRESHOLD)
    env.setdefault("MALLOC_TRIM_THRESHOLD_", MALLOC_TRIM_THRESHOLD)
    return env


class WorkerProcess:
    """The parent's handle on one ``mailcrate worker`` child (restarted if it dies)."""

    def __init__(
        self,
        settings: Any,
        wakeup: threading.Event,
        *,
        command: list[str] | None = None,
    ) -> None:
        self.settings = settings
        self.wakeup = wakeup
        self.command = command or [sys.executable, "-m", "mailcrate.jobs"]  # lean: no click CLI
        self.popen: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def start(self) -> None:
        if self.settings.export_workers <= 0 or self._thread is not None:
            return
        self._stopping.clear()
        self._spawn()
        self._thread = threading.Thread(target=self._pump, name="export-worker-wakeup", daemon=True)
        self._thread.start()

    def _spawn(self) -> None:
        # No --server-url: the child shares this data directory, so it writes exports into the
        # embedded S3 in-process (see mailcrate.export.destination).
        args = [*self.command, "--wakeups-on-stdin"]
        with self._lock:
            self.popen = subprocess.Popen(
                args,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,  # the parent's stdout announces the port; keep it clean
                env=worker_env(self.settings),
            )
        log.info(
            "export worker process %d started (%d workers)", self.popen.pid, self.settings.export_workers
        )

    def _pump(self) -> None:
        """Wake-ups -> one byte on the child's stdin; restart the child if it died."""
        while not self._stopping.is_set():
            woke = self.wakeup.wait(0.5)
            if self._stopping.is_set():
                return
            popen = self.popen
            if popen is None:
                return
            if popen.poll() is not None:
                log.warning("export worker process exited with %s; restarting it", popen.returncode)
                if self._stopping.wait(1.0):
                    return
                self._spawn()
                continue
            if woke:
                self.wakeup.clear()
                with contextlib.suppress(OSError, ValueError):
                    assert popen.stdin is not None
                    popen.stdin.write(b"\n")
                    popen.stdin.flush()

    def stop(self, timeout: float = 25.0) -> None:
        """Close the child's stdin (it stops, releasing its running jobs) and wait for it."""
        self._stopping.set()
        self.wakeup.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        with self._lock:
            popen, self.popen = self.popen, None
        if popen is None:
            return
        with contextlib.suppress(OSError, ValueError):
            assert popen.stdin is not None
            popen.stdin.close()
        try:
            popen.wait(timeout)
        except subprocess.TimeoutExpired:
            popen.terminate()
            try:
                popen.wait(5)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()


def run_worker(
    settings: Any, server_url: str | None, *, wakeups_on_stdin: bool = False, poll_interval: float = 0.25
) -> None:
    """The child side (``mailcrate worker``): run a pool until SIGTERM/SIGINT, or with
    ``wakeups_on_stdin`` (how ``serve`` starts it) until its stdin ends."""
    from mailcrate.datadir import DataDir
    from mailcrate.jobs.worker import WorkerPool, export_settings_from
    from mailcrate.storage.crypto import SecretBox
    from mailcrate.storage.db import Database

    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s[worker]: %(message)s",
        stream=sys.stderr,
    )
    path = settings.data_dir
    if not (path / "master.key").exists():
        DataDir.open(path, database_url=settings.database_url).close()  # the error message
    # The server migrated the database; opening it without Alembic keeps this process small.
    data_dir = DataDir(
        path=path,
        db=Database.for_data_dir(path, settings.database_url),
        secrets=SecretBox.load_or_create(path / "master.key"),
    )
    stop = threading.Event()
    pool = WorkerPool(
        data_dir,
        workers=settings.export_workers,
        settings=lambda: export_settings_from(settings, server_url),
        max_attempts=settings.export_max_attempts,
        poll_interval=poll_interval,
    )

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)

    def read_wakeups() -> None:
        stdin = sys.stdin.buffer
        while True:
            try:
                line = stdin.readline()
            except (OSError, ValueError):
                line = b""
            if not line:  # the parent closed the pipe or is gone
                stop.set()
                return
            pool.wakeup.set()

    pool.start()
    if wakeups_on_stdin:
        threading.Thread(target=read_wakeups, name="wakeups", daemon=True).start()
    try:
        while not stop.wait(TRIM_INTERVAL):
            trim_malloc()
    finally:
        pool.stop()
        data_dir.close()
