"""The in-process pool of export workers that ``mailcrate serve`` runs.

Each worker thread loops: claim a RUNNING job that no live worker holds (:func:`store.claim`:
a new job, or one whose worker died and let its lease expire), run it
(:func:`mailcrate.export.job.run_job`), repeat. Idle workers wait for a wake-up (Start sets it)
or poll every second, which also makes a restarted server pick up the jobs its predecessor
left RUNNING as soon as their leases expire. Any number of processes may run pools against one
shared database; the claim is atomic across them.

On shutdown the running jobs stop at the next item, abort their uploads and give their jobs
back (lease cleared), so the next start resumes them from the beginning at once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from mailcrate.export.job import MIB, ExportSettings, JobControl, run_job
from mailcrate.jobs import store

log = logging.getLogger("mailcrate.jobs")

__all__ = ["WorkerPool", "export_settings_from"]


def export_settings_from(settings: Any, server_url: str | None) -> ExportSettings:
    """The exporter's settings from ``serve``'s settings table. ``server_url`` (``mailcrate
    worker --server-url``) names a mailcrate server on another machine whose embedded S3 the
    exports go to over HTTP; without it they go in-process into this data directory's embedded
    S3, unless ``--aws-endpoint-url`` points elsewhere."""
    external_url = getattr(settings, "aws_endpoint_url", None)
    loader = None
    if external_url or server_url:
        # Only boto3 (external S3, or a remote server's) reads botocore's models; one loader
        # shared by the jobs keeps them parsed once. The in-process destination needs none, so
        # an idle worker does not import botocore's loader for it.
        import botocore.loaders

        loader = botocore.loaders.create_loader()
    return ExportSettings(
        part_size=settings.export_part_size_mib * MIB,
        parts_in_flight=settings.export_parts_in_flight,
        lease=timedelta(seconds=settings.export_lease_seconds),
        endpoint_url=external_url or server_url,
        external=bool(external_url),
        remote_server=bool(server_url) and not external_url,
        loader=loader,
    )


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
        store.mark_finishing(db, nobody, nobody)
        store.complete(db, nobody, nobody, items_total=0, items_done=0, bytes_done=0)
    except Exception:
        log.warning("compiling the job statements ahead failed", exc_info=True)


class WorkerPool:
    def __init__(
        self,
        data_dir: Any,
        *,
        workers: int,
        settings: Callable[[], ExportSettings],
        max_attempts: int = 3,
        wakeup: threading.Event | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        self.data_dir = data_dir
        self.workers = workers
        self._settings_factory = settings
        self.max_attempts = max_attempts
        self.wakeup = wakeup or threading.Event()
        self.poll_interval = poll_interval
        self.pool_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._settings: ExportSettings | None = None

    def start(self) -> None:
        if self.workers <= 0 or self._threads:
            return
        self._settings = self._settings_factory()
        self._stopping.clear()
        _compile_statements(self.data_dir.db, self._settings.lease)
        for n in range(self.workers):
            thread = threading.Thread(
                target=self._loop, args=(f"{self.pool_id}/{n}",), name=f"export-worker-{n}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        log.info("%d export workers started (pool %s)", self.workers, self.pool_id)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop claiming; running jobs abort their uploads and are released for a restart."""
        self._stopping.set()
        self.wakeup.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def _loop(self, worker_id: str) -> None:
        settings = self._settings
        assert settings is not None
        while not self._stopping.is_set():
            try:
                job = store.claim(self.data_dir.db, worker_id, settings.lease, max_attempts=self.max_attempts)
            except Exception:
                log.exception("claiming an export job failed")
                job = None
            if job is None:
                if self.wakeup.wait(self.poll_interval):
                    self.wakeup.clear()
                continue
            self.wakeup.set()  # there may be more waiting: let an idle sibling look
            log.info("worker %s runs job %s (attempt %d)", worker_id, job.job_id, job.attempts)
            control = JobControl(stopping=self._stopping)
            try:
                run_job(self.data_dir, job, worker_id, replace(settings), control)
            except Exception:
                log.exception("export job %s crashed its worker", job.job_id)
