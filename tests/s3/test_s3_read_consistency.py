"""A GET that overlaps an overwrite or a delete returns the object it started with, whole.

The old files used to be deleted as soon as the overwrite committed, under a running GET: a
32 MiB object overwritten mid-GET gave the client IncompleteRead after 8 MiB.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from typing import Any

from botocore.exceptions import ClientError

from tests.s3.support import raw_request
from tests.support.mailcrate_server import MailcrateServer

MIB = 1024 * 1024


def _put_multipart(s3: Any, bucket: str, key: str, data: bytes, part_size: int) -> None:
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = []
    for number, at in enumerate(range(0, len(data), part_size), 1):
        chunk = data[at : at + part_size]
        etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=chunk)["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts})


def _start_get(s3: Any, bucket: str, key: str) -> tuple[Any, bytes]:
    """A GET whose headers and first MiB have arrived; the rest is still to be read."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    return body, body.read(MIB)


def test_get_overlapping_overwrite_returns_old_object_whole(server: MailcrateServer, bucket: str) -> None:
    reader, writer = server.client("s3"), server.client("s3")
    old, new = os.urandom(32 * MIB), os.urandom(32 * MIB)
    _put_multipart(writer, bucket, "big", old, 8 * MIB)  # as the aws CLI writes 32 MiB
    body, first = _start_get(reader, bucket, "big")
    writer.put_object(Bucket=bucket, Key="big", Body=new)
    rest = body.read()
    assert hashlib.sha256(first + rest).digest() == hashlib.sha256(old).digest()
    # The next GET sees the new object; the old files are gone once the reader is done.
    assert reader.get_object(Bucket=bucket, Key="big")["Body"].read() == new


def test_get_overlapping_delete_of_multipart_object(server: MailcrateServer, bucket: str) -> None:
    s3 = server.client("s3")
    parts = [os.urandom(5 * MIB) for _ in range(3)]
    _put_multipart(s3, bucket, "mp", b"".join(parts), 5 * MIB)
    body, first = _start_get(s3, bucket, "mp")
    server.client("s3").delete_object(Bucket=bucket, Key="mp")
    assert first + body.read() == b"".join(parts)
    try:
        s3.head_object(Bucket=bucket, Key="mp")
        raise AssertionError("the object should be gone")
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "404"


def test_gets_racing_overwrites_are_never_short_or_mixed(server: MailcrateServer, bucket: str) -> None:
    """Many GETs while another client overwrites the object over and over: each body is one
    version whole (its length and hash match one that was written), and none is cut short."""
    versions = [os.urandom(5 * MIB + 1 + n) for n in range(3)]
    digests = {hashlib.sha256(v).hexdigest(): len(v) for v in versions}
    writer = server.client("s3")
    _put_multipart(writer, bucket, "hot", versions[0], 5 * MIB)
    stop = threading.Event()

    def overwrite() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            _put_multipart(writer, bucket, "hot", versions[n % len(versions)], 5 * MIB)

    thread = threading.Thread(target=overwrite)
    thread.start()
    reader = server.client("s3")
    seen: list[str] = []
    try:
        for _ in range(30):
            response = reader.get_object(Bucket=bucket, Key="hot")
            data = response["Body"].read()
            assert len(data) == response["ContentLength"]
            digest = hashlib.sha256(data).hexdigest()
            assert digest in digests
            seen.append(digest)
    finally:
        stop.set()
        thread.join()
    assert len(set(seen)) > 1  # the GETs did overlap the overwrites


def test_unread_body_releases_its_files(server: MailcrateServer, bucket: str) -> None:
    """A client that hangs up after the headers leaves no open files behind (the server keeps
    serving, and a later overwrite frees the old file from disk)."""
    s3 = server.client("s3")
    s3.put_object(Bucket=bucket, Key="gone", Body=os.urandom(8 * MIB))
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(raw_request(server, "GET", f"/{bucket}/gone", {}))
            assert sock.recv(100).startswith(b"HTTP/1.1 200")
    s3.put_object(Bucket=bucket, Key="gone", Body=b"small")
    assert s3.get_object(Bucket=bucket, Key="gone")["Body"].read() == b"small"
    assert server.process is not None
    pid = server.process.pid
    deleted: list[str] = []
    # Connection teardown is asynchronous: give the server a moment, then look again.
    for _ in range(50):
        deleted = [
            target
            for fd in os.listdir(f"/proc/{pid}/fd")
            if (target := _readlink(f"/proc/{pid}/fd/{fd}")) and "(deleted)" in target and "objects" in target
        ]
        if not deleted:
            break
        threading.Event().wait(0.1)
    assert deleted == []


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""
