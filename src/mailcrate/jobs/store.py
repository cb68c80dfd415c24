"""Export jobs in the database: creation with limits and idempotency, queries, cancel, and the
worker side (claim, lease heartbeats, finish).

Portable SQL only, so many ``serve``/worker processes may share one PostgreSQL database:

* A claim is ``UPDATE ... WHERE job_id = :id AND state = 'RUNNING' AND (lease free or
  expired)``; the row count tells whether this worker won (another worker's concurrent claim
  matches zero rows once the first commits). No ``SELECT ... FOR UPDATE`` needed.
* Every later write of a worker is conditioned on ``lease_owner = :me AND state = 'RUNNING'``:
  a worker that lost its lease (it stalled past the expiry and another reclaimed the job) or
  whose job was cancelled cannot overwrite anything, and learns so from the row count.
* Start serializes per organization: the WorkMail handler locks the organization's row
  (:func:`mailcrate.services.workmail.organizations.lock`) in the transaction that calls
  :func:`create`, before the limit counts are read, so two concurrent Starts cannot both see
  room for the 10th job.
"""

from __future__ import annotations

import hashlib
import json
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, delete, func, insert, or_, select, update

from mailcrate.audit import jobs as audit
from mailcrate.jobs.control import StopExport
from mailcrate.jobs.limits import Limits
from mailcrate.jobs.metrics import job_metrics
from mailcrate.jobs.records import ExportJob, State, clip_error, export_zip_key
from mailcrate.services.pagination import decode_token, encode_token
from mailcrate.storage.db import Database, as_utc, utcnow
from mailcrate.storage.tables import users
from mailcrate.storage.tables_jobs import export_checkpoints
from mailcrate.storage.tables_jobs import export_jobs as jobs

__all__ = [
    "CancelOutcome",
    "Commit",
    "JobConflict",
    "JobLimitExceeded",
    "JobNotFound",
    "StartRequest",
    "Superseded",
    "cancel",
    "claim",
    "commit_of",
    "create",
    "describe_row",
    "get",
    "guard_attempt_writes",
    "heartbeat",
    "page",
    "record_commit",
]


class JobNotFound(LookupError):
    """No such job in this organization."""


class JobConflict(ValueError):
    """The request contradicts the job's state or an earlier request with the same token."""


class JobLimitExceeded(Exception):
    """One of the limits of :class:`~mailcrate.jobs.limits.Limits` forbids the job."""


@dataclass(frozen=True, slots=True)
class StartRequest:
    account_id: str
    region: str
    organization_id: str
    entity_id: str  # the user id (already resolved from id, name or email)
    role_arn: str
    kms_key_arn: str
    s3_bucket_name: str
    s3_prefix: str
    description: str | None = None
    client_token: str | None = None

    def digest(self) -> str:
        """What "the same arguments" means for ClientToken idempotency."""
        args = [
            self.entity_id,
            self.description or "",
            self.role_arn,
            self.kms_key_arn,
            self.s3_bucket_name,
            self.s3_prefix,
        ]
        return hashlib.sha256(json.dumps(args).encode()).hexdigest()


def _one(conn: Connection, *where: Any) -> ExportJob | None:
    row = conn.execute(select(jobs).where(*where)).first()
    return None if row is None else ExportJob.from_row(row)


def create(
    conn: Connection, request: StartRequest, limits: Limits, *, now: datetime | None = None
) -> tuple[ExportJob, bool]:
    """Create a RUNNING job, or return the job an earlier Start with the same token created.

    Returns ``(job, created)``. Raises :class:`JobConflict` when the token was used with other
    arguments and :class:`JobLimitExceeded` when a limit forbids a new job. Call it inside the
    transaction that took :func:`lock_organization`.
    """
    now = now or utcnow()
    digest = request.digest()
    if request.client_token:
        earlier = _one(
            conn,
            jobs.c.organization_id == request.organization_id,
            jobs.c.client_token == request.client_token,
        )
        if earlier is not None:
            if earlier.request_digest != digest:
                raise JobConflict(
                    f"ClientToken {request.client_token} was already used to start job "
                    f"{earlier.job_id} with different parameters."
                )
            return earlier, False
    running = conn.execute(
        select(func.count())
        .select_from(jobs)
        .where(jobs.c.organization_id == request.organization_id, jobs.c.state == State.RUNNING.value)
    ).scalar_one()
    if running >= limits.max_running_per_org:
        raise JobLimitExceeded(
            f"The organization already has {running} mailbox export jobs running; at most "
            f"{limits.max_running_per_org} may run at once. Wait for one to finish or cancel one."
        )
    recent = conn.execute(
        select(jobs.c.job_id, jobs.c.start_time)
        .where(
            jobs.c.organization_id == request.organization_id,
            jobs.c.entity_id == request.entity_id,
            jobs.c.state.in_([State.RUNNING.value, State.COMPLETED.value]),
            jobs.c.start_time > now - limits.mailbox_interval,
        )
        .limit(1)
    ).first()
    if recent is not None:
        hours = limits.mailbox_interval.total_seconds() / 3600
        raise JobLimitExceeded(
            f"Mailbox {request.entity_id} was already exported within the last {hours:g} hours "
            f"(job {recent.job_id}); one export per mailbox is allowed in that interval."
        )
    job_id = str(uuid.uuid4())
    values = {
        "job_id": job_id,
        "account_id": request.account_id,
        "region": request.region,
        "organization_id": request.organization_id,
        "entity_id": request.entity_id,
        "description": request.description,
        "role_arn": request.role_arn,
        "kms_key_arn": request.kms_key_arn,
        "s3_bucket_name": request.s3_bucket_name,
        "s3_prefix": request.s3_prefix,
        "s3_path": export_zip_key(request.s3_prefix, job_id),
        "state": State.RUNNING.value,
        "estimated_progress": 0,
        "error_info": None,
        "start_time": now,
        "end_time": None,
        "client_token": request.client_token,
        "request_digest": digest,
        "cancel_token": None,
        "lease_owner": None,
        "lease_expires_at": None,
        "attempts": 0,
        "finishing": False,
        "upload_id": None,
        "items_total": None,
        "items_done": None,
        "bytes_done": None,
        "abort_attempts": 0,
        "abort_retry_at": None,
        "fence": 0,
        "commit_upload": None,
        "commit_parts": None,
        "commit_log": None,
    }
    conn.execute(insert(jobs).values(**values))
    # The row as inserted (every column given), not read back: one statement less inside the
    # organization's lock, which concurrent Starts of the organization queue on.
    return ExportJob.from_row([values[column.name] for column in jobs.columns]), True


def get(conn: Connection, organization_id: str, job_id: str) -> ExportJob:
    job = _one(conn, jobs.c.organization_id == organization_id, jobs.c.job_id == job_id)
    if job is None:
        raise JobNotFound(job_id)
    return job


def get_by_id(conn: Connection, job_id: str) -> ExportJob | None:
    return _one(conn, jobs.c.job_id == job_id)


# The API's read paths (DescribeMailboxExportJob, ListMailboxExportJobs) fetch only the columns
# their responses show, with statements built once: with 100,000 jobs, building the statement,
# fetching all 27 columns and turning each row into an ExportJob cost more than the query.
#: Columns of :func:`describe_row`, in this order.
DESCRIBE_COLUMNS = (
    jobs.c.entity_id,
    jobs.c.description,
    jobs.c.role_arn,
    jobs.c.kms_key_arn,
    jobs.c.s3_bucket_name,
    jobs.c.s3_prefix,
    jobs.c.s3_path,
    jobs.c.estimated_progress,
    jobs.c.state,
    jobs.c.error_info,
    jobs.c.start_time,
    jobs.c.end_time,
)
#: Columns of the rows :func:`page` returns, in this order.
SUMMARY_COLUMNS = (
    jobs.c.job_id,
    jobs.c.entity_id,
    jobs.c.description,
    jobs.c.s3_bucket_name,
    jobs.c.s3_path,
    jobs.c.estimated_progress,
    jobs.c.state,
    jobs.c.start_time,
    jobs.c.end_time,
)
_DESCRIBE = select(*DESCRIBE_COLUMNS).where(
    jobs.c.organization_id == bindparam("organization_id"), jobs.c.job_id == bindparam("job_id")
)
# Keyset pages, newest first: (start_time, job_id) below the previous page's last row. The index
# (organization_id, start_time, job_id) serves both without a sort.
_PAGE_WHERE = (
    jobs.c.organization_id == bindparam("organization_id"),
    jobs.c.start_time >= bindparam("since", type_=jobs.c.start_time.type),
)
_PAGE_ORDER = (jobs.c.start_time.desc(), jobs.c.job_id.desc())
_FIRST_PAGE = select(*SUMMARY_COLUMNS).where(*_PAGE_WHERE).order_by(*_PAGE_ORDER).limit(bindparam("n"))
_AFTER_TIME = bindparam("after_time", type_=jobs.c.start_time.type)
_NEXT_PAGE = (
    select(*SUMMARY_COLUMNS)
    .where(
        *_PAGE_WHERE,
        or_(
            jobs.c.start_time < _AFTER_TIME,
            and_(jobs.c.start_time == _AFTER_TIME, jobs.c.job_id < bindparam("after_id")),
        ),
    )
    .order_by(*_PAGE_ORDER)
    .limit(bindparam("n"))
)


def describe_row(conn: Connection, organization_id: str, job_id: str) -> Row[Any]:
    """The :data:`DESCRIBE_COLUMNS` of one job; :class:`JobNotFound` if the organization has none."""
    row = conn.execute(_DESCRIBE, {"organization_id": organization_id, "job_id": job_id}).first()
    if row is None:
        raise JobNotFound(job_id)
    return row


def page(
    conn: Connection,
    organization_id: str,
    limits: Limits,
    max_results: int,
    next_token: str | None,
    *,
    now: datetime | None = None,
) -> tuple[list[Row[Any]], str | None]:
    """Jobs started within the list window, newest first, keyset-paginated: rows of
    :data:`SUMMARY_COLUMNS` and the next page's token (the tokens of
    :mod:`mailcrate.services.pagination`).

    Raises :class:`ValueError` for a token this listing did not issue.
    """
    scope = f"export-jobs:{organization_id}"
    params: dict[str, Any] = {
        "organization_id": organization_id,
        "since": (now or utcnow()) - limits.list_window,
        "n": max_results + 1,
    }
    statement = _FIRST_PAGE
    if next_token is not None:
        key = decode_token(scope, next_token)
        if key is None or len(key) != 2 or not isinstance(key[1], str):
            raise ValueError("NextToken is not valid for this listing")
        try:
            params["after_time"] = datetime.fromisoformat(key[0])
        except (TypeError, ValueError):
            raise ValueError("NextToken is not valid for this listing") from None
        params["after_id"] = key[1]
        statement = _NEXT_PAGE
    rows = conn.execute(statement, params).all()
    token = None
    if len(rows) > max_results:
        last = rows[max_results - 1]
        token = encode_token(scope, [last.start_time.isoformat(), last.job_id])
    return rows[:max_results], token


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    job: ExportJob
    changed: bool  # False: a repeat of an earlier cancel, or a job already finishing


def cancel(
    conn: Connection,
    organization_id: str,
    job_id: str,
    client_token: str | None,
    *,
    now: datetime | None = None,
) -> CancelOutcome:
    """Move a RUNNING job to CANCELLED; its worker notices and aborts the upload.

    A job that is already *finishing* (its zip is being completed) is left to complete; the call
    succeeds without effect. Repeating a cancel with the same ClientToken succeeds; cancelling
    a job that already ended otherwise raises :class:`JobConflict`.
    """
    now = now or utcnow()
    job = get(conn, organization_id, job_id)
    result = conn.execute(
        update(jobs)
        .where(jobs.c.job_id == job_id, jobs.c.state == State.RUNNING.value, jobs.c.finishing.is_(False))
        .values(state=State.CANCELLED.value, end_time=now, cancel_token=client_token)
    )
    if result.rowcount == 1:
        drop_checkpoints_in(conn, job_id)
        _observe_end(conn, job_id, State.CANCELLED, {})
        return CancelOutcome(get(conn, organization_id, job_id), True)
    job = get(conn, organization_id, job_id)
    if job.state is State.RUNNING:  # finishing: it may still complete
        return CancelOutcome(job, False)
    if job.state is State.CANCELLED and client_token and job.cancel_token == client_token:
        return CancelOutcome(job, False)
    raise JobConflict(f"Job {job_id} is not running (it is {job.state.value}); it cannot be cancelled.")


# --------------------------------------------------------------------------- worker side


def claim(
    db: Database, worker_id: str, lease: timedelta, *, max_attempts: int = 3, node_id: str | None = None
) -> ExportJob | None:
    """Take one RUNNING job that no live worker holds (new, or its worker's lease expired).

    Each claim raises the job's fencing token (``fence``) and the attempt owns the job as
    ``<worker_id>#<fence>`` (the returned job's ``lease_owner``, which the attempt passes as
    its ``worker_id`` to every later call here): an attempt that stalled past its lease changes
    nothing once another attempt took the job, even when both run in one worker.
    A job with a recorded commit (:func:`record_commit`) stays *finishing*: the new attempt
    publishes that commit instead of exporting again, and a cancel cannot stop it.

    A job reclaimed ``max_attempts`` times without finishing is failed as interrupted instead.
    Leases are on the database's clock (:meth:`Database.clock`), never this machine's. With
    ``node_id`` (the claiming worker's data directory), jobs whose embedded mailbox another
    node's data directory holds are left to that node.
    """
    now = utcnow()
    free = _waiting(db, node_id)
    with db.read() as conn:
        candidates = conn.execute(
            select(jobs.c.job_id, jobs.c.attempts, jobs.c.start_time, jobs.c.lease_expires_at, jobs.c.fence)
            .where(free)
            .order_by(jobs.c.start_time)
            .limit(8)
        ).all()
    for job_id, attempts, start_time, lease_expired, fence in candidates:
        with db.begin() as conn:
            if attempts >= max_attempts:
                given_up = conn.execute(
                    update(jobs)
                    .where(jobs.c.job_id == job_id, free)
                    .values(
                        state=State.FAILED.value,
                        end_time=now,
                        lease_owner=None,
                        error_info=clip_error(
                            f"The export was interrupted {attempts} times (the exporting server stopped "
                            "or lost its lease) and was given up. Start a new export job."
                        ),
                    )
                ).rowcount
                if given_up == 1:
                    drop_checkpoints_in(conn, job_id)
                    _observe_end(conn, job_id, State.FAILED, {})
                    audit.job_event(conn, job_id, audit.FAILED, error_code="Interrupted")
                continue
            won = conn.execute(
                update(jobs)
                .where(jobs.c.job_id == job_id, jobs.c.fence == fence, free)
                .values(
                    lease_owner=f"{worker_id}#{fence + 1}",
                    lease_expires_at=db.clock(lease),
                    attempts=jobs.c.attempts + 1,
                    fence=fence + 1,
                    finishing=jobs.c.commit_upload.is_not(None),
                )
            ).rowcount
            if won == 1:
                audit.job_event(conn, job_id, audit.CLAIMED, details={"workerId": worker_id})
                claimed = _one(conn, jobs.c.job_id == job_id)
            else:
                continue
        if (metrics := job_metrics()) is not None:  # waiting since its start, or its lease's expiry
            metrics.claimed((now - as_utc(lease_expired or start_time)).total_seconds())  # type: ignore[operator]
        return claimed
    return None


def _waiting(db: Database, node_id: str | None = None) -> Any:
    """RUNNING jobs that no live worker holds: new, released, or their worker's lease expired;
    with ``node_id``, only those that node can export (see :func:`_held_elsewhere`)."""
    waiting = and_(
        jobs.c.state == State.RUNNING.value,
        or_(jobs.c.lease_owner.is_(None), jobs.c.lease_expires_at < db.clock()),
    )
    return waiting if node_id is None else and_(waiting, ~_held_elsewhere(node_id))


def _held_elsewhere(node_id: str) -> Any:
    """The job's mailbox is embedded (no bound source) and its mail is in another node's data
    directory: exported there, or a node with an empty copy would export nothing."""
    return (
        select(users.c.user_id)
        .where(
            users.c.organization_id == jobs.c.organization_id,
            users.c.user_id == jobs.c.entity_id,
            users.c.source_sealed.is_(None),
            users.c.mailbox_node.is_not(None),
            users.c.mailbox_node != node_id,
        )
        .exists()
    )


def oldest_waiting_since(db: Database, node_id: str | None = None) -> datetime | None:
    """The StartTime of the oldest job waiting for a worker (see :func:`claim`), or None.

    ``serve`` asks this to decide whether another worker process should start: a job that is
    still unclaimed a moment after its start found every worker busy."""
    with db.read() as conn:
        since = conn.execute(select(func.min(jobs.c.start_time)).where(_waiting(db, node_id))).scalar()
    return as_utc(since)


def _mine(job_id: str, worker_id: str) -> Any:
    """The job, while it is RUNNING and held by the attempt ``worker_id``."""
    return and_(jobs.c.job_id == job_id, jobs.c.lease_owner == worker_id, jobs.c.state == State.RUNNING.value)


held_by = _mine


def drop_checkpoints_in(conn: Connection, job_id: str) -> None:
    """Remove the job's resume checkpoints (:mod:`mailcrate.jobs.checkpoints`) in the caller's
    transaction: once the job committed or ended, no attempt resumes it."""
    conn.execute(delete(export_checkpoints).where(export_checkpoints.c.job_id == job_id))


def heartbeat(db: Database, job_id: str, worker_id: str, lease: timedelta, **figures: Any) -> bool:
    """Renew the lease and store progress figures; False when the job is no longer this
    worker's to run (cancelled, or the lease was lost)."""
    values: dict[str, Any] = {"lease_expires_at": db.clock(lease)}
    values.update({k: v for k, v in figures.items() if v is not None and k != "estimated_progress"})
    progress = figures.get("estimated_progress")
    with db.begin() as conn:
        where = _mine(job_id, worker_id)
        if progress is not None:
            # Only ever raised, and below 100 until COMPLETED (a restarted attempt counts from 0).
            progress = max(0, min(int(progress), 99))
            conn.execute(
                update(jobs)
                .where(where, jobs.c.estimated_progress < progress)
                .values(estimated_progress=progress)
            )
        return conn.execute(update(jobs).where(where).values(**values)).rowcount == 1


def set_upload(db: Database, job_id: str, worker_id: str, upload_id: str | None) -> bool:
    with db.begin() as conn:
        return (
            conn.execute(update(jobs).where(_mine(job_id, worker_id)).values(upload_id=upload_id)).rowcount
            == 1
        )


def record_commit(
    db: Database, job_id: str, worker_id: str, upload_id: str, etags: list[str], export_log: str
) -> bool:
    """Before the zip and the log are published: record what they will be (the upload, its
    parts' ETags, the log's text). Only the attempt holding the job, and only once per job;
    from here on a cancel no longer stops the job, and any later attempt publishes exactly this
    (:func:`commit_of`) instead of exporting again. False when the job is no longer this
    attempt's (cancelled, or the lease was lost)."""
    with db.begin() as conn:
        recorded = (
            conn.execute(
                update(jobs)
                .where(_mine(job_id, worker_id), jobs.c.commit_upload.is_(None))
                .values(
                    finishing=True,
                    upload_id=upload_id,
                    commit_upload=upload_id,
                    commit_parts=json.dumps(etags),
                    commit_log=export_log,
                )
            ).rowcount
            == 1
        )
        if recorded:
            drop_checkpoints_in(conn, job_id)
        return recorded


@dataclass(frozen=True, slots=True)
class Commit:
    """What a job's zip and log are to be, once an attempt recorded it (:func:`record_commit`)."""

    upload_id: str
    etags: list[str]
    export_log: str


def commit_of(job: ExportJob) -> Commit | None:
    if job.commit_upload is None or job.commit_parts is None or job.commit_log is None:
        return None
    return Commit(job.commit_upload, json.loads(job.commit_parts), job.commit_log)


class Superseded(StopExport):
    """A write of an attempt that no longer holds its job (another attempt took it over, or the
    job ended): refused where it would have landed."""


def guard_attempt_writes(job_id: str, worker_id: str) -> Callable[[Connection, str, dict[str, Any]], None]:
    """The fencing check the embedded S3 runs in the transaction that commits each write of an
    export attempt (``invoke(..., write_guard=...)``): the write lands only while the job is
    RUNNING and held by this attempt (``worker_id`` is the attempt's ``<worker>#<fence>``). An
    abort is the exception: it never removes the job's committed upload (which a later attempt
    may be completing) nor, unless this attempt holds the job, the upload the running job
    records (which a later attempt resumes), and otherwise it is always allowed (a superseded attempt cleaning up
    its own upload harms nobody)."""
    held = select(jobs.c.job_id).where(_mine(job_id, worker_id))
    uploads = select(jobs.c.commit_upload, jobs.c.upload_id, jobs.c.lease_owner, jobs.c.state).where(
        jobs.c.job_id == job_id
    )

    def guard(conn: Connection, operation: str, params: dict[str, Any]) -> None:
        if operation == "AbortMultipartUpload":
            row = conn.execute(uploads).first()
            if row is None:
                return
            upload_id = params.get("UploadId")
            if row.commit_upload == upload_id:
                raise Superseded()
            # The upload the job records while it runs may be a later attempt's to resume
            # (mailcrate.export.checkpoint): only the attempt holding the job aborts it.
            running = row.state == State.RUNNING.value
            if running and row.upload_id == upload_id and row.lease_owner != worker_id:
                raise Superseded()
            return
        if conn.execute(held).first() is None:
            raise Superseded()

    return guard


def _finish(db: Database, job_id: str, worker_id: str, state: State, **values: Any) -> bool:
    """End a job this worker holds: final state, end time, lease cleared; its audit event
    commits with it. The upload id stays unless ``values`` clears it: a failed job's upload is
    forgotten only once it is aborted (:func:`forget_upload`), else the sweeper aborts it later
    (:func:`uploads_to_abort`)."""
    with db.begin() as conn:
        done = (
            conn.execute(
                update(jobs)
                .where(_mine(job_id, worker_id))
                .values(
                    state=state.value,
                    end_time=utcnow(),
                    lease_owner=None,
                    lease_expires_at=None,
                    **values,
                )
            ).rowcount
            == 1
        )
        if done:
            drop_checkpoints_in(conn, job_id)
            _observe_end(conn, job_id, state, values)
            failed = state is State.FAILED
            audit.job_event(
                conn,
                job_id,
                audit.FAILED if failed else audit.COMPLETED,
                error_code="ExportFailed" if failed else None,
                error_message=values.get("error_info"),
                details={"workerId": worker_id}
                | {k: values[k] for k in ("items_done", "bytes_done") if values.get(k) is not None},
            )
        return done


def _observe_end(conn: Connection, job_id: str, state: State, values: dict[str, Any]) -> None:
    metrics = job_metrics()
    if metrics is None:
        return
    row = conn.execute(select(jobs.c.start_time, jobs.c.end_time).where(jobs.c.job_id == job_id)).first()
    if row is not None:
        seconds = (as_utc(row.end_time) - as_utc(row.start_time)).total_seconds()  # type: ignore[operator]
        metrics.ended(state.value, seconds, values.get("items_done"), values.get("bytes_done"))


def complete(db: Database, job_id: str, worker_id: str, **figures: Any) -> bool:
    return _finish(db, job_id, worker_id, State.COMPLETED, estimated_progress=100, upload_id=None, **figures)


def fail(db: Database, job_id: str, worker_id: str, error_info: str) -> bool:
    return _finish(db, job_id, worker_id, State.FAILED, error_info=clip_error(error_info))


def release(db: Database, job_id: str, worker_id: str) -> None:
    """Give a job back (server shutting down): another worker, or this one after restart,
    takes it up again at once instead of waiting for the lease to expire."""
    with db.begin() as conn:
        conn.execute(
            update(jobs)
            .where(_mine(job_id, worker_id))
            .values(lease_owner=None, lease_expires_at=None, attempts=jobs.c.attempts - 1)
        )


def pool_id_prefix(pid: int) -> str:
    """What the lease owners of a worker process of this host start with (its pool id is
    ``<host>-<pid>-<random>``, see :class:`mailcrate.jobs.worker.WorkerPool`)."""
    return f"{socket.gethostname()}-{pid}-"


def release_dead_process(db: Database, pid: int) -> int:
    """A worker process of this host ended (killed, crashed): its jobs' leases end now rather than
    when they run out, so another worker takes them up at once (and resumes them from their
    checkpoints). Safe while a late request of the dead process is still on the wire: the next
    claim raises the fence, and the write guard refuses what the dead attempt sends. Returns the
    number of jobs released."""
    with db.begin() as conn:
        return conn.execute(
            update(jobs)
            .where(
                jobs.c.state == State.RUNNING.value,
                jobs.c.lease_owner.startswith(pool_id_prefix(pid), autoescape=True),
            )
            .values(lease_expires_at=db.clock(-timedelta(seconds=1)))  # expired, as claim sees it
        ).rowcount


def get_by_id_db(db: Database, job_id: str) -> ExportJob | None:
    with db.read() as conn:
        return get_by_id(conn, job_id)


def clear_upload_if_final(db: Database, job_id: str) -> None:
    """After the worker of a cancelled job stopped: forget its lease. Its upload id stays until
    the upload is aborted (:func:`forget_upload`, or the sweeper)."""
    with db.begin() as conn:
        conn.execute(
            update(jobs)
            .where(jobs.c.job_id == job_id, jobs.c.state != State.RUNNING.value)
            .values(lease_owner=None, lease_expires_at=None)
        )


def forget_upload(db: Database, job_id: str, upload_id: str) -> None:
    """The multipart upload ``upload_id`` of the job is gone (aborted, or S3 no longer knows
    it): stop recording it. Conditional on the id, so a newer upload of the job stays."""
    with db.begin() as conn:
        conn.execute(
            update(jobs)
            .where(jobs.c.job_id == job_id, jobs.c.upload_id == upload_id)
            .values(upload_id=None, abort_retry_at=None)
        )


def keep_upload(db: Database, job_id: str, upload_id: str) -> None:
    """An upload of the job that could not be aborted: record it (unless the job already
    records one), whatever state the job is in, so that it is aborted later."""
    with db.begin() as conn:
        conn.execute(
            update(jobs)
            .where(jobs.c.job_id == job_id, jobs.c.upload_id.is_(None))
            .values(upload_id=upload_id)
        )


#: The longest wait between two tries of one upload's abort.
MAX_ABORT_BACKOFF_SECONDS = 3600


def uploads_to_abort(db: Database, *, first_retry_seconds: float = 30, limit: int = 10) -> list[ExportJob]:
    """FAILED or CANCELLED jobs whose multipart upload could not be aborted, due for another
    try. Each returned job is taken for this caller: its next try is pushed back (doubling) in
    the same statement, so sweepers in several processes do not try one upload at once."""
    due = and_(
        jobs.c.state.in_((State.FAILED.value, State.CANCELLED.value)),
        jobs.c.upload_id.is_not(None),
        or_(jobs.c.abort_retry_at.is_(None), jobs.c.abort_retry_at < db.clock()),
    )
    with db.read() as conn:
        candidates = conn.execute(
            select(jobs.c.job_id, jobs.c.abort_attempts).where(due).order_by(jobs.c.end_time).limit(limit)
        ).all()
    taken = []
    for job_id, tries in candidates:
        wait = timedelta(seconds=min(MAX_ABORT_BACKOFF_SECONDS, first_retry_seconds * 2 ** min(tries, 16)))
        with db.begin() as conn:
            won = conn.execute(
                update(jobs)
                .where(jobs.c.job_id == job_id, due)
                .values(abort_attempts=jobs.c.abort_attempts + 1, abort_retry_at=db.clock(wait))
            ).rowcount
            if won == 1:
                job = _one(conn, jobs.c.job_id == job_id)
                if job is not None:
                    taken.append(job)
    return taken
