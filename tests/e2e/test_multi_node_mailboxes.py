"""Several nodes, each with a data directory of its own, on one PostgreSQL: an embedded mailbox's
mail lives in the data directory that first stored mail into it, and only that node exports it.

Before, any node's worker could claim the job and export its own copy of the mailbox directory,
which is empty on a node where the mail was not imported: jobs COMPLETED with 0 items. Here the
mailboxes are registered through node A (so A has empty copies) and their mail is imported with
``mailcrate mailbox import --database-url`` on node B; every export must hold all of it. Mail
written for such a mailbox on node A is refused (it would be split between the nodes)."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

from tests.e2e.test_export_embedded import PREFIX, _download, _setup, _start
from tests.e2e.test_postgres_backend import _init, _share_master_key
from tests.jobs.support import check_export, message, new_mailbox, wait_job
from tests.support.mailcrate_server import MailcrateServer, mailcrate_cmd
from tests.support.postgres import PostgresServer

MAILBOXES = 4


def _import(
    node: MailcrateServer, url: str, org: str, user: str, mbox: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        mailcrate_cmd(
            "mailbox", "import", "--data-dir", str(node.data_dir), "--database-url", url,
            "--organization-id", org, "--entity-id", user, str(mbox),
        ),
        capture_output=True,
        text=True,
    )  # fmt: skip


def _mbox(path: Path, count: int) -> Path:
    with open(path, "wb") as f:
        for n in range(count):
            f.write(b"From sender@example.org Thu Jan  1 00:00:00 2026\n")
            f.write(message(n, 3000).replace(b"\r\n", b"\n") + b"\n\n")
    return path


def test_only_the_node_that_holds_the_mail_exports_it(postgres: PostgresServer, tmp_path: Path) -> None:
    url = postgres.create_database("multi_node")
    a = MailcrateServer(data_dir=tmp_path / "a", extra_args=("--database-url", url))
    b = MailcrateServer(data_dir=tmp_path / "b", extra_args=("--database-url", url))
    _init(a, url)
    _share_master_key(a.data_dir, b.data_dir)
    a.start()
    b.start()
    try:
        mbox = _mbox(tmp_path / "mail.mbox", 25)
        env = _setup(a, tmp_path)
        mailboxes = []
        for n in range(MAILBOXES):
            mb = new_mailbox(a, name=f"user{n}")  # registered through A: an empty copy on A
            assert mb.root.is_dir()
            imported = _import(b, url, mb.organization_id, mb.user_id, mbox)
            assert imported.returncode == 0, imported.stderr
            mailboxes.append(replace(mb, root=b.data_dir / mb.root.relative_to(a.data_dir)))
        jobs = [_start(a, mb, env) for mb in mailboxes]
        for mb, job_id in zip(mailboxes, jobs, strict=True):
            job = wait_job(a.client("workmail"), mb.organization_id, job_id, timeout=120)
            assert job["State"] == "COMPLETED", job.get("ErrorInfo")
            # The zip is in the exporting node's embedded S3: B's.
            zip_path = _download(b, env["bucket"], job["S3Path"], tmp_path / f"{job_id}.zip")
            log_path = _download(b, env["bucket"], f"{PREFIX}/{job_id}.json", tmp_path / f"{job_id}.json")
            manifest = check_export(zip_path, log_path, mb)
            assert len(manifest.items) == 25
        # More mail for one of them, written on A, is refused: it would be split between nodes.
        mb = mailboxes[0]
        refused = _import(a, url, mb.organization_id, mb.user_id, mbox)
        assert refused.returncode == 1 and "another node" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
    finally:
        a.stop()
        b.stop()
