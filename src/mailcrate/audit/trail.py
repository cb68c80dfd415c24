"""The audit trail of one server process: records API calls after their handler, and prunes
events past the retention period in the background.

A call's event is queued right after its handler and committed by one writer thread, with the
events queued beside it, within 50 ms (the handler's transaction is its own business, and
a failed call has none); shutdown writes what is queued. A crash (kill -9, power) in those
50 ms loses those calls' events; what an export job did is never lost that way, since job
events are written in the job's own transactions (:mod:`mailcrate.audit.jobs`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from datetime import timedelta

from mailcrate.audit.events import AuditEvent, insert_rows, prune, rows_of
from mailcrate.storage.db import Database

log = logging.getLogger("mailcrate.audit")

PRUNE_INTERVAL_SECONDS = 3600.0


class AuditTrail:
    def __init__(self, db: Database, retention_days: int) -> None:
        self.db = db
        self.retention = timedelta(days=retention_days) if retention_days > 0 else None
        self._stop = threading.Event()
        self._writer = _GroupWriter(db)

    def write(self, event: AuditEvent) -> None:
        """Record one call's event (queued for the writer). Never raises: the call has been
        answered already, so an event that cannot be queued is logged loudly instead."""
        if not self._writer.write(event):
            log.error(
                "audit event of %s.%s (request %s) NOT recorded: queue full",
                event.service,
                event.event_name,
                event.request_id,
            )

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
    ~1.9 ms per sequential call, making an audited call (KMS Encrypt) 2-3x slower; queuing costs
    the caller ~40 us. The queue is bounded (a caller waits when the database falls behind) and
    drained at shutdown; a failed batch is retried, then reported with its size."""

    BATCH = 512
    LINGER = 0.05
    QUEUE = 10_000
    RETRIES = 3

    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: queue.Queue[AuditEvent | None] = queue.Queue(self.QUEUE)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def write(self, event: AuditEvent) -> bool:
        """Queue ``event`` for the writer; False if the queue stayed full for 10 s."""
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                    self._thread.start()
        try:
            self._queue.put(event, timeout=10)
        except queue.Full:
            return False
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop (server shutdown)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            batch: list[AuditEvent] = []
            item = self._queue.get()
            # Then sleep, not wait on the queue, for LINGER and take what arrived meanwhile: the
            # insert costs ~210 us per event in batches of 2 and ~85 us in batches of 20
            # (SQLite), and a writer waiting on the queue was woken by every put, a GIL
            # hand-over per call (~300 us of CPU per audited call, measured in-process).
            if item is not None:
                time.sleep(self.LINGER)
            while item is not None:
                batch.append(item)
                if len(batch) >= self.BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._commit(batch)
            if item is None:
                return

    def _commit(self, batch: list[AuditEvent]) -> None:
        rows = rows_of(batch)  # outside the write lock, which Start's transactions wait for
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
