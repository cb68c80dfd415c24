"""Export attempts that cannot corrupt a job after the fact (issue 18), against moto's server
behind a fault-injecting HTTP proxy (:mod:`tests.support.fault_proxy`) with real ``mailcrate
serve`` and ``mailcrate worker`` processes sharing one data directory.

* A worker paused (SIGSTOP) past its lease while its CompleteMultipartUpload is on the wire,
  woken after another worker COMPLETED the job: the zip and the log stay intact and matching.
  Before fencing, the woken worker saw NoSuchUpload (the other worker had aborted its upload and
  exported again) and deleted the completed job's log.
* An attempt killed (kill -9) while its log PUT is on the wire, that PUT landing after recovery:
  the log still matches the zip. Before, the late log (the killed attempt's SHA-384) replaced
  the recovered attempt's.
* 20 s of connection resets on every UploadPart: COMPLETED (resets are transient).
* A stalled UploadPart is abandoned and sent again within seconds (``--export-part-timeout-
  seconds``), not after the socket timeout.
* S3 down (every part and every abort answered 503) until the job runs out of attempts: the
  upload stays recorded, and once S3 is back the sweeper aborts it; nothing is left open.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.jobs.support import (
    Mailbox,
    MotoServer,
    add_calendar,
    fetch_export,
    fill_maildir,
    moto_destination,
    moto_env,
    new_mailbox,
    start_export,
    start_moto,
    wait_job,
)
from tests.support.fault_proxy import FORWARD, Action, FaultProxy, Request, window
from tests.support.mailcrate_server import MailcrateServer, mailcrate_cmd

PREFIX = "exports"
LEASE = "3"


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = start_moto(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


@pytest.fixture
def proxy(moto: MotoServer) -> Iterator[FaultProxy]:
    p = FaultProxy(("127.0.0.1", moto.port))
    yield p
    p.close()


def _settings(endpoint: str) -> list[str]:
    return [
        "--aws-endpoint-url",
        endpoint,
        "--export-part-size-mib",
        "5",
        "--export-lease-seconds",
        LEASE,
        "--export-processes",
        "1",
    ]


def _serve(tmp: Path, proxy: FaultProxy, moto: MotoServer, *extra: str) -> MailcrateServer:
    return MailcrateServer.launch(tmp / "data", *_settings(proxy.endpoint), *extra, env=moto_env(moto))


def _second_worker(srv: MailcrateServer, proxy: FaultProxy, moto: MotoServer) -> subprocess.Popen[bytes]:
    """Another worker on the same data directory (as a second node would be on PostgreSQL)."""
    log = open(srv.data_dir.parent / "worker2.log", "ab")  # noqa: SIM115 - lives with the process
    return subprocess.Popen(
        mailcrate_cmd("worker", "--data-dir", str(srv.data_dir), *_settings(proxy.endpoint)),
        stdin=subprocess.PIPE,
        stdout=log,
        stderr=log,
        env={**os.environ, **moto_env(moto)},
    )


def _mailbox(srv: MailcrateServer) -> Mailbox:
    mb = new_mailbox(srv)
    fill_maildir(mb.root, {"Inbox": 40, ("Projects", "Q3"): 10}, size=300_000)  # ~15 MB: 3 parts
    add_calendar(mb.root, 3)
    return mb


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _verify(moto: MotoServer, dest: dict, job: dict, job_id: str, tmp: Path) -> None:
    """What the user runs: download both objects and ``mailcrate export verify``."""
    zip_path, log_path = fetch_export(moto, dest, job, job_id, tmp)
    result = subprocess.run(
        mailcrate_cmd("export", "verify", str(zip_path), "--log", str(log_path), "--output", "json"),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True, report


def _no_open_uploads(moto: MotoServer, bucket: str) -> bool:
    return moto.client("s3").list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


@dataclass
class Interrupted:
    """An export whose first request matching ``matches`` is held at the proxy (it reaches S3
    only once ``held`` is set), run by serve's worker; then :meth:`take_over` starts a second
    worker on the same data directory."""

    srv: MailcrateServer
    mb: Mailbox
    dest: dict[str, str]
    job_id: str
    held: threading.Event
    second: subprocess.Popen[bytes] | None = None

    def take_over(self, proxy: FaultProxy, moto: MotoServer) -> dict:
        self.second = _second_worker(self.srv, proxy, moto)
        job = wait_job(self.srv.client("workmail"), self.mb.organization_id, self.job_id, timeout=120)
        assert job["State"] == "COMPLETED", job.get("ErrorInfo")
        return job


@contextlib.contextmanager
def _interrupted(
    tmp: Path, proxy: FaultProxy, moto: MotoServer, matches: Callable[[Request], bool]
) -> Iterator[Interrupted]:
    held, arrived = threading.Event(), threading.Event()

    def rule(request: Request) -> Action:
        if matches(request) and not arrived.is_set():
            arrived.set()
            return Action(hold=held)
        return FORWARD

    proxy.rule = rule
    srv = _serve(tmp, proxy, moto)
    run = None
    try:
        mb = _mailbox(srv)
        dest = moto_destination(moto)
        run = Interrupted(srv, mb, dest, start_export(srv, mb, dest, PREFIX), held)
        assert arrived.wait(120), "the export never sent the request to hold"
        yield run
    finally:
        held.set()
        for p in srv.worker_processes() if srv.process else []:
            p.resume()
        if run is not None and run.second is not None:
            run.second.terminate()
            run.second.wait(20)
        srv.stop()


def _export_through(
    tmp: Path,
    proxy: FaultProxy,
    moto: MotoServer,
    rule: Callable[[Request], Action],
    *extra: str,
    timeout: float = 120,
) -> tuple[dict, dict[str, str]]:
    """One export through the proxy under ``rule``, which must end COMPLETED: (job, destination)."""
    proxy.rule = rule
    srv = _serve(tmp, proxy, moto, *extra)
    try:
        mb = _mailbox(srv)
        dest = moto_destination(moto)
        job_id = start_export(srv, mb, dest, PREFIX)
        job = wait_job(srv.client("workmail"), mb.organization_id, job_id, timeout=timeout)
        assert job["State"] == "COMPLETED", job.get("ErrorInfo")
        return {**job, "JobId": job_id}, dest
    finally:
        srv.stop()


def test_a_worker_paused_past_its_lease_leaves_the_completed_export_intact(
    tmp_path: Path, moto: MotoServer, proxy: FaultProxy
) -> None:
    with _interrupted(tmp_path, proxy, moto, lambda r: r.operation == "CompleteMultipartUpload") as run:
        paused = run.srv.worker_processes()
        assert paused
        for p in paused:
            p.suspend()  # SIGSTOP: the lease runs out while its Complete is on the wire
        job = run.take_over(proxy, moto)
        run.held.set()  # the stale Complete reaches S3 now
        for p in paused:
            p.resume()
        _wait_for(lambda: proxy.count("CompleteMultipartUpload", "forwarded") >= 2, 30, "the stale Complete")
        time.sleep(3)  # the woken attempt's aftermath: whatever it still does
        wm = run.srv.client("workmail")
        again = wm.describe_mailbox_export_job(OrganizationId=run.mb.organization_id, JobId=run.job_id)
        assert again["State"] == "COMPLETED" and again["EstimatedProgress"] == 100
        listed = moto.client("s3").list_objects_v2(Bucket=run.dest["bucket"])["Contents"]
        assert {o["Key"] for o in listed} == {f"{PREFIX}/{run.job_id}.zip", f"{PREFIX}/{run.job_id}.json"}
        assert proxy.count("DeleteObject") == 0  # nothing of the job was removed
        _verify(moto, run.dest, job, run.job_id, tmp_path)
        assert _no_open_uploads(moto, run.dest["bucket"])


def test_a_late_log_put_of_a_killed_attempt_leaves_the_log_matching_the_zip(
    tmp_path: Path, moto: MotoServer, proxy: FaultProxy
) -> None:
    def log_put(request: Request) -> bool:
        return request.operation == "PutObject" and request.path.endswith(".json")

    with _interrupted(tmp_path, proxy, moto, log_put) as run:
        for p in run.srv.worker_processes():
            p.kill()  # kill -9 while the log PUT is on the wire
        # Mail arrives before the recovery: an export made again would differ from the killed
        # attempt's, whose late log would then describe another zip.
        fill_maildir(run.mb.root, {"Inbox": 1}, size=5_000, seed=7)
        job = run.take_over(proxy, moto)
        run.held.set()  # the killed attempt's log lands after recovery
        _wait_for(lambda: proxy.count("PutObject", "forwarded") >= 2, 30, "the late log PUT")
        time.sleep(0.5)
        _verify(moto, run.dest, job, run.job_id, tmp_path)
        assert _no_open_uploads(moto, run.dest["bucket"])


def test_20_seconds_of_resets_on_every_upload_part_end_completed(
    tmp_path: Path, moto: MotoServer, proxy: FaultProxy
) -> None:
    resetting = window(20)

    def rule(request: Request) -> Action:
        if request.operation == "UploadPart" and resetting():
            return Action("reset")
        return FORWARD

    job, dest = _export_through(tmp_path, proxy, moto, rule, timeout=240)
    assert proxy.count("UploadPart", "reset") >= 3
    _verify(moto, dest, job, job["JobId"], tmp_path)
    assert _no_open_uploads(moto, dest["bucket"])


def test_a_stalled_part_is_sent_again_within_seconds(
    tmp_path: Path, moto: MotoServer, proxy: FaultProxy
) -> None:
    stalled: list[tuple[str, float]] = []
    again: list[float] = []

    def rule(request: Request) -> Action:
        if request.operation != "UploadPart":
            return FORWARD
        number = request.query["partNumber"][0]
        if not stalled:
            stalled.append((number, time.monotonic()))
            return Action("stall")
        if number == stalled[0][0] and not again:
            again.append(time.monotonic())
        return FORWARD

    job, dest = _export_through(tmp_path, proxy, moto, rule, "--export-part-timeout-seconds", "2")
    assert again, "the stalled part was never sent again"
    waited = again[0] - stalled[0][1]
    assert waited < 8, f"the stalled part was sent again after {waited:.1f} s"
    _verify(moto, dest, job, job["JobId"], tmp_path)


@pytest.mark.slow
def test_no_upload_stays_open_when_s3_is_down_until_attempts_run_out(
    tmp_path: Path, moto: MotoServer, proxy: FaultProxy
) -> None:
    down = threading.Event()
    down.set()

    def rule(request: Request) -> Action:
        if down.is_set() and request.operation in ("UploadPart", "AbortMultipartUpload"):
            return Action("status", status=503)
        return FORWARD

    proxy.rule = rule
    srv = _serve(tmp_path, proxy, moto, "--export-abort-retry-seconds", "1")
    try:
        mb = _mailbox(srv)
        dest = moto_destination(moto)
        job_id = start_export(srv, mb, dest, PREFIX)
        job = wait_job(srv.client("workmail"), mb.organization_id, job_id, timeout=300)
        assert job["State"] == "FAILED" and "kept failing" in job["ErrorInfo"], job
        assert proxy.count("AbortMultipartUpload", "status 503") >= 1
        open_uploads = moto.client("s3").list_multipart_uploads(Bucket=dest["bucket"]).get("Uploads", [])
        assert open_uploads, "the upload should still be open while S3 refuses aborts"
        down.clear()  # S3 is back: the sweeper aborts what is left
        _wait_for(lambda: _no_open_uploads(moto, dest["bucket"]), 60, "the sweeper's abort")
        assert moto.client("s3").list_objects_v2(Bucket=dest["bucket"]).get("KeyCount") == 0
    finally:
        srv.stop()
