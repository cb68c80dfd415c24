"""The server's SigV4 check agrees with botocore's signer, the code AWS clients sign with.

mailcrate computes the expected signature itself (botocore's request objects cost more than
the rest of an API call), so these tests sign requests with botocore exactly as a client does
and check that the server's verifier accepts them, and rejects them once anything signed changes.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from mailcrate.protocol.errors import AuthError
from mailcrate.protocol.http import Headers, HttpRequest
from mailcrate.protocol.sigv4 import check_time, parse_signature, verify_signature

KEY, SECRET = "AKIASIGV4TEST0000000", "s" * 40
ENDPOINT = "http://127.0.0.1:4566"


def _sent(request: AWSRequest) -> HttpRequest:
    """The request as the server receives it: the signed URL and headers, plus Host."""
    prepared = request.prepare()
    url = urlsplit(prepared.url)
    headers = [("Host", url.netloc), *prepared.headers.items()]
    return HttpRequest(
        method=prepared.method,
        raw_path=url.path or "/",
        query_string=url.query,
        headers=Headers(headers),
        body=prepared.body or b"",
    )


def _verified(request: HttpRequest) -> bool:
    info = parse_signature(request)
    assert info is not None
    check_time(info, dt.datetime.now(dt.UTC), 900)
    try:
        verify_signature(request, info, SECRET)
    except AuthError:
        return False
    return True


def _signed(
    method: str,
    path: str,
    *,
    service: str = "workmail",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    presign: bool = False,
) -> HttpRequest:
    request = AWSRequest(method=method, url=ENDPOINT + path, data=body, headers=dict(headers or {}))
    credentials = Credentials(KEY, SECRET)
    if presign:
        signer_class = S3SigV4QueryAuth if service == "s3" else SigV4QueryAuth
        signer_class(credentials, service, "eu-west-1", expires=300).add_auth(request)
    else:
        signer_class = S3SigV4Auth if service == "s3" else SigV4Auth
        signer_class(credentials, service, "eu-west-1").add_auth(request)
    return _sent(request)


def _with_header(request: HttpRequest, name: str, value: str) -> HttpRequest:
    headers = Headers((key, value if key == name else old) for key, old in request.headers.items())
    return HttpRequest(request.method, request.raw_path, request.query_string, headers, request.body)


JSON_HEADERS = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "WorkMailService.ListUsers"}


@pytest.mark.parametrize(
    ("method", "path", "service", "headers", "presign"),
    [
        ("POST", "/", "workmail", JSON_HEADERS, False),
        ("POST", "/", "workmail", {**JSON_HEADERS, "X-Custom": "  spaced    out  value "}, False),
        ("GET", "/a/./b//c/../d%20e/", "iam", {}, False),
        ("GET", "/?Action=ListRoles&Version=2010-05-08&Marker=a%2Bb%3D&Empty=", "iam", {}, False),
        ("GET", "/?b=2&a=1&a=0&space=x%20y&tilde=~", "sts", {}, True),
        ("PUT", "/bucket/dir//key%20with%2Fslash.txt", "s3", {"Content-Type": "text/plain"}, False),
        ("GET", "/bucket/a/../b.txt?versionId=3&response-content-type=text%2Fplain", "s3", {}, False),
        ("GET", "/bucket/key%2Bplus.zip", "s3", {}, True),
    ],
)
def test_botocore_signatures_verify(
    method: str, path: str, service: str, headers: dict[str, str], presign: bool
) -> None:
    body = b'{"OrganizationId": "m-1"}' if method in ("POST", "PUT") else b""
    request = _signed(method, path, service=service, body=body, headers=headers, presign=presign)
    assert _verified(request)


def test_any_signed_change_fails() -> None:
    good = _signed("POST", "/", body=b'{"MaxResults": 5}', headers=JSON_HEADERS)
    assert _verified(good)
    changed = [
        HttpRequest("POST", "/", "", good.headers, b'{"MaxResults": 6}'),
        HttpRequest("POST", "/other", "", good.headers, good.body),
        HttpRequest("POST", "/", "x=1", good.headers, good.body),
        HttpRequest("PUT", "/", "", good.headers, good.body),
        _with_header(good, "x-amz-target", "WorkMailService.DeleteUser"),
    ]
    assert [_verified(request) for request in changed] == [False] * len(changed)


def test_bad_amz_date_is_an_incomplete_signature() -> None:
    request = _signed("POST", "/", body=b"{}", headers=JSON_HEADERS)
    for bad in ("2026-11-25T10:00:00Z", "20261325T100000Z", "\uff12\uff10\uff12\uff161125T100000Z"):
        info = parse_signature(_with_header(request, "x-amz-date", bad))
        assert info is not None
        with pytest.raises(AuthError) as caught:
            check_time(info, dt.datetime.now(dt.UTC), 900)
        assert caught.value.kind == "incomplete"
