"""Prometheus metrics of a ``serve`` process and its export worker children, at ``GET /metrics``.

Across processes with prometheus_client's multiprocess mode (why, and the job metrics the
children write: :mod:`mailcrate.jobs.metrics`). :func:`enable` must run before anything imports
prometheus_client: it picks its value storage at import time.

What is counted where:

* requests by service, operation and status, and their latency — this process, per call
  (:meth:`Metrics.request`, from :mod:`mailcrate.server.observe`), in its own memory: no other
  process answers requests, so these need no multiprocess files;
* jobs finished, their duration, bytes and items exported, queue wait — whichever process
  changes the job (:mod:`mailcrate.jobs.store`), summed over processes at scrape time;
* jobs by state, bytes stored in the embedded S3, worker processes — read when scraped (from
  the database and the worker pool), so they are right whoever changed them, including other
  ``serve`` nodes sharing the database.
"""

from __future__ import annotations

import os
import shutil
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator
from itertools import accumulate
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from mailcrate.jobs.metrics import MULTIPROC_ENV
from mailcrate.storage.db import Database
from mailcrate.storage.tables_jobs import export_jobs
from mailcrate.storage.tables_kms_s3 import s3_objects

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: API calls take ~1 ms; S3 transfers and exports' in-process writes up to minutes.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60, float("inf"))


def enable(data_dir: Path) -> Path:
    """Point multiprocess mode at a fresh directory of this server's (its children inherit it)."""
    path = data_dir / "metrics" / str(os.getpid())
    shutil.rmtree(path, ignore_errors=True)  # a pid reused after a crash: start from zero
    path.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def disable(path: Path) -> None:
    """At shutdown: the files are this server's counters only, nobody reads them after it."""
    shutil.rmtree(path, ignore_errors=True)
    os.environ.pop(MULTIPROC_ENV, None)


class Metrics:
    """The request metrics of this process and the scrape of everything.

    Only this process answers requests, so their counter and histogram live in its memory and
    are turned into metric families when scraped (:class:`_Requests`), next to the job metrics
    summed from the multiprocess files: an observation through prometheus_client's multiprocess
    mode writes an mmap'd file under a lock per value (~3.2 us per request measured, 2-3x that
    in a loaded server), a plain in-memory update well under 1 us."""

    def __init__(self, path: Path, db: Database, worker_processes: Callable[[], int]) -> None:
        self.path = path
        self.db = db
        self.worker_processes = worker_processes
        self._requests = _Requests()

    def request(self, service: str, operation: str, status: int, seconds: float) -> None:
        self._requests.observe(service, operation, status, seconds)

    def exposition(self) -> bytes:
        """The text format of every process's metrics plus the ones read now."""
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.path))
        registry.register(self._requests)
        registry.register(_Snapshot(self.db, self.worker_processes))
        return generate_latest(registry)


class _Requests:
    """Requests by service, operation and status, and their latency, counted in memory.

    Exposed exactly as a prometheus_client ``Counter`` and ``Histogram`` in multiprocess mode
    would be (same names, help, labels, buckets; no ``_created`` samples)."""

    def __init__(self) -> None:
        # (service, operation, status) -> count; (service, operation) -> [per-bucket counts
        # (not cumulative: one increment per observation), sum]
        self._counts: dict[tuple[str, str, int], int] = {}
        self._latency: dict[tuple[str, str], list[Any]] = {}
        # Requests are answered on several threads; an update is a few bytecodes under one lock.
        self._lock = threading.Lock()

    def observe(self, service: str, operation: str, status: int, seconds: float) -> None:
        key = (service, operation, status)
        bucket = bisect_left(LATENCY_BUCKETS, seconds)  # first bound >= seconds ("le")
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
            latency = self._latency.get(key[:2])
            if latency is None:
                latency = self._latency[key[:2]] = [[0] * len(LATENCY_BUCKETS), 0.0]
            latency[0][bucket] += 1
            latency[1] += seconds

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
        from prometheus_client.utils import floatToGoString

        with self._lock:
            counts = list(self._counts.items())
            latency = [(key, list(buckets), total) for key, (buckets, total) in self._latency.items()]
        requests = CounterMetricFamily(
            "mailcrate_requests",
            "API requests answered, by service, operation and HTTP status.",
            labels=["service", "operation", "status"],
        )
        for (service, operation, status), count in counts:
            requests.add_metric([service, operation, str(status)], count)
        yield requests
        durations = HistogramMetricFamily(
            "mailcrate_request_duration_seconds",
            "Time from a request's arrival at the dispatcher to its answer (the body of a streamed "
            "S3 GetObject excluded), by service and operation.",
            labels=["service", "operation"],
        )
        for (service, operation), buckets, total in latency:
            cumulative = list(accumulate(buckets))
            durations.add_metric(
                [service, operation],
                [(floatToGoString(bound), n) for bound, n in zip(LATENCY_BUCKETS, cumulative, strict=True)],
                total,
            )
        yield durations


class _Snapshot:
    """Gauges read at scrape time (see the module docstring)."""

    def __init__(self, db: Database, worker_processes: Callable[[], int]) -> None:
        self.db = db
        self.worker_processes = worker_processes

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        with self.db.read() as conn:
            states = conn.execute(
                select(export_jobs.c.state, func.count()).group_by(export_jobs.c.state)
            ).all()
            stored = conn.execute(select(func.coalesce(func.sum(s3_objects.c.size), 0))).scalar_one()
            objects = conn.execute(select(func.count()).select_from(s3_objects)).scalar_one()
        jobs = GaugeMetricFamily(
            "mailcrate_export_jobs", "Export jobs in the database, by state.", labels=["state"]
        )
        counts = {"RUNNING": 0, "COMPLETED": 0, "FAILED": 0, "CANCELLED": 0} | dict(states)
        for state, count in sorted(counts.items()):
            jobs.add_metric([state], count)
        yield jobs
        yield GaugeMetricFamily(
            "mailcrate_s3_stored_bytes", "Bytes of object data stored in the embedded S3.", value=int(stored)
        )
        yield GaugeMetricFamily("mailcrate_s3_objects", "Objects in the embedded S3.", value=int(objects))
        yield GaugeMetricFamily(
            "mailcrate_export_worker_processes",
            "Export worker processes this server runs now.",
            value=self.worker_processes(),
        )
