"""A worker process: a pool of export workers running the exporter against this data directory.

This sits above both rooms it joins: :mod:`mailcrate.jobs` (claims, leases, the pool's threads)
knows nothing of exports, and :mod:`mailcrate.export` (running one job) nothing of pools; here a
pool is given the exporter as the runner of its jobs, with one service context per process.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

from mailcrate.datadir import DataDir
from mailcrate.export.job import run_job
from mailcrate.export.settings import export_settings_from
from mailcrate.export.sweeper import sweep_orphan_uploads
from mailcrate.jobs.control import JobControl, JobRunner
from mailcrate.jobs.records import ExportJob
from mailcrate.jobs.worker import WorkerPool
from mailcrate.malloc import TRIM_INTERVAL, PacedTrim
from mailcrate.services.registry import service_context
from mailcrate.storage.crypto import SecretBox
from mailcrate.storage.db import Database

__all__ = ["Exporter", "run_worker"]

log = logging.getLogger("mailcrate.jobs")

#: The services an export calls in-process (STS AssumeRole, S3 writes, KMS through S3 and
#: DescribeKey); their specs are built when the pool starts, not by its first job.
EXPORT_SERVICES = ("sts", "s3", "kms")


class Exporter:
    """What a pool's workers run, with this process's service context: the exporter for each
    claimed job, and now and then the sweep of uploads that failed jobs could not abort."""

    def __init__(self, data_dir: DataDir, settings: Any, server_url: str | None) -> None:
        self.context = service_context(data_dir, settings=settings)
        for name in EXPORT_SERVICES:
            self.context.services[name]
        self.settings = settings
        self.export_settings = export_settings_from(settings, server_url)
        self._next_sweep = 0.0

    def run(self, job: ExportJob, worker_id: str, control: JobControl) -> object:
        return run_job(self.context, job, worker_id, replace(self.export_settings), control)

    def sweep_when_due(self) -> None:
        """Abort left-over uploads, at most every ``--export-abort-retry-seconds``."""
        interval = float(self.settings.export_abort_retry_seconds)
        if time.monotonic() < self._next_sweep:
            return
        self._next_sweep = time.monotonic() + interval
        try:
            sweep_orphan_uploads(self.context, self.export_settings, first_retry_seconds=interval)
        except Exception:
            log.exception("sweeping left-over uploads failed; trying again later")


def run_worker(
    settings: Any,
    server_url: str | None,
    *,
    wakeups_on_stdin: bool = False,
    poll_interval: float = 0.25,
    exit_when_idle: float | None = None,
) -> None:
    """The child side (``mailcrate worker``): run a pool until SIGTERM/SIGINT, or with
    ``wakeups_on_stdin`` (how ``serve`` starts it) until its stdin ends, or with
    ``exit_when_idle`` after that many seconds without a job."""
    from mailcrate.logs import configure

    configure(settings.log_level, settings.log_format, "worker")
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
    exporters: list[Exporter] = []

    def make_runner() -> JobRunner:  # called when the pool starts
        exporters.append(Exporter(data_dir, settings, server_url))
        return exporters[0].run

    pool = WorkerPool(
        data_dir.db,
        workers=settings.export_workers,
        lease=timedelta(seconds=settings.export_lease_seconds),
        runner=make_runner,
        node_id=data_dir.node_id,
        max_attempts=settings.export_max_attempts,
        poll_interval=poll_interval,
        idle_exit=exit_when_idle,
    )

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)

    def read_wakeups() -> None:
        # os.read on the descriptor, not sys.stdin: a worker that ends on its own (idle) leaves
        # this daemon thread blocked in the read, and a blocked buffered reader's lock aborts
        # the interpreter's shutdown ("could not acquire lock for <stdin>", SIGABRT).
        fd = sys.stdin.fileno()
        while True:
            try:
                line = os.read(fd, 4096)  # one byte per wake-up; several may come at once
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
        trim = PacedTrim()
        while not stop.wait(TRIM_INTERVAL) and not pool.idled_out.is_set():
            trim(busy=pool.running > 0, jobs=pool.running)
            if exporters:
                exporters[0].sweep_when_due()
    finally:
        pool.stop()
        data_dir.close()
