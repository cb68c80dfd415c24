"""Export jobs through the WorkMail API: start, describe, list, cancel, wait.

The same calls work against ``mailcrate serve`` and Amazon WorkMail. Friendly inputs are turned
into what the API wants: a KMS key id or alias becomes its ARN (``kms:DescribeKey``), a role name
becomes ``arn:aws:iam::<caller's account>:role/<name>``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from mailcrate.admin.aws import AwsTarget
from mailcrate.admin.errors import AdminError

__all__ = [
    "FINAL_STATES",
    "JobStatus",
    "cancel_job",
    "describe_job",
    "exit_code_for",
    "job_elapsed",
    "list_jobs",
    "resolve_key_arn",
    "resolve_role_arn",
    "start_job",
    "wait_job",
]

FINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED")
#: Exit codes of ``export wait`` / ``start --wait`` by final state (1 and 2: errors, usage).
_EXIT = {"COMPLETED": 0, "FAILED": 3, "CANCELLED": 4}
WAIT_TIMEOUT_EXIT = 5


def exit_code_for(state: str) -> int:
    return _EXIT.get(state, 1)


def resolve_key_arn(target: AwsTarget, key: str) -> str:
    """A key ARN as given, or the ARN of a key id / alias / alias ARN."""
    if key.startswith("arn:") and ":key/" in key:
        return key
    try:
        return target.client("kms").describe_key(KeyId=key)["KeyMetadata"]["Arn"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NotFoundException":
            raise AdminError(
                f"KMS key {key} not found",
                "give the key's ARN, id or alias (mailcrate export setup creates one)",
            ) from None
        raise


def resolve_role_arn(target: AwsTarget, role: str) -> str:
    """A role ARN as given, or ``arn:aws:iam::<caller account>:role/<name>``."""
    if role.startswith("arn:"):
        return role
    account = target.client("sts").get_caller_identity()["Account"]
    return f"arn:aws:iam::{account}:role/{role}"


def start_job(
    target: AwsTarget,
    *,
    organization_id: str,
    entity_id: str,
    bucket: str,
    prefix: str,
    kms_key: str,
    role: str,
    description: str | None = None,
    client_token: str | None = None,
    client: Any = None,
) -> str:
    """Start an export job; returns its JobId. ``client``: a WorkMail client to reuse."""
    params: dict[str, Any] = {
        "OrganizationId": organization_id,
        "EntityId": entity_id,
        "KmsKeyArn": resolve_key_arn(target, kms_key),
        "RoleArn": resolve_role_arn(target, role),
        "S3BucketName": bucket,
        "S3Prefix": prefix,
    }
    if description:
        params["Description"] = description
    if client_token:
        params["ClientToken"] = client_token
    return (client or target.client("workmail")).start_mailbox_export_job(**params)["JobId"]


def describe_job(target: AwsTarget, organization_id: str, job_id: str, client: Any = None) -> dict[str, Any]:
    wm = client or target.client("workmail")
    out = wm.describe_mailbox_export_job(OrganizationId=organization_id, JobId=job_id)
    out.pop("ResponseMetadata", None)
    out["JobId"] = job_id
    return out


def list_jobs(target: AwsTarget, organization_id: str, client: Any = None) -> Iterator[dict[str, Any]]:
    """Every job of the organization (all pages)."""
    wm = client or target.client("workmail")
    token: str | None = None
    while True:
        args: dict[str, Any] = {"OrganizationId": organization_id, "MaxResults": 100}
        if token:
            args["NextToken"] = token
        page = wm.list_mailbox_export_jobs(**args)
        yield from page.get("Jobs", [])
        token = page.get("NextToken")
        if not token:
            return


def cancel_job(target: AwsTarget, organization_id: str, job_id: str) -> dict[str, Any]:
    """Cancel a running job; returns its description afterwards."""
    wm = target.client("workmail")
    wm.cancel_mailbox_export_job(OrganizationId=organization_id, JobId=job_id)
    return describe_job(target, organization_id, job_id, wm)


def job_elapsed(job: dict[str, Any], fallback: float = 0.0) -> float:
    """Seconds the job has run: EndTime (or now) minus StartTime, as the service reports them."""
    start = job.get("StartTime")
    if not isinstance(start, datetime):
        return fallback
    end = job.get("EndTime") if isinstance(job.get("EndTime"), datetime) else datetime.now(UTC)
    return max(0.0, (end - start).total_seconds())


@dataclass(frozen=True)
class JobStatus:
    """One observation of a job while waiting."""

    job: dict[str, Any]
    elapsed: float

    @property
    def state(self) -> str:
        return str(self.job.get("State", "?"))

    @property
    def progress(self) -> int:
        return int(self.job.get("EstimatedProgress") or 0)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


def wait_job(
    target: AwsTarget,
    organization_id: str,
    job_id: str,
    *,
    on_status: Callable[[JobStatus], None],
    interval: float = 0.5,
    timeout: float | None = None,
) -> JobStatus:
    """Poll until the job ends (or ``timeout``), calling ``on_status`` after each poll."""
    wm = target.client("workmail")
    started = time.monotonic()
    while True:
        job = describe_job(target, organization_id, job_id, wm)
        status = JobStatus(job, job_elapsed(job, time.monotonic() - started))
        on_status(status)
        if status.final:
            return status
        if timeout is not None and status.elapsed >= timeout:
            raise AdminError(
                f"job {job_id} is still {status.state} ({status.progress}%) after {timeout:g} s",
                f"keep waiting with: mailcrate export wait {job_id} --organization-id {organization_id}",
                exit_code=WAIT_TIMEOUT_EXIT,
            )
        time.sleep(interval)
