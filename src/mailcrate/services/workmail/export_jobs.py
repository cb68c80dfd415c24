"""The four mailbox export job operations of the WorkMail API.

Start checks everything that needs no role and answers with the model's errors: the
organization (exists, Active), the entity (exists, mailbox ENABLED), the KMS key's region (that
of the organization and the request), the limits (:mod:`mailcrate.jobs.limits`) and the
ClientToken. Everything that needs the role (assuming it, the bucket, the key's state) runs in
the job and fails it with an ErrorInfo (:mod:`mailcrate.export.job`).

ClientToken semantics: Start with a token already used in the organization returns the same
JobId when the arguments are the same (EntityId compared after resolving it to the user id), and
InvalidParameterException when they differ. Cancel repeated with its token succeeds.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from mailcrate.audit import jobs as job_audit
from mailcrate.audit.requests import identity_of
from mailcrate.jobs import store
from mailcrate.jobs.limits import Limits
from mailcrate.jobs.records import State
from mailcrate.services.base import Call, Handler
from mailcrate.services.workmail import organizations, users
from mailcrate.services.workmail.errors import EntityNotFound, InvalidParameter, LimitExceeded

DEFAULT_PAGE = 100


def limits_for(call: Call) -> Limits:
    setting = call.context.setting
    return Limits(
        max_running_per_org=setting("export_max_running_per_org", 10),
        mailbox_interval=timedelta(seconds=setting("export_mailbox_interval_seconds", 86400)),
    )


def _arn_region(arn: str) -> str:
    parts = arn.split(":", 5)
    return parts[3] if len(parts) == 6 else ""


def _caller(call: Call) -> dict[str, Any]:
    """Who asked, for a job event: the caller's identity, request id, address and client."""
    return {
        "identity": identity_of(call.principal),
        "request_id": call.request_id,
        "source_ip": call.request.client_ip,
        "user_agent": call.request.headers.get("user-agent"),
    }


def start_mailbox_export_job(call: Call) -> dict[str, Any]:
    p = call.params
    org_id = p["OrganizationId"]
    with call.context.db.write() as conn:  # it writes first (the organization's lock)
        organizations.lock(conn, org_id)
        org = organizations.find_active(conn, call.account_id, call.region, org_id)
        user = users.resolve(conn, org.organization_id, p["EntityId"], include_deleted=False)
        if user.state != users.ENABLED:
            raise InvalidParameter(
                f"The mailbox of {p['EntityId']} is not enabled (the user is {user.state}); "
                "register it to WorkMail before exporting it."
            )
        key_region = _arn_region(p["KmsKeyArn"])
        if key_region != org.region:
            raise InvalidParameter(
                f"The KMS key {p['KmsKeyArn']} is in region {key_region or '(none)'}, but the "
                f"organization is in {org.region}: the key, the bucket and the organization must "
                "be in one region."
            )
        request = store.StartRequest(
            account_id=call.account_id,
            region=org.region,
            organization_id=org.organization_id,
            entity_id=user.user_id,
            role_arn=p["RoleArn"],
            kms_key_arn=p["KmsKeyArn"],
            s3_bucket_name=p["S3BucketName"],
            s3_prefix=p["S3Prefix"],
            description=p.get("Description"),
            client_token=p.get("ClientToken"),
        )
        try:
            job, created = store.create(conn, request, limits_for(call))
        except store.JobConflict as exc:
            raise InvalidParameter(str(exc)) from None
        except store.JobLimitExceeded as exc:
            raise LimitExceeded(str(exc)) from None
        if created:  # in the job's own transaction: the job exists exactly when its event does
            job_audit.job_event(conn, job.job_id, job_audit.STARTED, job=job, **_caller(call))
    if created:
        call.context.hooks.export_started()
    return {"JobId": job.job_id}


def describe_mailbox_export_job(call: Call) -> dict[str, Any]:
    p = call.params
    with call.context.db.read() as conn:
        org = organizations.find_active(conn, call.account_id, call.region, p["OrganizationId"])
        try:
            row = store.describe_row(conn, org.organization_id, p["JobId"])
        except store.JobNotFound:
            raise EntityNotFound(p["JobId"]) from None
    # Unpacked in the order of store.DESCRIBE_COLUMNS. Timestamps stay datetimes (naive ones are
    # UTC): the protocol renders them.
    (entity, description, role, key, bucket, prefix, path, progress, state, error, start, end) = row
    out: dict[str, Any] = {
        "EntityId": entity,
        "RoleArn": role,
        "KmsKeyArn": key,
        "S3BucketName": bucket,
        "S3Prefix": prefix,
        "S3Path": path,
        "EstimatedProgress": progress,
        "State": state,
        "StartTime": start,
    }
    if description is not None:
        out["Description"] = description
    if end is not None:
        out["EndTime"] = end
    if state == State.FAILED:
        out["ErrorInfo"] = error or "The export failed."
    return out


def list_mailbox_export_jobs(call: Call) -> dict[str, Any]:
    p = call.params
    with call.context.db.read() as conn:
        org = organizations.find_active(conn, call.account_id, call.region, p["OrganizationId"])
        try:
            rows, token = store.page(
                conn,
                org.organization_id,
                limits_for(call),
                p.get("MaxResults", DEFAULT_PAGE),
                p.get("NextToken"),
            )
        except ValueError:
            raise InvalidParameter("The NextToken is not valid.") from None
    jobs = []
    # Unpacked in the order of store.SUMMARY_COLUMNS; the protocol drops the None members.
    for job_id, entity, description, bucket, path, progress, state, start, end in rows:
        jobs.append(
            {
                "JobId": job_id,
                "EntityId": entity,
                "Description": description,
                "S3BucketName": bucket,
                "S3Path": path,
                "EstimatedProgress": progress,
                "State": state,
                "StartTime": start,
                "EndTime": end,
            }
        )
    out: dict[str, Any] = {"Jobs": jobs}
    if token:
        out["NextToken"] = token
    return out


def cancel_mailbox_export_job(call: Call) -> dict[str, Any]:
    p = call.params
    with call.context.db.begin() as conn:
        org = organizations.find_active(conn, call.account_id, call.region, p["OrganizationId"])
        try:
            outcome = store.cancel(conn, org.organization_id, p["JobId"], p.get("ClientToken"))
            if outcome.changed:
                job_audit.job_event(conn, p["JobId"], job_audit.CANCELLED, **_caller(call))
        except store.JobNotFound:
            raise EntityNotFound(p["JobId"]) from None
        except store.JobConflict as exc:
            raise InvalidParameter(str(exc)) from None
    return {}


HANDLERS: dict[str, Handler] = {
    "StartMailboxExportJob": start_mailbox_export_job,
    "DescribeMailboxExportJob": describe_mailbox_export_job,
    "ListMailboxExportJobs": list_mailbox_export_jobs,
    "CancelMailboxExportJob": cancel_mailbox_export_job,
}
