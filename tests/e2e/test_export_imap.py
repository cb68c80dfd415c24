"""Export of a mailbox that lives on an IMAP server (Dovecot), bound to the WorkMail user, to
the embedded S3: every message byte-identical to what IMAP serves, folders as directories."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from mailcrate.datadir import DataDir
from mailcrate.mail.base import ImapSpec, SourceSpec
from mailcrate.storage.tables import users
from tests.e2e.test_export_embedded import PREFIX, _download, _setup, _start
from tests.jobs.support import check_export, message, new_mailbox, wait_job
from tests.servers import DovecotServer
from tests.support.mailcrate_server import MailcrateServer

USER, PASSWORD = "exportimap", "exportimap-pw"


@pytest.fixture(scope="module")
def mailbox_owner(dovecot: DovecotServer) -> str:
    """A user of this module's own on the session's Dovecot (tests/conftest.py)."""
    dovecot.add_users({USER: PASSWORD})
    return USER


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailcrateServer]:
    with MailcrateServer.running(tmp_path_factory.mktemp("mailcrate") / "data") as srv:
        yield srv


def _bind(server: MailcrateServer, user_id: str, spec: SourceSpec) -> None:
    """What ``mailcrate mailbox bind`` stores: the source spec sealed with the master key."""
    data_dir = DataDir.open(server.data_dir)
    try:
        sealed = data_dir.secrets.seal_text(json.dumps(spec.to_dict()), "mailbox-source")
        with data_dir.db.begin() as conn:
            conn.execute(update(users).where(users.c.user_id == user_id).values(source_sealed=sealed))
    finally:
        data_dir.close()


def test_export_from_dovecot(
    server: MailcrateServer, dovecot: DovecotServer, mailbox_owner: str, tmp_path: Path
) -> None:
    folders = {("INBOX",): 400, ("Sent",): 120, ("Projects", "Ωmega"): 60, ("Archive",): 30}
    n = 0
    for path, count in folders.items():
        dovecot.put_messages(
            mailbox_owner,
            path,
            [(message(n + i, 4000 + 37 * i, "/".join(path)), "S" if i % 2 else "") for i in range(count)],
        )
        n += count
    mb = new_mailbox(server)
    spec = SourceSpec(imap=ImapSpec(url=dovecot.url, user=mailbox_owner, password=PASSWORD), owner=mb.email)
    _bind(server, mb.user_id, spec)
    env = _setup(server, tmp_path)
    job_id = _start(server, mb, env)
    job = wait_job(server.client("workmail"), mb.organization_id, job_id, timeout=180)
    assert job["State"] == "COMPLETED", job.get("ErrorInfo")
    zip_path = _download(server, env["bucket"], job["S3Path"], tmp_path / "export.zip")
    log_path = _download(server, env["bucket"], f"{PREFIX}/{job_id}.json", tmp_path / "export.json")
    manifest = check_export(zip_path, log_path, mb, spec)
    assert len(manifest.items) == n
    assert {item.folder for item in manifest.items} >= {("Inbox",), ("Sent",), ("Projects", "Ωmega")}
    assert PASSWORD not in (tmp_path / "export.json").read_text()


def test_unreachable_imap_fails_with_clear_error(server: MailcrateServer, tmp_path: Path) -> None:
    from tests.servers.net import free_port

    mb = new_mailbox(server)
    spec = SourceSpec(
        imap=ImapSpec(url=f"imap://127.0.0.1:{free_port()}", user="alice", password="s3cret-pw", timeout=2),
        owner=mb.email,
    )
    _bind(server, mb.user_id, spec)
    env = _setup(server, tmp_path)
    job = wait_job(server.client("workmail"), mb.organization_id, _start(server, mb, env), timeout=180)
    assert job["State"] == "FAILED", job
    assert "s3cret-pw" not in job["ErrorInfo"] and len(job["ErrorInfo"]) <= 1024
    assert "cannot be read" in job["ErrorInfo"] or "kept failing" in job["ErrorInfo"], job["ErrorInfo"]
