"""The streamed download of an export (``migrate run``, ``export download``): one GET from a real
``mailcrate serve``, its body cut short by a proxy in between, resumed where it stopped, never
spliced onto another object's bytes, and the file private from its first byte."""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError, IncompleteReadError, ResponseStreamingError

from mailcrate.admin.fetch import RESUMES, download_object
from tests.support.fault_proxy import FORWARD, Action, FaultProxy, Request
from tests.support.mailcrate_server import MailcrateServer

SIZE = 3 * (1 << 20) + 12_345  # three read buffers and a bit


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailcrateServer]:
    with MailcrateServer.running(tmp_path_factory.mktemp("fetch") / "data") as srv:
        yield srv


def _object(server: MailcrateServer) -> tuple[str, str, bytes]:
    s3 = server.client("s3")
    bucket = "fetch-" + uuid.uuid4().hex[:10]
    s3.create_bucket(Bucket=bucket)
    body = os.urandom(SIZE)
    s3.put_object(Bucket=bucket, Key="exports/job.zip", Body=body)
    return bucket, "exports/job.zip", body


def _through(server: MailcrateServer, rule: Callable[[Request], Action]) -> tuple[FaultProxy, Any]:
    """A proxy with ``rule`` in front of ``server``, and an S3 client that goes through it."""
    url = urlsplit(server.endpoint)
    proxy = FaultProxy((url.hostname or "127.0.0.1", url.port or 80), rule)
    client = server.client("s3", endpoint_url=proxy.endpoint, s3={"addressing_style": "path"})
    return proxy, client


def test_a_cut_body_is_resumed_where_it_stopped_into_a_private_file(
    server: MailcrateServer, tmp_path: Path
) -> None:
    bucket, key, body = _object(server)
    gets: list[Request] = []

    def rule(request: Request) -> Action:
        if request.method != "GET":
            return FORWARD
        gets.append(request)
        return Action("cut", keep=1_500_000) if len(gets) == 1 else FORWARD

    proxy, s3 = _through(server, rule)
    dest = tmp_path / "job.zip"
    dest.write_bytes(b"an older download")
    dest.chmod(0o644)
    seen: list[int] = []
    try:
        assert download_object(s3, bucket, key, dest, on_bytes=seen.append) == SIZE
    finally:
        proxy.close()
    assert dest.read_bytes() == body
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert sum(seen) == SIZE
    assert len(gets) == 2
    first_part = int(gets[1].headers["range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < first_part < SIZE
    assert gets[1].headers["if-match"].strip('"') == server.client("s3").head_object(Bucket=bucket, Key=key)[
        "ETag"
    ].strip('"')


def test_an_object_rewritten_meanwhile_is_not_spliced(server: MailcrateServer, tmp_path: Path) -> None:
    bucket, key, _ = _object(server)
    direct = server.client("s3")
    gets: list[Request] = []

    def rule(request: Request) -> Action:
        if request.method != "GET":
            return FORWARD
        gets.append(request)
        if len(gets) == 1:
            return Action("cut", keep=1_500_000)
        direct.put_object(Bucket=bucket, Key=key, Body=os.urandom(SIZE))  # a new export, same key
        return FORWARD

    proxy, s3 = _through(server, rule)
    try:
        with pytest.raises(ClientError) as caught:
            download_object(s3, bucket, key, tmp_path / "job.zip")
    finally:
        proxy.close()
    assert caught.value.response["Error"]["Code"] in ("PreconditionFailed", "412")


def test_a_body_cut_every_time_fails_after_the_resumes(server: MailcrateServer, tmp_path: Path) -> None:
    bucket, key, _ = _object(server)
    proxy, s3 = _through(server, lambda r: Action("cut", keep=600_000) if r.method == "GET" else FORWARD)
    try:
        with pytest.raises((IncompleteReadError, ResponseStreamingError)):
            download_object(s3, bucket, key, tmp_path / "job.zip")
    finally:
        proxy.close()
    assert proxy.count(f"GET /{bucket}/{key}", "cut") == RESUMES + 1


def test_a_link_left_at_the_destination_is_not_written_through(
    server: MailcrateServer, tmp_path: Path
) -> None:
    bucket, key, _ = _object(server)
    elsewhere = tmp_path / "someone-elses-file"
    elsewhere.write_bytes(b"not yours")
    link = tmp_path / "job.zip"
    link.symlink_to(elsewhere)
    with pytest.raises(OSError):
        download_object(server.client("s3"), bucket, key, link)
    assert elsewhere.read_bytes() == b"not yours"  # no decrypted mail went through the link
