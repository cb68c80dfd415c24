"""Hostile, signed WorkMail and KMS requests (JSON protocol) against a real ``mailcrate serve``."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.protocol.hostile.support import (
    DEEP,
    JSON11,
    SERVE_ARGS,  # noqa: F401 - read by the server fixture (tests/conftest.py)
    Build,
    World,
    _deep,
    _forged,
    _start,
    assert_error,
    kms,
    send,
    workmail,
)

JSON_CASES: list[Any] = [
    # Structure and encoding of the body.
    pytest.param(
        lambda w: workmail(w.server, "ListOrganizations", '{"MaxResults": ' + _deep() + "}"),
        "SerializationException",
        id="nested-10000-in-a-member",
    ),
    pytest.param(
        lambda w: workmail(w.server, "ListOrganizations", '{"Unknown": ' + _deep() + "}"),
        "SerializationException",
        id="nested-10000-in-an-unknown-member",
    ),
    pytest.param(
        lambda w: workmail(w.server, "DescribeOrganization", _deep()),
        "SerializationException",
        id="nested-10000-top-level",
    ),
    pytest.param(
        lambda w: workmail(
            w.server, "ListOrganizations", '{"a": ' + '{"a": ' * DEEP + "1" + "}" * DEEP + "}"
        ),
        "SerializationException",
        id="nested-10000-objects",
    ),
    pytest.param(
        lambda w: workmail(w.server, "ListOrganizations", b'{"NextToken": "\xff\xfe"}'),
        "SerializationException",
        id="body-not-utf8",
    ),
    pytest.param(
        lambda w: workmail(w.server, "ListOrganizations", "null"), "SerializationException", id="null"
    ),
    pytest.param(
        lambda w: workmail(w.server, "ListOrganizations", "1e999"), "SerializationException", id="inf"
    ),
    pytest.param(
        lambda w: workmail(w.server, "ListOrganizations", '{"MaxResults": NaN}'),
        "SerializationException",
        id="nan",
    ),
    pytest.param(
        lambda w: workmail(w.server, "ListOrganizations", '{"MaxResults": ' + "9" * 5000 + "}"),
        "SerializationException",
        id="integer-5000-digits",
    ),
    pytest.param(
        lambda w: workmail(w.server, "StartMailboxExportJob", b""),
        "ValidationException",
        id="start-empty-body",
    ),
    pytest.param(
        lambda w: workmail(w.server, "StartMailboxExportJob", "{}"),
        "ValidationException",
        id="start-empty-object",
    ),
    # Numbers out of range and wrong types.
    pytest.param(
        lambda w: workmail(w.server, "ListOrganizations", {"MaxResults": 1e30}),
        "SerializationException",
        id="maxresults-1e30",
    ),
    pytest.param(
        lambda w: workmail(w.server, "ListOrganizations", {"MaxResults": 10**30}),
        "ValidationException",
        id="maxresults-10**30",
    ),
    pytest.param(
        lambda w: workmail(w.server, "ListOrganizations", {"MaxResults": -1}),
        "ValidationException",
        id="maxresults-negative",
    ),
    pytest.param(
        lambda w: workmail(w.server, "ListMailboxExportJobs", {"OrganizationId": w.org, "MaxResults": 0}),
        "ValidationException",
        id="list-jobs-maxresults-0",
    ),
    pytest.param(
        lambda w: workmail(w.server, "ListMailboxExportJobs", {"OrganizationId": w.org, "MaxResults": "5"}),
        "SerializationException",
        id="list-jobs-maxresults-string",
    ),
    pytest.param(
        lambda w: workmail(w.server, "DescribeOrganization", {"OrganizationId": [w.org]}),
        "SerializationException",
        id="list-where-string-goes",
    ),
    pytest.param(
        lambda w: workmail(w.server, "DescribeOrganization", {"OrganizationId": {"id": w.org}}),
        "SerializationException",
        id="object-where-string-goes",
    ),
    pytest.param(
        lambda w: workmail(w.server, "StartMailboxExportJob", _start(w, S3Prefix=["a", "b"])),
        "SerializationException",
        id="start-prefix-list",
    ),
    pytest.param(
        lambda w: workmail(w.server, "StartMailboxExportJob", _start(w, Description=1)),
        "SerializationException",
        id="start-description-number",
    ),
    # Huge strings.
    pytest.param(
        lambda w: workmail(w.server, "CreateOrganization", {"Alias": "a" * 1_000_000}),
        "ValidationException",
        id="alias-1mb",
    ),
    pytest.param(
        lambda w: workmail(w.server, "StartMailboxExportJob", _start(w, Description="d" * 2_000_000)),
        "ValidationException",
        id="start-description-2mb",
    ),
    # NextToken garbage, and tokens with a valid checksum that the server never issued.
    pytest.param(
        lambda w: workmail(w.server, "ListOrganizations", {"NextToken": "garbage!!"}),
        "InvalidParameterException",
        id="list-orgs-token-garbage",
    ),
    pytest.param(
        lambda w: workmail(w.server, "ListOrganizations", {"NextToken": "x" * 1025}),
        "ValidationException",
        id="list-orgs-token-too-long",
    ),
    pytest.param(
        lambda w: workmail(
            w.server, "ListOrganizations", {"NextToken": _forged("organizations", ["yesterday", "x"])}
        ),
        "InvalidParameterException",
        id="list-orgs-token-forged-bad-date",
    ),
    pytest.param(
        lambda w: workmail(w.server, "ListOrganizations", {"NextToken": _forged("organizations", [12, "x"])}),
        "InvalidParameterException",
        id="list-orgs-token-forged-number-date",
    ),
    pytest.param(
        lambda w: workmail(
            w.server,
            "ListOrganizations",
            {"NextToken": _forged("organizations", ["2026-01-01T00:00:00", {"a": 1}])},
        ),
        "InvalidParameterException",
        id="list-orgs-token-forged-object-id",
    ),
    pytest.param(
        lambda w: workmail(
            w.server,
            "ListUsers",
            {"OrganizationId": w.org, "NextToken": _forged(f"users:{w.org}", [None, None])},
        ),
        "InvalidParameterException",
        id="list-users-token-forged-nulls",
    ),
    pytest.param(
        lambda w: workmail(
            w.server,
            "ListMailboxExportJobs",
            {"OrganizationId": w.org, "NextToken": _forged(f"export-jobs:{w.org}", [[1], "x"])},
        ),
        "InvalidParameterException",
        id="list-jobs-token-forged-list-date",
    ),
    pytest.param(
        lambda w: workmail(w.server, "ListMailboxExportJobs", {"OrganizationId": w.org, "NextToken": "%00"}),
        "InvalidParameterException",
        id="list-jobs-token-garbage",
    ),
    # Operations and targets.
    pytest.param(
        lambda w: workmail(w.server, "NoSuchOperation", "{}"),
        "UnknownOperationException",
        id="unknown-operation",
    ),
    pytest.param(
        lambda w: send(
            w.server,
            "POST",
            service="workmail",
            body="{}",
            headers={"X-Amz-Target": "", "Content-Type": JSON11},
        ),
        "UnknownOperationException",
        id="empty-target",
    ),
    pytest.param(
        lambda w: send(
            w.server,
            "POST",
            service="workmail",
            body="{}",
            headers={"X-Amz-Target": "WorkMailService", "Content-Type": JSON11},
        ),
        "UnknownOperationException",
        id="target-without-operation",
    ),
    pytest.param(
        lambda w: send(
            w.server,
            "GET",
            service="workmail",
            headers={"X-Amz-Target": "WorkMailService.ListOrganizations", "Content-Type": JSON11},
        ),
        "UnknownOperationException",
        id="get-instead-of-post",
    ),
    # Export jobs.
    pytest.param(
        lambda w: workmail(
            w.server, "StartMailboxExportJob", _start(w, KmsKeyArn="not-an-arn-but-long-enough")
        ),
        "ValidationException",
        id="start-kms-arn-malformed",
    ),
    pytest.param(
        lambda w: workmail(w.server, "StartMailboxExportJob", _start(w, RoleArn="arn:aws:iam::")),
        "ValidationException",
        id="start-role-arn-short",
    ),
    pytest.param(
        lambda w: workmail(w.server, "StartMailboxExportJob", _start(w, RoleArn="r" * 3000)),
        "ValidationException",
        id="start-role-arn-huge",
    ),
    pytest.param(
        lambda w: workmail(
            w.server,
            "StartMailboxExportJob",
            _start(
                w, KmsKeyArn="arn:aws:kms:eu-west-1:111122223333:key/11111111-2222-3333-4444-555555555555"
            ),
        ),
        "InvalidParameterException",
        id="start-kms-key-other-region",
    ),
    pytest.param(
        lambda w: workmail(w.server, "StartMailboxExportJob", _start(w, S3BucketName="!!!")),
        "ValidationException",
        id="start-bucket-invalid",
    ),
    pytest.param(
        lambda w: workmail(w.server, "StartMailboxExportJob", _start(w, S3BucketName="b" * 64)),
        "ValidationException",
        id="start-bucket-too-long",
    ),
    pytest.param(
        lambda w: workmail(w.server, "StartMailboxExportJob", _start(w, S3Prefix="   ")),
        "ValidationException",
        id="start-prefix-spaces",
    ),
    pytest.param(
        lambda w: workmail(w.server, "StartMailboxExportJob", _start(w, S3Prefix="")),
        "ValidationException",
        id="start-prefix-empty",
    ),
    pytest.param(
        lambda w: workmail(w.server, "StartMailboxExportJob", _start(w, ClientToken="t" * 129)),
        "ValidationException",
        id="start-client-token-too-long",
    ),
    pytest.param(
        lambda w: workmail(w.server, "StartMailboxExportJob", _start(w, EntityId="nobody@example.com")),
        "EntityNotFoundException",
        id="start-unknown-entity",
    ),
    pytest.param(
        lambda w: workmail(w.server, "StartMailboxExportJob", _start(w, OrganizationId="m-" + "f" * 32)),
        "OrganizationNotFoundException",
        id="start-unknown-organization",
    ),
    pytest.param(
        lambda w: workmail(
            w.server, "DescribeMailboxExportJob", {"OrganizationId": w.org, "JobId": "j" * 64}
        ),
        "ValidationException",
        id="describe-job-id-too-long",
    ),
    pytest.param(
        lambda w: workmail(
            w.server, "DescribeMailboxExportJob", {"OrganizationId": w.org, "JobId": "../../etc"}
        ),
        "EntityNotFoundException",
        id="describe-job-id-dots",
    ),
    pytest.param(
        lambda w: workmail(w.server, "DescribeMailboxExportJob", {"OrganizationId": w.org, "JobId": ["x"]}),
        "SerializationException",
        id="describe-job-id-list",
    ),
    pytest.param(
        lambda w: workmail(
            w.server,
            "CancelMailboxExportJob",
            {"OrganizationId": w.org, "JobId": "no-such-job", "ClientToken": "c"},
        ),
        "EntityNotFoundException",
        id="cancel-unknown-job",
    ),
    pytest.param(
        lambda w: workmail(
            w.server, "CancelMailboxExportJob", {"OrganizationId": w.org, "JobId": "x", "ClientToken": ""}
        ),
        "ValidationException",
        id="cancel-empty-client-token",
    ),
    # KMS.
    pytest.param(
        lambda w: kms(w.server, "Decrypt", {"CiphertextBlob": base64.b64encode(b"\x01" * 80).decode()}),
        "InvalidCiphertextException",
        id="kms-decrypt-garbage-blob",
    ),
    pytest.param(
        lambda w: kms(w.server, "Decrypt", {"CiphertextBlob": "!!not base64!!"}),
        "SerializationException",
        id="kms-decrypt-not-base64",
    ),
    pytest.param(
        lambda w: kms(
            w.server,
            "Decrypt",
            {"CiphertextBlob": base64.b64encode(w.ciphertext).decode(), "EncryptionContext": {"a": "c"}},
        ),
        "InvalidCiphertextException",
        id="kms-decrypt-wrong-context",
    ),
    pytest.param(
        lambda w: kms(
            w.server,
            "Decrypt",
            {"CiphertextBlob": base64.b64encode(w.ciphertext).decode(), "EncryptionContext": {"a": 1}},
        ),
        "SerializationException",
        id="kms-decrypt-context-number",
    ),
    pytest.param(
        lambda w: kms(
            w.server, "Decrypt", '{"CiphertextBlob": "AAAA", "EncryptionContext": ' + _deep() + "}"
        ),
        "SerializationException",
        id="kms-decrypt-context-nested-10000",
    ),
    pytest.param(
        lambda w: kms(w.server, "GenerateDataKey", {"KeyId": w.key_id, "NumberOfBytes": 0}),
        "ValidationException",
        id="kms-number-of-bytes-0",
    ),
    pytest.param(
        lambda w: kms(w.server, "GenerateDataKey", {"KeyId": w.key_id, "NumberOfBytes": 10**30}),
        "ValidationException",
        id="kms-number-of-bytes-10**30",
    ),
    pytest.param(
        lambda w: kms(w.server, "GenerateDataKey", {"KeyId": w.key_id, "KeySpec": "AES_1024"}),
        "ValidationException",
        id="kms-key-spec-enum",
    ),
    pytest.param(
        lambda w: kms(w.server, "GenerateDataKey", {"KeyId": "alias/no-such-alias", "KeySpec": "AES_256"}),
        "NotFoundException",
        id="kms-unknown-alias",
    ),
    pytest.param(
        lambda w: kms(w.server, "GenerateDataKey", {"KeyId": "k" * 3000, "KeySpec": "AES_256"}),
        "ValidationException",
        id="kms-key-id-huge",
    ),
    pytest.param(
        lambda w: kms(
            w.server, "Encrypt", {"KeyId": w.key_id, "Plaintext": base64.b64encode(b"x" * 4097).decode()}
        ),
        "ValidationException",
        id="kms-plaintext-too-long",
    ),
    pytest.param(lambda w: kms(w.server, "ListKeys", {"Limit": 0}), "ValidationException", id="kms-limit-0"),
    pytest.param(
        lambda w: kms(w.server, "ListKeys", {"Limit": -5}), "ValidationException", id="kms-limit-neg"
    ),
    pytest.param(
        lambda w: kms(w.server, "CreateKey", {"Policy": _deep()}),
        "MalformedPolicyDocumentException",
        id="kms-policy-nested-10000",
    ),
    pytest.param(
        lambda w: kms(w.server, "CreateKey", {"Policy": "{not json"}),
        "MalformedPolicyDocumentException",
        id="kms-policy-not-json",
    ),
    pytest.param(
        lambda w: kms(w.server, "NoSuchOperation", "{}"), "UnknownOperationException", id="kms-unknown-op"
    ),
]


@pytest.mark.parametrize(("build", "code"), JSON_CASES)
def test_json_protocol_rejects_hostile_input(world: World, build: Build, code: str) -> None:
    reply = build(world)
    assert_error(reply, "json", 400, code)


def test_hostile_starts_created_no_job(world: World) -> None:
    """Runs after the table above (pytest keeps file order): none of its refused
    StartMailboxExportJob calls left a job behind."""
    jobs = world.server.client("workmail").list_mailbox_export_jobs(OrganizationId=world.org)["Jobs"]
    assert jobs == []


def test_malformed_key_policies_create_no_key(world: World) -> None:
    client = world.server.client("kms")
    before = client.list_keys(Limit=1000)["Keys"]
    for policy in (_deep(), "{not json", '{"Statement": []}', '{"Statement": [{"Effect": "Maybe"}]}'):
        assert_error(
            kms(world.server, "CreateKey", {"Policy": policy}),
            "json",
            400,
            "MalformedPolicyDocumentException",
        )
    assert client.list_keys(Limit=1000)["Keys"] == before
    default_policy = {
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [
            {
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{world.server.account_id}:root"},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }
    created = client.create_key(Policy=json.dumps(default_policy))["KeyMetadata"]["KeyId"]
    assert len(client.list_keys(Limit=1000)["Keys"]) == len(before) + 1
    client.schedule_key_deletion(KeyId=created, PendingWindowInDays=7)
