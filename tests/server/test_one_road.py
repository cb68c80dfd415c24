"""One road into the services: a call made in-process through ``invoke`` (as the export worker
makes its S3/KMS/STS calls) meets the same validation, the same authorization and the same
errors as the same call sent over HTTP to ``mailcrate serve``, on the same data directory.

The HTTP side is a real server; the in-process side opens its data directory as an export worker
does. A rule is checked by changing a policy once and watching both roads refuse."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from mailcrate.accounts import Principal, lookup_access_key
from mailcrate.datadir import DataDir
from mailcrate.protocol.errors import ServiceError
from mailcrate.services.context import ServiceContext
from mailcrate.services.invoke import invoke
from mailcrate.services.registry import service_context
from tests.support.mailcrate_server import MailcrateServer

SERVE_ARGS = ("--export-workers", "0")


@pytest.fixture(scope="module")
def context(server: MailcrateServer) -> Iterator[ServiceContext]:
    data_dir = DataDir.open(server.data_dir)
    yield service_context(data_dir)
    data_dir.close()


@pytest.fixture(scope="module")
def user(server: MailcrateServer, context: ServiceContext) -> dict[str, Any]:
    """An IAM user allowed s3:* and kms:* on everything, with its own key."""
    iam = server.client("iam")
    name = "road-" + uuid.uuid4().hex[:8]
    iam.create_user(UserName=name)
    allow = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:*", "kms:*"], "Resource": "*"}],
    }
    iam.put_user_policy(UserName=name, PolicyName="all", PolicyDocument=json.dumps(allow))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    principal = lookup_access_key(context.data_dir, key["AccessKeyId"])
    assert principal is not None
    return {"name": name, "key": key, "principal": principal}


def _http(server: MailcrateServer, user: dict[str, Any], service: str) -> Any:
    key = user["key"]
    return server.client(
        service,
        access_key_id=key["AccessKeyId"],
        secret_access_key=key["SecretAccessKey"],
        parameter_validation=False,
    )


def _in_process(
    context: ServiceContext, principal: Principal, service: str, operation: str, **params: Any
) -> Any:
    return invoke(context, principal, service, operation, params, region="us-east-1")


def _http_error(call: Any, **params: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call(**params)
    error = caught.value.response["Error"]
    return error["Code"], error["Message"]


def _invoke_error(
    context: ServiceContext, principal: Principal, service: str, operation: str, **params: Any
) -> tuple[str, str]:
    with pytest.raises(ServiceError) as caught:
        _in_process(context, principal, service, operation, **params)
    return caught.value.code, caught.value.message


def test_validation_is_the_same_on_both_roads(
    server: MailcrateServer, context: ServiceContext, user: dict[str, Any]
) -> None:
    """The model's constraints (KeyId at least 1 character) with AWS's message, both ways."""
    http = _http_error(_http(server, user, "kms").describe_key, KeyId="")
    local = _invoke_error(context, user["principal"], "kms", "DescribeKey", KeyId="")
    assert http == local
    assert http[0] == "ValidationException" and "keyId" in http[1]


def test_an_identity_policy_deny_refuses_both_roads(
    server: MailcrateServer, context: ServiceContext, user: dict[str, Any]
) -> None:
    """One policy change, both roads refused with the same answer (then both allowed again)."""
    s3, iam = _http(server, user, "s3"), server.client("iam")
    bucket = "road-" + uuid.uuid4().hex[:10]
    server.client("s3").create_bucket(Bucket=bucket)
    before = _in_process(context, user["principal"], "s3", "GetBucketLocation", Bucket=bucket)
    assert before["LocationConstraint"] in (None, "", "us-east-1")
    deny = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Deny", "Action": "s3:GetBucketLocation", "Resource": f"arn:aws:s3:::{bucket}"}
        ],
    }
    iam.put_user_policy(UserName=user["name"], PolicyName="deny", PolicyDocument=json.dumps(deny))
    try:
        http = _http_error(s3.get_bucket_location, Bucket=bucket)
        local = _invoke_error(context, user["principal"], "s3", "GetBucketLocation", Bucket=bucket)
        assert http[0] == local[0] == "AccessDenied"
    finally:
        iam.delete_user_policy(UserName=user["name"], PolicyName="deny")
    assert _in_process(context, user["principal"], "s3", "GetBucketLocation", Bucket=bucket) == before


def test_generic_kms_authorization_applies_in_process(
    server: MailcrateServer, context: ServiceContext, user: dict[str, Any]
) -> None:
    """kms:DescribeKey is checked by invoke itself (the handler relies on it): a Deny on the key's
    ARN refuses the in-process DescribeKey the export's preflight makes, as over HTTP."""
    key_arn = server.client("kms").create_key()["KeyMetadata"]["Arn"]
    iam = server.client("iam")
    deny = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Action": "kms:DescribeKey", "Resource": key_arn}],
    }
    iam.put_user_policy(UserName=user["name"], PolicyName="deny-key", PolicyDocument=json.dumps(deny))
    try:
        http = _http_error(_http(server, user, "kms").describe_key, KeyId=key_arn)
        local = _invoke_error(context, user["principal"], "kms", "DescribeKey", KeyId=key_arn)
        assert http == local and http[0] == "AccessDeniedException"
    finally:
        iam.delete_user_policy(UserName=user["name"], PolicyName="deny-key")


def test_a_service_principal_may_only_assume_roles_that_trust_it(
    server: MailcrateServer, context: ServiceContext
) -> None:
    """The export service principal has no identity policies: the role's trust policy decides
    AssumeRole, and nothing else is open to it."""
    principal = Principal.for_service(
        "export.workmail.amazonaws.com", source_account=server.account_id, source_arn=None
    )
    code, _ = _invoke_error(context, principal, "s3", "ListBuckets")
    assert code == "AccessDenied"
    code, _ = _invoke_error(
        context,
        principal,
        "sts",
        "AssumeRole",
        RoleArn=f"arn:aws:iam::{server.account_id}:role/NoSuchRole",
        RoleSessionName="s1",
        ExternalId=server.account_id,
    )
    assert code == "AccessDenied"


def test_unknown_operations_and_services_are_refused(context: ServiceContext, user: dict[str, Any]) -> None:
    assert (
        _invoke_error(context, user["principal"], "s3", "PutBucketLogging", Bucket="b")[0]
        == "UnknownOperationException"
    )
    assert _invoke_error(context, user["principal"], "ses", "SendEmail")[0] == "UnknownOperationException"
