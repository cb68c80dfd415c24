"""Raw signed HTTP requests, for inputs no SDK would send (bad JSON, broken constraints, tampering)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import json
from collections.abc import Iterable
from typing import Any
from unittest.mock import patch

import httpx
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def signed_json_request(
    endpoint: str,
    *,
    target: str,
    body: bytes | str | dict[str, Any],
    access_key_id: str,
    secret_access_key: str,
    service: str = "workmail",
    region: str = "us-east-1",
    content_type: str = "application/x-amz-json-1.1",
    when: dt.datetime | None = None,
    tamper: bytes | None = None,
    session_token: str | None = None,
) -> httpx.Response:
    """Sign like botocore does, optionally send a different body than the one signed."""
    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    headers = {"Content-Type": content_type, "X-Amz-Target": target}
    request = AWSRequest(method="POST", url=endpoint + "/", data=body, headers=headers)
    credentials = Credentials(access_key_id, secret_access_key, session_token)
    signer = SigV4Auth(credentials, service, region)
    if when is not None:
        # botocore takes the signing time from the clock; set it for stale/future requests.
        with patch("botocore.auth.get_current_datetime", return_value=when.replace(tzinfo=None)):
            signer.add_auth(request)
    else:
        signer.add_auth(request)
    sent = dict(request.headers.items())
    return httpx.post(
        endpoint + "/", content=tamper if tamper is not None else body, headers=sent, timeout=30
    )


def signed_chunked_body(
    secret_access_key: str,
    amz_date: str,
    region: str,
    seed_signature: str,
    chunks: Iterable[bytes],
    *,
    tamper: bool = False,
    bad_signature: bool = False,
) -> bytes:
    """An aws-chunked body (``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``) as a client builds it: each
    chunk signed in a chain from the headers' signature, then the empty final chunk. ``tamper``
    alters each data chunk's last byte after signing it; ``bad_signature`` sends a wrong
    signature for each data chunk."""
    key = ("AWS4" + secret_access_key).encode()
    for part in (amz_date[:8], region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    scope = f"{amz_date[:8]}/{region}/s3/aws4_request"
    previous, body = seed_signature, b""
    for chunk in [*chunks, b""]:
        to_sign = "\n".join(
            (
                "AWS4-HMAC-SHA256-PAYLOAD",
                amz_date,
                scope,
                previous,
                hashlib.sha256(b"").hexdigest(),
                hashlib.sha256(chunk).hexdigest(),
            )
        )
        signature = previous = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if chunk and tamper:
            chunk = chunk[:-1] + b"X"
        sent_signature = "0" * 64 if chunk and bad_signature else signature
        body += f"{len(chunk):x};chunk-signature={sent_signature}\r\n".encode() + chunk + b"\r\n"
    return body


class _UnsignedPayloadSigner(S3SigV4Auth):
    """botocore's S3 signer for a streamed body: the payload is declared UNSIGNED-PAYLOAD."""

    def payload(self, request: AWSRequest) -> str:
        return "UNSIGNED-PAYLOAD"


def open_upload(
    endpoint: str,
    path: str,
    access_key_id: str,
    secret_access_key: str,
    *,
    content_length: int,
    region: str = "us-east-1",
    timeout: float = 30,
) -> http.client.HTTPConnection:
    """A signed S3 PUT of ``path`` with its headers sent and its body not yet: the caller sends
    it (slowly, in part, or not at all) and reads the response."""
    request = AWSRequest(method="PUT", url=f"{endpoint}{path}", data=b"")
    _UnsignedPayloadSigner(Credentials(access_key_id, secret_access_key), "s3", region).add_auth(request)
    host_port = endpoint.split("://", 1)[1]
    host, port = host_port.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    conn.putrequest("PUT", path, skip_host=True, skip_accept_encoding=True)
    for name, value in request.headers.items():
        conn.putheader(name, value)
    conn.putheader("Host", host_port)
    conn.putheader("Content-Length", str(content_length))
    conn.endheaders()
    return conn
