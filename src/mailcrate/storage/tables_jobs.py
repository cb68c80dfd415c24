"""Tables of the export jobs (see :mod:`mailcrate.jobs`).

One row per mailbox export job. Besides what the API shows, a row carries the worker lease
(``lease_owner`` + ``lease_expires_at``: a worker owns a RUNNING job while its lease is fresh;
an expired lease means the worker died and another may reclaim the job), the open multipart
upload (so a reclaiming worker can abort it) and the idempotency data of Start and Cancel.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from mailcrate.storage.tables import metadata

export_jobs = Table(
    "export_jobs",
    metadata,
    Column("job_id", String(63), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("organization_id", String(34), nullable=False),
    Column("entity_id", String(256), nullable=False),  # always the user id
    Column("description", Text, nullable=True),
    Column("role_arn", String(2048), nullable=False),
    Column("kms_key_arn", String(2048), nullable=False),
    Column("s3_bucket_name", String(63), nullable=False),
    Column("s3_prefix", String(1023), nullable=False),
    Column("s3_path", String(1100), nullable=False),
    Column("state", String(16), nullable=False),
    Column("estimated_progress", Integer, nullable=False, default=0),
    Column("error_info", Text, nullable=True),
    Column("start_time", DateTime(timezone=True), nullable=False),
    Column("end_time", DateTime(timezone=True), nullable=True),
    # Idempotency: the Start token and a digest of the arguments it came with; the Cancel token.
    Column("client_token", String(128), nullable=True),
    Column("request_digest", String(64), nullable=False),
    Column("cancel_token", String(128), nullable=True),
    # Worker lease and the job's progress through its attempts.
    Column("lease_owner", String(128), nullable=True),
    Column("lease_expires_at", DateTime(timezone=True), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("finishing", Boolean, nullable=False, default=False),
    Column("upload_id", String(1024), nullable=True),
    # Figures of the last (or current) attempt, for describe/CLI and the export log.
    Column("items_total", BigInteger, nullable=True),
    Column("items_done", BigInteger, nullable=True),
    Column("bytes_done", BigInteger, nullable=True),
    # An upload a FAILED or CANCELLED job could not abort stays recorded in upload_id until the
    # sweeper (mailcrate.export.sweeper) has aborted it: how often it tried, and when next.
    Column("abort_attempts", Integer, nullable=False, default=0, server_default="0"),
    Column("abort_retry_at", DateTime(timezone=True), nullable=True),
    # Fencing (mailcrate.jobs.store.claim): raised by each claim; the attempt owns the job as
    # "<worker>#<fence>". The commit an attempt recorded before publishing the zip and log
    # (mailcrate.jobs.store.record_commit): the upload, its parts' ETags (JSON) and the log.
    Column("fence", Integer, nullable=False, default=0, server_default="0"),
    Column("commit_upload", String(1024), nullable=True),
    Column("commit_parts", Text, nullable=True),
    Column("commit_log", Text, nullable=True),
    # ListMailboxExportJobs pages newest first by (start_time, job_id) within an organization.
    Index("ix_export_jobs_org_start_id", "organization_id", "start_time", "job_id"),
    Index("ix_export_jobs_org_entity", "organization_id", "entity_id", "start_time"),
    Index("ix_export_jobs_state_lease", "state", "lease_expires_at"),
    # Start's count of the organization's RUNNING jobs (the 10-jobs limit), under its lock.
    Index("ix_export_jobs_org_state", "organization_id", "state"),
    Index("ux_export_jobs_org_token", "organization_id", "client_token", unique=True),
)

# Where an export attempt can resume (mailcrate.export.checkpoint): one row per checkpoint of the
# job's open multipart upload, taken once parts 1..part_number are uploaded and hashed. Each row
# holds what changed since the previous one (the ETags of the parts since, the central
# directory records and manifest lines of the items since) and the state at the checkpoint
# (the zip writer's, the source position's, the export log hash's), so a row is small and
# written once. Removed when the job commits or ends.
export_checkpoints = Table(
    "export_checkpoints",
    metadata,
    Column("job_id", String(63), primary_key=True),
    Column("part_number", Integer, primary_key=True),
    Column("upload_id", String(1024), nullable=False),
    Column("state", Text, nullable=False),  # JSON: mailcrate.export.checkpoint.Checkpoint
    Column("hash_state", LargeBinary, nullable=False),
    Column("central", LargeBinary, nullable=False),
    Column("manifest", LargeBinary, nullable=False),
)
