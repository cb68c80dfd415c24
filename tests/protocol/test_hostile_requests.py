"""Hostile, properly signed requests against a real ``mailcrate serve``, on every protocol it speaks.

The standard: bad input gets a clear, AWS-shaped error of the protocol the client speaks (JSON
``__type`` + ``message``; query ``<ErrorResponse><Error><Code>``; S3 ``<Error><Code>``), changes
nothing, and never makes the server answer 5xx, hang or crash; its log never holds a secret.

Requests are signed with botocore's own signers (``SigV4Auth`` / ``S3SigV4Auth`` on an
``AWSRequest``) and sent with ``http.client``, which sends the path, headers and body exactly as
given (``httpx`` would normalize ``..`` segments away). After every case the server must still
answer ``/health``; at the end its log must hold no traceback and no secret.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from mailcrate.services.pagination import encode_token
from mailcrate.storage.db import Database
from tests.support.mailcrate_server import MailcrateServer
from tests.support.signing import signed_chunked_body

# The API only (Start leaves jobs RUNNING); stalled uploads are given up after 2 s, not 20.
SERVE_ARGS = ("--export-workers", "0", "--request-idle-seconds", "2")
REGION = "us-east-1"
JSON11 = "application/x-amz-json-1.1"
FORM = "application/x-www-form-urlencoded; charset=utf-8"
PASSWORD = "Hostile-Pa55word-" + uuid.uuid4().hex[:8]  # must never reach the log
ROLE = "arn:aws:iam::111122223333:role/ExportRole"
KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/11111111-2222-3333-4444-555555555555"
DEEP = 10_000


# --- sending --------------------------------------------------------------------------------------
@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _DeclaredPayloadSigner(S3SigV4Auth):
    """botocore's S3 signer, signing whatever ``x-amz-content-sha256`` the test declares."""

    def __init__(self, credentials: Credentials, region: str, declared: str) -> None:
        super().__init__(credentials, "s3", region)
        self.declared = declared

    def payload(self, request: AWSRequest) -> str:
        return self.declared


def send(
    server: MailcrateServer,
    method: str,
    path: str = "/",
    *,
    service: str,
    body: bytes | str = b"",
    headers: dict[str, str] | None = None,
    query: str = "",
    sign: bool = True,
    declared_sha256: str | None = None,
    replace_headers: dict[str, str] | None = None,
    timeout: float = 15.0,
) -> Reply:
    """Sign with botocore (``replace_headers`` are set after signing), send byte-exact."""
    if isinstance(body, str):
        body = body.encode()
    url = f"{server.endpoint}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    if sign:
        credentials = Credentials(server.access_key_id, server.secret_access_key)
        if declared_sha256 is not None:
            signer: SigV4Auth = _DeclaredPayloadSigner(credentials, REGION, declared_sha256)
        elif service == "s3":
            signer = S3SigV4Auth(credentials, "s3", REGION)
        else:
            signer = SigV4Auth(credentials, service, REGION)
        signer.add_auth(request)
    sent = {k: v for k, v in request.headers.items()}
    sent.setdefault("Host", f"127.0.0.1:{server.port}")
    sent.update(replace_headers or {})
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        conn.putrequest(
            method, path + (f"?{query}" if query else ""), skip_host=True, skip_accept_encoding=True
        )
        for name, value in sent.items():
            conn.putheader(name, value)
        if not any(k.lower() in ("content-length", "transfer-encoding") for k in sent) and (
            body or method in ("POST", "PUT")
        ):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        response = conn.getresponse()
        data = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        conn.close()


def signature_of(reply_request_headers: dict[str, str]) -> str:
    return reply_request_headers["Authorization"].rsplit("Signature=", 1)[1]


# --- error shapes ---------------------------------------------------------------------------------
def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def error_code(reply: Reply, protocol: str) -> str:
    """The AWS error code, after checking the body is that protocol's error shape."""
    assert b"Traceback" not in reply.body and b'File "' not in reply.body, reply.body[:500]
    if protocol == "json":
        document = reply.json()
        assert isinstance(document.get("message"), str), document  # KMS's own are often empty
        assert reply.headers.get("x-amzn-errortype") == document["__type"]
        assert reply.headers.get("x-amzn-requestid")
        return document["__type"]
    root = ET.fromstring(reply.body)
    if protocol == "query":
        assert _local(root.tag) == "ErrorResponse", reply.body
        error = next(child for child in root if _local(child.tag) == "Error")
        fields = {_local(child.tag): child.text for child in error}
        assert fields.get("Type") in ("Sender", "Receiver") and fields.get("Message"), fields
        assert any(_local(child.tag) == "RequestId" and child.text for child in root)
        return fields["Code"] or ""
    assert protocol == "s3"
    assert root.tag == "Error", reply.body
    fields = {child.tag: child.text for child in root}
    assert fields.get("Message") and fields.get("RequestId"), fields
    return fields["Code"] or ""


def assert_error(reply: Reply, protocol: str, status: int | tuple[int, ...], code: str) -> None:
    statuses = (status,) if isinstance(status, int) else status
    assert reply.status in statuses, (reply.status, reply.body[:800])
    assert error_code(reply, protocol) == code, reply.body[:800]


# --- the world the cases run in ------------------------------------------------------------------
@dataclass
class World:
    server: MailcrateServer
    org: str
    user: str
    email: str
    bucket: str
    key_id: str
    ciphertext: bytes
    upload_key: str
    upload_id: str
    part_etag: str


@pytest.fixture(scope="module")
def world(server: MailcrateServer) -> World:
    wm = server.client("workmail")
    org = wm.create_organization(Alias="hostile" + uuid.uuid4().hex[:10])["OrganizationId"]
    domain = wm.describe_organization(OrganizationId=org)["DefaultMailDomain"]
    user = wm.create_user(OrganizationId=org, Name="alice", DisplayName="Alice", Password=PASSWORD)["UserId"]
    email = f"alice@{domain}"
    wm.register_to_work_mail(OrganizationId=org, EntityId=user, Email=email)
    s3 = server.client("s3")
    bucket = "hostile-" + uuid.uuid4().hex[:12]
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="obj", Body=b"0123456789")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mpu")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="mpu", UploadId=upload, PartNumber=1, Body=b"part-one")["ETag"]
    kms = server.client("kms")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"secret", EncryptionContext={"a": "b"})["CiphertextBlob"]
    return World(server, org, user, email, bucket, key_id, blob, "mpu", upload, etag)


@pytest.fixture(autouse=True)
def still_answering(server: MailcrateServer) -> Iterator[None]:
    """After every case the server answers its health check promptly: no crash, no hang."""
    yield
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", "/health")
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    assert server.process is not None and server.process.poll() is None


# --- WorkMail and KMS (JSON) ----------------------------------------------------------------------
def workmail(server: MailcrateServer, operation: str, body: bytes | str | dict[str, Any], **kw: Any) -> Reply:
    if isinstance(body, dict):
        body = json.dumps(body)
    headers = {
        "X-Amz-Target": f"WorkMailService.{operation}",
        "Content-Type": JSON11,
        **kw.pop("headers", {}),
    }
    return send(server, "POST", service="workmail", body=body, headers=headers, **kw)


def kms(server: MailcrateServer, operation: str, body: bytes | str | dict[str, Any]) -> Reply:
    if isinstance(body, dict):
        body = json.dumps(body)
    headers = {"X-Amz-Target": f"TrentService.{operation}", "Content-Type": JSON11}
    return send(server, "POST", service="kms", body=body, headers=headers)


def _deep(depth: int = DEEP) -> str:
    return "[" * depth + "]" * depth


def _forged(scope: str, key: list[Any]) -> str:
    """A NextToken with a valid checksum but a key the server never issued (anyone can make one:
    the checksum only catches accidental edits)."""
    return encode_token(scope, key)


def _start(w: World, **extra: Any) -> dict[str, Any]:
    return {
        "OrganizationId": w.org,
        "EntityId": w.user,
        "RoleArn": ROLE,
        "KmsKeyArn": KEY_ARN,
        "S3BucketName": "bucket",
        "S3Prefix": "exports",
        "ClientToken": uuid.uuid4().hex,  # required on the wire (SDKs fill it in)
        **extra,
    }


Build = Callable[[World], Reply]

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


# --- authentication, garbled -------------------------------------------------------------------
def _auth(w: World, authorization: str | None, **extra: str) -> Reply:
    headers = {"X-Amz-Target": "WorkMailService.ListOrganizations", "Content-Type": JSON11}
    replace = {"Authorization": authorization} if authorization is not None else {}
    replace.update(extra)
    return send(w.server, "POST", service="workmail", body="{}", headers=headers, replace_headers=replace)


def _scope(w: World, tail: str = "us-east-1/workmail/aws4_request") -> str:
    today = datetime.now(UTC).strftime("%Y%m%d")
    return f"AWS4-HMAC-SHA256 Credential={w.server.access_key_id}/{today}/{tail}"


AUTH_CASES: list[Any] = [
    pytest.param(
        lambda w: send(
            w.server,
            "POST",
            service="workmail",
            body="{}",
            sign=False,
            headers={"X-Amz-Target": "WorkMailService.ListOrganizations", "Content-Type": JSON11},
        ),
        403,
        "MissingAuthenticationTokenException",
        id="unsigned",
    ),
    pytest.param(lambda w: _auth(w, "Bearer abc"), (400, 403), "IncompleteSignatureException", id="bearer"),
    pytest.param(lambda w: _auth(w, ""), (400, 403), "IncompleteSignatureException", id="empty"),
    pytest.param(
        lambda w: _auth(w, "AWS4-HMAC-SHA256 garbage"),
        (400, 403),
        "IncompleteSignatureException",
        id="garbage",
    ),
    pytest.param(
        lambda w: _auth(w, _scope(w, tail="us-east-1/aws4_request") + ", SignedHeaders=host, Signature=00"),
        (400, 403),
        "IncompleteSignatureException",
        id="credential-short",
    ),
    pytest.param(
        lambda w: _auth(w, _scope(w) + ", SignedHeaders=host, Signature=zz"),
        (400, 403),
        "IncompleteSignatureException",
        id="signature-not-hex",
    ),
    pytest.param(
        lambda w: _auth(w, _scope(w) + ", SignedHeaders=x-amz-date, Signature=00"),
        (400, 403),
        "IncompleteSignatureException",
        id="host-not-signed",
    ),
    pytest.param(
        lambda w: _auth(w, None, **{"X-Amz-Date": "20261399T999999Z"}),
        (400, 403),
        "IncompleteSignatureException",
        id="date-impossible",
    ),
    pytest.param(
        lambda w: _auth(w, _scope(w) + ", SignedHeaders=host;x-nope, Signature=00"),
        403,
        "InvalidSignatureException",
        id="signed-header-missing",
    ),
    pytest.param(
        lambda w: _auth(
            w,
            "AWS4-HMAC-SHA256 Credential=AKIANOSUCHKEY0000000/20260101/us-east-1/workmail/aws4_request, "
            "SignedHeaders=host, Signature=00",
        ),
        403,
        "UnrecognizedClientException",
        id="unknown-key",
    ),
    pytest.param(
        lambda w: _auth(w, None, **{"X-Amz-Security-Token": "forged-session-token"}),
        403,
        "UnrecognizedClientException",
        id="unsigned-session-token-added",
    ),
]


@pytest.mark.parametrize(("build", "status", "code"), AUTH_CASES)
def test_garbled_authentication(world: World, build: Build, status: int | tuple[int, ...], code: str) -> None:
    assert_error(build(world), "json", status, code)


def test_duplicate_authorization_headers_are_refused(world: World) -> None:
    """Two Authorization headers (one valid): joined as HTTP allows, they are no signature."""
    server = world.server
    request = AWSRequest(
        method="POST",
        url=server.endpoint + "/",
        data=b"{}",
        headers={"X-Amz-Target": "WorkMailService.ListOrganizations", "Content-Type": JSON11},
    )
    SigV4Auth(Credentials(server.access_key_id, server.secret_access_key), "workmail", REGION).add_auth(
        request
    )
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.putrequest("POST", "/")
        for name, value in request.headers.items():
            conn.putheader(name, value)
        conn.putheader("Authorization", request.headers["Authorization"])
        conn.putheader("Content-Length", "2")
        conn.endheaders(b"{}")
        response = conn.getresponse()
        reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()
    assert_error(reply, "json", (400, 403), "IncompleteSignatureException")


def _signed_then_swapped(
    server: MailcrateServer, service: str, headers: dict[str, str], signed: bytes, sent: bytes, declared: str
) -> Reply:
    """Signed by botocore over ``signed`` with ``x-amz-content-sha256: declared``, sent with ``sent``."""
    request = AWSRequest(
        method="POST",
        url=server.endpoint + "/",
        data=signed,
        headers={**headers, "X-Amz-Content-SHA256": declared},
    )
    SigV4Auth(Credentials(server.access_key_id, server.secret_access_key), service, REGION).add_auth(request)
    return send(server, "POST", service=service, body=sent, sign=False, headers=dict(request.headers.items()))


def test_a_declared_payload_hash_must_match_the_body_outside_s3(world: World) -> None:
    """Outside S3 nothing checks a body against its declared x-amz-content-sha256 later, so the
    signature must: with a declared hash (or UNSIGNED-PAYLOAD) a captured request was accepted
    with any other body, e.g. another alias for CreateOrganization."""
    server = world.server
    headers = {"X-Amz-Target": "WorkMailService.CreateOrganization", "Content-Type": JSON11}
    signed = json.dumps({"Alias": "signed" + uuid.uuid4().hex[:10]}).encode()
    swapped_alias = "swapped" + uuid.uuid4().hex[:10]
    swapped = json.dumps({"Alias": swapped_alias}).encode()
    for declared in (hashlib.sha256(signed).hexdigest(), "UNSIGNED-PAYLOAD"):
        reply = _signed_then_swapped(server, "workmail", headers, signed, swapped, declared)
        assert_error(reply, "json", 403, "InvalidSignatureException")
    aliases = [
        o["Alias"]
        for o in server.client("workmail").list_organizations(MaxResults=100)["OrganizationSummaries"]
    ]
    assert swapped_alias not in aliases
    form = {"Content-Type": FORM}
    create = urlencode(
        _iam(Action="CreateRole", RoleName="swap-signed", AssumeRolePolicyDocument="{}")
    ).encode()
    delete = urlencode(_iam(Action="DeleteRole", RoleName="swap-signed")).encode()
    reply = _signed_then_swapped(server, "iam", form, create, delete, "UNSIGNED-PAYLOAD")
    assert_error(reply, "query", 403, "SignatureDoesNotMatch")
    # An honest client that declares its body's own hash is served.
    reply = _signed_then_swapped(
        server, "workmail", headers, swapped, swapped, hashlib.sha256(swapped).hexdigest()
    )
    assert reply.status == 200, reply.body


def test_a_signature_counts_only_for_the_service_it_is_scoped_to(world: World) -> None:
    """Signed for S3 (whose UNSIGNED-PAYLOAD leaves the body out), a WorkMail call's body could
    be swapped; signed for WorkMail, a KMS call was served. Both are refused now."""
    server = world.server
    headers = {"X-Amz-Target": "WorkMailService.CreateOrganization", "Content-Type": JSON11}
    swapped_alias = "scoped" + uuid.uuid4().hex[:10]
    signed = json.dumps({"Alias": "other" + uuid.uuid4().hex[:10]}).encode()
    reply = _signed_then_swapped(
        server, "s3", headers, signed, json.dumps({"Alias": swapped_alias}).encode(), "UNSIGNED-PAYLOAD"
    )
    assert_error(reply, "json", 403, "InvalidSignatureException")
    assert "scoped to correct service: 'workmail'" in reply.json()["message"]
    aliases = [
        o["Alias"]
        for o in server.client("workmail").list_organizations(MaxResults=100)["OrganizationSummaries"]
    ]
    assert swapped_alias not in aliases
    request = AWSRequest(
        method="POST",
        url=server.endpoint + "/",
        data=b"{}",
        headers={"X-Amz-Target": "TrentService.ListKeys", "Content-Type": JSON11},
    )
    SigV4Auth(Credentials(server.access_key_id, server.secret_access_key), "workmail", REGION).add_auth(
        request
    )
    reply = send(server, "POST", service="kms", body=b"{}", sign=False, headers=dict(request.headers.items()))
    assert_error(reply, "json", 403, "InvalidSignatureException")


# --- IAM and STS (query) -------------------------------------------------------------------------
def query(w: World, service: str, params: dict[str, str] | list[tuple[str, str]] | bytes, **kw: Any) -> Reply:
    body = params if isinstance(params, bytes) else urlencode(params)
    return send(w.server, "POST", service=service, body=body, headers={"Content-Type": FORM}, **kw)


def _iam(**params: str) -> dict[str, str]:
    return {"Version": "2010-05-08", **params}


def _sts(**params: str) -> dict[str, str]:
    return {"Version": "2011-06-15", **params}


_ASSUME = {"RoleArn": ROLE, "RoleSessionName": "s"}

QUERY_CASES: list[Any] = [
    pytest.param(
        lambda w: query(w, "iam", {"Version": "2010-05-08"}), 400, "MissingAction", id="iam-no-action"
    ),
    pytest.param(
        lambda w: query(w, "iam", _iam(Action="Nope")), 400, "InvalidAction", id="iam-unknown-action"
    ),
    pytest.param(
        lambda w: query(w, "iam", b"Action=\xff\xfe"), 400, "InvalidAction", id="iam-action-not-utf8"
    ),
    pytest.param(
        lambda w: query(
            w, "iam", _iam(Action="CreateRole", RoleName="hostile-deep", AssumeRolePolicyDocument=_deep())
        ),
        400,
        "MalformedPolicyDocument",
        id="iam-policy-nested-10000",
    ),
    pytest.param(
        lambda w: query(
            w,
            "iam",
            _iam(
                Action="CreateRole",
                RoleName="hostile-deep-obj",
                AssumeRolePolicyDocument='{"a":' * DEEP + "1" + "}" * DEEP,
            ),
        ),
        400,
        "MalformedPolicyDocument",
        id="iam-policy-nested-objects",
    ),
    pytest.param(
        lambda w: query(w, "iam", _iam(Action="CreateRole", RoleName="a b", AssumeRolePolicyDocument="{}")),
        400,
        "ValidationError",
        id="iam-role-name-pattern",
    ),
    pytest.param(
        lambda w: query(w, "iam", b"Action=GetRole&Version=2010-05-08&RoleName=%FF%FE"),
        400,
        "ValidationError",
        id="iam-role-name-not-utf8",
    ),
    pytest.param(
        lambda w: query(w, "iam", _iam(Action="ListRoles", MaxItems="0")),
        400,
        "ValidationError",
        id="maxitems-0",
    ),
    pytest.param(
        lambda w: query(w, "iam", _iam(Action="ListRoles", MaxItems="-1")),
        400,
        "ValidationError",
        id="maxitems-neg",
    ),
    pytest.param(
        lambda w: query(w, "iam", _iam(Action="ListRoles", MaxItems="1e30")),
        400,
        "ValidationError",
        id="maxitems-1e30",
    ),
    pytest.param(
        lambda w: query(w, "iam", _iam(Action="ListRoles", MaxItems="9" * 40)),
        400,
        "ValidationError",
        id="maxitems-huge",
    ),
    pytest.param(
        lambda w: query(w, "iam", _iam(Action="ListRoles", Marker="garbage")),
        400,
        "InvalidInput",
        id="marker-garbage",
    ),
    pytest.param(
        lambda w: query(w, "iam", _iam(Action="ListRoles", Marker=_forged("roles", [{"a": 1}]))),
        400,
        "InvalidInput",
        id="marker-forged",
    ),
    pytest.param(
        lambda w: query(
            w,
            "iam",
            [("Action", "GetRole"), ("Version", "2010-05-08"), ("RoleName", "no-such"), ("RoleName", "x")],
        ),
        404,
        "NoSuchEntity",
        id="iam-duplicate-params",
    ),
    pytest.param(
        lambda w: query(
            w,
            "iam",
            _iam(
                Action="CreateRole",
                RoleName="hostile-tag",
                AssumeRolePolicyDocument="{}",
                **{"Tags.member.1.Key.x": "1"},
            ),
        ),
        400,
        "ValidationError",
        id="iam-tag-key-structure",
    ),
    pytest.param(
        lambda w: query(
            w,
            "iam",
            _iam(
                Action="CreateRole",
                RoleName="hostile-tag-case",
                AssumeRolePolicyDocument=json.dumps(
                    {
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "x.amazonaws.com"},
                                "Action": "sts:AssumeRole",
                            }
                        ]
                    }
                ),
                **{
                    "Tags.member.1.Key": "Cost",
                    "Tags.member.1.Value": "a",
                    "Tags.member.2.Key": "cost",
                    "Tags.member.2.Value": "b",
                },
            ),
        ),
        400,
        "InvalidInput",
        id="iam-tag-keys-differ-in-case",
    ),
    pytest.param(
        lambda w: query(w, "iam", _iam(Action="GetRole", **{"RoleName." + ".".join(["a"] * 5000): "x"})),
        400,
        "ValidationError",
        id="iam-key-5000-segments",
    ),
    pytest.param(
        lambda w: query(w, "sts", _sts(Action="AssumeRole", DurationSeconds="abc", **_ASSUME)),
        400,
        "ValidationError",
        id="sts-duration-not-number",
    ),
    pytest.param(
        lambda w: query(w, "sts", _sts(Action="AssumeRole", DurationSeconds="99999999999", **_ASSUME)),
        400,
        "ValidationError",
        id="sts-duration-huge",
    ),
    pytest.param(
        lambda w: query(
            w, "sts", _sts(Action="AssumeRole", **_ASSUME, **{"TransitiveTagKeys.member.1.x": "y"})
        ),
        400,
        "ValidationError",
        id="sts-list-item-structure-where-string-goes",
    ),
    pytest.param(
        lambda w: query(w, "sts", _sts(Action="AssumeRole", **_ASSUME, **{"PolicyArns.member.1.arn.x": "y"})),
        400,
        "ValidationError",
        id="sts-structure-member-nested",
    ),
    pytest.param(
        lambda w: query(w, "sts", _sts(Action="AssumeRole", **_ASSUME, **{"Tags.member.1.Key": "k"})),
        400,
        "ValidationError",
        id="sts-tag-without-value",
    ),
    pytest.param(
        lambda w: query(w, "sts", _sts(Action="AssumeRole", RoleArn="x", RoleSessionName="s" * 100)),
        400,
        "ValidationError",
        id="sts-bad-role-arn",
    ),
    pytest.param(
        lambda w: query(w, "iam", _iam(Action="ListRoles"), replace_headers={"Authorization": "Bearer x"}),
        (400, 403),
        "IncompleteSignature",
        id="iam-bearer",
    ),
    pytest.param(
        lambda w: query(w, "sts", _sts(Action="GetCallerIdentity"), sign=False),
        403,
        "MissingAuthenticationToken",
        id="sts-unsigned",
    ),
    pytest.param(
        lambda w: query(
            w,
            "sts",
            _sts(Action="GetCallerIdentity"),
            replace_headers={
                "Authorization": "AWS4-HMAC-SHA256 Credential=x/y/sts/aws4_request, SignedHeaders=host, Signature=00"
            },
        ),
        (400, 403),
        "IncompleteSignature",
        id="sts-garbled-credential",
    ),
]


@pytest.mark.parametrize(("build", "status", "code"), QUERY_CASES)
def test_query_protocol_rejects_hostile_input(
    world: World, build: Build, status: int | tuple[int, ...], code: str
) -> None:
    assert_error(build(world), "query", status, code)


def test_rejected_iam_calls_create_nothing(world: World) -> None:
    iam = world.server.client("iam")
    names = {role["RoleName"] for role in iam.list_roles()["Roles"]}
    assert not names & {"hostile-deep", "hostile-deep-obj", "hostile-tag", "hostile-tag-case", "a b"}


def test_query_get_with_duplicate_params_is_answered(world: World) -> None:
    reply = send(
        world.server,
        "GET",
        service="sts",
        query="Action=GetCallerIdentity&Version=2011-06-15&Action=GetCallerIdentity&Version=x",
    )
    assert reply.status == 200, reply.body
    assert b"<Account>" + world.server.account_id.encode() in reply.body


# --- S3 (REST-XML) -------------------------------------------------------------------------------
def s3(w: World, method: str, key: str | None = None, **kw: Any) -> Reply:
    """``key`` is appended to the bucket path verbatim (already percent-encoded as wanted)."""
    path = f"/{w.bucket}" + (f"/{key}" if key is not None else "")
    return send(w.server, method, path, service="s3", **kw)


def _chunked(chunks: list[bytes], trailer: str = "") -> bytes:
    out = b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks if c)
    return out + b"0\r\n" + trailer.encode() + b"\r\n"


def _unsigned_trailer_headers(decoded: int | str) -> dict[str, str]:
    return {"Content-Encoding": "aws-chunked", "X-Amz-Decoded-Content-Length": str(decoded)}


def _put_chunked(w: World, key: str, body: bytes, decoded: int | str) -> Reply:
    return s3(
        w,
        "PUT",
        key,
        body=body,
        headers=_unsigned_trailer_headers(decoded),
        declared_sha256="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    )


def _put_signed_chunks(w: World, key: str, data: bytes, *, bad_signature: bool) -> Reply:
    """STREAMING-AWS4-HMAC-SHA256-PAYLOAD with the chunk signatures a client computes, one of them
    wrong when asked."""
    server = w.server
    path = f"/{w.bucket}/{key}"
    headers = {"Content-Encoding": "aws-chunked", "X-Amz-Decoded-Content-Length": str(len(data))}
    request = AWSRequest(method="PUT", url=server.endpoint + path, data=b"", headers=headers)
    signer = _DeclaredPayloadSigner(
        Credentials(server.access_key_id, server.secret_access_key),
        REGION,
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    )
    signer.add_auth(request)
    amz_date = request.headers["X-Amz-Date"]
    body = signed_chunked_body(
        server.secret_access_key,
        amz_date,
        REGION,
        signature_of(dict(request.headers.items())),
        [data],
        bad_signature=bad_signature,
    )
    sent = dict(request.headers.items())
    sent["Host"] = f"127.0.0.1:{server.port}"
    sent["Content-Length"] = str(len(body))
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=15)
    try:
        conn.putrequest("PUT", path, skip_host=True, skip_accept_encoding=True)
        for name, value in sent.items():
            conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


def _complete(w: World, xml: bytes | str) -> Reply:
    return s3(w, "POST", w.upload_key, query=f"uploadId={w.upload_id}", body=xml)


def _parts_xml(*parts: tuple[str, str]) -> str:
    inner = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>" for n, e in parts)
    return f'<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{inner}</CompleteMultipartUpload>'


_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
    + "]><CompleteMultipartUpload><Part><PartNumber>&j;</PartNumber></Part></CompleteMultipartUpload>"
)
_EXTERNAL = (
    '<?xml version="1.0"?><!DOCTYPE c [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&e;</ETag></Part></CompleteMultipartUpload>"
)

S3_CASES: list[Any] = [
    # Keys.
    pytest.param(lambda w: s3(w, "PUT", "k" * 1025, body=b"x"), 400, "KeyTooLongError", id="key-1025-bytes"),
    pytest.param(
        lambda w: s3(w, "PUT", "%C3%A9" * 513, body=b"x"), 400, "KeyTooLongError", id="key-1026-utf8-bytes"
    ),
    pytest.param(lambda w: s3(w, "PUT", "a%00b", body=b"x"), 400, "InvalidArgument", id="key-nul"),
    pytest.param(lambda w: s3(w, "PUT", "a%FFb", body=b"x"), 400, "InvalidURI", id="key-not-utf8"),
    pytest.param(lambda w: s3(w, "GET", "..%2F..%2Fetc%2Fpasswd"), 404, "NoSuchKey", id="key-escape-encoded"),
    pytest.param(lambda w: s3(w, "GET", "../../../../etc/passwd"), 404, "NoSuchKey", id="key-escape-raw"),
    pytest.param(lambda w: s3(w, "GET", "a%01b%1Fc"), 404, "NoSuchKey", id="key-control-characters"),
    pytest.param(lambda w: s3(w, "GET", "obj/"), 404, "NoSuchKey", id="key-trailing-slash"),
    pytest.param(lambda w: s3(w, "GET", "obj%2F%2E%2E%2Fobj"), 404, "NoSuchKey", id="key-dots-encoded"),
    # Bodies that do not keep their promises.
    pytest.param(
        lambda w: s3(w, "PUT", "sha-not-hex", body=b"x", declared_sha256="abc"),
        400,
        "InvalidArgument",
        id="content-sha256-not-hex",
    ),
    pytest.param(
        lambda w: s3(w, "PUT", "sha-wrong", body=b"x", declared_sha256=hashlib.sha256(b"y").hexdigest()),
        400,
        "XAmzContentSHA256Mismatch",
        id="content-sha256-wrong",
    ),
    pytest.param(
        lambda w: s3(w, "PUT", "sha-unknown", body=b"x", declared_sha256="STREAMING-NOPE"),
        501,
        "NotImplemented",
        id="content-sha256-unknown-streaming",
    ),
    pytest.param(
        lambda w: s3(w, "PUT", "md5-bad", body=b"x", headers={"Content-MD5": "not-base64!"}),
        400,
        "InvalidDigest",
        id="content-md5-garbage",
    ),
    pytest.param(
        lambda w: s3(
            w, "PUT", "md5-wrong", body=b"x", headers={"Content-MD5": base64.b64encode(b"0" * 16).decode()}
        ),
        400,
        "BadDigest",
        id="content-md5-wrong",
    ),
    pytest.param(
        lambda w: s3(
            w,
            "PUT",
            "cl-6gb",
            body=b"x",
            declared_sha256="UNSIGNED-PAYLOAD",
            replace_headers={"Content-Length": str(6 * 1024**3)},
        ),
        400,
        "EntityTooLarge",
        id="content-length-6gb",
    ),
    pytest.param(
        lambda w: _put_chunked(w, "chunk-size-garbage", b"zz\r\nabc\r\n0\r\n\r\n", 3),
        400,
        "IncompleteBody",
        id="chunked-size-garbage",
    ),
    pytest.param(
        lambda w: _put_chunked(w, "chunk-size-lies", b"ff\r\nabc\r\n0\r\n\r\n", 3),
        400,
        "IncompleteBody",
        id="chunked-size-larger-than-body",
    ),
    pytest.param(
        lambda w: _put_chunked(w, "chunk-size-negative", b"-3\r\nabc\r\n0\r\n\r\n", 3),
        400,
        "IncompleteBody",
        id="chunked-size-negative",
    ),
    pytest.param(
        lambda w: _put_chunked(w, "chunk-decoded-lies", _chunked([b"abc"]), 4),
        400,
        "IncompleteBody",
        id="chunked-decoded-length-lies",
    ),
    pytest.param(
        lambda w: _put_chunked(w, "chunk-decoded-negative", _chunked([b"abc"]), -1),
        400,
        "InvalidArgument",
        id="chunked-decoded-length-negative",
    ),
    pytest.param(
        lambda w: _put_chunked(w, "chunk-decoded-huge", _chunked([b"abc"]), "9" * 30),
        400,
        "InvalidArgument",
        id="chunked-decoded-length-huge",
    ),
    pytest.param(
        lambda w: _put_chunked(w, "chunk-decoded-nan", _chunked([b"abc"]), "abc"),
        400,
        "InvalidArgument",
        id="chunked-decoded-length-not-number",
    ),
    pytest.param(
        lambda w: _put_chunked(w, "chunk-no-end", b"3\r\nabc\r\n", 3),
        400,
        "IncompleteBody",
        id="chunked-no-final-chunk",
    ),
    pytest.param(
        lambda w: _put_chunked(
            w, "chunk-undeclared-trailer", _chunked([b"abc"], "x-amz-checksum-crc32:AAAAAA==\r\n"), 3
        ),
        400,
        "InvalidRequest",
        id="chunked-undeclared-trailer",
    ),
    pytest.param(
        lambda w: _put_signed_chunks(w, "chunk-bad-signature", b"abc", bad_signature=True),
        403,
        "SignatureDoesNotMatch",
        id="chunked-bad-chunk-signature",
    ),
    pytest.param(
        lambda w: s3(
            w,
            "PUT",
            "sse-context-deep",
            body=b"x",
            headers={
                "x-amz-server-side-encryption": "aws:kms",
                "x-amz-server-side-encryption-context": base64.b64encode(_deep(3000).encode()).decode(),
            },
        ),
        400,
        "InvalidArgument",
        id="sse-context-nested",
    ),
    pytest.param(
        lambda w: s3(
            w,
            "PUT",
            "sse-context-garbage",
            body=b"x",
            headers={"x-amz-server-side-encryption": "aws:kms", "x-amz-server-side-encryption-context": "!!"},
        ),
        400,
        "InvalidArgument",
        id="sse-context-not-base64",
    ),
    pytest.param(
        lambda w: s3(w, "PUT", "sse-unknown", body=b"x", headers={"x-amz-server-side-encryption": "rot13"}),
        400,
        "InvalidArgument",
        id="sse-unknown-algorithm",
    ),
    # Multipart: part numbers, listing markers, CompleteMultipartUpload bodies.
    *[
        pytest.param(
            lambda w, n=n: s3(w, "PUT", "mpu", query=f"partNumber={n}&uploadId={w.upload_id}", body=b"x"),
            400,
            "InvalidArgument",
            id=f"part-number-{n[:12]}",
        )
        for n in ("0", "10001", "-1", "abc", "9" * 30, "1.5")
    ],
    pytest.param(
        lambda w: s3(w, "PUT", "mpu", query="partNumber=1&uploadId=no-such-upload", body=b"x"),
        404,
        "NoSuchUpload",
        id="upload-part-unknown-upload",
    ),
    pytest.param(
        lambda w: s3(w, "GET", "mpu", query=f"uploadId={w.upload_id}&part-number-marker={'9' * 20}"),
        400,
        "InvalidArgument",
        id="list-parts-marker-huge",
    ),
    pytest.param(
        lambda w: s3(w, "GET", "mpu", query=f"uploadId={w.upload_id}&part-number-marker=abc"),
        400,
        "InvalidArgument",
        id="list-parts-marker-not-number",
    ),
    pytest.param(
        lambda w: s3(w, "GET", "mpu", query=f"uploadId={w.upload_id}&max-parts={'9' * 20}"),
        400,
        "InvalidArgument",
        id="list-parts-max-huge",
    ),
    pytest.param(
        lambda w: s3(w, "GET", query="uploads=&max-uploads=-5"),
        400,
        "InvalidArgument",
        id="list-uploads-max-neg",
    ),
    pytest.param(
        lambda w: s3(w, "GET", "mpu", query=f"uploadId={w.upload_id}&max-parts=-1"),
        400,
        "InvalidArgument",
        id="list-parts-max-neg",
    ),
    pytest.param(lambda w: _complete(w, b"<not xml"), 400, "MalformedXML", id="complete-not-xml"),
    pytest.param(lambda w: _complete(w, b""), 400, "MalformedXML", id="complete-empty"),
    pytest.param(
        lambda w: _complete(w, b"<CompleteMultipartUpload/>"), 400, "MalformedXML", id="complete-no-parts"
    ),
    pytest.param(lambda w: _complete(w, b"\xff\xfe<a/>"), 400, "MalformedXML", id="complete-not-utf8"),
    pytest.param(lambda w: _complete(w, _LAUGHS), 400, "MalformedXML", id="complete-billion-laughs"),
    pytest.param(lambda w: _complete(w, _EXTERNAL), 400, "MalformedXML", id="complete-external-entity"),
    pytest.param(
        lambda w: _complete(w, "<a>" * 100_000 + "</a>" * 100_000),
        400,
        "MalformedXML",
        id="complete-nested-100000",
    ),
    pytest.param(
        lambda w: _complete(
            w,
            "<CompleteMultipartUpload>"
            + "<Part><PartNumber>1</PartNumber></Part>" * 200_000
            + "</CompleteMultipartUpload>",
        ),
        400,
        "EntityTooLarge",
        id="complete-over-4mb",
    ),
    pytest.param(
        lambda w: _complete(w, _parts_xml(("abc", w.part_etag))), 400, "MalformedXML", id="complete-part-abc"
    ),
    pytest.param(
        lambda w: _complete(w, _parts_xml(("9" * 30, w.part_etag))),
        400,
        "InvalidPart",
        id="complete-part-huge",
    ),
    pytest.param(
        lambda w: _complete(w, _parts_xml(("-1", w.part_etag))),
        400,
        "InvalidPart",
        id="complete-part-negative",
    ),
    pytest.param(
        lambda w: _complete(w, _parts_xml(("2", w.part_etag), ("1", w.part_etag))),
        400,
        "InvalidPartOrder",
        id="complete-parts-descending",
    ),
    pytest.param(
        lambda w: _complete(w, _parts_xml(("1", '"0000"'))), 400, "InvalidPart", id="complete-wrong-etag"
    ),
    pytest.param(
        lambda w: s3(w, "POST", "mpu", query="uploadId=no-such-upload", body=_parts_xml(("1", w.part_etag))),
        404,
        "NoSuchUpload",
        id="complete-unknown-upload",
    ),
    # Ranges.
    pytest.param(
        lambda w: s3(w, "GET", "obj", headers={"Range": "bytes=10-"}),
        416,
        "InvalidRange",
        id="range-past-end",
    ),
    pytest.param(
        lambda w: s3(w, "GET", "obj", headers={"Range": "bytes=-0"}),
        416,
        "InvalidRange",
        id="range-empty-suffix",
    ),
    pytest.param(
        lambda w: s3(w, "GET", "obj", headers={"Range": "bytes=" + "9" * 40 + "-"}),
        416,
        "InvalidRange",
        id="range-start-huge",
    ),
    # Response header overrides from the query string.
    *[
        pytest.param(
            lambda w, name=name, value=value: s3(w, "GET", "obj", query=f"{name}={quote(value, safe='')}"),
            400,
            "InvalidArgument",
            id=f"{name}-{label}",
        )
        for name, value, label in (
            ("response-content-type", "text/html\r\nX-Injected: 1", "crlf"),
            ("response-content-type", "text/\u2603", "beyond-latin1"),
            ("response-content-disposition", "attachment; filename=\u2603.txt", "beyond-latin1"),
            ("response-cache-control", "no-cache\x00", "nul"),
        )
    ],
    # Listing.
    pytest.param(
        lambda w: s3(w, "GET", query="list-type=2&max-keys=-1"), 400, "InvalidArgument", id="max-keys-neg"
    ),
    pytest.param(
        lambda w: s3(w, "GET", query="list-type=2&max-keys=abc"), 400, "InvalidArgument", id="max-keys-abc"
    ),
    pytest.param(
        # base64 of bytes that are not UTF-8
        lambda w: s3(w, "GET", query="list-type=2&continuation-token=__79"),
        400,
        "InvalidArgument",
        id="continuation-token-garbage",
    ),
    # Headers of other types.
    pytest.param(
        lambda w: s3(w, "GET", "obj", headers={"If-Modified-Since": "yesterday at noon"}),
        400,
        "InvalidArgument",
        id="if-modified-since-garbage",
    ),
    # Authentication.
    pytest.param(lambda w: s3(w, "GET", "obj", sign=False), 403, "AccessDenied", id="s3-unsigned"),
    pytest.param(
        lambda w: s3(w, "GET", "obj", replace_headers={"Authorization": "AWS AKIA:abc"}),
        (400, 403),
        "AuthorizationHeaderMalformed",
        id="s3-sigv2",
    ),
    pytest.param(
        lambda w: s3(
            w, "GET", "obj", replace_headers={"x-amz-content-sha256": hashlib.sha256(b"z").hexdigest()}
        ),
        403,
        "SignatureDoesNotMatch",
        id="s3-content-sha256-swapped-after-signing",
    ),
    pytest.param(
        lambda w: s3(w, "GET", "obj", replace_headers={"Authorization": "AWS4-HMAC-SHA256 Credential=x"}),
        (400, 403),
        "AuthorizationHeaderMalformed",
        id="s3-sigv4-garbled",
    ),
    pytest.param(
        lambda w: send(w.server, "PUT", "/Bad_Bucket_Name", service="s3"),
        400,
        "InvalidBucketName",
        id="bucket-name-invalid",
    ),
]


@pytest.mark.parametrize(("build", "status", "code"), S3_CASES)
def test_s3_rejects_hostile_input(
    world: World, build: Build, status: int | tuple[int, ...], code: str
) -> None:
    assert_error(build(world), "s3", status, code)


def test_rejected_s3_writes_store_nothing(world: World) -> None:
    """Every rejected PUT above used its own key: none of them exists, and the upload still has
    exactly its one part (no CompleteMultipartUpload above succeeded)."""
    client = world.server.client("s3")
    keys = {obj["Key"] for obj in client.list_objects_v2(Bucket=world.bucket).get("Contents", [])}
    assert keys == {"obj"}, keys
    parts = client.list_parts(Bucket=world.bucket, Key="mpu", UploadId=world.upload_id)["Parts"]
    assert [(p["PartNumber"], p["ETag"]) for p in parts] == [(1, world.part_etag)]
    assert client.get_object(Bucket=world.bucket, Key="obj")["Body"].read() == b"0123456789"


def test_pathological_wildcards_in_a_policy_cannot_hang_a_request(world: World) -> None:
    """A bucket policy Resource of many stars (*a*a*...*b), evaluated against a long key: a
    plain wildcard regex backtracked for hours on it (a request thread spinning for good);
    the answer now comes at once, and the pattern still means what it says."""
    client = world.server.client("s3")
    bucket = "wild-" + uuid.uuid4().hex[:12]
    client.create_bucket(Bucket=bucket)
    pattern = f"arn:aws:s3:::{bucket}/" + "*a" * 24 + "*b"
    statement = {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": pattern}
    client.put_bucket_policy(
        Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    )
    try:
        started = time.monotonic()
        reply = send(world.server, "GET", f"/{bucket}/" + "a" * 400, service="s3", timeout=10)
        assert_error(reply, "s3", 404, "NoSuchKey")  # no b at the end: not denied, just absent
        assert time.monotonic() - started < 2
        reply = send(world.server, "GET", f"/{bucket}/" + "xa" * 30 + "b", service="s3", timeout=10)
        assert_error(reply, "s3", 403, "AccessDenied")  # 24 a's then a final b: denied
    finally:
        client.delete_bucket_policy(Bucket=bucket)
        client.delete_bucket(Bucket=bucket)


def _stored_files(server: MailcrateServer) -> set[str]:
    root = server.data_dir / "s3"
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def test_rejected_uploads_leave_no_file(world: World) -> None:
    """A body refused mid-stream or at its end is removed from disk, not only from the listing."""
    before = _stored_files(world.server)
    replies = [
        s3(world, "PUT", "disk-sha", body=b"x" * 100_000, declared_sha256=hashlib.sha256(b"y").hexdigest()),
        _put_chunked(world, "disk-lies", _chunked([b"a" * 100_000]), 100_001),
        _put_chunked(world, "disk-longer", _chunked([b"a" * 100_000]), 10),
        _put_signed_chunks(world, "disk-signature", b"s" * 100_000, bad_signature=True),
        s3(
            world,
            "PUT",
            "mpu",
            query=f"partNumber=2&uploadId={world.upload_id}",
            body=b"p" * 1000,
            headers={"Content-MD5": base64.b64encode(b"0" * 16).decode()},
        ),
    ]
    assert [r.status for r in replies] == [400, 400, 400, 403, 400], [r.body[:200] for r in replies]
    assert _stored_files(world.server) == before


@pytest.mark.parametrize(
    ("header", "status", "body"),
    [
        ("bytes=abc", 200, b"0123456789"),  # S3 ignores a malformed range
        ("bytes=5-1", 200, b"0123456789"),  # and an inverted one
        ("bytes=0-1,3-4", 200, b"0123456789"),  # and multiple ranges
        ("bytes=2-" + "9" * 40, 206, b"23456789"),  # an end past the object is clamped
        ("bytes=-" + "9" * 40, 206, b"0123456789"),  # a suffix longer than the object is all of it
    ],
)
def test_odd_ranges(world: World, header: str, status: int, body: bytes) -> None:
    reply = s3(world, "GET", "obj", headers={"Range": header})
    assert (reply.status, reply.body) == (status, body)


@pytest.mark.parametrize(
    "raw_key",
    ["a/../b", "./x", "dir/", "dir//x", "%E2%98%83/%F0%9F%98%80", "k%20with%20spaces", "%25%25"],
)
def test_odd_keys_are_literal(world: World, raw_key: str) -> None:
    """Dot segments, trailing and doubled slashes and unicode are a key's own characters: the
    object is stored and read back under exactly that key."""
    from urllib.parse import unquote

    put = s3(world, "PUT", raw_key, body=b"odd")
    assert put.status == 200, put.body
    try:
        got = s3(world, "GET", raw_key)
        assert (got.status, got.body) == (200, b"odd")
        listed = world.server.client("s3").list_objects_v2(Bucket=world.bucket, Prefix=unquote(raw_key))
        assert [obj["Key"] for obj in listed["Contents"]] == [unquote(raw_key)]
    finally:
        assert s3(world, "DELETE", raw_key).status == 204


def test_zero_page_sizes_list_nothing(world: World) -> None:
    """max-parts=0 / max-uploads=0 with parts and uploads present: an empty, truncated page (it
    raised IndexError looking for the page's last item to continue after)."""
    client = world.server.client("s3")
    parts = client.list_parts(Bucket=world.bucket, Key="mpu", UploadId=world.upload_id, MaxParts=0)
    assert parts.get("Parts", []) == [] and parts["IsTruncated"] is True
    uploads = client.list_multipart_uploads(Bucket=world.bucket, MaxUploads=0)
    assert uploads.get("Uploads", []) == [] and uploads["IsTruncated"] is True
    reply = s3(
        world, "GET", "obj", query="response-content-type=" + quote("text/plain; charset=\u00e9", safe="")
    )
    assert reply.status == 200 and reply.headers["content-type"] == "text/plain; charset=\u00e9"


def test_copy_source_preconditions_are_kept(world: World) -> None:
    """A CopyObject whose x-amz-copy-source-if-* condition fails is 412 PreconditionFailed and
    writes nothing (the conditions were ignored: the copy was always made)."""
    client = world.server.client("s3")
    head = client.head_object(Bucket=world.bucket, Key="obj")
    etag, modified = head["ETag"], head["LastModified"]
    source = {"Bucket": world.bucket, "Key": "obj"}
    past, future = modified - timedelta(days=1), modified + timedelta(days=1)
    failing = [
        {"CopySourceIfMatch": '"00000000000000000000000000000000"'},
        {"CopySourceIfNoneMatch": etag},
        {"CopySourceIfNoneMatch": "*"},
        {"CopySourceIfModifiedSince": future},
        {"CopySourceIfUnmodifiedSince": past},
    ]
    for condition in failing:
        with pytest.raises(ClientError) as caught:
            client.copy_object(Bucket=world.bucket, Key="copy-cond", CopySource=source, **condition)
        assert caught.value.response["Error"]["Code"] == "PreconditionFailed", condition
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=world.bucket).get("Contents", [])}
    assert "copy-cond" not in keys
    holding = [
        {"CopySourceIfMatch": etag},
        {"CopySourceIfMatch": etag, "CopySourceIfUnmodifiedSince": past},  # If-Match wins, as S3 has it
        {"CopySourceIfNoneMatch": '"0000"', "CopySourceIfModifiedSince": future},
        {"CopySourceIfModifiedSince": past, "CopySourceIfUnmodifiedSince": future},
    ]
    for condition in holding:
        client.copy_object(Bucket=world.bucket, Key="copy-cond", CopySource=source, **condition)
    assert client.get_object(Bucket=world.bucket, Key="copy-cond")["Body"].read() == b"0123456789"
    client.delete_object(Bucket=world.bucket, Key="copy-cond")


def test_signed_chunks_are_accepted_when_right(world: World) -> None:
    """The chunk signer of the hostile cases is right: the same body with good signatures is stored."""
    reply = _put_signed_chunks(world, "chunk-good", b"abc", bad_signature=False)
    assert reply.status == 200, reply.body
    try:
        assert s3(world, "GET", "chunk-good").body == b"abc"
    finally:
        s3(world, "DELETE", "chunk-good")


def test_content_length_lies(world: World) -> None:
    """A negative Content-Length is refused at the HTTP layer; a body shorter than its
    Content-Length (the client gives up) leaves no object and the server answering."""
    negative = s3(world, "PUT", "cl-negative", body=b"x", replace_headers={"Content-Length": "-1"})
    assert negative.status == 400
    request = AWSRequest(method="PUT", url=f"{world.server.endpoint}/{world.bucket}/cl-short", data=b"x" * 10)
    S3SigV4Auth(
        Credentials(world.server.access_key_id, world.server.secret_access_key), "s3", REGION
    ).add_auth(request)
    conn = http.client.HTTPConnection("127.0.0.1", world.server.port, timeout=2)
    conn.putrequest("PUT", f"/{world.bucket}/cl-short")
    for name, value in request.headers.items():
        conn.putheader(name, value)
    conn.putheader("Content-Length", "100")
    conn.endheaders(b"x" * 10)
    conn.close()  # 90 bytes never come
    with pytest.raises(ClientError) as caught:
        world.server.client("s3").head_object(Bucket=world.bucket, Key="cl-short")
    assert caught.value.response["Error"]["Code"] == "404"


# --- export jobs: rejected calls change nothing -----------------------------------------------------
def _jobs(w: World) -> list[dict[str, Any]]:
    return w.server.client("workmail").list_mailbox_export_jobs(OrganizationId=w.org)["Jobs"]


def test_rejected_export_calls_change_nothing(world: World) -> None:
    wm = world.server.client("workmail")
    assert _jobs(world) == []  # every hostile Start of the JSON table (run before) created nothing
    first = workmail(world.server, "StartMailboxExportJob", _start(world, ClientToken="hostile-token"))
    assert first.status == 200, first.body
    job_id = first.json()["JobId"]
    # The token again with other arguments: refused, and the job keeps its own.
    for other in (
        {"S3Prefix": "elsewhere"},
        {"S3BucketName": "other-bucket"},
        {"KmsKeyArn": KEY_ARN.replace("5555", "6666")},
        {"RoleArn": ROLE + "2"},
        {"Description": "changed"},
    ):
        reply = workmail(
            world.server, "StartMailboxExportJob", _start(world, ClientToken="hostile-token", **other)
        )
        assert_error(reply, "json", 400, "InvalidParameterException")
    described = wm.describe_mailbox_export_job(OrganizationId=world.org, JobId=job_id)
    assert (
        described["S3Prefix"],
        described["S3BucketName"],
        described["KmsKeyArn"],
        described["RoleArn"],
    ) == (
        "exports",
        "bucket",
        KEY_ARN,
        ROLE,
    )
    assert "Description" not in described and described["State"] == "RUNNING"
    assert [job["JobId"] for job in _jobs(world)] == [job_id]
    # A cancel of a job in another organization, or with a wrong JobId type, changes nothing.
    other_org = wm.create_organization(Alias="hostile" + uuid.uuid4().hex[:10])["OrganizationId"]
    reply = workmail(
        world.server,
        "CancelMailboxExportJob",
        {"OrganizationId": other_org, "JobId": job_id, "ClientToken": "c1"},
    )
    assert_error(reply, "json", 400, "EntityNotFoundException")
    reply = workmail(
        world.server,
        "CancelMailboxExportJob",
        {"OrganizationId": world.org, "JobId": {"id": job_id}, "ClientToken": "c2"},
    )
    assert_error(reply, "json", 400, "SerializationException")
    assert wm.describe_mailbox_export_job(OrganizationId=world.org, JobId=job_id)["State"] == "RUNNING"
    wm.cancel_mailbox_export_job(OrganizationId=world.org, JobId=job_id, ClientToken="hostile-cancel")


@pytest.mark.parametrize("prefix", ["../..", "a//b/", "./", "*", "'()'"])
def test_odd_export_prefixes_are_recorded_verbatim(world: World, prefix: str) -> None:
    """Prefixes the model's pattern allows are the job's own: S3Path is ``prefix/JobId.zip``."""
    wm = world.server.client("workmail")
    job_id = wm.start_mailbox_export_job(**_start(world, S3Prefix=prefix))["JobId"]
    try:
        described = wm.describe_mailbox_export_job(OrganizationId=world.org, JobId=job_id)
        assert described["S3Prefix"] == prefix
        assert described["S3Path"].endswith(f"{job_id}.zip") and described["S3Path"].startswith(
            prefix.rstrip("/")
        )
    finally:
        wm.cancel_mailbox_export_job(OrganizationId=world.org, JobId=job_id)


def test_database_errors_do_not_carry_bound_values(tmp_path: Path) -> None:
    """If a statement ever fails (the 500s above did, in ListParts and ListOrganizations), the
    exception logged with it names the statement, never the values bound to it."""
    database = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    secret = "sealed-secret-" + uuid.uuid4().hex
    with pytest.raises(SQLAlchemyError) as caught, database.engine.begin() as conn:
        conn.execute(text("SELECT :secret, :bad"), {"secret": secret, "bad": {"not": "bindable"}})
    assert secret not in str(caught.value)
    assert "hidden due to hide_parameters" in str(caught.value)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("decoded_length", [None, 1000])
def test_a_chunk_claiming_a_huge_size_is_not_buffered(world: World, decoded_length: int | None) -> None:
    """An aws-chunked body whose chunk-size line claims ~1 TB, then streams 96 MiB: the server
    neither holds it in memory (it did: RSS grew by every byte sent) nor stores anything."""
    server = world.server
    assert server.process is not None
    headers = {"Content-Encoding": "aws-chunked"}
    if decoded_length is not None:
        headers["X-Amz-Decoded-Content-Length"] = str(decoded_length)
    request = AWSRequest(
        method="PUT", url=f"{server.endpoint}/{world.bucket}/huge-chunk", data=b"", headers=headers
    )
    credentials = Credentials(server.access_key_id, server.secret_access_key)
    _DeclaredPayloadSigner(credentials, REGION, "STREAMING-UNSIGNED-PAYLOAD-TRAILER").add_auth(request)
    before = _rss_kib(server.process.pid)
    peak = before
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest("PUT", f"/{world.bucket}/huge-chunk", skip_host=True, skip_accept_encoding=True)
        for name, value in request.headers.items():
            conn.putheader(name, value)
        conn.putheader("Host", f"127.0.0.1:{server.port}")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        block = b"x" * (1 << 20)
        for index, data in enumerate([b"ffffffffff\r\n", *[block] * 96, b"\r\n0\r\n\r\n"]):
            try:
                conn.send(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break  # refused early (the decoded length was exceeded) and closed
            if index % 16 == 0:
                peak = max(peak, _rss_kib(server.process.pid))
        conn.send(b"0\r\n\r\n")
        response = conn.getresponse()
        reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()
    assert_error(reply, "s3", 400, "IncompleteBody")
    assert peak - before < 48 * 1024, (before, peak)
    reply = s3(world, "GET", "huge-chunk")
    assert_error(reply, "s3", 404, "NoSuchKey")


def _race(calls: list[Callable[[], Any]]) -> list[str]:
    """Run the calls at once (each with its own client, released together); their outcomes."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> str:
        barrier.wait()
        try:
            call()
        except ClientError as exc:
            return exc.response["Error"]["Code"]
        return "OK"

    with ThreadPoolExecutor(len(calls)) as pool:
        return sorted(pool.map(run, calls))


def test_concurrent_duplicates_are_refused(world: World) -> None:
    """Names, email addresses and aliases are checked before they are written: 12 calls at once
    that all pass the check must still create one (up to 4 were created before)."""
    server = world.server
    clients = [server.client("workmail") for _ in range(12)]
    wm = clients[0]
    org = wm.create_organization(Alias="race" + uuid.uuid4().hex[:10])["OrganizationId"]
    domain = wm.describe_organization(OrganizationId=org)["DefaultMailDomain"]
    outcomes = _race(
        [
            lambda c=c: c.create_user(OrganizationId=org, Name="same", DisplayName="Same", Password=PASSWORD)
            for c in clients
        ]
    )
    assert outcomes == ["NameAvailabilityException"] * 11 + ["OK"]
    ids = [
        wm.create_user(OrganizationId=org, Name=f"u{n}", DisplayName="U", Password=PASSWORD)["UserId"]
        for n in range(12)
    ]
    outcomes = _race(
        [
            lambda c=c, uid=uid: c.register_to_work_mail(
                OrganizationId=org, EntityId=uid, Email=f"same@{domain}"
            )
            for c, uid in zip(clients, ids, strict=True)
        ]
    )
    assert outcomes == ["EmailAddressInUseException"] * 11 + ["OK"]
    listed = wm.list_users(OrganizationId=org)["Users"]
    assert sum(u["Name"] == "same" for u in listed) == 1
    assert sum(u.get("Email") == f"same@{domain}" for u in listed) == 1
    alias = "race" + uuid.uuid4().hex[:10]
    outcomes = _race([lambda c=c: c.create_organization(Alias=alias) for c in clients])
    assert outcomes == ["NameAvailabilityException"] * 11 + ["OK"]
    aliases = [o["Alias"] for o in wm.list_organizations(MaxResults=100)["OrganizationSummaries"]]
    assert aliases.count(alias) == 1


def test_stalled_uploads_cannot_hold_s3(world: World) -> None:
    """40 uploads that send their headers and then nothing (more than the 32 S3 threads): S3
    still answers, and each stalled upload is answered RequestTimeout once idle too long. They
    held every S3 thread, for as long as their clients stayed connected."""
    server = world.server
    stalled = []
    for n in range(40):
        request = AWSRequest(method="PUT", url=f"{server.endpoint}/{world.bucket}/stalled-{n}", data=b"")
        _DeclaredPayloadSigner(
            Credentials(server.access_key_id, server.secret_access_key), REGION, "UNSIGNED-PAYLOAD"
        ).add_auth(request)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.putrequest("PUT", f"/{world.bucket}/stalled-{n}", skip_host=True, skip_accept_encoding=True)
        for name, value in request.headers.items():
            conn.putheader(name, value)
        conn.putheader("Host", f"127.0.0.1:{server.port}")
        conn.putheader("Content-Length", "1000")
        conn.endheaders()
        stalled.append(conn)
    try:
        started = time.monotonic()
        reply = s3(world, "GET", query="list-type=2", timeout=20)
        assert reply.status == 200 and time.monotonic() - started < 10, reply.body[:300]
        response = stalled[0].getresponse()
        reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        assert_error(reply, "s3", 400, "RequestTimeout")
    finally:
        for conn in stalled:
            conn.close()
    keys = {
        o["Key"] for o in world.server.client("s3").list_objects_v2(Bucket=world.bucket).get("Contents", [])
    }
    assert not any(key.startswith("stalled-") for key in keys)


# --- the log ---------------------------------------------------------------------------------------
def test_log_holds_no_secret_and_no_traceback(world: World) -> None:
    """Runs last (pytest keeps file order): everything above went through this one server."""
    assert world.server.log_path is not None
    log = world.server.log_path.read_text(errors="replace")
    assert world.server.secret_access_key not in log
    assert PASSWORD not in log
    assert "Traceback" not in log and "internal error" not in log, log[-3000:]
