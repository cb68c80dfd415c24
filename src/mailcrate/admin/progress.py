"""Live progress for people: a rich progress bar in a terminal, plain lines otherwise.

Scripts and CI logs get one line per change (state or percentage), never control sequences; a
terminal gets a bar on EstimatedProgress with the job's elapsed time. Progress goes to stderr so
``--output json`` on stdout stays parseable.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TransferSpeedColumn,
)

from mailcrate.admin.jobs import JobStatus

__all__ = ["ByteProgress", "JobProgressView", "format_elapsed", "stderr_console"]


def stderr_console(force_terminal: bool | None = None) -> Console:
    return Console(stderr=True, force_terminal=force_terminal, highlight=False, soft_wrap=True)


def format_elapsed(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


class JobProgressView:
    """Context manager; call :meth:`update` with each :class:`JobStatus`."""

    def __init__(self, console: Console, job_id: str, *, label: str | None = None) -> None:
        self.console = console
        self.job_id = job_id
        self.label = label or f"export {job_id[:8]}"
        self.live = console.is_terminal
        self._last: tuple[str, int] | None = None
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> JobProgressView:
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(bar_width=40),
                TaskProgressColumn(),
                TextColumn("{task.fields[state]}"),
                TextColumn("elapsed {task.fields[elapsed]}"),
                console=self.console,
                refresh_per_second=8,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self.label, total=100, state="STARTING", elapsed="0:00:00")
        return self

    def update(self, status: JobStatus) -> None:
        elapsed = format_elapsed(status.elapsed)
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=status.progress, state=status.state, elapsed=elapsed)
            return
        key = (status.state, status.progress)
        if key != self._last:
            self._last = key
            stamp = time.strftime("%H:%M:%S")
            self.console.print(
                f"{stamp} {self.label}: {status.state} {status.progress}% (elapsed {elapsed})", markup=False
            )

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.__exit__(exc_type, exc, tb)

    def final(self, status: JobStatus) -> None:
        """The closing lines: final state, elapsed time and ErrorInfo."""
        job = status.job
        line = f"job {self.job_id} {status.state} after {format_elapsed(status.elapsed)}"
        if status.state == "COMPLETED":
            line += f": s3://{job.get('S3BucketName')}/{job.get('S3Path')}"
        self.console.print(line, markup=False)
        if job.get("ErrorInfo"):
            self.console.print(f"ErrorInfo: {job['ErrorInfo']}", markup=False)


class ByteProgress:
    """A transfer's progress (bytes): a bar in a terminal, one line at the end otherwise.
    Thread-safe ``advance`` (boto3's transfer callbacks come from worker threads)."""

    def __init__(self, console: Console, label: str, total: int | None) -> None:
        self.console = console
        self.label = label
        self.total = total
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self.done = 0

    def __enter__(self) -> ByteProgress:
        if self.console.is_terminal:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(bar_width=40),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=self.console,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self.label, total=self.total)
        return self

    def advance(self, amount: int) -> None:
        self.done += amount
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=amount)

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
