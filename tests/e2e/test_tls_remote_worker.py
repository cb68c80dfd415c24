"""The several-nodes shape of docs/operations.md over TLS: a serve node with a certificate from
``mailcrate init --tls``, and ``mailcrate worker --server-url https://...`` on "another machine"
(its own data directory, the shared PostgreSQL database and master.key) trusting the node's CA
through ``AWS_CA_BUNDLE``. The export crosses HTTPS into the node's embedded S3."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from tests.e2e.test_export_embedded import PREFIX, _download, _setup, _start
from tests.e2e.test_postgres_backend import _init, _share_master_key
from tests.e2e.test_tls import _init_tls
from tests.jobs.support import check_export, fill_maildir, new_mailbox, wait_job
from tests.support.mailcrate_server import MailcrateServer, mailcrate_cmd
from tests.support.postgres import PostgresServer


def test_remote_worker_exports_over_https(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres.create_database("tls_remote_worker")
    server = MailcrateServer(data_dir=tmp_path / "server")
    _init(server, url)
    exports = _init_tls(server)
    server.extra_args = ("--database-url", url, "--export-workers", "0", "--log-level", "info",
                         "--tls-cert", exports["MAILCRATE_TLS_CERT"], "--tls-key", exports["MAILCRATE_TLS_KEY"])  # fmt: skip
    worker_dir = tmp_path / "worker"
    _share_master_key(server.data_dir, worker_dir)
    server.start()
    assert server.endpoint.startswith("https://")
    # The test's own aws CLI and boto3 calls trust the node's CA the way an operator's do.
    monkeypatch.setenv("AWS_CA_BUNDLE", exports["AWS_CA_BUNDLE"])
    worker_cmd = mailcrate_cmd("worker", "--data-dir", str(worker_dir), "--database-url", url,
                               "--server-url", server.endpoint, "--export-workers", "1")  # fmt: skip
    worker = subprocess.Popen(worker_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=server.aws_env(AWS_CA_BUNDLE=exports["AWS_CA_BUNDLE"]))  # fmt: skip
    try:
        mb = new_mailbox(server)
        root = worker_dir / mb.root.relative_to(server.data_dir)
        fill_maildir(root, {"Inbox": 30, "Sent Items": 5}, size=20_000)
        env = _setup(server, tmp_path)
        job_id = _start(server, mb, env)
        job = wait_job(server.client("workmail"), mb.organization_id, job_id, timeout=60)
        assert job["State"] == "COMPLETED", job.get("ErrorInfo")
        zip_path = _download(server, env["bucket"], job["S3Path"], tmp_path / "export.zip")
        log_path = _download(server, env["bucket"], f"{PREFIX}/{job_id}.json", tmp_path / "export.json")
        check_export(zip_path, log_path, replace(mb, root=root))
        assert server.log_path is not None and "s3.UploadPart -> 200" in server.log_path.read_text()
    finally:
        worker.terminate()
        worker.wait(15)
        server.stop()
