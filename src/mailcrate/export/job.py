"""Running one claimed export job: role, checks, source -> zip -> parts -> S3, log, state.

The worker thread that claimed the job is the producer (reads the mailbox, deflates, hashes each
item); :class:`~mailcrate.export.uploader.PartUploader` threads upload parts and hash the object;
a monitor thread renews the lease and writes progress at most once a second, and notices a
cancel (its conditional heartbeat matches no row) so the producer stops at the next item or
chunk. Whatever ends an attempt early, the multipart upload is aborted: no object and no open
upload remains under the prefix. A job is COMPLETED only after the zip and the log are stored.

A small export's time is mostly fixed cost, so what need not wait runs beside the rest: the
preflight checks and CreateMultipartUpload (:class:`_Preparation`) beside the listing and the
archive (parts wait for the upload id; a failed check is still what the job reports, and
nothing is written before the checks pass), and the export log's PUT beside
CompleteMultipartUpload.

Transient faults (S3 5xx/SlowDown/connection drops after botocore's retries,
TransientSourceError) restart the attempt from the beginning after a backoff, a few times;
permanent ones fail the job at once with an ErrorInfo saying what to fix.
"""

from __future__ import annotations

import codecs
import json
import logging
import threading
import time
from typing import Any

from sqlalchemy import select

import mailcrate.mail.composite  # imported ahead: see below
import mailcrate.mail.store  # noqa: F401 - imported ahead: see below
from mailcrate.export.checkpoint import Checkpointer, ResumeMismatch, ResumePoint
from mailcrate.export.checkpoint import load as load_checkpoint
from mailcrate.export.destination import ExportError, TransientExportError, error_code, open_for_job
from mailcrate.export.manifest import ExportLog, ManifestHeader, epoch_ms, export_log_key
from mailcrate.export.pipeline import Progress, write_archive
from mailcrate.export.settings import ExportSettings
from mailcrate.export.uploader import PartUploader, Resume, UploadStopped
from mailcrate.jobs import checkpoints, store
from mailcrate.jobs.control import JobControl, StopExport
from mailcrate.jobs.records import ExportJob, State
from mailcrate.mail.base import SourceError, SourceSpec, TransientSourceError, open_source
from mailcrate.services.context import ServiceContext
from mailcrate.storage.db import utcnow
from mailcrate.storage.tables import users

log = logging.getLogger("mailcrate.export")

# The embedded mail store, the source combiner and the UTF-7 codec of folder names are loaded
# with the worker rather than by the first job that uses them, which would otherwise pay for
# them in its own time (a 1k-message export takes ~0.2 s); the service context (the S3/KMS/STS
# specs and the policy engine) is warmed by the runner that builds it (mailcrate.runner).
codecs.lookup("utf-7")

SOURCE_PURPOSE = "mailbox-source"


def source_spec(data_dir: Any, job: ExportJob) -> SourceSpec:
    """The user's mailbox: an external source bound with ``mailbox bind``, or the embedded store
    of this node's data directory, which must hold the mailbox's mail: a node with an empty copy
    (several nodes, each with a data directory of its own) would export nothing and call it
    COMPLETED."""
    with data_dir.db.read() as conn:
        row = conn.execute(
            select(users.c.state, users.c.email, users.c.source_sealed, users.c.mailbox_node).where(
                users.c.user_id == job.entity_id, users.c.organization_id == job.organization_id
            )
        ).first()
    if row is None or row.state != "ENABLED":
        raise ExportError(f"The mailbox of {job.entity_id} no longer exists or is not enabled.")
    if row.source_sealed:
        spec = json.loads(data_dir.secrets.open_text(row.source_sealed, SOURCE_PURPOSE))
        return SourceSpec.from_dict(spec)
    root = data_dir.mailbox_root(job.organization_id, job.entity_id)
    here = data_dir.node_id
    if (row.mailbox_node is not None and row.mailbox_node != here) or not root.is_dir():
        where = f"node {row.mailbox_node}" if row.mailbox_node else "another node"
        raise ExportError(
            f"The mailbox of {job.entity_id} is stored in the data directory of {where}, not in this "
            f"node's ({here}). Export it from that node, or give the nodes one shared data directory."
        )
    return SourceSpec(embedded=str(root), owner=row.email)


class _Monitor(threading.Thread):
    def __init__(
        self, data_dir: Any, job: ExportJob, worker_id: str, settings: ExportSettings, control: JobControl
    ):
        super().__init__(name=f"export-monitor-{job.job_id[:8]}", daemon=True)
        self.db = data_dir.db
        self.job_id = job.job_id
        self.worker_id = worker_id
        self.settings = settings
        self.control = control
        self.progress = Progress()
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.settings.progress_interval):
            self.beat()

    def beat(self) -> None:
        p = self.progress
        try:
            ok = store.heartbeat(
                self.db,
                self.job_id,
                self.worker_id,
                self.settings.lease,
                estimated_progress=p.percent(),
                items_total=p.items_total,
                items_done=p.items_done,
                bytes_done=p.bytes_done,
            )
        except Exception:
            log.exception("job %s: heartbeat failed", self.job_id)
            return
        if not ok:
            self.control.lost.set()

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=5)


def run_job(
    context: ServiceContext, job: ExportJob, worker_id: str, settings: ExportSettings, control: JobControl
) -> State | None:
    """Run a claimed job to its end; returns the final state this worker set (None when it
    released the job or lost it). ``context`` is the worker's service context: the exporter
    reaches the embedded S3, KMS and STS only through it."""
    data_dir = context.data_dir
    monitor = _Monitor(data_dir, job, worker_id, settings, control)
    monitor.start()
    try:
        for attempt in range(settings.transient_retries + 1):
            try:
                return _attempt(context, job, worker_id, settings, control, monitor)
            except StopExport:
                return _stopped(data_dir, job, worker_id, control)
            except (TransientExportError, TransientSourceError) as exc:
                if attempt == settings.transient_retries:
                    store.fail(data_dir.db, job.job_id, worker_id, f"The export kept failing: {exc}")
                    return State.FAILED
                delay = settings.retry_base_seconds * (4**attempt)
                log.warning("job %s: transient failure (%s); retrying in %.0f s", job.job_id, exc, delay)
                if control.stopping.wait(delay) or control.lost.is_set():
                    return _stopped(data_dir, job, worker_id, control)
                job = store.get_by_id_db(data_dir.db, job.job_id) or job
            except ExportError as exc:
                log.info("job %s failed: %s", job.job_id, exc)
                store.fail(data_dir.db, job.job_id, worker_id, str(exc))
                return State.FAILED
            except SourceError as exc:
                store.fail(
                    data_dir.db,
                    job.job_id,
                    worker_id,
                    f"The mailbox of {job.entity_id} cannot be read: {exc}",
                )
                return State.FAILED
            except Exception as exc:
                log.exception("job %s: unexpected failure", job.job_id)
                store.fail(
                    data_dir.db,
                    job.job_id,
                    worker_id,
                    f"Internal error in the exporter ({type(exc).__name__}).",
                )
                return State.FAILED
        return None
    finally:
        monitor.stop()


def _stopped(data_dir: Any, job: ExportJob, worker_id: str, control: JobControl) -> None:
    if control.stopping.is_set() and not control.lost.is_set():
        store.release(data_dir.db, job.job_id, worker_id)
        log.info("job %s released (server stopping)", job.job_id)
    else:
        store.clear_upload_if_final(data_dir.db, job.job_id)
        log.info("job %s stopped (cancelled or lease lost)", job.job_id)
    return None


class _Background(threading.Thread):
    """One action on a thread of its own; :meth:`result` waits and returns what it raised
    (kept for later, so the caller decides when a failure on this thread counts)."""

    def __init__(self, action: Any, name: str, *, start: bool = True) -> None:
        super().__init__(name=name, daemon=True)
        self.action = action
        self.error: BaseException | None = None
        if start:
            self.start()

    def run(self) -> None:
        try:
            self.action()
        except BaseException as exc:
            self.error = exc

    def result(self) -> BaseException | None:
        self.join()
        return self.error


class _Preparation(_Background):
    """The role (AssumeRole, :func:`open_destination`), the preflight checks, then
    CreateMultipartUpload (its id stored with the job), on a thread of their own while the
    producer lists the mailbox and starts the archive: ~20 ms of a 1k-message export's
    ~170 ms need not come before its first byte. Nothing is written to S3 before the checks
    pass (the upload is created after them, on this thread); the producer waits for the
    destination (:meth:`destination`, the role only) when it builds its uploader, and parts
    wait for :meth:`upload_id`; both raise what the preparation raised."""

    def __init__(
        self,
        context: ServiceContext,
        job: ExportJob,
        worker_id: str,
        settings: ExportSettings,
        *,
        resumed: str | None = None,
    ) -> None:
        super().__init__(self._prepare, f"export-prepare-{job.job_id[:8]}", start=False)
        self.resumed = resumed  # the upload this attempt continues (its checkpoints): kept, not created
        self.context = context
        self.db = context.db
        self.job = job
        self.worker_id = worker_id
        self.settings = settings
        self.dest: Any = None
        self._opened = threading.Event()  # set once the role is assumed (or failed)
        self.created: str | None = None  # the upload id, once created (even if storing it failed)
        self.seconds: dict[str, float] = {}

    def _prepare(self) -> None:
        job, settings = self.job, self.settings
        started = time.perf_counter()
        try:
            dest = self.dest = open_for_job(
                job,
                self.context,
                settings,
                attempt=self.worker_id,
                max_connections=settings.parts_in_flight + 4,
            )
        finally:
            self._opened.set()
        opened = time.perf_counter()
        self.seconds["role"] = opened - started
        if self.resumed is not None:  # continued from its checkpoints (mailcrate.export.checkpoint)
            dest.preflight()
            self.seconds["preflight"] = time.perf_counter() - opened
            self.created = self.resumed
            return
        if job.upload_id:  # left open by an attempt that crashed or was retried
            if not dest.abort_upload(job.s3_path, job.upload_id):
                # Recording a new upload would forget this one for good: try again later.
                raise TransientExportError("The previous attempt's upload could not be aborted yet.")
            store.set_upload(self.db, job.job_id, self.worker_id, None)
        dest.preflight()
        checked = time.perf_counter()
        self.seconds["preflight"] = checked - opened
        self.created = dest.create_upload(job.s3_path)
        if not store.set_upload(self.db, job.job_id, self.worker_id, self.created):
            raise StopExport()
        self.seconds["create"] = time.perf_counter() - checked

    def destination(self) -> Any:
        """The destination once the role is assumed; raises what the preparation raised if
        that failed."""
        self._opened.wait()
        if self.dest is None:
            self.join()
            assert self.error is not None
            raise self.error
        return self.dest

    def upload_id(self) -> str:
        """The upload's id once the preparation succeeded; raises what it raised."""
        if (error := self.result()) is not None:
            raise error
        assert self.created is not None
        return self.created

    def raise_if_failed(self) -> None:
        """Raise the preparation's failure if it already failed (the producer stops then)."""
        if self.error is not None:
            raise self.error

    def settle(self, *, resumable: bool = False) -> BaseException | None:
        """After the attempt failed: wait for the preparation, abort the upload it created, and
        return its own failure (which the attempt reports instead: the checks come first).
        ``resumable``: the attempt failed transiently with checkpoints of its upload stored, so
        the upload is kept (recorded with the job) for the next attempt to continue."""
        error = self.result()
        if self.created is not None:
            job = store.get_by_id_db(self.db, self.job.job_id)
            if job is not None and job.commit_upload == self.created:
                return error  # committed after all: a later attempt publishes it, never abort it
            if resumable and error is None and job is not None and job.upload_id == self.created:
                return None
            if self.dest.abort_upload(self.job.s3_path, self.created):
                store.forget_upload(self.db, self.job.job_id, self.created)
            else:
                # Recorded with the job (failed, cancelled or retried) until it is aborted: by
                # the next attempt, or by the sweeper (mailcrate.export.sweeper).
                store.keep_upload(self.db, self.job.job_id, self.created)
        return error


def _attempt(
    context: ServiceContext,
    job: ExportJob,
    worker_id: str,
    settings: ExportSettings,
    control: JobControl,
    monitor: _Monitor,
) -> State | None:
    data_dir = context.data_dir
    if (commit := store.commit_of(job)) is not None:
        return _finish_commit(context, job, worker_id, settings, control, monitor, commit)
    phases = _Phases(job)
    key = job.s3_path
    control.check()
    resume = _resume_point(data_dir.db, job, settings)
    prep = _Preparation(context, job, worker_id, settings, resumed=job.upload_id if resume else None)
    prep.start()
    uploader: PartUploader | None = None
    checkpointer: Checkpointer | None = None

    def should_stop() -> None:
        control.check()
        prep.raise_if_failed()

    try:
        spec = source_spec(data_dir, job)
        control.check()
        with open_source(spec) as source:
            folders = source.folders()
            control.check()
            if resume is not None and not resume.fits(folders):  # checkpoints dropped below
                raise ResumeMismatch("the mailbox's folders changed since the uploaded parts were written")
            phases.mark("listing")
            dest = prep.destination()
            phases.mark("role wait")
            stream = getattr(dest, "stream_part", None)  # the embedded S3 takes parts as filled
            uploader = PartUploader(
                lambda n, data: dest.upload_part(key, prep.upload_id(), n, data),
                in_flight=settings.parts_in_flight,
                name=f"export-{job.job_id[:8]}",
                stream_part=(lambda n, frames: stream(key, prep.upload_id(), n, frames)) if stream else None,
                resume=Resume(resume.parts, resume.etags, resume.hash_state) if resume else None,
            )
            if resume is not None:
                at = (resume.parts, resume.end, resume.position.offset, resume.tail_crc)
                sink = uploader.sink(resume.part_size, resume=at)
                log.info(
                    "job %s: resuming after part %d (%d bytes, %d items)",
                    job.job_id,
                    resume.parts,
                    resume.end,
                    resume.position.items_done,
                )
            else:
                sink = uploader.sink(settings.stream_part_size if stream else settings.part_size)
            if settings.resumable:
                checkpointer = Checkpointer(
                    lambda row: checkpoints.save(data_dir.db, job.job_id, worker_id, prep.upload_id(), row),
                    uploader=uploader,
                    filler=sink,
                    folders=folders,
                    start=resume,
                )
            header = ManifestHeader(
                job_id=job.job_id,
                organization_id=job.organization_id,
                entity_id=job.entity_id,
                start_time=job.start_time,
            )
            figures = write_archive(
                source,
                sink.write,
                header=header,
                progress=monitor.progress,
                should_stop=should_stop,
                compresslevel=settings.compresslevel,
                zip64_limit=settings.zip64_limit,
                folders=folders,
                resume=resume,
                checkpointer=checkpointer,
            )
            upload_id = prep.upload_id()
            sink.close()
            phases.mark("archive")
            try:
                etags = uploader.finish()
            except UploadStopped:
                control.check()
                raise
            phases.mark("last part")
            control.check()
            dest.check_not_public(again=True)  # made public mid-job: FAILED, upload aborted, no zip
            export_log = (
                ExportLog(
                    total_messages=figures.total_messages,
                    total_folders=figures.total_folders,
                    total_bytes=figures.total_bytes,
                    total_non_exportable_items=figures.total_non_exportable_items,
                    sha384_hash=uploader.sha384_hex(),
                    start_time_ms=epoch_ms(job.start_time),
                    end_time_ms=epoch_ms(utcnow()),
                )
                .to_json()
                .decode()
            )
            if not store.record_commit(data_dir.db, job.job_id, worker_id, upload_id, etags, export_log):
                raise StopExport()
            phases.mark("commit")
    except BaseException as exc:
        if uploader is not None:
            uploader.cancel()
        if isinstance(exc, ResumeMismatch):
            checkpoints.drop(data_dir.db, job.job_id)
        # Kept for the next attempt to resume: after a transient fault, or when the server stops
        # (the job is released and taken up again at once), if there is a checkpoint to resume.
        again = isinstance(exc, (TransientExportError, TransientSourceError)) or (
            isinstance(exc, StopExport) and control.stopping.is_set() and not control.lost.is_set()
        )
        kept = (checkpointer is not None and checkpointer.saved > 0) or resume is not None
        failure = prep.settle(resumable=again and kept and not isinstance(exc, ResumeMismatch))
        if failure is not None and failure is not exc:
            raise failure from exc
        raise
    phases.add(prep.seconds)
    commit = store.Commit(upload_id, etags, export_log)
    done = _publish(dest, job, worker_id, settings, commit, data_dir, monitor, phases)
    log.info(
        "job %s completed: %d items, %d bytes in a %d-byte zip (%s)",
        job.job_id,
        figures.total_messages,
        figures.total_bytes,
        figures.archive_bytes,
        phases,
    )
    return State.COMPLETED if done else None


def _resume_point(db: Any, job: ExportJob, settings: ExportSettings) -> ResumePoint | None:
    """Where this attempt continues the job's upload, if an earlier attempt left checkpoints of
    it and the destination keeps an upload across attempts (the embedded S3, whose write guard
    lets only the attempt holding the job write to it)."""
    if not settings.resumable or not job.upload_id:
        return None
    point = load_checkpoint(db, job.job_id, job.upload_id)
    if point is None:
        checkpoints.drop(db, job.job_id)
    return point


def _finish_commit(
    context: ServiceContext,
    job: ExportJob,
    worker_id: str,
    settings: ExportSettings,
    control: JobControl,
    monitor: _Monitor,
    commit: store.Commit,
) -> State | None:
    """An earlier attempt recorded its commit and then stopped (crashed, stalled past its lease,
    or met a transient fault while publishing): publish exactly that commit, the same zip and
    the same log, instead of exporting again. Its upload is never aborted meanwhile (see
    :func:`~mailcrate.jobs.store.guard_attempt_writes`), so it completes now, or completed
    already."""
    control.check()
    phases = _Phases(job)
    dest = open_for_job(job, context, settings, attempt=worker_id)
    phases.mark("role")
    done = _publish(
        dest, job, worker_id, settings, commit, context.data_dir, monitor, phases, later_attempt=True
    )
    log.info("job %s completed by publishing an earlier attempt's commit (%s)", job.job_id, phases)
    return State.COMPLETED if done else None


def _completed_before(exc: ExportError, later_attempt: bool) -> bool:
    """Whether a Complete refused as NoSuchUpload means the committed upload was completed
    already. It is never aborted while its job runs (the write guard on the embedded S3; for an
    external S3 only the sweeper of FAILED and CANCELLED jobs aborts, and a job with a commit
    cannot be cancelled), so it does when a Complete reached S3 before: this is a later
    attempt publishing an earlier one's commit, or botocore's retry of a Complete whose answer
    was lost (AWS answers such a repeat with 200, moto and others with NoSuchUpload). A first
    Complete refused so is a failure (someone aborted the upload by hand)."""
    cause = exc.__cause__
    if cause is None or error_code(cause) != "NoSuchUpload":
        return False
    retried = getattr(cause, "response", {}).get("ResponseMetadata", {}).get("RetryAttempts", 0)
    return later_attempt or retried > 0


def _publish(
    dest: Any,
    job: ExportJob,
    worker_id: str,
    settings: ExportSettings,
    commit: store.Commit,
    data_dir: Any,
    monitor: _Monitor,
    phases: _Phases,
    *,
    later_attempt: bool = False,
) -> bool:
    """Complete the committed upload, then store the log, then mark the job COMPLETED. The log
    is written only once its zip exists (a log never stands without its zip), and both are the
    recorded commit's bytes whoever writes them: the committing attempt, a later attempt
    finishing its commit, or a late request of a stalled one. Nothing is deleted here but a zip
    this call completed itself when its log cannot be stored, and on the embedded S3 only while
    this attempt still holds the job (the write guard)."""
    key = job.s3_path
    log_key = export_log_key(job.s3_prefix, job.job_id)
    completed_here = False
    try:
        dest.complete_upload(key, commit.upload_id, commit.etags)
        completed_here = True
    except ExportError as exc:
        if not _completed_before(exc, later_attempt):
            raise
    phases.mark("complete")
    try:
        _retrying(lambda: dest.put_object(log_key, commit.export_log.encode(), "application/json"), settings)
    except ExportError as exc:
        if completed_here and not isinstance(exc, TransientExportError):
            dest.delete_object(key)  # the zip without its log is not an export
        raise
    phases.mark("log")
    published = ExportLog.parse(commit.export_log)
    done = store.complete(
        data_dir.db,
        job.job_id,
        worker_id,
        items_total=monitor.progress.items_total or published.total_messages,
        items_done=published.total_messages,
        bytes_done=published.total_bytes,
    )
    phases.mark("state")
    return done


class _Phases:
    """Seconds per phase of one attempt, for the "job completed" log line: what a small export's
    time goes to (the fixed cost per job), starting with the wait from Start to this attempt."""

    def __init__(self, job: ExportJob) -> None:
        self.waited = max(0.0, (utcnow() - job.start_time).total_seconds())
        self._last = time.perf_counter()
        self._marks: list[tuple[str, float]] = []

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self._marks.append((name, now - self._last))
        self._last = now

    def add(self, side: dict[str, float]) -> None:
        """Phases that ran beside the others (the preparation): shown, not summed."""
        self._side = side

    def __str__(self) -> str:
        total = sum(seconds for _, seconds in self._marks)
        parts = ", ".join(f"{name} {seconds:.3f}" for name, seconds in self._marks)
        side = ", ".join(f"{name} {seconds:.3f}" for name, seconds in getattr(self, "_side", {}).items())
        return f"start to pick-up {self.waited:.3f} s, attempt {total:.3f} s: {parts} (beside them: {side})"


def _retrying(action: Any, settings: ExportSettings) -> None:
    for attempt in range(settings.transient_retries + 1):
        try:
            action()
            return
        except TransientExportError:
            if attempt == settings.transient_retries:
                raise
            time.sleep(settings.retry_base_seconds * (2**attempt))
