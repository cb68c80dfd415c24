"""The audit trail of one server process: records API calls after their handler, and prunes
events past the retention period in the background.

A call's event is queued right after its handler and committed by one writer thread, with the
events queued beside it, within 250 ms (the handler's transaction is its own business, and
a failed call has none); shutdown writes what is queued. A crash (kill -9, power) in those
250 ms loses those calls' events; what an export job did is never lost that way, since job
events are written in the job's own transactions (:mod:`mailcrate.audit.jobs`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from datetime import timedelta

from mailcrate.audit.events import EventRows, insert_rows, join_rows, prune
from mailcrate.storage.db import Database

log = logging.getLogger("mailcrate.audit")

PRUNE_INTERVAL_SECONDS = 3600.0


class AuditTrail:
    def __init__(self, db: Database, retention_days: int) -> None:
        self.db = db
        self.retention = timedelta(days=retention_days) if retention_days > 0 else None
        self._stop = threading.Event()
        self._writer = _GroupWriter(db)

    def write_rows(self, rows: EventRows) -> None:
        """Record one call's event, as :func:`~mailcrate.audit.events.event_rows` built it
        (queued for the writer). Never raises: the call has been answered already, so an event
        that cannot be queued is logged loudly instead."""
        if not self._writer.write(rows):
            row = rows[0]
            log.error("audit event of %s %s (request %s) NOT recorded: queue full", row[4], row[5], row[8])

    def start_pruner(self) -> None:
        """Prune now and then every hour, in a daemon thread (no-op without a retention)."""
        if self.retention is None:
            return
        threading.Thread(target=self._prune_loop, name="audit-prune", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._writer.close()

    def _prune_loop(self) -> None:
        assert self.retention is not None
        while not self._stop.is_set():
            try:
                deleted = prune(self.db, self.retention)
                if deleted:
                    log.info("audit: pruned %d events older than %s", deleted, self.retention)
            except Exception:  # retry next round (database briefly unavailable)
                log.warning("audit: pruning failed; will retry", exc_info=True)
            self._stop.wait(PRUNE_INTERVAL_SECONDS)


class _GroupWriter:
    """Commits queued events in batches from one thread; callers do not wait for the commit.

    Measured on SQLite: a commit per call cost ~850 us, and waiting for a shared commit still
    ~1.9 ms per sequential call, making an audited call (KMS Encrypt) 2-3x slower. The backlog
    is bounded (a caller waits when the database falls behind) and drained at shutdown; a
    failed batch is retried, then reported with its size.

    The hand-off is a deque (append and popleft are atomic under the GIL) and an Event set only
    when the writer is idle: a ``queue.Queue`` put+get costs ~1.6 us against ~0.13 us, and a
    wake-up per call would hand the GIL over per call. The caller appends, then looks at the
    idle flag; the writer clears the Event, raises the flag, then looks at the deque again
    before waiting, so an event appended meanwhile is either seen or wakes it."""

    BATCH = 512
    #: A batch's fixed cost (the transaction, its commit's WAL writes, waking the thread) was
    #: ~1.5 ms of serve's CPU under load: the writer took 49-67 us per audited KMS Encrypt with
    #: 50 ms and 30-35 us with 250 ms (1,000-1,300 calls/s, BENCHMARKS.md, tenth session).
    LINGER = 0.25
    QUEUE = 10_000
    RETRIES = 3
    FULL_WAIT = 10.0

    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: deque[EventRows] = deque()
        self._wake = threading.Event()
        self._idle = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def write(self, event: EventRows) -> bool:
        """Queue ``event`` for the writer; False if the backlog stayed full for 10 s."""
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._closed:
                    self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                    self._thread.start()
        if len(self._queue) >= self.QUEUE and not self._wait_for_room():
            return False
        self._queue.append(event)
        if self._closed:  # close() may have drained already: write it here, now
            self._drain()
        elif self._idle:
            self._idle = False
            self._wake.set()
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop (server shutdown). A write racing this is written
        by whichever of the two drains last (see :meth:`write`)."""
        self._closed = True
        with self._lock:
            thread = self._thread
        if thread is not None:
            self._wake.set()
            thread.join(timeout)
        if not thread or not thread.is_alive():
            self._drain()

    def _wait_for_room(self) -> bool:
        deadline = time.monotonic() + self.FULL_WAIT
        self._wake.set()  # the writer may be lingering: get it going
        while len(self._queue) >= self.QUEUE:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def _run(self) -> None:
        pending = self._queue
        while True:
            self._wake.clear()
            self._idle = True
            if not pending and not self._closed:
                self._wake.wait()
            self._idle = False
            # Then wait for LINGER and take what arrived meanwhile (unless a full batch is
            # there already), one batch per linger: the insert costs ~210 us per event in
            # batches of 2 and ~85 us in batches of 20 (SQLite), and events keep arriving
            # during a commit, so draining after it would commit them a few at a time.
            # close() and a full backlog cut the wait short (they set the Event; one set
            # before this clear() has set _closed, or left the backlog full, already).
            self._wake.clear()
            if not self._closed and len(pending) < self.BATCH:
                self._wake.wait(self.LINGER)
            self._take_batch()
            if self._closed:
                self._drain()
                return

    def _take_batch(self) -> None:
        pending = self._queue
        batch: list[EventRows] = []
        while len(batch) < self.BATCH:
            try:
                batch.append(pending.popleft())
            except IndexError:
                break
        if batch:
            self._commit(batch)

    def _drain(self) -> None:
        while self._queue:
            self._take_batch()

    def _commit(self, batch: list[EventRows]) -> None:
        rows = join_rows(batch)
        for attempt in range(self.RETRIES):
            try:
                with self.db.write() as conn:
                    insert_rows(conn, rows)
                return
            except Exception:
                if attempt == self.RETRIES - 1:
                    log.exception("audit: %d events NOT recorded (the database refused them)", len(batch))
                    return
                time.sleep(0.5 * (attempt + 1))
