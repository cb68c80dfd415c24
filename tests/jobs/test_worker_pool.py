"""The worker pool's count of jobs running now, which the export worker's heap trimming reads
(mailcrate.malloc.PacedTrim: trimmed every second while idle, at most every 10 s while busy)."""

from __future__ import annotations

import threading
import time

from mailcrate.datadir import DataDir
from mailcrate.jobs.control import JobControl
from mailcrate.jobs.records import ExportJob
from mailcrate.jobs.worker import WorkerPool
from tests.jobs.test_store import LEASE, _job, data_dir

__all__ = ["data_dir"]


def test_running_counts_a_claimed_job_until_it_ends(data_dir: DataDir) -> None:
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def runner() -> object:
        def run(job: ExportJob, worker_id: str, control: JobControl) -> None:
            ran.append(job.job_id)
            started.set()
            release.wait(10)

        return run

    pool = WorkerPool(data_dir.db, workers=2, lease=LEASE, runner=runner, poll_interval=0.05)
    assert pool.running == 0
    job_id = _job(data_dir)
    pool.start()
    try:
        assert started.wait(10), "the pool never ran the job"
        assert pool.running == 1
        release.set()
        deadline = time.monotonic() + 10
        while pool.running and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pool.running == 0
        assert ran == [job_id]
    finally:
        release.set()
        pool.stop()
