"""The signals around one running job, shared by the worker pool that hands jobs out and the
exporter that runs them (both import this module; neither imports the other)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from mailcrate.jobs.records import ExportJob

__all__ = ["JobControl", "JobRunner", "StopExport"]


class StopExport(Exception):
    """The job was cancelled, lost its lease, or the server is shutting down: stop now."""


@dataclass
class JobControl:
    """Signals around one running job: ``stopping`` (the server shuts down: release the job for
    a restart) and ``lost`` (cancelled, or the lease went to another worker)."""

    stopping: threading.Event = field(default_factory=threading.Event)
    lost: threading.Event = field(default_factory=threading.Event)

    def check(self) -> None:
        if self.lost.is_set() or self.stopping.is_set():
            raise StopExport()


#: Runs one claimed job to its end (never raises for the job's own failures: it records them).
JobRunner = Callable[[ExportJob, str, JobControl], object]
