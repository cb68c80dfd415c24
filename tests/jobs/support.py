"""Helpers for export-job tests: moto's server as the external AWS stand-in, organizations with
registered users, mailboxes filled fast (Maildir files written directly), waiting for jobs and
checking an export against its source."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from mailcrate.export.manifest import MANIFEST_NAME, Manifest
from mailcrate.export.verify import verify_export
from mailcrate.mail.base import SourceSpec, open_source
from mailcrate.mail.store import add_calendar_item, folder_dir
from tests.servers.net import free_port, wait_port
from tests.support.mailcrate_server import ACCOUNT_ID as ACCOUNT_ID
from tests.support.mailcrate_server import MailcrateServer

REGION = "us-east-1"

TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "export.workmail.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": "AWS_ACCOUNT_ID"}},
        }
    ],
}


def trust_policy(account_id: str) -> str:
    return json.dumps(TRUST_POLICY).replace("AWS_ACCOUNT_ID", account_id)


def trust_policy_new(account_id: str, region: str = REGION) -> str:
    """The newer documented form: ExternalId plus aws:SourceAccount and aws:SourceArn."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "export.workmail.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                    "Condition": {
                        "StringEquals": {"sts:ExternalId": account_id, "aws:SourceAccount": account_id},
                        "ArnLike": {
                            "aws:SourceArn": f"arn:aws:workmail:{region}:{account_id}:organization/*"
                        },
                    },
                }
            ],
        }
    )


def permission_policy(bucket: str, prefix: str, key_arn: str, region: str = REGION) -> str:
    """The role's permission policy exactly as the WorkMail export procedure prints it."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["s3:AbortMultipartUpload", "s3:PutObject", "s3:GetBucketPolicyStatus"],
                    "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                },
                {
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Resource": [key_arn],
                    "Condition": {
                        "StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"},
                        "StringLike": {
                            "kms:EncryptionContext:aws:s3:arn": f"arn:aws:s3:::{bucket}/{prefix}*"
                        },
                    },
                },
            ],
        }
    )


@dataclass
class MotoServer:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, service: str, region: str = REGION) -> Any:
        return boto3.session.Session().client(
            service,
            endpoint_url=self.endpoint,
            region_name=region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"max_attempts": 2}, s3={"addressing_style": "path"}),
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_moto(log_dir: Path) -> MotoServer:
    port = free_port()
    log = open(log_dir / "moto.log", "ab")  # noqa: SIM115 - lives with the process
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
    )
    wait_port("127.0.0.1", port, timeout=30)
    return MotoServer(port, process)


def moto_destination(
    moto: MotoServer, *, region: str = "us-east-1", key_spec: str | None = None
) -> dict[str, str]:
    """A bucket, a KMS key and an export role (trusting the export service) in moto."""
    bucket = "exp-" + uuid.uuid4().hex[:12]
    s3 = moto.client("s3", region)
    if region == "us-east-1":
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    kms = moto.client("kms")
    kwargs = {"KeySpec": key_spec, "KeyUsage": "ENCRYPT_DECRYPT"} if key_spec else {}
    key = kms.create_key(**kwargs)["KeyMetadata"]
    role = moto.client("iam").create_role(
        RoleName="WorkmailMailboxExportRole" + uuid.uuid4().hex[:6],
        AssumeRolePolicyDocument=trust_policy("111122223333"),
    )["Role"]
    return {"bucket": bucket, "key_arn": key["Arn"], "key_id": key["KeyId"], "role_arn": role["Arn"]}


def fetch_export(
    moto: MotoServer, dest: dict[str, str], job: dict[str, Any], job_id: str, tmp: Path
) -> tuple[Path, Path]:
    """Download a COMPLETED job's zip and its log (beside it) from moto into ``tmp``."""
    s3 = moto.client("s3")
    log_key = job["S3Path"].rsplit("/", 1)[0] + f"/{job_id}.json"
    # One streamed GET each (moto answers ranged GETs, as download_file makes, very slowly).
    for key, name in ((job["S3Path"], "export.zip"), (log_key, "export.json")):
        with open(tmp / name, "wb") as f:
            for chunk in s3.get_object(Bucket=dest["bucket"], Key=key)["Body"].iter_chunks(1 << 20):
                f.write(chunk)
    return tmp / "export.zip", tmp / "export.json"


def moto_env(moto: MotoServer) -> dict[str, str]:
    """What ``serve --aws-endpoint-url`` needs to find credentials through the standard chain."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }


@dataclass
class Mailbox:
    organization_id: str
    user_id: str
    email: str
    root: Path


def new_mailbox(server: MailcrateServer, name: str = "alice") -> Mailbox:
    wm = server.client("workmail")
    org = wm.create_organization(Alias="exp" + uuid.uuid4().hex[:12])["OrganizationId"]
    domain = wm.describe_organization(OrganizationId=org)["DefaultMailDomain"]
    user = wm.create_user(OrganizationId=org, Name=name, DisplayName=name.title(), Password="Corr3ct-Horse")[
        "UserId"
    ]
    email = f"{name}@{domain}"
    wm.register_to_work_mail(OrganizationId=org, EntityId=user, Email=email)
    return Mailbox(org, user, email, server.data_dir / "mailboxes" / org / user)


def message(n: int, size: int = 2000, folder: str = "Inbox") -> bytes:
    head = (
        f"From: sender{n}@example.org\r\nTo: alice@example.com\r\nSubject: message {n} in {folder}\r\n"
        f"Message-ID: <{n}.{uuid.uuid4().hex}@example.org>\r\nDate: Tue, 1 Oct 2024 10:00:00 +0000\r\n\r\n"
    ).encode()
    body = (f"line {n} " * (size // 8 + 1)).encode()[: max(0, size - len(head))]
    return head + body


def fill_maildir(root: Path, folders: dict[Any, int], *, size: int = 2000, seed: int = 0) -> int:
    """Write messages straight into the Maildir folders (fast: no per-message fsync)."""
    total = 0
    for folder, count in folders.items():
        d = folder_dir(root, folder)
        for sub in ("cur", "new", "tmp"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        if d != root / "Maildir":
            (d / "maildirfolder").touch()
        for n in range(count):
            name = f"{1700000000 + n}.M{seed}P{n}Q{total}.test:2,S"
            (d / "cur" / name).write_bytes(message(total, size, str(folder)))
            total += 1
    return total


def add_big_item(root: Path, size: int, folder: str = "Inbox", *, random_data: bool = False) -> None:
    d = folder_dir(root, folder)
    path = d / "cur" / "1800000000.Mbig.test:2,S"
    head = b"From: big@example.org\r\nSubject: big\r\nContent-Type: application/octet-stream\r\n\r\n"
    with open(path, "wb") as f:
        f.write(head)
        block = os.urandom(1 << 20) if random_data else (b"0123456789abcdef" * 65536)
        left = size - len(head)
        while left > 0:
            f.write(block[: min(left, len(block))])
            left -= len(block)


def add_calendar(root: Path, count: int, calendar: str = "Calendar") -> None:
    for n in range(count):
        ics = (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:event-{n}@example.org\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20240102T100000Z\r\n"
            f"DTEND:20240102T110000Z\r\nSUMMARY:Meeting {n}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        ).encode()
        add_calendar_item(root, calendar, ics)


def start_export(server: MailcrateServer, mb: Mailbox, dest: dict[str, str], prefix: str) -> str:
    """StartMailboxExportJob with boto3 for ``mb`` into ``dest`` (bucket, key_arn, role_arn)."""
    return server.client("workmail").start_mailbox_export_job(
        OrganizationId=mb.organization_id,
        EntityId=mb.user_id,
        RoleArn=dest["role_arn"],
        KmsKeyArn=dest["key_arn"],
        S3BucketName=dest["bucket"],
        S3Prefix=prefix,
    )["JobId"]


def wait_job(wm: Any, org: str, job_id: str, *, timeout: float = 120, until: tuple[str, ...] = ()) -> dict:
    deadline = time.monotonic() + timeout
    last_progress = 0
    while time.monotonic() < deadline:
        job = wm.describe_mailbox_export_job(OrganizationId=org, JobId=job_id)
        assert job["EstimatedProgress"] >= last_progress, "progress went backwards"
        last_progress = job["EstimatedProgress"]
        if job["State"] != "RUNNING" or job["State"] in until:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still RUNNING after {timeout}s: {job}")


def check_export(
    zip_path: Path, log_path: Path, mailbox: Mailbox, spec: SourceSpec | None = None
) -> Manifest:
    """The archive is valid, matches its log, and holds every source item byte for byte."""
    report = verify_export(zip_path, log_path)
    assert report.ok, report.problems[:10]
    result = subprocess.run(["unzip", "-tqq", str(zip_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    with zipfile.ZipFile(zip_path) as zf:
        manifest = Manifest.parse(zf.read(MANIFEST_NAME))
        by_source = {(item.folder, item.source_id): item for item in manifest.items}
        spec = spec or SourceSpec(embedded=str(mailbox.root), owner=mailbox.email)
        seen = 0
        with open_source(spec) as source:
            for folder in source.folders():
                for item in source.items(folder):
                    entry = by_source[(folder.path, item.source_id)]
                    digest = hashlib.sha256()
                    for chunk in item.chunks():
                        digest.update(chunk)
                    assert entry.sha256 == digest.hexdigest(), entry.zip_path
                    stored = hashlib.sha256()
                    with zf.open(entry.zip_path) as f:
                        for chunk in iter(lambda f=f: f.read(1 << 20), b""):
                            stored.update(chunk)
                    assert stored.hexdigest() == entry.sha256, entry.zip_path
                    seen += 1
        assert seen == len(manifest.items)
    return manifest


def no_leftovers(s3: Any, bucket: str, prefix: str) -> None:
    objects = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    assert objects == [], [o["Key"] for o in objects]
    uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
    assert uploads == [], uploads


def fill_bulk(root: Path, total_bytes: int, *, message_size: int = 1 << 20, folder: str = "Inbox") -> int:
    """About ``total_bytes`` of attachment-like messages (base64 of random data: deflate gains
    ~25 %, as on real mail with attachments). Returns the message count."""
    import base64

    d = folder_dir(root, folder)
    for sub in ("cur", "new", "tmp"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    blocks = [base64.encodebytes(os.urandom(message_size * 3 // 4)) for _ in range(8)]
    count = max(1, total_bytes // message_size)
    for n in range(count):
        head = f"From: bulk@example.org\r\nSubject: bulk {n}\r\nMessage-ID: <bulk{n}@example.org>\r\n\r\n".encode()
        (d / "cur" / f"{1600000000 + n}.Mbulk{n}.test:2,S").write_bytes(head + blocks[n % len(blocks)])
    return count
