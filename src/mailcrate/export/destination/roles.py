"""Assuming the job's role: the credentials every write of an export is made with.

* In-process (embedded S3, or a remote mailcrate server's): STS ``AssumeRole`` through
  :func:`~mailcrate.services.invoke.invoke` as the service principal
  ``export.workmail.amazonaws.com``, with ``sts:ExternalId`` = account id and
  ``aws:SourceAccount`` / ``aws:SourceArn`` = the organization, so both documented trust-policy
  forms work.
* External (``--aws-endpoint-url``, or real AWS): mailcrate's own identity from the standard AWS
  credential chain calls ``sts:AssumeRole`` with the same ExternalId (real AWS cannot let a
  self-hosted process act as a service principal).

Either way an assumer returns botocore's refreshable-credentials metadata (``access_key``,
``secret_key``, ``token``, ``expiry_time``) and is called again before the session expires.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from mailcrate.export.destination.errors import TRANSIENT_CODES, ExportError, TransientExportError
from mailcrate.jobs.records import ExportJob
from mailcrate.protocol.errors import ServiceError
from mailcrate.services.context import ServiceContext
from mailcrate.services.sts.sessions import assume_role_as_service

SERVICE_PRINCIPAL = "export.workmail.amazonaws.com"
SESSION_SECONDS = 3600

Assume = Callable[[], dict[str, Any]]  # -> {"access_key", "secret_key", "token", "expiry_time"}

__all__ = ["SERVICE_PRINCIPAL", "Assume", "embedded_assumer", "external_assumer"]


def _session_name(job: ExportJob) -> str:
    return re.sub(r"[^\w+=,.@-]", "", f"workmail-export-{job.job_id}")[:64]


def _metadata(credentials: dict[str, Any]) -> dict[str, Any]:
    expiry = credentials["Expiration"]
    if isinstance(expiry, datetime):
        expiry = expiry.astimezone(UTC).isoformat()
    return {
        "access_key": credentials["AccessKeyId"],
        "secret_key": credentials["SecretAccessKey"],
        "token": credentials["SessionToken"],
        "expiry_time": expiry,
    }


def _assume_denied(job: ExportJob, detail: str) -> ExportError:
    return ExportError(
        f"WorkMail could not assume the role {job.role_arn} ({detail}). The role must exist and its "
        f"trust policy must allow sts:AssumeRole to the service principal {SERVICE_PRINCIPAL} with "
        f"sts:ExternalId {job.account_id} (optionally aws:SourceAccount {job.account_id} and "
        f"aws:SourceArn {job.organization_arn})."
    )


def embedded_assumer(job: ExportJob, context: ServiceContext) -> Assume:
    """Assume the job's role in-process, as the export service principal."""

    def fetch() -> dict[str, Any]:
        try:
            answer = assume_role_as_service(
                context,
                service=SERVICE_PRINCIPAL,
                role_arn=job.role_arn,
                session_name=_session_name(job),
                external_id=job.account_id,
                source_account=job.account_id,
                source_arn=job.organization_arn,
                duration_seconds=SESSION_SECONDS,
            )
        except ServiceError as exc:
            raise _assume_denied(job, f"{exc.code}") from exc
        return _metadata(answer["Credentials"])

    return fetch


def external_assumer(job: ExportJob, url: str | None) -> Assume:
    """Assume the job's role with mailcrate's own identity at an external STS (or AWS's)."""
    import boto3  # only for external destinations
    from botocore.config import Config

    def fetch() -> dict[str, Any]:
        sts = boto3.Session(region_name=job.region).client(
            "sts", endpoint_url=url, config=Config(retries={"mode": "standard", "max_attempts": 5})
        )
        try:
            answer = sts.assume_role(
                RoleArn=job.role_arn,
                RoleSessionName=_session_name(job),
                ExternalId=job.account_id,
                DurationSeconds=SESSION_SECONDS,
            )
        except ClientError as exc:
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            code = str(exc.response.get("Error", {}).get("Code"))
            if status >= 500 or code in TRANSIENT_CODES:
                raise TransientExportError(f"STS AssumeRole failed ({code}); will retry") from exc
            raise _assume_denied(job, code) from exc
        except (BotoConnectionError, ConnectionError) as exc:
            raise TransientExportError(f"STS endpoint unreachable: {type(exc).__name__}") from exc
        except BotoCoreError as exc:
            raise ExportError(f"No credentials to assume the export role with: {exc}") from exc
        return _metadata(answer["Credentials"])

    return fetch
