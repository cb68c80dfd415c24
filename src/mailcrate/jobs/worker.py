"""The in-process pool of export workers that ``mailcrate serve`` runs.

One claiming thread takes a RUNNING job that no live worker holds (:func:`store.claim`: a new
job, or one whose worker died and let its lease expire) for each idle worker thread, which runs
it (the runner it was given: :func:`mailcrate.export.job.run_job` in ``mailcrate serve``) and comes back idle. While a worker is idle the
claimer waits for a wake-up (Start sets it) or polls every second, which also makes a restarted
server pick up the jobs its predecessor left RUNNING as soon as their leases expire. Any number of processes may run pools against one
shared database; the claim is atomic across them.

On shutdown the running jobs stop at the next item, abort their uploads and give their jobs
back (lease cleared), so the next start resumes them from the beginning at once.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from mailcrate.jobs import store
from mailcrate.jobs.control import JobControl, JobRunner
from mailcrate.jobs.records import ExportJob
from mailcrate.logs import JOB_ID

log = logging.getLogger("mailcrate.jobs")

__all__ = ["WorkerPool"]


def _compile_statements(db: Any, lease: timedelta) -> None:
    """Run each statement a job's attempt writes once, on no job (they match no row), so that
    SQLAlchemy compiles and caches them now: compiling them took ~0.3-1 ms each, ~4 ms of the
    first job's time (a 1k-message export takes ~0.15 s)."""
    nobody = f"warm-up-{uuid.uuid4().hex}"
    try:
        store.get_by_id_db(db, nobody)
        store.set_upload(db, nobody, nobody, None)
        store.heartbeat(
            db, nobody, nobody, lease, estimated_progress=0, items_total=0, items_done=0, bytes_done=0
        )
        store.record_commit(db, nobody, nobody, nobody, [], "")
        store.complete(db, nobody, nobody, items_total=0, items_done=0, bytes_done=0)
    except Exception:
        log.warning("compiling the job statements ahead failed", exc_info=True)


class WorkerPool:
    """``workers`` export threads fed by one claiming thread.

    Only the claimer talks to the queue table: it takes an idle worker, claims a job for it
    (waiting for a wake-up or the next poll while there is none) and hands the job over. A
    wake-up therefore costs one claim, not one per idle worker: losing claims would run (and
    hold the GIL and the database) beside the winner's first steps, and the winning claim would
    wait for theirs. A worker that finishes goes back to
    the idle queue, and the claimer claims at once for it: jobs that were waiting for a free
    worker need no wake-up."""

    def __init__(
        self,
        db: Any,
        *,
        workers: int,
        lease: timedelta,
        runner: Callable[[], JobRunner],
        max_attempts: int = 3,
        wakeup: threading.Event | None = None,
        poll_interval: float = 1.0,
        idle_exit: float | None = None,
        node_id: str | None = None,
    ) -> None:
        self.db = db
        #: The data directory's node id: jobs of embedded mailboxes another node holds are not
        #: claimed here (mailcrate.jobs.store.claim).
        self.node_id = node_id
        self.workers = workers
        self.lease = lease
        #: Called once at start: what runs each claimed job (built then, so a pool that is
        #: never started loads nothing of the exporter).
        self._runner_factory = runner
        self.max_attempts = max_attempts
        self.wakeup = wakeup or threading.Event()
        self.poll_interval = poll_interval
        #: With ``idle_exit``, the claimer stops after that many seconds with every worker idle
        #: and sets ``idled_out``: how a worker process that ``serve`` started for waiting jobs
        #: ends once there are none (the claimer decides, so no job is claimed as it ends).
        self.idle_exit = idle_exit
        self.idled_out = threading.Event()
        self.pool_id = f"{store.pool_id_prefix(os.getpid())}{uuid.uuid4().hex[:8]}"
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._idle: queue.SimpleQueue[tuple[str, queue.SimpleQueue[ExportJob | None]]] = queue.SimpleQueue()
        self._inboxes: list[queue.SimpleQueue[ExportJob | None]] = []
        self._run: JobRunner | None = None
        self._running = 0  # jobs the worker threads are running now
        self._running_lock = threading.Lock()

    @property
    def running(self) -> int:
        """Jobs this pool's workers are running now."""
        return self._running

    def start(self) -> None:
        if self.workers <= 0 or self._threads:
            return
        self._run = self._runner_factory()
        self._stopping.clear()
        _compile_statements(self.db, self.lease)
        for n in range(self.workers):
            inbox: queue.SimpleQueue[ExportJob | None] = queue.SimpleQueue()
            self._inboxes.append(inbox)
            worker_id = f"{self.pool_id}/{n}"
            self._idle.put((worker_id, inbox))
            self._spawn(self._work, (worker_id, inbox), f"export-worker-{n}")
        self._spawn(self._claim_loop, (), "export-claimer")
        log.info("%d export workers started (pool %s)", self.workers, self.pool_id)

    def _spawn(self, target: Callable[..., None], args: tuple[Any, ...], name: str) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop claiming; running jobs abort their uploads and are released for a restart."""
        self._stopping.set()
        self.wakeup.set()
        for inbox in self._inboxes:
            inbox.put(None)
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        self._inboxes.clear()
        self._idle = queue.SimpleQueue()

    def _claim_for(self, worker_id: str) -> ExportJob | None:
        """A job for ``worker_id``: claimed now, or after wake-ups/polls; None once stopping."""
        idle_since = time.monotonic()
        while not self._stopping.is_set():
            try:
                job = store.claim(
                    self.db, worker_id, self.lease, max_attempts=self.max_attempts, node_id=self.node_id
                )
            except Exception:
                log.exception("claiming an export job failed")
                job = None
            if job is not None:
                return job
            if self.idle_exit is not None:
                if self._idle.qsize() < self.workers - 1:  # another worker still runs a job
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since >= self.idle_exit:
                    log.info("no export job for %.0f s: pool %s ends", self.idle_exit, self.pool_id)
                    self.idled_out.set()
                    return None
            if self.wakeup.wait(self.poll_interval):
                self.wakeup.clear()
        return None

    def _claim_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                worker_id, inbox = self._idle.get(timeout=0.5)
            except queue.Empty:
                continue
            job = self._claim_for(worker_id)
            if job is None:
                return
            if self._stopping.is_set():  # claimed as the pool stopped: give it back at once
                store.release(self.db, job.job_id, job.lease_owner or worker_id)
                return
            inbox.put(job)

    def _work(self, worker_id: str, inbox: queue.SimpleQueue[ExportJob | None]) -> None:
        run = self._run
        assert run is not None
        while (job := inbox.get()) is not None:
            JOB_ID.set(job.job_id)  # on every log line of this thread while it runs the job
            log.info("worker %s runs job %s (attempt %d)", worker_id, job.job_id, job.attempts)
            with self._running_lock:
                self._running += 1
            try:
                # The attempt acts as "<worker>#<fence>" (see store.claim), not as the worker.
                run(job, job.lease_owner or worker_id, JobControl(stopping=self._stopping))
            except Exception:
                log.exception("export job %s crashed its worker", job.job_id)
            finally:
                with self._running_lock:
                    self._running -= 1
            if self._stopping.is_set():
                return
            self._idle.put((worker_id, inbox))
