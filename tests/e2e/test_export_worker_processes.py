"""Exports spread over worker processes: ``serve`` starts a second ``mailcrate worker`` only
while jobs wait for a free worker, and that process ends by itself once there is no work."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import psutil
import pytest

from mailcrate.jobs.process import process_shares
from tests.jobs.support import (
    Mailbox,
    check_export,
    fill_bulk,
    new_mailbox,
    permission_policy,
    start_export,
    trust_policy,
    wait_job,
)
from tests.support.mailcrate_server import MailcrateServer

PREFIX = "exports"


@pytest.mark.parametrize(
    ("workers", "processes", "shares"),
    [(10, 2, [5, 5]), (4, 2, [2, 2]), (3, 2, [2, 1]), (1, 4, [1]), (5, 1, [5])],
)
def test_workers_are_spread_over_the_processes(workers: int, processes: int, shares: list[int]) -> None:
    assert process_shares(workers, processes) == shares


def test_one_process_per_core_by_default() -> None:
    shares = process_shares(64, 0)
    assert len(shares) == min(psutil.cpu_count() or 1, 64) and sum(shares) == 64


def _destination(srv: MailcrateServer) -> dict[str, str]:
    """Key, bucket and role as the AWS export procedure sets them up."""
    bucket = "exports-" + uuid.uuid4().hex[:10]
    key_arn = srv.client("kms").create_key(Description="export key")["KeyMetadata"]["Arn"]
    srv.client("s3").create_bucket(Bucket=bucket)
    iam = srv.client("iam")
    name = "WorkmailMailboxExportRole" + uuid.uuid4().hex[:6]
    role_arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust_policy(srv.account_id))["Role"][
        "Arn"
    ]
    iam.put_role_policy(
        RoleName=name, PolicyName="MailboxExport", PolicyDocument=permission_policy(bucket, PREFIX, key_arn)
    )
    return {"bucket": bucket, "key_arn": key_arn, "role_arn": role_arn}


def _worker_pids(srv: MailcrateServer) -> list[int]:
    return [p.pid for p in srv.worker_processes()]


def _watch(srv: MailcrateServer, jobs: dict[str, Mailbox]) -> set[int]:
    """Every worker process pid seen while the jobs run; returns once all have ended."""
    wm = srv.client("workmail")
    seen: set[int] = set()
    deadline = time.monotonic() + 180
    while True:
        seen.update(_worker_pids(srv))
        states = [
            wm.describe_mailbox_export_job(OrganizationId=mb.organization_id, JobId=j)["State"]
            for j, mb in jobs.items()
        ]
        if "RUNNING" not in states:
            return seen
        assert time.monotonic() < deadline, states
        time.sleep(0.05)


def _check(srv: MailcrateServer, mb: Mailbox, dest: dict[str, str], job_id: str, tmp: Path) -> None:
    job = wait_job(srv.client("workmail"), mb.organization_id, job_id)
    assert job["State"] == "COMPLETED", job.get("ErrorInfo")
    s3 = srv.client("s3")
    zip_path, log_path = tmp / f"{job_id}.zip", tmp / f"{job_id}.json"
    zip_path.write_bytes(s3.get_object(Bucket=dest["bucket"], Key=job["S3Path"])["Body"].read())
    log_path.write_bytes(s3.get_object(Bucket=dest["bucket"], Key=f"{PREFIX}/{job_id}.json")["Body"].read())
    check_export(zip_path, log_path, mb)


@pytest.mark.slow
def test_waiting_jobs_get_a_second_worker_process_which_ends_when_idle(tmp_path: Path) -> None:
    with MailcrateServer.running(
        tmp_path / "data",
        "--export-workers",
        "2",
        "--export-processes",
        "2",
        "--export-process-idle-seconds",
        "2",
        "--export-mailbox-interval-seconds",
        "0",
        "--log-level",
        "info",
    ) as srv:
        dest = _destination(srv)
        boxes = [new_mailbox(srv, f"user{n}") for n in range(4)]
        for mb in boxes:
            fill_bulk(mb.root, 150 << 20)
        (resident,) = _worker_pids(srv)

        # One job alone: a free worker takes it at once, no second process starts.
        alone = start_export(srv, boxes[0], dest, PREFIX)
        assert _watch(srv, {alone: boxes[0]}) == {resident}
        _check(srv, boxes[0], dest, alone, tmp_path)

        # Four jobs for the resident process's one worker (two workers over two processes):
        # three wait, a second process starts and runs some of them.
        jobs = {start_export(srv, mb, dest, PREFIX): mb for mb in boxes}
        seen = _watch(srv, jobs)
        assert resident in seen and len(seen) == 2, seen
        (second,) = seen - {resident}
        for job_id, mb in jobs.items():
            _check(srv, mb, dest, job_id, tmp_path)
        assert srv.log_path is not None
        runs = [line for line in srv.log_path.read_text().splitlines() if " runs job " in line]
        assert any(f"-{second}-" in line for line in runs), runs[-4:]

        # Without work, the second process ends by itself; the resident one stays.
        ended = f"export worker process {second} ended (0)"
        deadline = time.monotonic() + 20
        while _worker_pids(srv) != [resident] or ended not in srv.log_path.read_text():
            assert time.monotonic() < deadline, _worker_pids(srv)
            time.sleep(0.1)

        # The resident process killed: serve starts a new one, which runs the next job.
        os.kill(resident, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while not (pids := _worker_pids(srv)) or pids[0] == resident:
            assert time.monotonic() < deadline, pids
            time.sleep(0.1)
        after = start_export(srv, boxes[1], dest, PREFIX)
        assert _watch(srv, {after: boxes[1]}) == set(pids)
        _check(srv, boxes[1], dest, after, tmp_path)
