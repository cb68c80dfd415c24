"""``mailcrate quickstart``: the whole export flow in one command, on this machine.

It initialises the data directory, starts ``mailcrate serve`` as a child process on a free
loopback port, creates an organization and a user with a realistic sample mailbox, creates the
prerequisites exactly as the AWS procedure does (:mod:`mailcrate.admin.setup`), runs an export
with live progress, downloads and verifies it, and prints what it did plus the ``aws`` commands
that repeat each step by hand.

Re-running: the data directory, organization, key, bucket and role are reused. WorkMail allows
one export per mailbox per 24 hours, and mailcrate enforces that too, so a run picks the first
user of ``alice``, ``alice-2``, ... whose mailbox was not exported in the last 24 hours (creating
it when needed) rather than weakening the rule.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console

from mailcrate.admin.aws import AwsTarget
from mailcrate.admin.certificates import ensure_tls_files
from mailcrate.admin.download import Downloaded, download_export
from mailcrate.admin.errors import AdminError
from mailcrate.admin.jobs import JobStatus, start_job, wait_job
from mailcrate.admin.policies import DEFAULT_POLICY_NAME, DEFAULT_ROLE_NAME, permission_policy, trust_policy
from mailcrate.admin.progress import ByteProgress, JobProgressView, format_elapsed
from mailcrate.admin.setup import DEFAULT_KEY_ALIAS, SetupResult, ensure_prerequisites

__all__ = ["ChildServer", "QuickstartResult", "run_quickstart"]

_LISTEN = re.compile(r"mailcrate listening on (?P<url>https?://\S+)")
PREFIX = "mailbox-exports"
USER_BASE = "alice"


class ChildServer:
    """``mailcrate serve`` as a child process on a free loopback port (port 0)."""

    def __init__(self, data_dir: Path, log_path: Path, extra: tuple[str, ...] = ()) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.extra = extra
        self.process: subprocess.Popen[str] | None = None
        self.endpoint = ""

    def __enter__(self) -> ChildServer:
        log = open(self.log_path, "a")
        args = [
            sys.executable,
            "-m",
            "mailcrate.cli.main",
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--log-level",
            "warning",
            *self.extra,
        ]
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=log, text=True, stdin=subprocess.DEVNULL
        )
        log.close()
        assert self.process.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            match = _LISTEN.search(line)
            if match:
                self.endpoint = match["url"].rstrip("/")
                return self
        self.stop()
        raise AdminError("mailcrate serve did not start", f"see its log: {self.log_path}")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass
class QuickstartResult:
    data_dir: Path
    endpoint: str = ""
    account_id: str = ""
    region: str = ""
    access_key_id: str = ""
    secret_access_key: str = field(default="", repr=False)
    organization_id: str = ""
    domain: str = ""
    user_name: str = ""
    user_id: str = ""
    user_created: bool = False
    sample: dict[str, Any] = field(default_factory=dict)
    setup: SetupResult | None = None
    job_id: str = ""
    job_state: str = ""
    job_seconds: float = 0.0
    downloaded: Downloaded | None = None
    files: Path | None = None
    ca_bundle: Path | None = None
    steps: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.job_state == "COMPLETED" and self.downloaded is not None and self.downloaded.report.ok

    def to_dict(self) -> dict[str, Any]:
        d = self.downloaded
        return {
            "ok": self.ok,
            "dataDir": str(self.data_dir),
            "accountId": self.account_id,
            "region": self.region,
            "organizationId": self.organization_id,
            "userName": self.user_name,
            "userId": self.user_id,
            "sample": self.sample,
            "setup": self.setup.to_dict() if self.setup else None,
            "jobId": self.job_id,
            "state": self.job_state,
            "exportSeconds": round(self.job_seconds, 3),
            "download": d.to_dict() if d else None,
            "files": str(self.files) if self.files else None,
            "caBundle": str(self.ca_bundle) if self.ca_bundle else None,
            "seconds": round(self.seconds, 3),
        }


def _init(data_dir: Path, result: QuickstartResult) -> None:
    from mailcrate.accounts import init_account
    from mailcrate.datadir import DataDir, DataDirError

    try:
        dd = DataDir.open(data_dir, create=True)
    except DataDirError as exc:
        raise AdminError(str(exc), "pick another --data-dir") from None
    try:
        init = init_account(dd, account_id=None, region=None, access_key_id=None, secret_access_key=None)
    finally:
        dd.close()
    result.account_id, result.region = init.account_id, init.region
    result.access_key_id, result.secret_access_key = init.access_key_id, init.secret_access_key


def _organization(wm: Any, result: QuickstartResult) -> None:
    alias = f"quickstart-{result.account_id}"
    for org in (
        wm.get_paginator("list_organizations").paginate().build_full_result().get("OrganizationSummaries", [])
    ):
        if org.get("Alias") == alias and org.get("State") == "Active":
            result.organization_id = org["OrganizationId"]
            break
    else:
        result.organization_id = wm.create_organization(Alias=alias)["OrganizationId"]
    result.domain = wm.describe_organization(OrganizationId=result.organization_id)["DefaultMailDomain"]


def _recent_exports(wm: Any, org_id: str) -> set[str]:
    """Users whose mailbox had a non-failed export in the last 24 hours."""
    since = datetime.now(UTC) - timedelta(hours=24)
    busy: set[str] = set()
    token = None
    while True:
        page = wm.list_mailbox_export_jobs(OrganizationId=org_id, **({"NextToken": token} if token else {}))
        for job in page.get("Jobs", []):
            start = job.get("StartTime")
            if job.get("State") in ("RUNNING", "COMPLETED") and (start is None or start >= since):
                busy.add(job["EntityId"])
        token = page.get("NextToken")
        if not token:
            return busy


def _user(wm: Any, result: QuickstartResult) -> None:
    org = result.organization_id
    users = {
        u["Name"]: u
        for u in wm.get_paginator("list_users")
        .paginate(OrganizationId=org)
        .build_full_result()
        .get("Users", [])
        if u.get("State") != "DELETED"
    }
    busy = _recent_exports(wm, org)
    n = 1
    while True:
        name = USER_BASE if n == 1 else f"{USER_BASE}-{n}"
        existing = users.get(name)
        if existing is None:
            break
        if existing.get("State") == "ENABLED" and existing["Id"] not in busy:
            result.user_name, result.user_id = name, existing["Id"]
            return
        n += 1
    user_id = wm.create_user(
        OrganizationId=org,
        Name=name,
        DisplayName=f"Alice Quickstart {n}",
        Password="Quickstart-" + os.urandom(6).hex(),
    )["UserId"]
    wm.register_to_work_mail(OrganizationId=org, EntityId=user_id, Email=f"{name}@{result.domain}")
    result.user_name, result.user_id, result.user_created = name, user_id, True


def _sample(data_dir: Path, result: QuickstartResult) -> None:
    from mailcrate.mail.samples import generate
    from mailcrate.mail.store import EmbeddedStore

    root = data_dir / "mailboxes" / result.organization_id / result.user_id
    with EmbeddedStore(root) as store:
        existing = sum(f.count for f in store.folders())
    if existing:
        result.sample = {"reused": True, "items": existing}
        return
    report = generate(root, profile="small", seed=sum(map(ord, result.user_id)) % 1000)
    result.sample = {
        "reused": False,
        "messages": report.messages,
        "bytes": report.bytes,
        "attachments": report.attachments,
        "folders": ["/".join(f) for f in report.folders],
        "calendarItems": report.calendar_items,
    }


def run_quickstart(
    data_dir: Path,
    *,
    to: Path | None,
    console: Console,
    say: Callable[[str], None],
    keep_serving: Callable[[ChildServer, QuickstartResult], None] | None = None,
) -> QuickstartResult:
    """Run every step (see the module docstring); ``say`` reports each step as it completes."""
    started = time.monotonic()
    data_dir = data_dir.expanduser().absolute()
    result = QuickstartResult(data_dir=data_dir)
    _init(data_dir, result)
    say(f"data directory {data_dir} (account {result.account_id}, region {result.region})")
    tls = ensure_tls_files(data_dir)
    result.ca_bundle = tls.ca_cert
    say(f"TLS certificate {tls.server_cert}, signed by the local CA {tls.ca_cert}")
    tls_args = ("--tls-cert", str(tls.server_cert), "--tls-key", str(tls.server_key))
    with ChildServer(data_dir, data_dir / "quickstart-serve.log", tls_args) as server:
        result.endpoint = server.endpoint
        say(f"mailcrate serve is running at {server.endpoint} (log: {server.log_path})")
        target = AwsTarget(
            endpoint_url=server.endpoint,
            region=result.region,
            access_key_id=result.access_key_id,
            secret_access_key=result.secret_access_key,
            ca_bundle=str(tls.ca_cert),
        )
        wm = target.client("workmail")
        _organization(wm, result)
        _user(wm, result)
        say(
            f"organization {result.organization_id}, user {result.user_name}@{result.domain} ({result.user_id})"
            + ("" if result.user_created else ", reused")
        )
        _sample(data_dir, result)
        s = result.sample
        if s.get("reused"):
            say(f"sample mailbox already there ({s['items']} items)")
        else:
            say(
                f"sample mailbox: {s['messages']} messages ({s['bytes'] / 1e6:.1f} MB, {s['attachments']} with "
                f"attachments) in {len(s['folders'])} folders, {s['calendarItems']} calendar items"
            )
        bucket = f"mailcrate-quickstart-{result.account_id}"
        result.setup = ensure_prerequisites(target, bucket=bucket, prefix=PREFIX)
        for check in result.setup.checks:
            state = {"created": "created", "ok": "already fine", "wrong": "WRONG"}[check.status]
            say(f"{check.name}: {state} - {check.detail}")
        if not result.setup.ok:
            raise AdminError("the export prerequisites are not right", "see the WRONG lines above")
        assert result.setup.key_arn and result.setup.role_arn
        result.job_id = start_job(
            target,
            organization_id=result.organization_id,
            entity_id=result.user_id,
            bucket=bucket,
            prefix=PREFIX,
            kms_key=result.setup.key_arn,
            role=result.setup.role_arn,
            description="mailcrate quickstart",
        )
        say(f"export job {result.job_id} started")
        view = JobProgressView(console, result.job_id)
        with view:
            status: JobStatus = wait_job(
                target,
                result.organization_id,
                result.job_id,
                on_status=view.update,
                interval=0.25,
                timeout=300,
            )
        result.job_state, result.job_seconds = status.state, status.elapsed
        if status.state != "COMPLETED":
            raise AdminError(
                f"export job {result.job_id} {status.state}: {status.job.get('ErrorInfo', '')}",
                f"see the server log: {server.log_path}",
            )
        say(
            f"export {status.state} in {format_elapsed(status.elapsed)}: s3://{bucket}/{status.job['S3Path']}"
        )
        out = (to or data_dir / "quickstart-exports").expanduser().absolute()
        result.downloaded = download_export(
            target,
            result.organization_id,
            result.job_id,
            out,
            progress=lambda label, total: ByteProgress(console, label, total),
        )
        result.files = out
        _write_policies(out, result)
        if keep_serving is not None:
            result.seconds = time.monotonic() - started
            keep_serving(server, result)
    result.seconds = time.monotonic() - started
    return result


def _write_policies(out: Path, result: QuickstartResult) -> None:
    assert result.setup is not None and result.setup.key_arn
    (out / "mailbox-export-trust-policy.json").write_text(
        json.dumps(trust_policy(result.account_id), indent=2) + "\n"
    )
    # For the by-hand walk-through (repeat_commands): its own bucket, the quickstart's key.
    policy = permission_policy(_byhand(result.setup.bucket), PREFIX, result.setup.key_arn, result.region)
    (out / "mailbox-export-policy.json").write_text(json.dumps(policy, indent=2) + "\n")


def _byhand(name: str) -> str:
    return f"{name}-byhand"


def repeat_commands(result: QuickstartResult) -> list[str]:
    """The ``aws`` (and ``mailcrate``) commands that repeat each step by hand: a second user,
    bucket and role (the files written beside the export hold their policies), the same key."""
    assert result.setup is not None and result.downloaded is not None
    q = shlex.quote
    d = q(str(result.data_dir))
    org, job = result.organization_id, result.job_id
    bucket = _byhand(result.setup.bucket)
    role = f"{DEFAULT_ROLE_NAME}ByHand"
    files = q(str(result.files))
    name = _byhand(result.user_name)
    account = result.account_id
    return [
        "# credentials, TLS, endpoint, policy files (the quickstart's server has stopped: start one)",
        f'eval "$(mailcrate init --data-dir {d} --tls)"   # also AWS_CA_BUNDLE, MAILCRATE_TLS_CERT/KEY',
        f"mailcrate serve --data-dir {d} --port 4566 &",
        "export AWS_ENDPOINT_URL=https://localhost:4566   # or --endpoint-url on each command",
        f"cd {files}   # mailbox-export-trust-policy.json, mailbox-export-policy.json",
        "# a user with a mailbox (here: filled from the export just unpacked)",
        f"aws workmail create-user --organization-id {org} --name {name} --display-name {name} "
        "--password Choose-a-passw0rd",
        f"aws workmail register-to-work-mail --organization-id {org} --entity-id USER_ID --email {name}@{result.domain}",
        f"mailcrate mailbox import --data-dir {d} --organization-id {org} --entity-id USER_ID {files}/{job}/Maildir",
        "# prerequisites as the AWS procedure creates them (all in one: mailcrate export setup)",
        f"aws kms describe-key --key-id {DEFAULT_KEY_ALIAS}   # created with: aws kms create-key",
        f"aws s3api create-bucket --bucket {bucket}",
        f"aws s3api put-public-access-block --bucket {bucket} --public-access-block-configuration "
        "BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true",
        f"aws iam create-role --role-name {role} --assume-role-policy-document file://mailbox-export-trust-policy.json",
        f"aws iam put-role-policy --role-name {role} --policy-name {DEFAULT_POLICY_NAME} "
        "--policy-document file://mailbox-export-policy.json",
        "# the export (WorkMail allows one per mailbox per 24 hours)",
        f"aws workmail start-mailbox-export-job --organization-id {org} --entity-id USER_ID "
        f"--kms-key-arn {result.setup.key_arn} --role-arn arn:aws:iam::{account}:role/{role} "
        f"--s3-bucket-name {bucket} --s3-prefix {PREFIX}",
        f"aws workmail describe-mailbox-export-job --organization-id {org} --job-id JOB_ID",
        f"aws s3 cp s3://{bucket}/{PREFIX}/JOB_ID.zip . && aws s3 cp s3://{bucket}/{PREFIX}/JOB_ID.json .",
        "mailcrate export verify JOB_ID.zip --log JOB_ID.json",
    ]
