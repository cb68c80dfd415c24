"""The export on AWS's access model, with a real ``mailcrate serve`` running real jobs: a bucket
made public while a job runs gets no zip, and the export's in-process writes carry the condition
keys AWS sends for them: the export writes with the job role's own session (a service role), so
``aws:ViaAWSService`` is false and ``aws:CalledVia`` absent, as on AWS."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.jobs.support import (
    add_big_item,
    new_mailbox,
    no_leftovers,
    permission_policy,
    start_export,
    trust_policy,
    wait_job,
)
from tests.support.mailcrate_server import MailcrateServer

PREFIX = "exports"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailcrateServer]:
    with MailcrateServer.running(
        tmp_path_factory.mktemp("export-access") / "data", "--export-part-size-mib", "5"
    ) as srv:
        yield srv


def _destination(server: MailcrateServer, *extra_statements: dict[str, Any]) -> dict[str, str]:
    """A key, a bucket and an export role (the documented policies plus ``extra_statements``)."""
    bucket = "access-" + uuid.uuid4().hex[:10]
    key_arn = server.client("kms").create_key()["KeyMetadata"]["Arn"]
    server.client("s3").create_bucket(Bucket=bucket)
    iam = server.client("iam")
    name = "ExportRole" + uuid.uuid4().hex[:6]
    role_arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust_policy(server.account_id))[
        "Role"
    ]["Arn"]
    document = json.loads(permission_policy(bucket, PREFIX, key_arn))
    document["Statement"].extend(extra_statements)
    iam.put_role_policy(RoleName=name, PolicyName="export", PolicyDocument=json.dumps(document))
    return {"bucket": bucket, "key_arn": key_arn, "role_arn": role_arn}


def _public_policy(bucket: str) -> str:
    statement = {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def test_bucket_made_public_during_the_job_gets_no_zip(server: MailcrateServer) -> None:
    """WorkMail refuses public buckets (https://docs.aws.amazon.com/workmail/latest/adminguide/
    mail-export.html); the bucket is checked again right before the upload completes."""
    mb = new_mailbox(server)
    add_big_item(mb.root, 60 << 20, random_data=True)  # parts take a while: time to turn public
    dest = _destination(server)
    s3 = server.client("s3")
    s3.delete_public_access_block(Bucket=dest["bucket"])  # not public yet: no bucket policy
    job_id = start_export(server, mb, dest, PREFIX)
    deadline = time.monotonic() + 60
    while not s3.list_multipart_uploads(Bucket=dest["bucket"]).get("Uploads"):  # preflight passed
        assert time.monotonic() < deadline, "the job never created its upload"
        time.sleep(0.01)
    s3.put_bucket_policy(Bucket=dest["bucket"], Policy=_public_policy(dest["bucket"]))
    job = wait_job(server.client("workmail"), mb.organization_id, job_id)
    assert job["State"] == "FAILED", job
    assert "became public while the export ran" in job["ErrorInfo"]
    no_leftovers(s3, dest["bucket"], PREFIX)  # no zip, no log, the upload aborted


@pytest.mark.parametrize(
    ("statement", "state"),
    [
        # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html
        # #condition-keys-calledvia: set only when a service makes a request with the principal's
        # own credentials (forward access sessions), never for a service role's session: the
        # export's writes do not match it.
        (
            {
                "Effect": "Deny",
                "Action": "s3:PutObject",
                "Resource": "*",
                "Condition": {"ForAnyValue:StringEquals": {"aws:CalledVia": "workmail.amazonaws.com"}},
            },
            "COMPLETED",
        ),
        (
            {
                "Effect": "Deny",
                "Action": "s3:PutObject",
                "Resource": "*",
                # ...IfExists on an absent key is true: this Deny applies to the export's writes.
                "Condition": {"StringNotEqualsIfExists": {"aws:CalledViaFirst": "workmail.amazonaws.com"}},
            },
            "FAILED",
        ),
        # #condition-keys-viaawsservice: false "when the service uses a service role or service-linked
        # role to make a call on the principal's behalf", which is how the export writes.
        (
            {
                "Effect": "Deny",
                "Action": "s3:PutObject",
                "Resource": "*",
                "Condition": {"Bool": {"aws:ViaAWSService": "false"}},
            },
            "FAILED",
        ),
    ],
    ids=["deny-called-via-workmail", "deny-other-first-caller-ifexists", "deny-direct-calls"],
)
def test_export_writes_are_the_roles_own_calls(
    server: MailcrateServer, statement: dict[str, Any], state: str
) -> None:
    mb = new_mailbox(server)
    add_big_item(mb.root, 10_000)
    dest = _destination(server, statement)
    job = wait_job(server.client("workmail"), mb.organization_id, start_export(server, mb, dest, PREFIX))
    assert job["State"] == state, job
    if state == "FAILED":
        assert "s3:PutObject" in job["ErrorInfo"] or "AccessDenied" in job["ErrorInfo"], job["ErrorInfo"]
        no_leftovers(server.client("s3"), dest["bucket"], PREFIX)
