"""An external S3 that stalls or drops connections is a transient fault, retried by the job,
never a permanent failure: botocore's read timeouts and closed connections (HTTPClientError)
were classified as permanent once its own retries were spent, while a 5xx was retried.
Real sockets on loopback: one server that accepts and never answers, one that hangs up."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from mailcrate.export.destination import TransientExportError
from mailcrate.export.destination.boto import BotoDestination
from mailcrate.jobs.records import ExportJob, State


def _job() -> ExportJob:
    now = datetime.now(UTC)
    return ExportJob(
        job_id="j", account_id="111122223333", region="us-east-1", organization_id="m-" + "a" * 32,
        entity_id="u", description=None, role_arn="arn:aws:iam::111122223333:role/R",
        kms_key_arn="arn:aws:kms:us-east-1:111122223333:key/k", s3_bucket_name="bucket", s3_prefix="p",
        s3_path="p/j.zip", state=State.RUNNING, estimated_progress=0, error_info=None, start_time=now,
        end_time=None, client_token=None, request_digest="", cancel_token=None, lease_owner=None,
        lease_expires_at=None, attempts=1, finishing=False, upload_id=None, items_total=None,
        items_done=None, bytes_done=None,
    )  # fmt: skip


def _credentials() -> dict[str, str]:
    expiry = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    return {"access_key": "AKIAEXAMPLE", "secret_key": "x" * 40, "token": "t", "expiry_time": expiry}


@pytest.fixture(params=["stalls", "hangs-up"])
def bad_endpoint(request: pytest.FixtureRequest) -> Iterator[str]:
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            if request.param == "stalls":
                held.append(conn)  # read nothing, answer nothing
            else:
                conn.recv(65536)
                conn.close()  # hang up mid-request

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def test_stalls_and_hang_ups_are_transient(bad_endpoint: str) -> None:
    dest = BotoDestination.open(_job(), endpoint_url=bad_endpoint, assume=_credentials, read_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(TransientExportError) as caught:
        dest.upload_part("p/j.zip", "upload", 1, bytearray(b"x" * 1000))
    assert "UploadPart" in str(caught.value)
    assert time.monotonic() - started < 60  # botocore's retries of a short read timeout, not minutes
