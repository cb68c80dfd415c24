"""Export job events: started, claimed, completed, failed, cancelled.

Each is written on the connection of the transaction that changes the job, so the event exists
exactly when the change does. The job's row gives the resources (organization, entity, job,
bucket and key, KMS key, role).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, select

from mailcrate.audit.events import AuditEvent, Identity, Resource, record
from mailcrate.storage.tables_jobs import export_jobs

#: The service principal export workers act as (DESIGN.md: Identity).
EXPORT_SERVICE = "export.workmail.amazonaws.com"
WORKER = Identity("AWSService", invoked_by=EXPORT_SERVICE)

STARTED = "MailboxExportJobStarted"
CLAIMED = "MailboxExportJobClaimed"
COMPLETED = "MailboxExportJobCompleted"
FAILED = "MailboxExportJobFailed"
CANCELLED = "MailboxExportJobCancelled"

_COLUMNS = (
    export_jobs.c.account_id,
    export_jobs.c.region,
    export_jobs.c.organization_id,
    export_jobs.c.entity_id,
    export_jobs.c.role_arn,
    export_jobs.c.kms_key_arn,
    export_jobs.c.s3_bucket_name,
    export_jobs.c.s3_path,
    export_jobs.c.attempts,
)
_JOB = select(*_COLUMNS).where(export_jobs.c.job_id == bindparam("job_id"))  # built once: ~12 per job


def job_event(
    conn: Connection,
    job_id: str,
    name: str,
    identity: Identity = WORKER,
    *,
    request_id: str | None = None,
    source_ip: str | None = None,
    user_agent: str | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
    details: dict[str, Any] | None = None,
    job: Any = None,
) -> None:
    """Record ``name`` for the job, in the caller's transaction. ``job``: the job as the caller
    has just written it (anything with the attributes of ``_COLUMNS``, e.g. the ExportJob that
    Start created), instead of reading it again inside the caller's write transaction."""
    row = job if job is not None else conn.execute(_JOB, {"job_id": job_id}).first()
    if row is None:
        return
    bucket, key = row.s3_bucket_name, row.s3_path
    resources = (
        Resource("AWS::WorkMail::Organization", row.organization_id),
        Resource("AWS::WorkMail::Entity", row.entity_id),
        Resource("AWS::WorkMail::MailboxExportJob", job_id),
        Resource("AWS::S3::Bucket", bucket),
        Resource("AWS::S3::Object", f"arn:aws:s3:::{bucket}/{key}"),
        Resource("AWS::KMS::Key", row.kms_key_arn),
        Resource("AWS::IAM::Role", row.role_arn),
    )
    record(
        conn,
        AuditEvent(
            account_id=row.account_id,
            region=row.region,
            service="workmail",
            event_name=name,
            identity=identity,
            event_type="AwsServiceEvent",
            read_only=False,
            request_id=request_id,
            source_ip=source_ip,
            user_agent=user_agent,
            error_code=error_code,
            error_message=error_message,
            request_parameters={"jobId": job_id, "attempt": row.attempts, **(details or {})},
            resources=resources,
        ),
    )
