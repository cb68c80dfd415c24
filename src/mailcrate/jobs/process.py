"""Export workers in processes of their own: ``mailcrate serve`` starts ``mailcrate worker``
children, one always and more while jobs wait and a core is idle (see :class:`WorkerProcess`).

Why a process: an export reads, deflates and hashes on one side and pushes parts through HTTP
into the embedded S3 on the other. In one process the producer, the upload threads, the S3
request threads and the event loop all share one GIL; profiles showed the producer waiting for
it. A worker process has its own GIL (and its own heap, which the OS returns whole when it
ends), and it is the same program that runs on other machines against a shared PostgreSQL
database (``mailcrate worker --server-url URL``), which is the scale-out design.

Parent and child share the data directory and the database (jobs, leases and heartbeats live
there, so nothing else needs to pass between them). The parent's Start handler sets an event;
:class:`WorkerProcess` turns each wake-up into one byte on each child's stdin, and a child
also polls the database every ``poll_interval`` seconds (which is all a worker on another
machine has). End of stdin means the parent is gone (stopped, or killed with ``kill -9``):
the child stops like on SIGTERM, its running jobs abort their uploads and are released for
the next server to resume at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from mailcrate import malloc
from mailcrate.jobs.idle_cpu import IdleCpu

log = logging.getLogger("mailcrate.jobs")

__all__ = ["WorkerProcess", "process_shares", "worker_env"]

#: glibc malloc arenas for the worker process. Each upload/reader thread would otherwise get an
#: arena of its own, and freed part-sized blocks stay mapped in each (measured: see BENCHMARKS.md).
MALLOC_ARENA_MAX = str(malloc.MALLOC_ARENA_MAX)
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
#: (medians of 5 interleaved rounds). :func:`mailcrate.malloc.trim_malloc` still returns free pages
#: (every second while idle, at most every ``malloc.BUSY_TRIM_INTERVAL`` during a job).
MALLOC_TRIM_THRESHOLD = str(4 * 1024 * 1024)


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


def process_shares(workers: int, processes: int) -> list[int]:
    """Worker threads of each worker process: ``workers`` spread over ``processes`` (0: one per
    CPU core), as evenly as they go and never a process without one."""
    count = max(1, min(processes or os.cpu_count() or 1, workers))
    return [workers // count + (1 if i < workers % count else 0) for i in range(count)]


#: How long a job waits unclaimed before ``serve`` starts another worker process for it. A worker
#: with a free thread claims a new job within a few ms of the wake-up, so a job still waiting
#: after this found every worker of the running processes busy.
SPAWN_AFTER = timedelta(seconds=0.2)
#: With ``--export-processes 0`` (automatic), another worker process starts for waiting jobs
#: only if at least this much of a core was idle over :data:`IDLE_WINDOW` seconds while they
#: waited (:class:`~mailcrate.jobs.idle_cpu.IdleCpu`). Ten exports on a quiet machine left ~0.7
#: of the two cores idle with one process (a second one took them from 1.05-1.16x to 0.93x their
#: time one by one); the migrate benchmark's left 0.00-0.05 idle, and there a second process
#: only added its ~70 MiB and its own heap. An explicit ``--export-processes N`` starts them
#: whenever jobs wait, as before.
SPAWN_IDLE_CORES = 0.5
IDLE_WINDOW = 2.0
#: Seconds between the parent's looks at the queue (and at its children): every
#: ``CHECK_INTERVAL`` for ``BUSY_WINDOW`` seconds after a job started, every
#: ``IDLE_CHECK_INTERVAL`` once none has for that long. Jobs wait for a worker after a start (a
#: wake-up), otherwise only when a lease expired, which the slow looks find. Looking every
#: 0.25 s always doubled an idle server's CPU (0.05-0.06 -> 0.13-0.16 CPU-s per 20 s).
CHECK_INTERVAL = 0.25
IDLE_CHECK_INTERVAL = 2.0
BUSY_WINDOW = 10.0
#: Seconds a new worker process (the resident one too, after serve starts or restarts it) is
#: given to start and claim before another one may start for the jobs that wait.
STARTUP_GRACE = 2.0
#: A resident worker process that dies within this many seconds of its start is restarted after a
#: pause (a crash loop must not spin); one that ran longer is restarted at once: its jobs wait.
CRASH_LOOP_SECONDS = 10.0
RESTART_PAUSE = 1.0


@dataclass
class _Child:
    """One worker process: its slot (its share of the workers) and whether it is the resident one."""

    popen: subprocess.Popen[bytes]
    slot: int
    started: float = field(default_factory=time.monotonic)

    @property
    def resident(self) -> bool:
        return self.slot == 0


class WorkerProcess:
    """The parent's handle on its ``mailcrate worker`` children.

    Why more than one: one process runs all of its jobs under one GIL. Ten 100 MiB exports at
    once took 1.05-1.16x their time one by one with ~0.35 of the two cores idle; with the jobs spread
    over two processes, 0.93x (``benchmarks export-scaling --only concurrent``). Why not two
    always: an idle worker process is ~65 MiB, and the serving side's peak during one 5 GiB
    export is bounded at 250 MB (BENCHMARKS.md). So the first process (slot 0) always runs and is restarted if it
    dies; the others start only when a job has waited :data:`SPAWN_AFTER` for a worker (every
    thread of the running processes busy) and, with the automatic count, a core was idle
    meanwhile (:data:`SPAWN_IDLE_CORES`), and end by themselves after
    ``export_process_idle_seconds`` without work. ``export_workers`` is spread over the slots
    (:func:`process_shares`)."""

    def __init__(
        self,
        settings: Any,
        wakeup: threading.Event,
        *,
        waiting_since: Callable[[], datetime | None] | None = None,
        release_dead: Callable[[int], int] | None = None,
        command: list[str] | None = None,
    ) -> None:
        self.settings = settings
        self.wakeup = wakeup
        self.waiting_since = waiting_since
        self.release_dead = release_dead  # ends the leases of a child that died (its pid)
        self.command = command or [sys.executable, "-m", "mailcrate.runner"]  # lean: no click CLI
        self.shares = process_shares(settings.export_workers, settings.export_processes)
        self._children: dict[int, _Child] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # automatic: one process per core, each one beyond the first only while a core is idle
        self.idle_cpu = IdleCpu(IDLE_WINDOW) if not settings.export_processes else None

    @property
    def process_count(self) -> int:
        """Worker processes running now (the metrics' gauge)."""
        with self._lock:
            return len(self._children)

    @property
    def pid(self) -> int | None:
        """The resident worker process's pid."""
        child = self._children.get(0)
        return child.popen.pid if child is not None else None

    def start(self) -> None:
        if self.settings.export_workers <= 0 or self._thread is not None:
            return
        self._stopping.clear()
        self._spawn(0)
        self._thread = threading.Thread(target=self._pump, name="export-worker-wakeup", daemon=True)
        self._thread.start()

    def _spawn(self, slot: int) -> None:
        # No --server-url: the child shares this data directory, so it writes exports into the
        # embedded S3 in-process (see mailcrate.export.destination).
        args = [*self.command, "--wakeups-on-stdin"]
        if slot:
            args += ["--exit-when-idle", str(self.settings.export_process_idle_seconds)]
        env = worker_env(self.settings)
        env["MAILCRATE_EXPORT_WORKERS"] = str(self.shares[slot])
        with self._lock:
            popen = subprocess.Popen(
                args,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,  # the parent's stdout announces the port; keep it clean
                env=env,
            )
            self._children[slot] = _Child(popen, slot)
        log.info(
            "export worker process %d started (%d workers%s)",
            popen.pid,
            self.shares[slot],
            "" if slot == 0 else ", while jobs wait",
        )

    def _pump(self) -> None:
        """Wake-ups -> one byte on each child's stdin; restart the resident child if it died,
        forget ended on-demand ones, and start one when jobs wait."""
        last_wakeup = time.monotonic() - BUSY_WINDOW
        while not self._stopping.is_set():
            busy = time.monotonic() - last_wakeup < BUSY_WINDOW
            woke = self.wakeup.wait(CHECK_INTERVAL if busy else IDLE_CHECK_INTERVAL)
            if self._stopping.is_set():
                return
            if woke:
                last_wakeup = time.monotonic()
                self.wakeup.clear()
                self._notify()
            if not self._reap():
                continue
            self._start_if_jobs_wait()

    def _notify(self) -> None:
        with self._lock:
            children = list(self._children.values())
        for child in children:
            with contextlib.suppress(OSError, ValueError):
                assert child.popen.stdin is not None
                child.popen.stdin.write(b"\n")
                child.popen.stdin.flush()

    def _reap(self) -> bool:
        """Handle children that ended; False while the resident one is being restarted."""
        with self._lock:
            ended = [c for c in self._children.values() if c.popen.poll() is not None]
            for child in ended:
                del self._children[child.slot]
        for child in ended:
            code = child.popen.returncode
            if code != 0:
                self._release(child.popen.pid)
            if not child.resident:
                (log.info if code == 0 else log.warning)(
                    "export worker process %d ended (%s)", child.popen.pid, code
                )
                continue
            log.warning("export worker process exited with %s; restarting it", code)
            crash_loop = time.monotonic() - child.started < CRASH_LOOP_SECONDS
            if self._stopping.wait(RESTART_PAUSE if crash_loop else 0):
                return False
            self._spawn(0)
            return False
        return True

    def _release(self, pid: int) -> None:
        """A child died with jobs in hand: end their leases now, so that a worker (the
        restarted child, another process or node) takes them up without waiting out the lease."""
        if self.release_dead is None:
            return
        try:
            released = self.release_dead(pid)
        except Exception:  # the database is busy or gone: the leases run out by themselves
            log.warning("releasing the jobs of worker process %d failed", pid, exc_info=True)
            return
        if released:
            log.warning("released %d export job(s) of worker process %d", released, pid)
            self.wakeup.set()

    def _start_if_jobs_wait(self) -> None:
        free = [slot for slot in range(len(self.shares)) if slot not in self._children]
        if not free or self.waiting_since is None:
            return
        now = time.monotonic()
        if any(now - c.started < STARTUP_GRACE for c in list(self._children.values())):
            return
        try:
            since = self.waiting_since()
        except Exception:  # the database is busy or gone: the next look decides
            log.debug("looking for waiting export jobs failed", exc_info=True)
            return
        if since is None or datetime.now(UTC) - since < SPAWN_AFTER:
            if self.idle_cpu is not None:
                self.idle_cpu.stop()
            return
        if self._core_idle():
            self._spawn(free[0])

    def _core_idle(self) -> bool:
        """Whether a core was idle while jobs waited (:data:`SPAWN_IDLE_CORES`): always true
        with an explicit process count or where the CPU times cannot be read; otherwise false
        until a whole :data:`IDLE_WINDOW` of waiting has been measured, and a busy window
        starts the next one."""
        idle = self.idle_cpu
        if idle is None:
            return True
        if not idle.running:
            return not idle.start()
        cores = idle.cores()
        if cores is None:
            return False
        idle.stop()
        if cores >= SPAWN_IDLE_CORES:
            return True
        idle.start()
        log.debug("export jobs wait; %.2f cores idle: no other worker process", cores)
        return False

    def stop(self, timeout: float = 25.0) -> None:
        """Close the children's stdin (they stop, releasing their running jobs) and wait for them."""
        self._stopping.set()
        self.wakeup.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        with self._lock:
            children, self._children = list(self._children.values()), {}
        for child in children:
            with contextlib.suppress(OSError, ValueError):
                assert child.popen.stdin is not None
                child.popen.stdin.close()
        deadline = time.monotonic() + timeout
        for child in children:
            _end(child.popen, max(0.1, deadline - time.monotonic()))


def _end(popen: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait for a child whose stdin is closed; terminate, then kill, one that does not end."""
    try:
        popen.wait(timeout)
    except subprocess.TimeoutExpired:
        popen.terminate()
        try:
            popen.wait(5)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()
