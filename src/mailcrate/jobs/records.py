"""Export job records: a frozen dataclass per job and the state enum.

States follow WorkMail: a job is ``RUNNING`` from the moment Start returns until it ends
``COMPLETED``, ``FAILED`` or ``CANCELLED``; those three are final. ``EstimatedProgress`` never
decreases and is 100 only for ``COMPLETED``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from mailcrate.storage.tables_jobs import export_jobs

ERROR_INFO_MAX = 1024


class State(enum.StrEnum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def final(self) -> bool:
        return self is not State.RUNNING


def clip_error(text: str) -> str:
    """ErrorInfo as the model allows it: 1-1024 characters."""
    text = " ".join(text.split()) or "The export failed."
    return text if len(text) <= ERROR_INFO_MAX else text[: ERROR_INFO_MAX - 3] + "..."


@dataclass(frozen=True, slots=True)
class ExportJob:
    """One mailbox export job, as stored."""

    job_id: str
    account_id: str
    region: str
    organization_id: str
    entity_id: str
    description: str | None
    role_arn: str
    kms_key_arn: str
    s3_bucket_name: str
    s3_prefix: str
    s3_path: str
    state: State
    estimated_progress: int
    error_info: str | None
    start_time: datetime
    end_time: datetime | None
    client_token: str | None
    request_digest: str
    cancel_token: str | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    attempts: int
    finishing: bool
    upload_id: str | None
    items_total: int | None
    items_done: int | None
    bytes_done: int | None
    abort_attempts: int = 0
    abort_retry_at: datetime | None = None
    fence: int = 0
    commit_upload: str | None = None
    commit_parts: str | None = None
    commit_log: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> ExportJob:
        # Positional: the table's columns are this class's fields in order (checked at import);
        # listing pages build many of these, and keyword/dict construction cost 3x more.
        values = list(row)
        values[_STATE] = State(values[_STATE])
        for index in _TIMES:
            if values[index] is not None and values[index].tzinfo is None:
                values[index] = values[index].replace(tzinfo=UTC)
        values[_FINISHING] = bool(values[_FINISHING])
        return cls(*values)

    @property
    def organization_arn(self) -> str:
        return f"arn:aws:workmail:{self.region}:{self.account_id}:organization/{self.organization_id}"

    def describe(self) -> dict[str, Any]:
        """DescribeMailboxExportJob's output shape."""
        out: dict[str, Any] = {
            "EntityId": self.entity_id,
            "Description": self.description,
            "RoleArn": self.role_arn,
            "KmsKeyArn": self.kms_key_arn,
            "S3BucketName": self.s3_bucket_name,
            "S3Prefix": self.s3_prefix,
            "S3Path": self.s3_path,
            "EstimatedProgress": self.estimated_progress,
            "State": self.state.value,
            "StartTime": self.start_time,
            "EndTime": self.end_time,
        }
        if self.state is State.FAILED:
            out["ErrorInfo"] = self.error_info or "The export failed."
        return {k: v for k, v in out.items() if v is not None}

    def summary(self) -> dict[str, Any]:
        """One ``MailboxExportJob`` of ListMailboxExportJobs (fewer fields than Describe)."""
        out: dict[str, Any] = {
            "JobId": self.job_id,
            "EntityId": self.entity_id,
            "Description": self.description,
            "S3BucketName": self.s3_bucket_name,
            "S3Path": self.s3_path,
            "EstimatedProgress": self.estimated_progress,
            "State": self.state.value,
            "StartTime": self.start_time,
            "EndTime": self.end_time,
        }
        return {k: v for k, v in out.items() if v is not None}


_FIELD_NAMES = tuple(f.name for f in fields(ExportJob))
if tuple(export_jobs.c.keys()) != _FIELD_NAMES:  # pragma: no cover - a schema/record mismatch is a bug
    raise RuntimeError("export_jobs columns and ExportJob fields must be in the same order")
_STATE = _FIELD_NAMES.index("state")
_FINISHING = _FIELD_NAMES.index("finishing")
_TIMES = tuple(
    _FIELD_NAMES.index(name) for name in ("start_time", "end_time", "lease_expires_at", "abort_retry_at")
)


def export_zip_key(s3_prefix: str, job_id: str) -> str:
    """``<S3Prefix>/<JobId>.zip`` with exactly one ``/`` between, whatever the prefix ends with."""
    return f"{s3_prefix.rstrip('/')}/{job_id}.zip"


def export_log_key(s3_prefix: str, job_id: str) -> str:
    """``<S3Prefix>/<JobId>.json``: the export log beside the zip."""
    return f"{s3_prefix.rstrip('/')}/{job_id}.json"
