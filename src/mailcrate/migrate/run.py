"""``migrate run``: every user of the organization through export -> download -> verify ->
restore, several at once, each step recorded in the state file before the next begins.

A user's round ends ``done`` (figures and the export's identities recorded together),
``failed`` (the reason; the others go on) or ``waiting`` (a delta the 24-hour rule does not
allow yet). A rerun takes up every user not ``done`` in its round where the state says: a job
already started is waited for (or, FAILED, started again), a download or restore is redone
(the restore skips what is already there).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from botocore.exceptions import BotoCoreError, ClientError

from mailcrate.admin.aws import AwsTarget
from mailcrate.admin.errors import AdminError
from mailcrate.admin.jobs import describe_job, list_jobs
from mailcrate.migrate.directory import LoginMap, Member
from mailcrate.migrate.exports import ExportSettings, NotYet, obtain_job, wait_for
from mailcrate.migrate.state import MigrationState, UserRecord
from mailcrate.migrate.transfer import TargetServer, fetch_export, restore_user

__all__ = ["Migration", "ProgressSink", "RunOptions", "Work", "prepare"]


class ProgressSink(Protocol):
    """What the run tells the display (:mod:`mailcrate.migrate.progress`)."""

    def phase(self, label: str, phase: str, detail: str = "", total: int | None = None) -> None: ...

    def advance(self, label: str, nbytes: int, *, overall: bool = True) -> None: ...

    def finished(self, label: str, phase: str, detail: str = "") -> None: ...


@dataclass(frozen=True)
class RunOptions:
    """``work_dir``: this migration's own directory for downloads (removed whole after the
    run unless ``keep``: the CLI names it after the migration under the directory given);
    ``parallel``: users downloaded and restored at once."""

    delta: bool = False
    keep: bool = False
    work_dir: Path = Path("mailcrate-migrate-work")
    parallel: int = 4
    #: export jobs started and waited for at once, ahead of the restores (WorkMail's limit: 10
    #: running per organization; more are backed off)
    exports: int = 10


@dataclass(frozen=True)
class Work:
    """One user to take through a round."""

    member: Member
    login: str
    record: UserRecord


def prepare(state: MigrationState, members: list[Member], logins: LoginMap, *, delta: bool) -> list[Work]:
    """Record every member's starting point for this run; the users with work to do."""
    todo: list[Work] = []
    for m in members:
        who = {"name": m.name, "email": m.email}
        record = state.user(m.entity_id)
        if m.skip:
            state.upsert(m.entity_id, **who, phase="skipped", reason=m.skip)
            continue
        login = logins.login_for(m)
        if login is None:
            state.upsert(
                m.entity_id,
                **who,
                phase="failed",
                reason=f"no target login for {m.label} in the login map",
            )
            continue
        if record is None or record.phase == "skipped":
            state.upsert(m.entity_id, **who, login=login, phase="pending", reason="", job_id=None)
        elif record.phase == "done":
            if not delta:
                continue
            state.upsert(
                m.entity_id, **who, login=login, phase="pending", round=record.round + 1, job_id=None
            )
        else:
            state.upsert(m.entity_id, **who, login=login)
        current = state.user(m.entity_id)
        assert current is not None
        todo.append(Work(m, login, current))
    return todo


class Migration:
    """One ``migrate run`` over the members of an organization."""

    def __init__(
        self,
        target: AwsTarget,
        state: MigrationState,
        exports: ExportSettings,
        server: TargetServer,
        options: RunOptions,
        progress: ProgressSink,
    ) -> None:
        self.target = target
        self.state = state
        self.exports = exports
        self.server = server
        self.options = options
        self.progress = progress
        # one client of each for every thread: boto3 clients are thread-safe, and each one made
        # costs ~0.1 s of CPU and ~10 MB
        self.wm = target.client("workmail")
        self.s3 = target.client("s3")

    def run(self, todo: list[Work]) -> None:
        """Every user through a pipeline: up to ``options.exports`` export jobs started and
        waited for at once, and as each completes (in the order they complete) its download
        and restore on one of ``options.parallel`` restore threads. So the exports of the next
        users run while the first are restored (one thread per user doing export, then
        restore, left the export slots idle during every restore: 4.16x mbsync's time)."""
        if not self.options.keep:  # a killed run's downloads: decrypted mail, not to be left behind
            shutil.rmtree(self.options.work_dir, ignore_errors=True)
        known = list(list_jobs(self.target, self.exports.organization_id, self.wm)) if todo else []
        exporters = max(1, min(self.options.exports, len(todo)))
        with (
            ThreadPoolExecutor(exporters, thread_name_prefix="migrate-export") as exporting,
            ThreadPoolExecutor(max(1, self.options.parallel), thread_name_prefix="migrate") as restoring,
        ):
            started = {exporting.submit(self._export, w, known): w for w in todo}
            restores = [
                restoring.submit(self._restore, started[f], job)
                for f in as_completed(started)
                if (job := f.result()) is not None
            ]
            for future in restores:
                future.result()
        if not self.options.keep:
            shutil.rmtree(self.options.work_dir, ignore_errors=True)

    def _export(self, work: Work, known: list[dict] | None) -> tuple[dict, float] | None:
        """The user's COMPLETED job and the seconds it took, or None when the round ended
        here (recorded: waiting or failed)."""
        clock = time.monotonic()
        with self._outcome(work):
            return self._job(work, known), round(time.monotonic() - clock, 3)
        return None

    def _restore(self, work: Work, exported: tuple[dict, float]) -> None:
        """Download, verify and restore the user's export; the round's figures recorded."""
        label = work.member.label
        entity = work.member.entity_id
        into = self.options.work_dir / entity
        job, export_seconds = exported
        seconds: dict[str, float] = {"export": export_seconds}
        clock = time.monotonic()
        try:
            with self._outcome(work):
                self.state.upsert(entity, phase="downloading")
                self.progress.phase(label, "downloading", total=None)
                zip_path, log_path = fetch_export(
                    self.target,
                    job,
                    into,
                    on_bytes=lambda n: self.progress.advance(label, n, overall=False),
                    client=self.s3,
                )
                seconds["download"], clock = round(time.monotonic() - clock, 3), time.monotonic()
                self.state.upsert(entity, phase="restoring")
                previous = self.state.identities(entity) if work.record.round > 0 else None
                figures, held = restore_user(
                    zip_path,
                    log_path,
                    self.server,
                    work.login,
                    previous=previous,
                    on_item=lambda n: self.progress.advance(label, n),
                    on_total=lambda n: self.progress.phase(label, "restoring", total=n),
                    parallel=self.options.parallel,
                )
                seconds["restore"] = round(time.monotonic() - clock, 3)
                figures.seconds = seconds
                self.state.finish(entity, figures, held)
                detail = f"{figures.restored_items} restored, {figures.already_items} already there"
                if figures.unchanged_items:
                    detail += f", {figures.unchanged_items} unchanged"
                if not figures.complete:
                    detail += f", {len(figures.refused) + sum(figures.not_restored.values())} NOT restored"
                self.progress.finished(label, "done", detail)
        finally:
            if not self.options.keep:
                shutil.rmtree(into, ignore_errors=True)

    @contextmanager
    def _outcome(self, work: Work) -> Iterator[None]:
        """Every failure of a step recorded as the user's, never raised (the others go on)."""
        entity, label = work.member.entity_id, work.member.label
        try:
            yield
        except NotYet as exc:
            self.state.upsert(entity, phase="waiting", reason=str(exc))
            self.progress.finished(label, "waiting", str(exc))
        except AdminError as exc:
            self._failed(entity, label, exc.message)
        except (ClientError, BotoCoreError, OSError) as exc:
            self._failed(entity, label, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # one user's surprise must not stop the others
            self._failed(entity, label, f"unexpected {type(exc).__name__}: {exc}")

    def _failed(self, entity: str, label: str, reason: str) -> None:
        self.state.upsert(entity, phase="failed", reason=reason)
        self.progress.finished(label, "failed", reason)

    def _job(self, work: Work, known: list[dict] | None) -> dict:
        """The COMPLETED job this round restores from: the one recorded, else a recent (among
        ``known``, the organization's jobs listed once for the run) or new one."""
        entity, label = work.member.entity_id, work.member.label
        record = work.record
        retry_of = None
        job_id = record.job_id
        if job_id:
            try:
                state = describe_job(self.target, self.exports.organization_id, job_id, self.wm).get("State")
            except ClientError:
                state = None
            if state not in ("RUNNING", "COMPLETED"):
                retry_of, job_id = job_id, None
        if not job_id:
            self.state.upsert(entity, phase="exporting", reason="")
            self.progress.phase(label, "exporting", "starting")
            after = (
                datetime.fromisoformat(record.base_start) if record.round > 0 and record.base_start else None
            )
            job_id, reused = obtain_job(
                self.target,
                self.exports,
                entity,
                record.round,
                after=after,
                retry_of=retry_of,
                known=known,
                client=self.wm,
                on_wait=lambda m: self.progress.phase(label, "exporting", m),
            )
            self.state.upsert(entity, job_id=job_id)
            self.progress.phase(label, "exporting", f"job {job_id[:8]}" + (" (reused)" if reused else ""))
        else:
            self.progress.phase(label, "exporting", f"job {job_id[:8]} (resumed)")
        job = wait_for(
            self.target,
            self.exports,
            job_id,
            on_progress=lambda p: self.progress.phase(label, "exporting", f"job {job_id[:8]} {p}%"),
            client=self.wm,
        )
        start = job.get("StartTime")
        self.state.upsert(entity, job_start=start.isoformat() if isinstance(start, datetime) else None)
        return job
