"""At rest and across crashes: no plaintext in the data dir; a killed upload leaves nothing visible."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.s3.support import code_of
from tests.support.mailcrate_server import MailcrateServer

MARKER = b"MAILCRATE-PLAINTEXT-MARKER-7f3a9c"


def _files_containing(root: Path, needle: bytes) -> list[Path]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and needle in path.read_bytes():
            hits.append(path)
    return hits


def test_no_plaintext_at_rest(server: MailcrateServer, s3: Any, bucket: str, kms_key: dict[str, Any]) -> None:
    body = (MARKER + b" ") * 50_000  # ~1.7 MB: spans chunks
    s3.put_object(
        Bucket=bucket, Key="secret.txt", Body=body, ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key["Arn"]
    )
    upload = s3.create_multipart_upload(
        Bucket=bucket, Key="secret-mp.txt", ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key["Arn"]
    )["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="secret-mp.txt", UploadId=upload, PartNumber=1, Body=body)
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="secret-mp.txt",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    s3.put_object(Bucket=bucket, Key="sse-s3.txt", Body=body)  # SSE-S3 as well
    assert s3.get_object(Bucket=bucket, Key="secret-mp.txt")["Body"].read() == body
    # WAL and database too: the whole directory
    assert _files_containing(server.data_dir, MARKER) == []
    assert _files_containing(server.data_dir, MARKER[:16]) == []


def _raw_put_then_die(server: MailcrateServer, bucket: str, key: str, declared: int, sent: int) -> None:
    """Start a PUT of ``declared`` bytes, send ``sent`` of them, then kill -9 the server."""
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from tests.s3.support import _DeclaredPayload  # signer with UNSIGNED-PAYLOAD

    url = f"{server.endpoint}/{bucket}/{key}"
    request = AWSRequest(
        method="PUT",
        url=url,
        headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD", "Content-Length": str(declared)},
    )
    _DeclaredPayload(
        Credentials(server.access_key_id, server.secret_access_key), "UNSIGNED-PAYLOAD"
    ).add_auth(request)
    sock = socket.create_connection(("127.0.0.1", server.port))
    headers = {"Host": f"127.0.0.1:{server.port}", **dict(request.headers.items())}
    head = f"PUT /{bucket}/{key} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sock.sendall(head.encode())
    block = os.urandom(1 << 20)
    for _ in range(sent // len(block)):
        sock.sendall(block)
    time.sleep(0.5)  # let the server write what it has
    tmp_files = list((server.data_dir / "s3" / "tmp").glob("*"))
    assert tmp_files, "the upload should be in progress in a temporary file"
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    sock.close()


def test_kill_mid_upload_leaves_nothing_visible(fresh_server: MailcrateServer) -> None:
    s3 = fresh_server.client("s3")
    kms = fresh_server.client("kms")
    key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    s3.create_bucket(Bucket="crash-bucket")
    s3.put_object(
        Bucket="crash-bucket",
        Key="keep",
        Body=b"committed before the crash",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=key_arn,
    )
    _raw_put_then_die(fresh_server, "crash-bucket", "partial.bin", declared=64 << 20, sent=16 << 20)

    fresh_server.process = None
    fresh_server.start()
    s3 = fresh_server.client("s3")
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket="crash-bucket").get("Contents", [])]
    assert listed == ["keep"]
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket="crash-bucket", Key="partial.bin")
    assert code_of(exc) == "404"
    assert s3.get_object(Bucket="crash-bucket", Key="keep")["Body"].read() == b"committed before the crash"
    s3.put_object(
        Bucket="crash-bucket",
        Key="after",
        Body=b"still usable",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=key_arn,
    )
    assert s3.get_object(Bucket="crash-bucket", Key="after")["Body"].read() == b"still usable"
