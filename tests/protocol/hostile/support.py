"""What the hostile-request suites share: sending signed requests exactly as given, reading each
protocol's error shape, and the world the cases run in.

The standard: bad input gets a clear, AWS-shaped error of the protocol the client speaks (JSON
``__type`` + ``message``; query ``<ErrorResponse><Error><Code>``; S3 ``<Error><Code>``), changes
nothing, and never makes the server answer 5xx, hang or crash; its log never holds a secret.

Requests are signed with botocore's own signers (``SigV4Auth`` / ``S3SigV4Auth`` on an
``AWSRequest``) and sent with ``http.client``, which sends the path, headers and body exactly as
given (``httpx`` would normalize ``..`` segments away). After every case the server must still
answer ``/health``; after each module its log must hold no traceback and no secret
(conftest.py).
"""

from __future__ import annotations

import http.client
import json
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from mailcrate.services.pagination import encode_token
from tests.support.mailcrate_server import MailcrateServer

# The API only (Start leaves jobs RUNNING); stalled uploads are given up after 2 s, not 20.
SERVE_ARGS = ("--export-workers", "0", "--request-idle-seconds", "2")


REGION = "us-east-1"


JSON11 = "application/x-amz-json-1.1"


FORM = "application/x-www-form-urlencoded; charset=utf-8"


PASSWORD = "Hostile-Pa55word-" + uuid.uuid4().hex[:8]  # must never reach the log


ROLE = "arn:aws:iam::111122223333:role/ExportRole"


KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/11111111-2222-3333-4444-555555555555"


DEEP = 10_000


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


def query(w: World, service: str, params: dict[str, str] | list[tuple[str, str]] | bytes, **kw: Any) -> Reply:
    body = params if isinstance(params, bytes) else urlencode(params)
    return send(w.server, "POST", service=service, body=body, headers={"Content-Type": FORM}, **kw)


def _iam(**params: str) -> dict[str, str]:
    return {"Version": "2010-05-08", **params}


def _sts(**params: str) -> dict[str, str]:
    return {"Version": "2011-06-15", **params}


def s3(w: World, method: str, key: str | None = None, **kw: Any) -> Reply:
    """``key`` is appended to the bucket path verbatim (already percent-encoded as wanted)."""
    path = f"/{w.bucket}" + (f"/{key}" if key is not None else "")
    return send(w.server, method, path, service="s3", **kw)


def stored_files(server: MailcrateServer) -> set[str]:
    root = server.data_dir / "s3"
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def race(calls: list[Callable[[], Any]]) -> list[str]:
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
