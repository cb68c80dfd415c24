"""Export job metrics, observed by the process that changes the job (:mod:`mailcrate.jobs.store`).

The jobs run in ``mailcrate worker`` children of ``serve``, so these use prometheus_client's
multiprocess mode: ``serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a directory of its own under
the data directory before any process imports prometheus_client (children inherit it), every
process writes its counters and histograms to its own memory-mapped files there, and ``/metrics``
sums the files of live and ended processes alike (a child that ended after its idle time keeps
counting). Without that variable (``--metrics false``, or a worker not started by a ``serve``)
nothing is observed and prometheus_client is never imported.

One set of metric objects per process (:func:`job_metrics`), built on first use: multiprocess
mode is process-wide by nature (its files are named by pid), so this is the one place holding it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Export durations run from seconds (a small mailbox) to hours (a 50 GB one).
DURATION_BUCKETS = (1, 5, 15, 60, 300, 900, 1800, 3600, 3 * 3600, 12 * 3600, float("inf"))
#: A job waits for a worker from a few ms (one was idle) to minutes (all busy).
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300, float("inf"))


@dataclass(frozen=True)
class JobMetrics:
    finished: Any  # Counter{state}
    duration: Any  # Histogram{state}
    bytes_exported: Any  # Counter
    items_exported: Any  # Counter
    queue_wait: Any  # Histogram

    def claimed(self, waited_seconds: float) -> None:
        self.queue_wait.observe(max(0.0, waited_seconds))

    def ended(self, state: str, seconds: float, items: int | None, size: int | None) -> None:
        self.finished.labels(state).inc()
        self.duration.labels(state).observe(max(0.0, seconds))
        if items:
            self.items_exported.inc(items)
        if size:
            self.bytes_exported.inc(size)


@cache
def job_metrics() -> JobMetrics | None:
    """This process's job metrics, or None when metrics are off (see the module docstring)."""
    if not os.environ.get(MULTIPROC_ENV):
        return None
    from prometheus_client import Counter, Histogram

    return JobMetrics(
        finished=Counter(
            "mailcrate_export_jobs_finished",
            "Export jobs that ended, by final state.",
            ["state"],
            registry=None,
        ),
        duration=Histogram(
            "mailcrate_export_job_duration_seconds",
            "Export jobs' time from start to their end, by final state.",
            ["state"],
            buckets=DURATION_BUCKETS,
            registry=None,
        ),
        bytes_exported=Counter(
            "mailcrate_export_bytes", "Bytes of mail and calendar items in completed exports.", registry=None
        ),
        items_exported=Counter("mailcrate_export_items", "Items in completed exports.", registry=None),
        queue_wait=Histogram(
            "mailcrate_export_queue_wait_seconds",
            "Time a job waited from its start (or its lease's expiry) until a worker claimed it.",
            buckets=WAIT_BUCKETS,
            registry=None,
        ),
    )
