"""The job runner's control flow with a scripted destination: transient faults retried with
backoff, permanent ones failing at once, cancel and shutdown aborting the upload."""

from __future__ import annotations

import io
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import insert

from mailcrate.datadir import DataDir
from mailcrate.export import job as runner
from mailcrate.export.destination import ExportError, TransientExportError, classify
from mailcrate.export.manifest import ExportLog
from mailcrate.export.settings import ExportSettings
from mailcrate.jobs import store
from mailcrate.jobs.control import JobControl
from mailcrate.jobs.limits import Limits
from mailcrate.jobs.records import ExportJob, State
from mailcrate.mail.base import SourceSpec
from mailcrate.mail.store import create_mailbox
from mailcrate.services.registry import service_context
from mailcrate.storage.db import utcnow
from mailcrate.storage.tables import accounts, organizations
from tests.jobs.support import fill_maildir

LEASE = timedelta(seconds=30)
ORG = "m-" + "b" * 32


class FakeDestination:
    """Records calls; ``script`` maps an action to a list of exceptions raised on its next calls."""

    def __init__(self, script: dict[str, list[BaseException]], *, part_delay: float = 0.0) -> None:
        self.script = script
        self.part_delay = part_delay
        self.calls: list[str] = []
        self.uploads: dict[str, dict[int, bytes]] = {}
        self.objects: dict[str, bytes] = {}
        self.aborted: list[str] = []

    def _maybe_fail(self, action: str) -> None:
        self.calls.append(action)
        pending = self.script.get(action)
        if pending:
            raise pending.pop(0)

    def preflight(self) -> None:
        self._maybe_fail("preflight")

    def check_not_public(self, *, again: bool = False) -> None:
        self._maybe_fail("public")

    def create_upload(self, key: str) -> str:
        self._maybe_fail("create")
        upload_id = uuid.uuid4().hex
        self.uploads[upload_id] = {}
        return upload_id

    def upload_part(self, key: str, upload_id: str, number: int, data: Any) -> str:
        time.sleep(self.part_delay)
        self._maybe_fail("part")
        self.uploads[upload_id][number] = bytes(data)
        return f'"{number}"'

    def complete_upload(self, key: str, upload_id: str, etags: list[str]) -> None:
        self._maybe_fail("complete")
        parts = self.uploads.pop(upload_id)
        self.objects[key] = b"".join(parts[n] for n in sorted(parts))

    def abort_upload(self, key: str, upload_id: str) -> bool:
        self.calls.append("abort")
        self.aborted.append(upload_id)
        self.uploads.pop(upload_id, None)
        return True

    def put_object(self, key: str, body: bytes, content_type: str) -> None:
        self._maybe_fail("put")
        self.objects[key] = body

    def delete_object(self, key: str) -> None:
        self.objects.pop(key, None)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    dd = DataDir.open(tmp_path / "data", create=True)
    with dd.db.begin() as conn:
        conn.execute(
            insert(accounts).values(
                account_id="111122223333", default_region="us-east-1", created_at=utcnow()
            )
        )
        conn.execute(
            insert(organizations).values(
                organization_id=ORG,
                account_id="111122223333",
                region="us-east-1",
                alias="org",
                state="Active",
                directory_type="WorkMailDirectory",
                default_mail_domain="org.awsapps.com",
                created_at=utcnow(),
            )
        )
    root = tmp_path / "mbox"
    create_mailbox(root)
    fill_maildir(root, {"Inbox": 60, "Sent Items": 20}, size=40_000)
    state: dict[str, Any] = {"data_dir": dd, "dest": FakeDestination({})}
    monkeypatch.setattr(
        runner, "source_spec", lambda data_dir, job: SourceSpec(embedded=str(root), owner="a@b.c")
    )
    monkeypatch.setattr(runner, "open_for_job", lambda job, *args, **kw: state["dest"])
    yield state
    dd.close()


def _claimed(data_dir: DataDir) -> ExportJob:
    request = store.StartRequest(
        account_id="111122223333",
        region="us-east-1",
        organization_id=ORG,
        entity_id=uuid.uuid4().hex,
        role_arn="arn:aws:iam::111122223333:role/R",
        kms_key_arn="arn:aws:kms:us-east-1:111122223333:key/k",
        s3_bucket_name="b",
        s3_prefix="p",
    )
    with data_dir.db.begin() as conn:
        store.create(conn, request, Limits())
    job = store.claim(data_dir.db, "w", LEASE)
    assert job is not None
    return job


SETTINGS = ExportSettings(part_size=5 * 1024 * 1024, parts_in_flight=2, retry_base_seconds=0.01)


def _run(env: dict[str, Any], control: JobControl | None = None) -> tuple[State | None, ExportJob]:
    job = _claimed(env["data_dir"])
    result = runner.run_job(
        service_context(env["data_dir"]), job, str(job.lease_owner), SETTINGS, control or JobControl()
    )
    final = store.get_by_id_db(env["data_dir"].db, job.job_id)
    assert final is not None
    return result, final


def _slow_throttle() -> TransientExportError:
    from botocore.exceptions import ClientError

    error = ClientError(
        {"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "UploadPart"
    )
    job = SimpleNamespace(s3_bucket_name="b", kms_key_arn="k", role_arn="r", region="us-east-1")
    converted = classify(error, job, "UploadPart")  # type: ignore[arg-type]
    assert isinstance(converted, TransientExportError)
    return converted


def test_completes_and_writes_log(env: dict[str, Any]) -> None:
    result, job = _run(env)
    assert result is State.COMPLETED and job.state is State.COMPLETED and job.estimated_progress == 100
    dest = env["dest"]
    data = dest.objects[job.s3_path]
    log = ExportLog.parse(dest.objects[f"p/{job.job_id}.json"])
    assert log.total_messages == 80
    import hashlib

    assert log.sha384_hash == hashlib.sha384(data).hexdigest()
    assert zipfile.ZipFile(io.BytesIO(data)).testzip() is None
    assert not dest.uploads  # nothing left open


def test_transient_faults_are_retried(env: dict[str, Any]) -> None:
    env["dest"] = FakeDestination({"part": [_slow_throttle()], "preflight": [TransientExportError("reset")]})
    result, job = _run(env)
    assert result is State.COMPLETED, job.error_info
    dest = env["dest"]
    assert dest.calls.count("preflight") == 3 and dest.aborted  # each failed attempt's upload aborted
    assert not dest.uploads


def test_transient_faults_give_up_after_retries(env: dict[str, Any]) -> None:
    env["dest"] = FakeDestination({"create": [TransientExportError("S3 answered 503")] * 10})
    result, job = _run(env)
    assert result is State.FAILED and "kept failing" in (job.error_info or "")
    assert env["dest"].calls.count("create") == SETTINGS.transient_retries + 1


def test_permanent_fault_fails_at_once_and_aborts(env: dict[str, Any]) -> None:
    env["dest"] = FakeDestination({"part": [ExportError("The KMS key k is disabled.")]})
    result, job = _run(env)
    assert result is State.FAILED and job.error_info == "The KMS key k is disabled."
    dest = env["dest"]
    assert dest.calls.count("create") == 1 and dest.aborted and not dest.uploads and not dest.objects


def test_log_failure_removes_the_zip(env: dict[str, Any]) -> None:
    env["dest"] = FakeDestination({"put": [ExportError("Access denied for PutObject")]})
    result, _job = _run(env)
    assert result is State.FAILED and env["dest"].objects == {}


def test_cancel_stops_and_aborts(env: dict[str, Any]) -> None:
    env["dest"] = FakeDestination({}, part_delay=0.3)
    data_dir = env["data_dir"]
    settings = ExportSettings(part_size=5 * 1024 * 1024, parts_in_flight=1, progress_interval=0.1)
    job = _claimed(data_dir)
    threading.Timer(0.3, lambda: _cancel(data_dir, job.job_id)).start()
    started = time.monotonic()
    result = runner.run_job(service_context(data_dir), job, str(job.lease_owner), settings, JobControl())
    assert result is None and time.monotonic() - started < 3
    final = store.get_by_id_db(data_dir.db, job.job_id)
    assert final is not None and final.state is State.CANCELLED and final.upload_id is None
    assert env["dest"].aborted and not env["dest"].uploads and not env["dest"].objects


def _cancel(data_dir: DataDir, job_id: str) -> None:
    with data_dir.db.begin() as conn:
        store.cancel(conn, ORG, job_id, None)


def test_shutdown_releases_the_job(env: dict[str, Any]) -> None:
    env["dest"] = FakeDestination({}, part_delay=0.3)
    control = JobControl()
    threading.Timer(0.3, control.stopping.set).start()
    result, job = _run(env, control)
    assert result is None and job.state is State.RUNNING and job.lease_owner is None
    assert env["dest"].aborted and not env["dest"].uploads
