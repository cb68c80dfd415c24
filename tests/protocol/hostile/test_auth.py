"""Garbled authentication against a real ``mailcrate serve``: every protocol answers in its own
error shape, and a signature counts only for its own body and service."""

from __future__ import annotations

import hashlib
import http.client
import json
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.protocol.hostile.support import (
    FORM,
    JSON11,
    REGION,
    SERVE_ARGS,  # noqa: F401 - read by the server fixture (tests/conftest.py)
    Build,
    Reply,
    World,
    _iam,
    assert_error,
    send,
)
from tests.support.mailcrate_server import MailcrateServer


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
