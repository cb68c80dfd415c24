"""The four export-job operations' API behaviour: limits, ClientToken idempotency, listing and
cancel semantics. The server runs no export workers, so jobs stay RUNNING until cancelled."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from botocore.exceptions import ClientError
from botocore.validate import ParamValidator

from mailcrate.services.pagination import encode_token
from tests.jobs.support import Mailbox, new_mailbox
from tests.support.mailcrate_server import MailcrateServer

KEY = "arn:aws:kms:us-east-1:111122223333:key/11111111-2222-3333-4444-555555555555"
ROLE = "arn:aws:iam::111122223333:role/WorkmailMailboxExportRole"
SERVE_ARGS = ("--export-workers", "0")  # the API only: see the server fixture (tests/conftest.py)


def _args(mb: Mailbox, entity: str | None = None, **extra: str) -> dict[str, str]:
    return {
        "OrganizationId": mb.organization_id,
        "EntityId": entity or mb.user_id,
        "RoleArn": ROLE,
        "KmsKeyArn": KEY,
        "S3BucketName": "bucket",
        "S3Prefix": "exports",
        **extra,
    }


def _code(call, **kwargs) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"]


def _validated(wm, operation: str, output: dict) -> None:  # type: ignore[no-untyped-def]
    output = {k: v for k, v in output.items() if k != "ResponseMetadata"}
    shape = wm.meta.service_model.operation_model(operation).output_shape
    report = ParamValidator().validate(output, shape)
    assert not report.has_errors(), report.generate_report()


def test_start_describe_list_shapes(server: MailcrateServer) -> None:
    mb = new_mailbox(server)
    wm = server.client("workmail")
    job_id = wm.start_mailbox_export_job(Description="legal hold", **_args(mb, entity="alice"))["JobId"]
    described = wm.describe_mailbox_export_job(OrganizationId=mb.organization_id, JobId=job_id)
    _validated(wm, "DescribeMailboxExportJob", described)
    assert described["State"] == "RUNNING" and described["EstimatedProgress"] == 0
    assert described["EntityId"] == mb.user_id  # the job records the user id, whatever was passed
    assert described["S3Path"] == f"exports/{job_id}.zip"
    assert described["Description"] == "legal hold"
    assert "ErrorInfo" not in described and "EndTime" not in described
    listed = wm.list_mailbox_export_jobs(OrganizationId=mb.organization_id)
    _validated(wm, "ListMailboxExportJobs", listed)
    assert set(listed["Jobs"][0]) == {
        "JobId",
        "EntityId",
        "Description",
        "S3BucketName",
        "S3Path",
        "EstimatedProgress",
        "State",
        "StartTime",
    }
    assert _code(wm.describe_mailbox_export_job, OrganizationId=mb.organization_id, JobId="nope") == (
        "EntityNotFoundException"
    )


def test_client_token_idempotency(server: MailcrateServer) -> None:
    mb = new_mailbox(server)
    wm = server.client("workmail")
    first = wm.start_mailbox_export_job(ClientToken="token-1", **_args(mb))["JobId"]
    # Same token, same arguments (the entity by email now): same job, no limit hit.
    assert wm.start_mailbox_export_job(ClientToken="token-1", **_args(mb, entity=mb.email))["JobId"] == first
    # Same token, other arguments: an error.
    assert (
        _code(wm.start_mailbox_export_job, ClientToken="token-1", **_args(mb, S3Prefix="elsewhere"))
        == "InvalidParameterException"
    )
    # Cancel is idempotent with its token; a cancel of a finished job otherwise is an error.
    wm.cancel_mailbox_export_job(OrganizationId=mb.organization_id, JobId=first, ClientToken="cancel-1")
    wm.cancel_mailbox_export_job(OrganizationId=mb.organization_id, JobId=first, ClientToken="cancel-1")
    assert (
        _code(wm.cancel_mailbox_export_job, OrganizationId=mb.organization_id, JobId=first, ClientToken="c2")
        == "InvalidParameterException"
    )
    described = wm.describe_mailbox_export_job(OrganizationId=mb.organization_id, JobId=first)
    assert described["State"] == "CANCELLED" and "EndTime" in described
    assert described["EstimatedProgress"] < 100
    # The same Start token after the cancel still names the same (cancelled) job.
    assert wm.start_mailbox_export_job(ClientToken="token-1", **_args(mb))["JobId"] == first


def test_limits(server: MailcrateServer) -> None:
    wm = server.client("workmail")
    mb = new_mailbox(server)
    # One export per mailbox per 24 h, counting RUNNING and COMPLETED jobs only.
    first = wm.start_mailbox_export_job(**_args(mb))["JobId"]
    assert _code(wm.start_mailbox_export_job, **_args(mb)) == "LimitExceededException"
    wm.cancel_mailbox_export_job(OrganizationId=mb.organization_id, JobId=first)
    second = wm.start_mailbox_export_job(**_args(mb))["JobId"]  # a CANCELLED job frees the mailbox
    assert second != first

    # At most 10 RUNNING per organization: the 11th concurrent Start is refused.
    org = mb.organization_id
    domain = wm.describe_organization(OrganizationId=org)["DefaultMailDomain"]
    users = []
    for n in range(11):
        uid = wm.create_user(OrganizationId=org, Name=f"u{n}", DisplayName=f"U{n}", Password="Corr3ct-Horse")[
            "UserId"
        ]
        wm.register_to_work_mail(OrganizationId=org, EntityId=uid, Email=f"u{n}@{domain}")
        users.append(uid)

    def start(uid: str) -> str:
        try:
            return wm.start_mailbox_export_job(**_args(mb, entity=uid))["JobId"]
        except ClientError as exc:
            return exc.response["Error"]["Code"]

    with ThreadPoolExecutor(11) as pool:  # concurrently: the limit holds under races
        results = list(pool.map(start, users[:10]))
    codes = [r for r in results if r.endswith("Exception")]
    assert len(codes) == 1 and codes[0] == "LimitExceededException", results  # 9 free slots + `second`
    assert start(users[10]) == "LimitExceededException"
    running = [
        j
        for j in wm.list_mailbox_export_jobs(OrganizationId=org, MaxResults=100)["Jobs"]
        if j["State"] == "RUNNING"
    ]
    assert len(running) == 10
    # Other organizations are not affected.
    other = new_mailbox(server)
    wm.start_mailbox_export_job(**_args(other))


def test_list_pages_newest_first(server: MailcrateServer) -> None:
    wm = server.client("workmail")
    mb = new_mailbox(server)
    org = mb.organization_id
    domain = wm.describe_organization(OrganizationId=org)["DefaultMailDomain"]
    started = []
    for n in range(7):
        uid = wm.create_user(OrganizationId=org, Name=f"p{n}", DisplayName=f"P{n}", Password="Corr3ct-Horse")[
            "UserId"
        ]
        wm.register_to_work_mail(OrganizationId=org, EntityId=uid, Email=f"p{n}@{domain}")
        job_id = wm.start_mailbox_export_job(**_args(mb, entity=uid))["JobId"]
        wm.cancel_mailbox_export_job(OrganizationId=org, JobId=job_id)  # stay under the running limit
        started.append(job_id)
    seen: list[str] = []
    token = None
    while True:
        kwargs = {"NextToken": token} if token else {}
        page = wm.list_mailbox_export_jobs(OrganizationId=org, MaxResults=3, **kwargs)
        assert len(page["Jobs"]) <= 3
        seen += [j["JobId"] for j in page["Jobs"]]
        token = page.get("NextToken")
        if not token:
            break
    assert seen == list(reversed(started))
    # Garbage, another organization's token, and a well-formed token with keys of the wrong
    # type (the checksum is no secret) are all a clean InvalidParameter, never a server error.
    other_org = new_mailbox(server).organization_id
    for bad in (
        "garbage",
        encode_token(f"export-jobs:{other_org}", ["2026-01-01T00:00:00", started[0]]),
        encode_token(f"export-jobs:{org}", [20260101, 7]),
        encode_token(f"export-jobs:{org}", ["yesterday", started[0]]),
    ):
        assert (
            _code(wm.list_mailbox_export_jobs, OrganizationId=org, NextToken=bad)
            == "InvalidParameterException"
        ), bad
    # Through the CLI as well.
    page = server.aws("workmail", "list-mailbox-export-jobs", "--organization-id", org, "--max-results", "2")
    assert [j["JobId"] for j in page["Jobs"]] == list(reversed(started))[:2] and page["NextToken"]


def test_list_window_and_store_rules(server: MailcrateServer) -> None:
    """Jobs older than 7 days drop out of the list; exercised on the store directly."""
    from mailcrate.datadir import DataDir
    from mailcrate.jobs import store
    from mailcrate.jobs.limits import Limits
    from mailcrate.storage.db import utcnow

    data_dir = DataDir.open(server.data_dir)
    try:
        mb = new_mailbox(server)
        limits = Limits(mailbox_interval=timedelta(0))
        old = utcnow() - timedelta(days=8)
        with data_dir.db.begin() as conn:
            request = store.StartRequest(
                account_id=server.account_id,
                region="us-east-1",
                organization_id=mb.organization_id,
                entity_id=mb.user_id,
                role_arn=ROLE,
                kms_key_arn=KEY,
                s3_bucket_name="b",
                s3_prefix="p",
                client_token=uuid.uuid4().hex,
            )
            old_job, _ = store.create(conn, request, limits, now=old)
        wm = server.client("workmail")
        new_id = wm.start_mailbox_export_job(**_args(mb))["JobId"]
        listed = [j["JobId"] for j in wm.list_mailbox_export_jobs(OrganizationId=mb.organization_id)["Jobs"]]
        assert listed == [new_id] and old_job.job_id not in listed
        # Describe still finds the old one.
        wm.describe_mailbox_export_job(OrganizationId=mb.organization_id, JobId=old_job.job_id)
    finally:
        data_dir.close()
