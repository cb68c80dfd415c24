"""Pooled connections survive an early rejection (``Expect: 100-continue``).

A client that sends ``Expect: 100-continue`` holds its body back until the server says
``100 Continue``; on a final answer instead (NoSuchBucket, AccessDenied) it sends no body
(RFC 9110 section 10.1.1) and, botocore included, puts the connection back in its pool. The
server used to answer early and keep the connection open while still expecting the body, so the
next request on it was read as that body and failed with 400.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.s3.support import code_of, raw_request
from tests.support.mailcrate_server import MailcrateServer


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length body (or b"" status 0 if the peer closed)."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            return 0, {}, data
        data += more
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in header_lines)}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        more = sock.recv(65536)
        if not more:
            break
        rest += more
    return int(status_line.split()[1]), headers, rest[:length]


def test_raw_socket_next_request_after_early_404_with_expect(server: MailcrateServer) -> None:
    """The client holds its body back; the server's early 404 must leave no half-read request."""
    server.client("s3").create_bucket(Bucket="conn-raw")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            raw_request(
                server,
                "PUT",
                "/no-such-bucket-here/key",
                {"Content-Length": "64", "Expect": "100-continue"},
            )
        )
        status, headers, body = _read_response(sock)
        assert status == 404 and b"<Code>NoSuchBucket</Code>" in body
        # As a pooled client does: no body, the next request on the same connection.
        try:
            sock.sendall(raw_request(server, "GET", "/conn-raw?list-type=2", {}))
            status2, _, body2 = _read_response(sock)
        except (BrokenPipeError, ConnectionResetError):
            status2, body2 = 0, b""
        if headers.get("connection") == "close":
            assert status2 == 0  # the server said it would close, and did: the client reconnects
        else:
            assert status2 == 200, body2
            assert b"<Name>conn-raw</Name>" in body2
    # The server itself is still fine.
    assert server.client("s3").list_objects_v2(Bucket="conn-raw")["KeyCount"] == 0


def test_raw_socket_body_sent_without_expect_keeps_the_connection(server: MailcrateServer) -> None:
    """Without Expect the client sends its body anyway: it is skipped and the connection reused."""
    server.client("s3").create_bucket(Bucket="conn-raw-noexpect")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            raw_request(server, "PUT", "/no-such-bucket-here/key", {"Content-Length": "64"}) + b"x" * 64
        )
        status, headers, _ = _read_response(sock)
        assert status == 404
        assert headers.get("connection") != "close"
        sock.sendall(raw_request(server, "GET", "/conn-raw-noexpect?list-type=2", {}))
        status2, _, body2 = _read_response(sock)
        assert status2 == 200 and b"<Name>conn-raw-noexpect</Name>" in body2


@pytest.mark.parametrize("reason", ["missing-bucket", "denied-by-policy"])
def test_boto3_pooled_connection_after_early_rejection(server: MailcrateServer, reason: str) -> None:
    """boto3 (botocore over urllib3) sends Expect: 100-continue on PutObject bodies above 1 MiB
    and reuses its one pooled connection for the next call, which must succeed."""
    s3: Any = server.client("s3", max_pool_connections=1)
    bucket = f"conn-boto-{reason}"
    s3.create_bucket(Bucket=bucket)
    target = "no-such-bucket-here" if reason == "missing-bucket" else bucket
    if reason == "denied-by-policy":
        s3.put_bucket_policy(
            Bucket=bucket,
            Policy=(
                '{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*",'
                f'"Action":"s3:PutObject","Resource":"arn:aws:s3:::{bucket}/denied/*"}}]}}'
            ),
        )
    body = b"z" * (2 * 1024 * 1024)
    for _ in range(3):
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=target, Key="denied/object", Body=body)
        assert code_of(exc) == ("NoSuchBucket" if reason == "missing-bucket" else "AccessDenied")
        # The next calls on the pooled connection work.
        s3.put_object(Bucket=bucket, Key="ok", Body=body)
        assert s3.get_object(Bucket=bucket, Key="ok")["Body"].read() == body
    log = server.log_path.read_text() if server.log_path else ""
    assert "Invalid HTTP request" not in log


@pytest.mark.parametrize("length", ["", "-1", "abc"])
def test_malformed_content_length_is_answered_400(server: MailcrateServer, length: str) -> None:
    """Malformed framing is refused by the HTTP layer with a 400 and a close, never a silent drop
    (Ceph's s3-tests test_*_create_bad_contentlength_* send these; their client reports the close)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\nbar".encode())
        status, headers, _ = _read_response(sock)
    assert status == 400
    assert headers.get("connection") == "close"
