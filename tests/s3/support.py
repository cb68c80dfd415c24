"""Helpers for the S3 tests: error codes from boto3, raw SigV4-signed S3 requests."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.support.mailcrate_server import MailcrateServer


def code_of(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    return excinfo.value.response["Error"]["Code"]


def status_of(excinfo: pytest.ExceptionInfo[ClientError]) -> int:
    return excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


class _DeclaredPayload(SigV4Auth):
    """botocore's signer with a chosen x-amz-content-sha256 (streaming modes no SDK sends over http)."""

    def __init__(self, credentials: Credentials, declared: str) -> None:
        super().__init__(credentials, "s3", "us-east-1")
        self.declared = declared

    def payload(self, request: AWSRequest) -> str:
        return self.declared

    def _normalize_url_path(self, path: str) -> str:
        return path


def signed(
    server: MailcrateServer,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    declared: str | None = None,
    host: str | None = None,
) -> tuple[httpx.Response, AWSRequest]:
    """A SigV4-signed S3 request, sent as-is (``path`` already percent-encoded)."""
    declared = declared or hashlib.sha256(body).hexdigest()
    url = server.endpoint + path
    all_headers = {"x-amz-content-sha256": declared, **(headers or {})}
    if host:
        all_headers["host"] = host
    request = AWSRequest(method=method, url=url, data=body, headers=all_headers)
    _DeclaredPayload(Credentials(server.access_key_id, server.secret_access_key), declared).add_auth(request)
    response = httpx.request(method, url, content=body, headers=dict(request.headers.items()), timeout=60)
    return response, request


def xml_code(response: httpx.Response) -> str:
    from xml.etree import ElementTree as ET

    return ET.fromstring(response.content).findtext("Code") or ""


def put_bucket(s3: Any, name: str) -> str:
    s3.create_bucket(Bucket=name)
    return name


def raw_request(server: MailcrateServer, method: str, path: str, headers: dict[str, str]) -> bytes:
    """The request line and headers of a SigV4-signed S3 request (UNSIGNED-PAYLOAD), as bytes."""
    request = AWSRequest(
        method=method,
        url=server.endpoint + path,
        headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD", **headers},
    )
    SigV4Auth(Credentials(server.access_key_id, server.secret_access_key), "s3", server.region).add_auth(
        request
    )
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}"]
    lines += [f"{k}: {v}" for k, v in request.headers.items() if k.lower() != "host"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
