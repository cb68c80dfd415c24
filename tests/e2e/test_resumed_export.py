"""A killed export resumes from its last uploaded part (issue 18 item 4), with a real ``mailcrate
serve``, its export worker process, the embedded S3 and the embedded mail store.

The worker is killed (kill -9) once the job has recorded a checkpoint; serve ends the dead
process's leases and starts a new worker process, which takes the job and continues the same
multipart upload from the checkpoint: it reads the mailbox only from there (the worker's log says so), and
the downloaded zip and log pass ``mailcrate export verify`` and hold every item of the mailbox
byte for byte. Killed twice, it resumes twice; a server restart (SIGTERM) resumes it too. The checkpoints are
gone once the job ends.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import time
from pathlib import Path

import psutil

from mailcrate.mail.base import ImapSpec, SourceSpec
from mailcrate.mail.store import deliver_message
from tests import corpus
from tests.e2e.test_export_imap import _bind
from tests.e2e.test_export_worker_processes import _destination, _worker_pids
from tests.jobs.support import Mailbox, check_export, fill_bulk, new_mailbox, start_export, wait_job
from tests.servers import DovecotServer
from tests.support.mailcrate_server import MailcrateServer, mailcrate_cmd

PREFIX = "exports"
LEASE_SECONDS = 3


def _mailbox(srv: MailcrateServer) -> Mailbox:
    mb = new_mailbox(srv)
    for placed in corpus.mailbox():  # real messages (vendored corpus; sources in its MANIFEST.json)
        deliver_message(mb.root, placed.folder, placed.data, placed.flags, placed.internal_date)
    fill_bulk(mb.root, 40 << 20, message_size=512 << 10, folder="Archive")  # ~40 MB: 8 parts of 5 MiB
    return mb


def _checkpoints(srv: MailcrateServer, job_id: str) -> int:
    with sqlite3.connect(srv.data_dir / "mailcrate.db", timeout=10) as db:
        return db.execute("SELECT count(*) FROM export_checkpoints WHERE job_id = ?", (job_id,)).fetchone()[0]


def _kill_worker_after_a_checkpoint(srv: MailcrateServer, job_id: str, more_than: int = 0) -> None:
    deadline = time.monotonic() + 60
    while _checkpoints(srv, job_id) <= more_than:
        assert time.monotonic() < deadline, "no checkpoint recorded"
        time.sleep(0.01)
    pids = _worker_pids(srv)
    assert pids
    for pid in pids:
        psutil.Process(pid).kill()


def _resumed_lines(srv: MailcrateServer, job_id: str) -> list[tuple[int, int]]:
    """(part, items) of each "resuming after part N (..., K items)" line of the job."""
    assert srv.log_path is not None
    pattern = re.compile(rf"job {job_id}: resuming after part (\d+) \(\d+ bytes, (\d+) items\)")
    return [(int(m[1]), int(m[2])) for m in pattern.finditer(srv.log_path.read_text())]


def _download_and_verify(
    srv: MailcrateServer,
    dest: dict,
    job: dict,
    job_id: str,
    mb: Mailbox,
    tmp: Path,
    spec: SourceSpec | None = None,
) -> None:
    s3 = srv.client("s3")
    zip_path, log_path = tmp / "export.zip", tmp / "export.json"
    zip_path.write_bytes(s3.get_object(Bucket=dest["bucket"], Key=job["S3Path"])["Body"].read())
    log_key = f"{PREFIX}/{job_id}.json"
    log_path.write_bytes(s3.get_object(Bucket=dest["bucket"], Key=log_key)["Body"].read())
    result = subprocess.run(
        mailcrate_cmd("export", "verify", str(zip_path), "--log", str(log_path), "--output", "json"),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and json.loads(result.stdout)["ok"] is True, result.stdout + result.stderr
    check_export(zip_path, log_path, mb, spec)  # every item of the mailbox, byte for byte


SERVE = ("--export-part-size-mib", "5", "--export-lease-seconds", str(LEASE_SECONDS), "--export-processes", "1",
         "--log-level", "info")  # fmt: skip


def test_a_killed_export_resumes_from_its_last_uploaded_part(tmp_path: Path) -> None:
    """With a 10-minute lease: serve sees its worker process die and ends the leases of that
    process's jobs at once, so the restarted worker resumes the job without waiting it out."""
    lease = 600
    with MailcrateServer.running(tmp_path / "data", *SERVE, "--export-lease-seconds", str(lease)) as srv:
        mb = _mailbox(srv)
        dest = _destination(srv)
        job_id = start_export(srv, mb, dest, PREFIX)
        _kill_worker_after_a_checkpoint(srv, job_id)
        killed = time.monotonic()
        job = wait_job(srv.client("workmail"), mb.organization_id, job_id, timeout=120)
        assert job["State"] == "COMPLETED", job.get("ErrorInfo")
        assert time.monotonic() - killed < lease / 5
        assert srv.log_path is not None
        assert "released 1 export job(s) of worker process" in srv.log_path.read_text()
        resumed = _resumed_lines(srv, job_id)
        assert len(resumed) == 1 and resumed[0][0] >= 1 and resumed[0][1] > 0, resumed
        assert _checkpoints(srv, job_id) == 0
        _download_and_verify(srv, dest, job, job_id, mb, tmp_path)


def test_an_export_killed_twice_resumes_twice(tmp_path: Path) -> None:
    with MailcrateServer.running(tmp_path / "data", *SERVE) as srv:
        mb = _mailbox(srv)
        fill_bulk(mb.root, 20 << 20, message_size=256 << 10, folder="Old mail")
        dest = _destination(srv)
        job_id = start_export(srv, mb, dest, PREFIX)
        _kill_worker_after_a_checkpoint(srv, job_id)
        deadline = time.monotonic() + 60
        while not _resumed_lines(srv, job_id):
            assert time.monotonic() < deadline, "the job was not resumed"
            time.sleep(0.01)
        first = _resumed_lines(srv, job_id)[0][0]
        _kill_worker_after_a_checkpoint(srv, job_id, more_than=_checkpoints(srv, job_id))
        job = wait_job(srv.client("workmail"), mb.organization_id, job_id, timeout=120)
        assert job["State"] == "COMPLETED", job.get("ErrorInfo")
        parts = [part for part, _ in _resumed_lines(srv, job_id)]
        assert len(parts) == 2 and first < parts[1], parts
        _download_and_verify(srv, dest, job, job_id, mb, tmp_path)


def test_an_export_interrupted_by_a_server_restart_resumes(tmp_path: Path) -> None:
    """SIGTERM releases the job (no lease to wait for) and keeps its upload: the restarted
    server continues it from the checkpoint."""
    with MailcrateServer.running(tmp_path / "data", *SERVE) as srv:
        mb = _mailbox(srv)
        fill_bulk(mb.root, 80 << 20, message_size=256 << 10, folder="Old mail")  # still running at the stop
        dest = _destination(srv)
        job_id = start_export(srv, mb, dest, PREFIX)
        deadline = time.monotonic() + 60
        while _checkpoints(srv, job_id) == 0:
            assert time.monotonic() < deadline, "no checkpoint recorded"
            time.sleep(0.01)
        srv.restart()
        job = wait_job(srv.client("workmail"), mb.organization_id, job_id, timeout=120)
        assert job["State"] == "COMPLETED", job.get("ErrorInfo")
        resumed = _resumed_lines(srv, job_id)
        assert len(resumed) == 1 and resumed[0][0] >= 1, resumed
        _download_and_verify(srv, dest, job, job_id, mb, tmp_path)


def test_a_killed_export_of_an_imap_mailbox_resumes(tmp_path: Path, dovecot: DovecotServer) -> None:
    """The mailbox on Dovecot (bound with ``mailbox bind``): the new attempt continues the folder
    it was in with ``UID FETCH`` after the checkpoint's UID."""
    user, password = "resumeimap", "resumeimap-pw"
    dovecot.add_users({user: password})
    messages = [(placed.data, "S") for placed in corpus.mailbox()]
    bulk = tmp_path / "bulk"
    count = fill_bulk(bulk, 30 << 20, message_size=384 << 10, folder="Archive")
    archive = [(p.read_bytes(), "") for p in sorted(bulk.rglob("cur/*"))]
    assert len(archive) == count
    dovecot.put_messages(user, ("INBOX",), messages)
    dovecot.put_messages(user, ("Archive",), archive)
    with MailcrateServer.running(tmp_path / "data", *SERVE) as srv:
        mb = new_mailbox(srv)
        spec = SourceSpec(imap=ImapSpec(url=dovecot.url, user=user, password=password), owner=mb.email)
        _bind(srv, mb.user_id, spec)
        dest = _destination(srv)
        job_id = start_export(srv, mb, dest, PREFIX)
        _kill_worker_after_a_checkpoint(srv, job_id)
        job = wait_job(srv.client("workmail"), mb.organization_id, job_id, timeout=180)
        assert job["State"] == "COMPLETED", job.get("ErrorInfo")
        resumed = _resumed_lines(srv, job_id)
        assert len(resumed) == 1 and resumed[0][0] >= 1 and resumed[0][1] > 0, resumed
        _download_and_verify(srv, dest, job, job_id, mb, tmp_path, spec)
