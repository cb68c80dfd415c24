"""What a person watching ``migrate run`` sees: in a terminal a live display (rich) with one
row per user being worked on and an overall bar of bytes restored with the ETA; otherwise
(CI logs, ``| tee``) one plain line per phase change, never control sequences. Progress goes
to stderr, so ``--output json`` on stdout stays parseable.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

__all__ = ["MigrateProgress"]


class MigrateProgress:
    """A context manager implementing :class:`mailcrate.migrate.run.ProgressSink`."""

    def __init__(self, console: Console, total_bytes: int, users: int) -> None:
        self.console = console
        self.live = console.is_terminal
        self.users = users
        self.finished_count = 0
        self._lock = threading.Lock()
        self._rows: dict[str, TaskID] = {}
        self._phases: dict[str, str] = {}
        self._progress: Progress | None = None
        self._overall: TaskID | None = None
        self._total = total_bytes
        self._started = time.monotonic()

    def __enter__(self) -> MigrateProgress:
        if self.live:
            self._progress = Progress(
                TextColumn("{task.description}", style="bold"),
                TextColumn("{task.fields[phase]}"),
                BarColumn(bar_width=30),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[detail]}"),
                console=self.console,
                transient=False,
            )
            self._progress.start()
            self._overall = self._progress.add_task(
                f"all {self.users} users", total=self._total or None, phase="", detail="0 finished"
            )
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def _line(self, label: str, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        self.console.print(f"{stamp} {label}: {text}", markup=False, highlight=False, soft_wrap=True)

    def phase(self, label: str, phase: str, detail: str = "", total: int | None = None) -> None:
        with self._lock:
            changed = self._phases.get(label) != phase
            self._phases[label] = phase
            if self._progress is None:
                if changed or detail.endswith(("%", "(reused)", "(resumed)")) or "retrying" in detail:
                    self._line(label, f"{phase} {detail}".rstrip())
                return
            row = self._rows.get(label)
            if row is None:
                row = self._rows[label] = self._progress.add_task(
                    label, total=total, phase=phase, detail=detail
                )
            elif changed:
                self._progress.reset(row, total=total, phase=phase, detail=detail)
            else:
                self._progress.update(row, phase=phase, detail=detail, **({"total": total} if total else {}))

    def advance(self, label: str, nbytes: int, *, overall: bool = True) -> None:
        if self._progress is None:
            return
        with self._lock:
            row = self._rows.get(label)
            if row is not None:
                self._progress.advance(row, nbytes)
            if overall and self._overall is not None:
                self._progress.advance(self._overall, nbytes)

    def finished(self, label: str, phase: str, detail: str = "") -> None:
        with self._lock:
            self.finished_count += 1
            self._phases.pop(label, None)
            if self._progress is None:
                self._line(label, f"{phase}: {detail}" if detail else phase)
                return
            row = self._rows.pop(label, None)
            if row is not None:
                self._progress.remove_task(row)
            self._progress.console.print(
                f"{label}: {phase}" + (f": {detail}" if detail else ""), markup=False
            )
            if self._overall is not None:
                self._progress.update(self._overall, detail=f"{self.finished_count}/{self.users} finished")
