"""One user's export job within WorkMail's rules: reuse, start with backoff, wait.

* One export per mailbox per 24 hours: a COMPLETED (or RUNNING) job of the user from the last
  24 hours is used instead of starting one (listed by ListMailboxExportJobs). A ``--delta``
  wants an export newer than the one already restored; when WorkMail refuses it for the
  24-hour rule the user is ``waiting``, with the time it becomes possible.
* At most 10 jobs run at once per organization (counting jobs others started): a
  ``LimitExceededException`` for that, or throttling, is retried with exponential backoff and
  jitter. Each start carries a ClientToken derived from the migration, the user and the round,
  so a start whose answer was lost (a crash, a dropped connection) does not start a second job.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from mailcrate.admin.aws import AwsTarget, error_code
from mailcrate.admin.errors import AdminError
from mailcrate.admin.jobs import describe_job, list_jobs, start_job

__all__ = ["WINDOW", "ExportSettings", "NotYet", "find_recent", "obtain_job", "wait_for"]

#: WorkMail's per-mailbox interval (StartMailboxExportJob: "each mailbox once per 24 hours").
WINDOW = timedelta(hours=24)
_RETRY_CODES = frozenset(
    {"LimitExceededException", "ThrottlingException", "TooManyRequestsException", "Throttling"}
)


@dataclass(frozen=True)
class ExportSettings:
    organization_id: str
    bucket: str
    prefix: str
    kms_key_arn: str
    role_arn: str
    migration_id: str
    backoff_first: float = 1.0
    backoff_max: float = 60.0
    poll_first: float = 0.1
    poll_growth: float = 1.1
    poll_max: float = 15.0


class NotYet(Exception):
    """A delta export WorkMail does not allow yet (the 24-hour rule); ``after``: when it will."""

    def __init__(self, after: datetime, job_id: str) -> None:
        super().__init__(f"exported at most once per 24 hours: possible after {after:%Y-%m-%d %H:%M} UTC")
        self.after = after
        self.job_id = job_id


def find_recent(
    target: AwsTarget,
    organization_id: str,
    entity_id: str,
    *,
    newer_than: datetime | None = None,
    known: list[dict[str, Any]] | None = None,
    client: Any = None,
) -> dict[str, Any] | None:
    """The user's newest RUNNING or COMPLETED job that started within the last 24 hours (and
    after ``newer_than``), or None. ``known``: the organization's jobs, listed once for many
    users (else listed here: all pages)."""
    now = datetime.now(UTC)
    best: dict[str, Any] | None = None
    for job in known if known is not None else list_jobs(target, organization_id, client):
        start = job.get("StartTime")
        if job.get("EntityId") != entity_id or job.get("State") not in ("RUNNING", "COMPLETED"):
            continue
        if not isinstance(start, datetime) or now - start > WINDOW:
            continue
        if newer_than is not None and start <= newer_than:
            continue
        if best is None or start > best["StartTime"]:
            best = job
    return best


def _client_token(settings: ExportSettings, entity_id: str, round_: int, retry_of: str | None) -> str:
    key = f"{settings.migration_id}/{entity_id}/{round_}/{retry_of or ''}"
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"mailcrate-migrate-{digest[:32]}"


def obtain_job(
    target: AwsTarget,
    settings: ExportSettings,
    entity_id: str,
    round_: int,
    *,
    after: datetime | None,
    retry_of: str | None = None,
    known: list[dict[str, Any]] | None = None,
    client: Any = None,
    on_wait: Callable[[str], None] = lambda _m: None,
) -> tuple[str, bool]:
    """A job holding the user's mailbox: ``(job_id, reused)``. ``after``: the start of the job
    the last round restored (a delta needs a newer one); None on the first round. ``retry_of``:
    a job of this round that failed (a new start needs a new ClientToken). ``known``: the
    organization's jobs as listed at the start of the run; ``client``: a WorkMail client to
    reuse (boto3 clients are thread-safe, and making one costs ~0.1 s of CPU)."""
    wm = target.client("workmail") if client is None else client
    recent = find_recent(
        target, settings.organization_id, entity_id, newer_than=after, known=known, client=wm
    )
    if recent is not None:
        return recent["JobId"], True
    delay = settings.backoff_first
    idle_refusals = 0  # refusals in a row while the organization had no job running
    while True:
        try:
            job_id = start_job(
                target,
                organization_id=settings.organization_id,
                entity_id=entity_id,
                bucket=settings.bucket,
                prefix=settings.prefix,
                kms_key=settings.kms_key_arn,
                role=settings.role_arn,
                description=f"mailcrate migrate {settings.migration_id[:8]} round {round_}",
                client_token=_client_token(settings, entity_id, round_, retry_of),
                client=wm,
            )
            return job_id, False
        except ClientError as exc:
            code = error_code(exc)
            if code not in _RETRY_CODES:
                message = exc.response.get("Error", {}).get("Message", str(exc))
                raise AdminError(f"StartMailboxExportJob: {code}: {message}", None) from None
            # the 24-hour rule, or the organization's 10 running jobs? The jobs listed say:
            # a job of the user's own that will do is used; with no job running in the
            # organization it can only be the 24-hour rule; otherwise wait for a free slot
            jobs = list(list_jobs(target, settings.organization_id, wm))
            recent = find_recent(target, settings.organization_id, entity_id, newer_than=after, known=jobs)
            if recent is not None:
                return recent["JobId"], True
            if not any(j.get("State") == "RUNNING" for j in jobs):
                last = find_recent(target, settings.organization_id, entity_id, known=jobs)
                if last is not None:
                    # the jobs that filled the organization's slots may have ended between the
                    # refusal and the listing (the exports run ten at once): only a second
                    # refusal with nothing running is the 24-hour rule
                    idle_refusals += 1
                    if idle_refusals >= 2:
                        raise NotYet(last["StartTime"] + WINDOW, last["JobId"]) from None
                    continue
            idle_refusals = 0
            on_wait(f"{code}: retrying in {delay:.0f} s")
            time.sleep(delay * (0.5 + random.random() / 2))
            delay = min(settings.backoff_max, delay * 2)


def wait_for(
    target: AwsTarget,
    settings: ExportSettings,
    job_id: str,
    on_progress: Callable[[int], None] = lambda _p: None,
    client: Any = None,
) -> dict[str, Any]:
    """Poll until the job ends; the COMPLETED job's description, or :class:`AdminError` for
    FAILED/CANCELLED.

    The interval grows from ``poll_first`` to ``poll_max`` by ``poll_growth`` (an end is seen
    at most ~10 % of the job's time late, where 1.3 made it up to 30 %, an idle restore slot
    meanwhile). Two things keep the number of polls down (each one a signed request answered
    by the server; at 2 GiB, 25 users, the polls were a tenth of the migrate process's CPU):
    while the job has no progress yet (waiting for a worker: ten exports are started ahead
    of the restores) the interval grows by :data:`QUEUED_GROWTH` up to :data:`QUEUED_MAX`;
    once it has progressed :data:`ETA_AFTER_POINTS`, the next poll is not before
    :data:`ETA_SHARE` of the least time its progress rate says is left."""
    wm = client or target.client("workmail")
    interval = settings.poll_first
    first: tuple[float, int] | None = None  # (when, progress) of the first poll with progress
    while True:
        try:
            job = describe_job(target, settings.organization_id, job_id, wm)
        except ClientError as exc:
            if error_code(exc) not in _RETRY_CODES:
                raise
            job = {"State": "RUNNING"}
        state = job.get("State")
        if state == "COMPLETED":
            on_progress(100)
            return job
        if state in ("FAILED", "CANCELLED"):
            raise AdminError(
                f"export job {job_id} {state}" + (f": {job['ErrorInfo']}" if job.get("ErrorInfo") else ""),
                "run `mailcrate migrate run` again: a new export is started",
            )
        progress = int(job.get("EstimatedProgress") or 0)
        on_progress(progress)
        delay = interval
        if progress <= 0:
            interval = min(max(interval, QUEUED_MAX), interval * QUEUED_GROWTH)
        else:
            now = time.monotonic()
            if first is None:
                first = (now, progress)
            elif progress - first[1] >= ETA_AFTER_POINTS:
                # the fastest rate the two readings allow: each is a whole percent (+1) and up
                # to PROGRESS_LAG old (the span may be that much shorter); a slower guess made
                # ends up to 15 s late (2 GiB: 35.5 s against 27.3 s)
                span = max(now - first[0] - PROGRESS_LAG, 0.1)
                left = (99 - progress) * span / (progress - first[1] + 1)
                delay = max(delay, min(settings.poll_max, ETA_SHARE * left))
            interval = min(settings.poll_max, interval * settings.poll_growth)
        time.sleep(delay)


#: While a job shows no progress (queued), the poll interval grows this much per poll ...
QUEUED_GROWTH = 1.3
#: ... up to this many seconds (a small job that starts is then seen at most this late).
QUEUED_MAX = 2.0
#: A progressing job is polled next after this share of the time its rate says is left, once
#: it has progressed this many points since it was first seen progressing ...
ETA_SHARE = 0.8
ETA_AFTER_POINTS = 10
#: ... given that a job's progress may be this many seconds old (the server writes it once a
#: second).
PROGRESS_LAG = 1.0
