"""Export-benchmark plumbing: a ``mailcrate serve`` set up the way the AWS export procedure
asks (KMS key, bucket, role with the documented trust and permission policies), users whose
embedded mailboxes are filled by :mod:`mailcrate.mail.samples`, full export jobs timed from
``StartMailboxExportJob`` to ``COMPLETED`` as a client sees it (Describe polled every 10 ms for
the first 5 s, then every 50 ms: see :meth:`ExportServer.wait`) next to the server's own
EndTime - StartTime, peak RSS of serve and its worker
process sampled from outside (psutil, summed and each), baseline commands timed the same way, optional py-spy profiles, and results files.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import psutil
from botocore.config import Config

from benchmarks.harness import ROOT, IdleCores, Process, settle, start_mailcrate

KEY, SECRET = "AKIABENCHEXPORT00000", "e" * 40
ACCOUNT = "111122223333"
REGION = "us-east-1"
PREFIX = "bench"
RESULTS = ROOT / "benchmarks" / "results"
MB = 1_000_000  # throughput figures are in MB/s (10^6 bytes), as the targets are


class RssSampler:
    """Peak RSS of one process (and optionally its children), sampled every ``interval`` s.

    ``peak`` is the largest sum; with ``children``, ``parts`` splits that sum at its peak into
    the process itself (``serve``) and its children (``worker``), and ``peaks`` holds each
    side's own peak (which may fall at different times), so a result tells which process holds
    the memory."""

    def __init__(self, pid: int, interval: float = 0.02, children: bool = False) -> None:
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.children = children
        self.peak = 0
        self.parts: dict[str, int] = {}
        self.peaks: dict[str, int] = {}
        self._kids: list[psutil.Process] = []
        self._scanned = -1e9
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    #: Seconds between scans for child processes. ``children(recursive=True)`` reads every
    #: process in /proc (~1.1 ms here): done every 20 ms it took ~5 % of a core from the export
    #: it measures. Children (serve's worker) are long-lived; a new one is seen within this, and
    #: while none is known (a baseline's shell has not forked yet) every sample scans.
    CHILDREN_EVERY = 0.5

    def _children(self) -> list[psutil.Process]:
        now = time.monotonic()
        if not self._kids or now - self._scanned >= self.CHILDREN_EVERY:
            self._kids = self.proc.children(recursive=True)
            self._scanned = now
        return self._kids

    def sample(self) -> dict[str, int]:
        """RSS now: ``serve`` (the process) and, with ``children``, ``worker`` (its children summed)."""
        parts = {"serve": self.proc.memory_info().rss}
        if self.children:
            parts["worker"] = 0
            for c in self._children():
                with contextlib.suppress(psutil.Error):
                    parts["worker"] += c.memory_info().rss
        return parts

    def rss(self) -> int:
        return sum(self.sample().values())

    def _take(self) -> None:
        parts = self.sample()
        total = sum(parts.values())
        if total > self.peak:
            self.peak, self.parts = total, parts
        for name, value in parts.items():
            self.peaks[name] = max(self.peaks.get(name, 0), value)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._take()
            except psutil.Error:
                return  # the process ended
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        with contextlib.suppress(psutil.Error):
            self._take()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(psutil.Error):
            self._take()


class CpuMeter:
    """CPU seconds (user + system) a process tree used while the context was open, read from
    outside (psutil, i.e. /proc): ``own`` for the process itself, ``children`` for every
    descendant (serve's worker processes; Dovecot's imap processes), each split into ``user``
    and ``system``.

    A descendant that ends and is reaped meanwhile is still counted: its times move into its
    parent's ``children_user``/``children_system``, which are summed for every process of the
    tree (a live process's children times only hold reaped descendants, so nothing is counted
    twice). One that starts meanwhile counts from zero."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.own: dict[str, float] = {"user": 0.0, "system": 0.0}
        self.children: dict[str, float] = {"user": 0.0, "system": 0.0}

    def _read(self) -> tuple[dict[str, float], dict[str, float]]:
        t = self.proc.cpu_times()
        own = {"user": t.user, "system": t.system}
        kids = {"user": t.children_user, "system": t.children_system}
        for child in self.proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                c = child.cpu_times()
                kids["user"] += c.user + c.children_user
                kids["system"] += c.system + c.children_system
        return own, kids

    @property
    def own_seconds(self) -> float:
        return self.own["user"] + self.own["system"]

    @property
    def children_seconds(self) -> float:
        return self.children["user"] + self.children["system"]

    def __enter__(self) -> CpuMeter:
        self._start = self._read()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._read()
        for i, out in enumerate((self.own, self.children)):
            for k in out:
                out[k] = round(end[i][k] - self._start[i][k], 3)


class PySpy:
    """``py-spy record`` on a pid while the context is open (skipped when py-spy is missing)."""

    def __init__(self, pid: int, out: Path, rate: int = 100, fmt: str = "raw") -> None:
        self.cmd = [
            shutil.which("py-spy") or str(Path(os.sys.executable).parent / "py-spy"),
            "record", "-p", str(pid), "-o", str(out), "-r", str(rate), "-f", fmt, "--threads", "--nonblocking", "--subprocesses",
        ]  # fmt: skip
        self.out = out
        self.popen: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PySpy:
        if Path(self.cmd[0]).exists():
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.popen = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.popen is not None:
            self.popen.send_signal(2)  # SIGINT: py-spy writes the profile and exits
            try:
                self.popen.wait(60)
            except subprocess.TimeoutExpired:
                self.popen.kill()


def run_timed(cmd: list[str] | str, *, cwd: Path | None = None, shell: bool = False) -> dict[str, float]:
    """Wall time, peak RSS (sampled, the command and all its children summed) and CPU seconds
    (user + system, from the kernel's accounting of reaped children) of a command."""
    settle()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, shell=shell, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with RssSampler(proc.pid, children=True) as rss:
        _, err = proc.communicate()
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the command (and what it forked), reaped
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd!r} failed ({proc.returncode}): {err.decode(errors='replace')[-2000:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {"seconds": seconds, "peak_rss": rss.peak, "cpu_seconds": round(cpu, 3)}


def tree_bytes(root: Path) -> tuple[int, int]:
    """(files, bytes) under a directory."""
    files = size = 0
    for d, _, names in os.walk(root):
        for n in names:
            try:
                size += os.stat(os.path.join(d, n)).st_size
                files += 1
            except FileNotFoundError:
                pass
    return files, size


@dataclass
class ExportRun:
    job_id: str
    seconds: float
    peak_rss: int
    state: str
    server_seconds: float
    describe: dict[str, Any] = field(repr=False, default_factory=dict)
    #: serve / worker at the moment of the summed peak, and each one's own peak (bytes)
    peak_parts: dict[str, int] = field(default_factory=dict)
    peaks: dict[str, int] = field(default_factory=dict)
    #: CPU seconds used during the job, read from /proc: serve itself, and its worker
    #: process(es), each as {"user", "system"}
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)
    #: size of the exported zip (0 if it could not be read)
    archive_bytes: int = 0

    @property
    def worker_cpu_seconds(self) -> float:
        """user + system of the worker process(es) that ran the job."""
        w = self.cpu.get("worker", {})
        return w.get("user", 0.0) + w.get("system", 0.0)


class ExportServer:
    """One ``mailcrate serve`` with the export prerequisites in place."""

    def __init__(self, work: Path, *extra: str, src: Path | None = None) -> None:
        """``src``: another checkout's ``src/`` runs this server (an A/B in one run)."""
        self.work = work
        # BENCH_SERVE_ARGS: extra serve flags for experiments, e.g. "--export-part-size-mib 8"
        extra = (*extra, *os.environ.get("BENCH_SERVE_ARGS", "").split())
        self.proc: Process = start_mailcrate(
            work / "data", KEY, SECRET, "--export-mailbox-interval-seconds", "0", *extra, src=src
        )
        self.pid = self.proc.popen.pid
        self.data_dir = work / "data"
        cfg = Config(retries={"max_attempts": 3}, s3={"addressing_style": "path"}, max_pool_connections=32)

        def client(service: str) -> Any:
            return boto3.session.Session().client(
                service,
                endpoint_url=self.proc.endpoint,
                region_name=REGION,
                aws_access_key_id=KEY,
                aws_secret_access_key=SECRET,
                config=cfg,
            )

        self.wm, self.kms, self.s3, self.iam = (client(s) for s in ("workmail", "kms", "s3", "iam"))
        self.org = self.wm.create_organization(Alias="bench" + uuid.uuid4().hex[:10])["OrganizationId"]
        self.domain = self.wm.describe_organization(OrganizationId=self.org)["DefaultMailDomain"]
        self.key_arn = self.kms.create_key(Description="export key")["KeyMetadata"]["Arn"]
        self.bucket = "bench-" + uuid.uuid4().hex[:12]
        self.s3.create_bucket(Bucket=self.bucket)
        role = "WorkmailExportRole" + uuid.uuid4().hex[:6]
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "export.workmail.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                    "Condition": {"StringEquals": {"sts:ExternalId": ACCOUNT}},
                }
            ],
        }
        perms = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["s3:AbortMultipartUpload", "s3:PutObject", "s3:GetBucketPolicyStatus"],
                    "Resource": [f"arn:aws:s3:::{self.bucket}", f"arn:aws:s3:::{self.bucket}/*"],
                },
                {
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Resource": [self.key_arn],
                    "Condition": {
                        "StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com"},
                        "StringLike": {
                            "kms:EncryptionContext:aws:s3:arn": f"arn:aws:s3:::{self.bucket}/{PREFIX}*"
                        },
                    },
                },
            ],
        }
        self.role_arn = self.iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))[
            "Role"
        ]["Arn"]
        self.iam.put_role_policy(RoleName=role, PolicyName="MailboxExport", PolicyDocument=json.dumps(perms))

    def new_user(self, name: str) -> tuple[str, Path]:
        """A registered user; returns (user id, embedded mailbox root)."""
        user = self.wm.create_user(
            OrganizationId=self.org, Name=name, DisplayName=name.title(), Password="Corr3ct-Horse-1"
        )["UserId"]
        self.wm.register_to_work_mail(OrganizationId=self.org, EntityId=user, Email=f"{name}@{self.domain}")
        return user, self.data_dir / "mailboxes" / self.org / user

    def bind_source(self, user_id: str, spec: dict[str, Any]) -> None:
        """Point a user's mailbox at an external source (what ``mailcrate mailbox bind`` does)."""
        from sqlalchemy import update

        from mailcrate.datadir import DataDir
        from mailcrate.export.job import SOURCE_PURPOSE
        from mailcrate.storage.tables import users

        dd = DataDir.open(self.data_dir)
        try:
            sealed = dd.secrets.seal_text(json.dumps(spec), SOURCE_PURPOSE)
            with dd.db.begin() as conn:
                conn.execute(update(users).where(users.c.user_id == user_id).values(source_sealed=sealed))
        finally:
            dd.close()

    def start(self, user_id: str) -> str:
        return self.wm.start_mailbox_export_job(
            OrganizationId=self.org,
            EntityId=user_id,
            RoleArn=self.role_arn,
            KmsKeyArn=self.key_arn,
            S3BucketName=self.bucket,
            S3Prefix=PREFIX,
            Description="benchmark",
        )["JobId"]

    def wait(
        self,
        job_id: str,
        timeout: float = 3600,
        poll: float = 0.01,
        slow_after: float = 5.0,
        slow_poll: float = 0.05,
    ) -> dict[str, Any]:
        """Poll Describe until the job leaves RUNNING: every ``poll`` s for the first
        ``slow_after`` s, then every ``slow_poll`` s. The fine start keeps the poll from
        measuring itself on a short job (at 50 ms a 0.18 s export read up to 50 ms late, +28 %);
        a Describe costs the server ~0.3 ms, so 10 ms polls hardly slow the job they watch."""
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            d = self.wm.describe_mailbox_export_job(OrganizationId=self.org, JobId=job_id)
            if d["State"] != "RUNNING":
                return d
            time.sleep(poll if time.monotonic() - started < slow_after else slow_poll)
        raise TimeoutError(f"export {job_id} still RUNNING after {timeout} s")

    def export(
        self,
        user_id: str,
        *,
        profile_to: Path | None = None,
        keep: bool = False,
        idle: IdleCores | None = None,
    ) -> ExportRun:
        """One full export job, start -> COMPLETED, with the peak RSS of serve and its worker
        process(es), summed; ``idle`` is entered around the timed span."""
        settle()
        spy = PySpy(self.pid, profile_to) if profile_to else None
        if spy:
            spy.__enter__()
        try:
            with (
                RssSampler(self.pid, children=True) as rss,
                CpuMeter(self.pid) as cpu,
                idle or contextlib.nullcontext(),
            ):
                started = time.perf_counter()
                job = self.start(user_id)
                d = self.wait(job)
                seconds = time.perf_counter() - started
        finally:
            if spy:
                spy.__exit__(None, None, None)
        if d["State"] != "COMPLETED":
            raise RuntimeError(f"export {job} ended {d['State']}: {d.get('ErrorInfo')}")
        server = (d["EndTime"] - d["StartTime"]).total_seconds() if d.get("EndTime") else seconds
        archive = 0
        with contextlib.suppress(Exception):
            archive = self.s3.head_object(Bucket=self.bucket, Key=self._zip_key(d))["ContentLength"]
        if not keep:
            self.delete_export(d)
        cpus = {"serve": cpu.own, "worker": cpu.children}
        return ExportRun(job, seconds, rss.peak, d["State"], server, d, rss.parts, rss.peaks, cpus, archive)

    def export_many(self, user_ids: list[str], *, idle: IdleCores | None = None) -> tuple[float, int]:
        """Start all at once; (seconds until the last is COMPLETED, peak RSS); ``idle`` is
        entered around the timed span."""
        settle()
        with RssSampler(self.pid, children=True) as rss, idle or contextlib.nullcontext():
            started = time.perf_counter()
            jobs = [self.start(u) for u in user_ids]
            ds = [self.wait(j) for j in jobs]
            seconds = time.perf_counter() - started
        for d in ds:
            if d["State"] != "COMPLETED":
                raise RuntimeError(f"export {d['JobId']} ended {d['State']}: {d.get('ErrorInfo')}")
            self.delete_export(d)
        return seconds, rss.peak

    @staticmethod
    def _zip_key(d: dict[str, Any]) -> str:
        return d["S3Path"].split("/", 3)[-1] if d["S3Path"].startswith("s3://") else d["S3Path"]

    def delete_export(self, d: dict[str, Any]) -> None:
        key = self._zip_key(d)
        for k in (key, key[: -len(".zip")] + ".json"):
            with contextlib.suppress(Exception):
                self.s3.delete_object(Bucket=self.bucket, Key=k)

    def idle_rss(self) -> int:
        """RSS of serve plus its children (the export worker process), summed."""
        return RssSampler(self.pid, children=True).rss()

    def idle_parts(self) -> dict[str, int]:
        """RSS of serve and of its worker child(ren), each."""
        return RssSampler(self.pid, children=True).sample()

    def stop(self) -> None:
        self.proc.stop()


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from mailcrate.export import deflate

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "deflate": deflate.BACKEND,
    }


def save(name: str, result: dict[str, Any]) -> Path:
    """Write results/<name>-<time>.json and results/<name>.json (latest); print the JSON line."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": name, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine(), **result}
    text = json.dumps(result, default=str)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"{name}-{stamp}.json").write_text(text + "\n")
    (RESULTS / f"{name}.json").write_text(text + "\n")
    print(text)
    return RESULTS / f"{name}.json"


def mb_s(nbytes: int, seconds: float) -> float:
    return round(nbytes / MB / seconds, 1) if seconds > 0 else 0.0


def fmt_mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"
