"""The administrator's flow with ``mailcrate``'s own CLI against a real ``mailcrate serve``:
setup -> start --wait (plain and in a terminal) -> describe/list -> download -> verify ->
restore into a second user's mailbox, byte-identical; damaged zips named by ``verify``."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
import uuid
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from imapclient import IMAPClient

from mailcrate.mail.base import CalDavSpec
from mailcrate.mail.caldav_source import CalDavSource
from mailcrate.mail.calendar_mime import ics_from_calendar_mime
from mailcrate.mail.samples import generate
from mailcrate.mail.store import deliver_message
from tests.cli.support import MAILCRATE, module_dovecot, one_line_error, run, server_env
from tests.e2e.admin_support import crlf, ical_fingerprint, mailbox_contents, sha, zip_contents
from tests.jobs.support import Mailbox, add_big_item, fill_maildir, new_mailbox
from tests.servers import DovecotServer, RadicaleServer, start_radicale
from tests.support.mailcrate_server import MailcrateServer

PREFIX = "admin-exports"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailcrateServer]:
    with MailcrateServer.running(tmp_path_factory.mktemp("admin") / "data") as srv:
        yield srv


@dataclass
class Prepared:
    env: dict[str, str]
    bucket: str
    key_arn: str
    role_arn: str
    alice: Mailbox

    def start_args(self, mb: Mailbox) -> list[str]:
        return ["export", "start", "--organization-id", mb.organization_id, "--entity-id", mb.user_id,
                "--bucket", self.bucket, "--prefix", PREFIX, "--kms-key", self.key_arn, "--role", self.role_arn]  # fmt: skip


@pytest.fixture(scope="module")
def prepared(server: MailcrateServer) -> Prepared:
    env = server_env(server)
    alice = new_mailbox(server, "alice")
    generate(alice.root, profile="small", seed=3)
    bucket = "admin-" + uuid.uuid4().hex[:10]
    first = run("export", "setup", "--bucket", bucket, "--prefix", PREFIX, "--output", "json", env=env)
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert [c["status"] for c in result["checks"]] == ["created"] * 4, result
    return Prepared(env, bucket, result["kmsKeyArn"], result["roleArn"], alice)


@pytest.fixture(scope="module")
def exported(prepared: Prepared, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """alice exported with ``start --wait`` without a terminal, then downloaded."""
    started = run(*prepared.start_args(prepared.alice), "--wait", env=prepared.env)
    assert started.returncode == 0, started.stderr
    assert "\x1b[" not in started.stderr + started.stdout  # no control sequences when not a TTY
    lines = started.stderr.splitlines()
    assert lines[0].startswith("started export job ")
    job_id = lines[0].split()[-1]
    progress = [
        line
        for line in lines[1:]
        if re.fullmatch(r"\d\d:\d\d:\d\d export [0-9a-f]{8}: \w+ \d+% \(elapsed \d+:\d\d:\d\d\)", line)
    ]
    assert progress and progress[-1].split()[3:5] == ["COMPLETED", "100%"], started.stderr
    assert f"job {job_id} COMPLETED after" in started.stderr
    to = tmp_path_factory.mktemp("download")
    downloaded = run("export", "download", job_id, "--organization-id", prepared.alice.organization_id,
                     "--to", str(to), "--output", "json", env=prepared.env)  # fmt: skip
    assert downloaded.returncode == 0, downloaded.stderr
    return {"job_id": job_id, "to": to, "result": json.loads(downloaded.stdout)}


def test_setup_again_reports_everything_fine(prepared: Prepared) -> None:
    org = prepared.alice.organization_id
    again = run("export", "setup", "--bucket", prepared.bucket, "--prefix", PREFIX, "--organization-id", org,
                env=prepared.env)  # fmt: skip
    assert again.returncode == 0, again.stderr
    rows = [line for line in again.stdout.splitlines() if "already fine" in line]
    assert len(rows) == 6 and rows[0].startswith("WorkMail organization"), again.stdout
    assert any(row.startswith("KMS key policy") for row in rows), again.stdout
    assert f"mailcrate export start --organization-id {org}" in again.stdout
    missing = run("export", "setup", "--bucket", prepared.bucket, "--prefix", PREFIX, "--organization-id",
                  "m-" + "2" * 32, "--check-only", env=prepared.env)  # fmt: skip
    assert missing.returncode == 1 and "WorkMail organization    WRONG" in missing.stdout


def test_describe_list_download(prepared: Prepared, exported: dict) -> None:
    org, job_id = prepared.alice.organization_id, exported["job_id"]
    described = run(
        "export", "describe", job_id, "--organization-id", org, "--output", "json", env=prepared.env
    )
    job = json.loads(described.stdout)
    assert job["State"] == "COMPLETED" and job["EstimatedProgress"] == 100 and job["JobId"] == job_id
    text = run("export", "describe", job_id, "--organization-id", org, env=prepared.env).stdout
    assert re.search(r"^State:\s+COMPLETED$", text, re.M) and "Elapsed:" in text
    listed = run("export", "list", "--organization-id", org, env=prepared.env).stdout
    assert job_id in listed and "COMPLETED" in listed and "100%" in listed
    result = exported["result"]
    assert result["verified"] and result["problems"] == [] and result["items"] == 306
    zip_path = Path(result["zip"])
    _manifest, mail, cals = zip_contents(zip_path)
    assert len(mail) + len(cals) > 0 and sum(cals.values()) == 6
    # The unpacked Maildir tree + .ics files hold exactly what the zip holds, and so does alice.
    assert mailbox_contents(exported["to"] / job_id) == (mail, cals)
    assert mailbox_contents(prepared.alice.root) == (mail, cals)
    assert {f for (f, *_rest) in mail} >= {("Inbox",), ("Клиенты",), ("日本語のメール",)}
    ok = run("export", "verify", str(zip_path), env=prepared.env)
    assert ok.returncode == 0 and ok.stdout.startswith("OK ") and ".json" in ok.stdout


def test_download_as_mbox(prepared: Prepared, exported: dict, tmp_path: Path) -> None:
    org, job_id = prepared.alice.organization_id, exported["job_id"]
    result = run("export", "download", job_id, "--organization-id", org, "--to", str(tmp_path), "--format", "mbox",
                 env=prepared.env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    boxes = sorted((tmp_path / job_id / "mbox").rglob("*.mbox"))
    assert tmp_path / job_id / "mbox" / "Inbox.mbox" in boxes
    # mbox import of the unpacked files gives back every message of that folder
    import mailbox as stdlib_mailbox

    _, mail, _ = zip_contents(Path(exported["result"]["zip"]))
    inbox = sum(n for (folder, *_rest), n in mail.items() if folder == ("Inbox",))
    assert len(stdlib_mailbox.mbox(str(tmp_path / job_id / "mbox" / "Inbox.mbox"))) == inbox


def test_restore_into_second_user_byte_identical(
    server: MailcrateServer, prepared: Prepared, exported: dict
) -> None:
    # a second user of the same organization, addressed by email
    wm = server.client("workmail")
    uid = wm.create_user(OrganizationId=prepared.alice.organization_id, Name="bob", DisplayName="Bob",
                         Password="Corr3ct-Horse")["UserId"]  # fmt: skip
    domain = prepared.alice.email.split("@")[1]
    wm.register_to_work_mail(
        OrganizationId=prepared.alice.organization_id, EntityId=uid, Email=f"bob@{domain}"
    )
    root = server.data_dir / "mailboxes" / prepared.alice.organization_id / uid
    zip_path = Path(exported["result"]["zip"])
    args = ("export", "restore", str(zip_path), "--organization-id", prepared.alice.organization_id,
            "--entity-id", f"bob@{domain}", "--data-dir", str(server.data_dir), "--output", "json")  # fmt: skip
    # An interrupted earlier run left the first 50 messages (as the restore stores them).
    manifest, _, _ = zip_contents(zip_path)
    with zipfile.ZipFile(zip_path) as zf:
        for item in [i for i in manifest.items if i.kind == "mail"][:50]:
            deliver_message(
                root, item.folder, zf.read(item.zip_path), item.flags, item.internal_date, dedupe=True
            )
    first = run(*args, env=prepared.env)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["restored"] == 256 and report["skipped"] == 50
    _, mail, cals = zip_contents(zip_path)
    assert mailbox_contents(root) == (mail, cals)  # SHA-256, flags, internal dates, calendar objects
    again = json.loads(run(*args, env=prepared.env).stdout)
    assert again["restored"] == 0 and again["skipped"] == 306
    assert mailbox_contents(root) == (mail, cals)
    # bob's mailbox exports like alice's: the same items, byte for byte
    bob_job = run(*prepared.start_args(Mailbox(prepared.alice.organization_id, uid, f"bob@{domain}", root)),
                  "--wait", "--output", "json", env=prepared.env)  # fmt: skip
    assert bob_job.returncode == 0, bob_job.stderr
    job = json.loads(bob_job.stdout)
    out = Path(exported["to"]) / "bob"
    got = run("export", "download", job["JobId"], "--organization-id", prepared.alice.organization_id, "--to",
              str(out), "--no-unpack", env=prepared.env)  # fmt: skip
    assert got.returncode == 0, got.stderr
    _, mail2, cals2 = zip_contents(out / f"{job['JobId']}.zip")
    assert (mail2, cals2) == (mail, cals)


def test_tampered_and_truncated_zips(exported: dict, tmp_path: Path) -> None:
    zip_path = Path(exported["result"]["zip"])
    with zipfile.ZipFile(zip_path) as zf:
        info = next(i for i in zf.infolist() if i.filename.startswith("mail/") and i.compress_size > 2000)
    data = bytearray(zip_path.read_bytes())
    offset = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + info.compress_size // 2
    data[offset] ^= 0x01
    tampered = tmp_path / "tampered.zip"
    tampered.write_bytes(data)
    result = run("export", "verify", str(tampered), env={**os.environ})
    assert result.returncode == 1
    assert f"{info.filename}: " in result.stderr and "Traceback" not in result.stderr
    as_json = json.loads(
        run("export", "verify", str(tampered), "--output", "json", env={**os.environ}).stdout
    )
    assert not as_json["ok"] and info.filename in {p["entry"] for p in as_json["problems"]}

    whole = zip_path.read_bytes()
    with zipfile.ZipFile(zip_path) as zf:
        cut = next(i for i in zf.infolist()[len(zf.infolist()) // 2 :] if i.compress_size > 100)
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(
        whole[: cut.header_offset + 30 + len(cut.filename.encode()) + len(cut.extra) + cut.compress_size // 2]
    )
    result = run("export", "verify", str(truncated), env={**os.environ})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{cut.filename}: truncated" in result.stderr, result.stderr
    # the log beside a zip is picked up; a zip that does not match its log is reported
    shutil.copy(zip_path.with_suffix(".json"), tampered.with_suffix(".json"))
    result = run("export", "verify", str(tampered), env={**os.environ})
    assert "sha384Hash" in result.stderr
    # restore refuses a damaged archive, naming it
    result = run("export", "restore", str(truncated), "--imap", "imap://127.0.0.1:1", "--imap-user", "x",
                 env={**os.environ, "MAILCRATE_IMAP_PASSWORD": "x"})  # fmt: skip
    assert result.returncode == 1 and "is damaged" in result.stderr and cut.filename in result.stderr
    # so do the embedded and the CalDAV-only restore, before looking for the user or the server
    for damaged, entry in ((truncated, cut.filename), (tampered, info.filename)):
        for target in (("--organization-id", "m-" + "0" * 32, "--entity-id", "nobody"),
                       ("--caldav", "http://127.0.0.1:1", "--caldav-user", "x")):  # fmt: skip
            result = run(
                "export",
                "restore",
                str(damaged),
                *target,
                env={**os.environ, "MAILCRATE_CALDAV_PASSWORD": "x"},
            )
            assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
            assert f"{damaged} is damaged: " in result.stderr and f"{entry}: " in result.stderr, result.stderr


def test_start_wait_in_a_terminal(server: MailcrateServer, prepared: Prepared, tmp_path: Path) -> None:
    """Under tmux (a real pseudo-terminal) the rendered screen shows a progress bar."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed (scripts/install-test-deps.sh installs it)")
    carol = new_mailbox(server, "carol")
    fill_maildir(carol.root, {"Inbox": 3000, "Archive": 2000}, size=20_000)
    script = tmp_path / "run.sh"
    exports = "".join(
        f"export {k}={shlex.quote(v)}\n"
        for k, v in prepared.env.items()
        if k.startswith(("AWS_", "PATH", "HOME"))
    )
    cmd = " ".join(shlex.quote(a) for a in [*MAILCRATE, *prepared.start_args(carol), "--wait"])
    script.write_text(f"{exports}cd {shlex.quote(os.getcwd())}\n{cmd}\necho EXIT=$?\nsleep 60\n")
    session = "mc-" + uuid.uuid4().hex[:8]
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "150", "-y", "20", f"bash {script}"], check=True
    )
    screens: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            screen = subprocess.run(
                ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True
            ).stdout
            screens.append(screen)
            if "EXIT=" in screen:
                break
            time.sleep(0.05)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    final = screens[-1]
    assert "EXIT=0" in final, final
    bar = [line for line in final.splitlines() if "━" in line]
    assert bar and "100%" in bar[0] and "COMPLETED" in bar[0] and "elapsed 0:00:" in bar[0], final
    assert re.search(r"job [0-9a-f-]{36} COMPLETED after", final)
    running = [s for s in screens if re.search(r"━.* \d+% RUNNING elapsed", s)]
    assert running, "no screen showed the job running"


def test_cancel_then_wait_exits_non_zero(server: MailcrateServer, prepared: Prepared) -> None:
    dave = new_mailbox(server, "dave")
    fill_maildir(dave.root, {"Inbox": 10})
    # The in-process export stores ~250 MB/s; on a loaded machine the cancel CLI needs a second or
    # two to start, so the job must take longer than that (400 MiB finished first under load).
    add_big_item(dave.root, 1536 * 1024 * 1024, random_data=True)
    started = run(*prepared.start_args(dave), "--output", "json", env=prepared.env)
    job_id = json.loads(started.stdout)["JobId"]
    cancelled = run("export", "cancel", job_id, "--organization-id", dave.organization_id, env=prepared.env)
    assert cancelled.returncode == 0, cancelled.stderr
    waited = run("export", "wait", job_id, "--organization-id", dave.organization_id, env=prepared.env)
    assert waited.returncode == 4, waited.stderr
    assert f"job {job_id} CANCELLED" in waited.stderr
    # a cancelled job has nothing to download
    result = run("export", "download", job_id, "--organization-id", dave.organization_id, "--to", "/tmp/x-none",
                 env=prepared.env)  # fmt: skip
    assert result.returncode == 1 and "CANCELLED" in result.stderr and "Traceback" not in result.stderr


# ----------------------------------------------------------------------------- IMAP + CalDAV


IMAP_A, IMAP_B = "roundtrip-alice", "roundtrip-bob"  # this module's users on the session's Dovecot
dovecot = module_dovecot({IMAP_A: "roundtrip-alice-pw", IMAP_B: "roundtrip-bob-pw"})


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RadicaleServer]:
    server = start_radicale(tmp_path_factory.mktemp("radicale"))
    yield server
    server.stop()


def _imap_contents(dovecot: DovecotServer, user: str) -> Counter:
    client = IMAPClient("127.0.0.1", dovecot.port, ssl=False)
    client.login(user, dovecot.users[user])
    found: Counter = Counter()
    try:
        for _flags, delim, name in client.list_folders():
            client.select_folder(name, readonly=True)
            path = tuple(name.split(delim.decode())) if delim else (name,)
            path = ("Inbox", *path[1:]) if path[0].upper() == "INBOX" else path
            ids = client.search(["ALL"])
            for data in client.fetch(ids, ["BODY.PEEK[]", "FLAGS", "INTERNALDATE"]).values():
                flags = tuple(sorted(f.decode() for f in data[b"FLAGS"] if f.lower() != b"\\recent"))
                when = int(data[b"INTERNALDATE"].timestamp())
                found[(path, sha(data[b"BODY[]"]), flags, when)] += 1
    finally:
        client.logout()
    return found


def _zip_calendars(zip_path: Path) -> Counter:
    """(calendar, fingerprint) of every calendar item in the export zip."""
    manifest, _mail, _cals = zip_contents(zip_path)
    with zipfile.ZipFile(zip_path) as zf:
        return Counter(
            (item.folder[0], ical_fingerprint(ics_from_calendar_mime(zf.read(item.zip_path))))
            for item in manifest.items
            if item.kind == "calendar"
        )


def _caldav_calendars(radicale: RadicaleServer, user: str) -> Counter:
    """(calendar, fingerprint) of every item the CalDAV server holds for ``user``."""
    with CalDavSource(CalDavSpec(radicale.url, user, radicale.users[user])) as source:
        return Counter(
            (folder.path[0], ical_fingerprint(ics_from_calendar_mime(item.read_all())))
            for folder in source.folders()
            for item in source.items(folder)
        )


def test_restore_over_imap_and_caldav(exported: dict, dovecot: DovecotServer, radicale: RadicaleServer,
                                      tmp_path: Path) -> None:  # fmt: skip
    """Into Dovecot (implicit TLS, its CA trusted, master-user login) and Radicale: every
    message byte-identical as IMAP hands messages out (CRLF), with its flags and internal date;
    every calendar item with the same components and properties (Radicale re-serializes what
    it stores, so bytes cannot survive it); a second run adds nothing."""
    zip_path = Path(exported["result"]["zip"])
    (tmp_path / "master").write_text(dovecot.master_password + "\n")
    (tmp_path / "cal").write_text(radicale.users["alice"] + "\n")
    args = ("export", "restore", str(zip_path), "--imap", f"imaps://localhost:{dovecot.imaps_port}",
            "--imap-user", IMAP_A, "--imap-master-user", dovecot.master_user,
            "--imap-password-file", str(tmp_path / "master"), "--imap-ca-file", str(dovecot.ca_file),
            "--caldav", radicale.url, "--caldav-user", "alice", "--caldav-password-file", str(tmp_path / "cal"),
            "--output", "json")  # fmt: skip
    first = run(*args, env={**os.environ})
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["restored"] == 306 and report["skipped"] == 0 and report["notRestored"] == {}
    manifest, _mail, _cals = zip_contents(zip_path)
    expected: Counter = Counter()
    with zipfile.ZipFile(zip_path) as zf:
        for item in manifest.items:
            if item.kind == "mail":
                when = int(item.internal_date.timestamp()) if item.internal_date else None
                expected[
                    (item.folder, sha(crlf(zf.read(item.zip_path))), tuple(sorted(item.flags)), when)
                ] += 1
    got = _imap_contents(dovecot, IMAP_A)
    assert +got == +expected
    assert _caldav_calendars(radicale, "alice") == _zip_calendars(zip_path)
    again = run(*args, env={**os.environ})
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["restored"] == 0 and report["skipped"] == 306
    assert _imap_contents(dovecot, IMAP_A) == got


def test_restore_calendars_only_over_caldav(exported: dict, radicale: RadicaleServer, tmp_path: Path) -> None:
    """``--caldav`` without ``--imap``: only the calendar items, into another CalDAV user; the
    mail items are left out; a second run adds nothing."""
    zip_path = Path(exported["result"]["zip"])
    (tmp_path / "cal").write_text(radicale.users["bob"] + "\n")
    args = ("export", "restore", str(zip_path), "--caldav", radicale.url, "--caldav-user", "bob",
            "--caldav-password-file", str(tmp_path / "cal"), "--output", "json")  # fmt: skip
    expected = _zip_calendars(zip_path)
    first = run(*args, env={**os.environ})
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["restored"] == sum(expected.values()) > 0 and report["skipped"] == 0
    assert _caldav_calendars(radicale, "bob") == expected
    again = json.loads(run(*args, env={**os.environ}).stdout)
    assert again["restored"] == 0 and again["skipped"] == sum(expected.values())
    assert _caldav_calendars(radicale, "bob") == expected


def test_bound_imap_mailbox_round_trip(server: MailcrateServer, prepared: Prepared, exported: dict,
                                       dovecot: DovecotServer, tmp_path: Path) -> None:  # fmt: skip
    """export -> restore into Dovecot (user IMAP_B) -> ``mailbox bind`` a new user to that IMAP
    account (master user) -> export that user -> the same mail, as IMAP hands it out."""
    zip_path = Path(exported["result"]["zip"])
    (tmp_path / "master").write_text(dovecot.master_password)
    imap = ("--imap", dovecot.url, "--imap-user", IMAP_B, "--imap-master-user", dovecot.master_user,
            "--imap-password-file", str(tmp_path / "master"))  # fmt: skip
    restored = run("export", "restore", str(zip_path), *imap, env={**os.environ})
    # the calendar items did not arrive (no --caldav): named, and the exit status says so
    assert restored.returncode == 1, restored.stderr
    assert "not restored: 6 calendar items (give --caldav to restore them)" in restored.stdout
    assert "error: 6 item(s) not restored" in restored.stderr
    frank = new_mailbox(server, "frank")
    bound = run("mailbox", "bind", "--data-dir", str(server.data_dir), "--organization-id", frank.organization_id,
                "--entity-id", frank.user_id, *imap, env={**os.environ})  # fmt: skip
    assert bound.returncode == 0, bound.stderr
    assert "Inbox: " in bound.stdout and "Клиенты: " in bound.stdout
    job = run(*prepared.start_args(frank), "--wait", "--output", "json", env=prepared.env)
    assert job.returncode == 0, job.stderr
    job_id = json.loads(job.stdout)["JobId"]
    got = run("export", "download", job_id, "--organization-id", frank.organization_id, "--to", str(tmp_path),
              "--no-unpack", env=prepared.env)  # fmt: skip
    assert got.returncode == 0, got.stderr
    manifest, _, _ = zip_contents(zip_path)
    expected: Counter = Counter()
    with zipfile.ZipFile(zip_path) as zf:
        for item in manifest.items:
            if item.kind == "mail":
                expected[(item.folder, sha(crlf(zf.read(item.zip_path))), tuple(sorted(item.flags)))] += 1
    second, _, _ = zip_contents(tmp_path / f"{job_id}.zip")
    assert Counter((i.folder, i.sha256, tuple(sorted(i.flags))) for i in second.items) == expected


def test_failed_job_and_the_24_hour_limit(
    server: MailcrateServer, prepared: Prepared, exported: dict
) -> None:
    gina = new_mailbox(server, "gina")
    fill_maildir(gina.root, {"Inbox": 3})
    args = prepared.start_args(gina)
    args[args.index("--role") + 1] = "NoSuchExportRole"  # a role name becomes the caller's role ARN
    failed = run(*args, "--wait", env=prepared.env)
    assert failed.returncode == 3, failed.stderr
    assert re.search(r"job [0-9a-f-]{36} FAILED after", failed.stderr)
    assert "ErrorInfo: " in failed.stderr and "NoSuchExportRole" in failed.stderr
    # alice was exported by the `exported` fixture: WorkMail allows one export per 24 hours
    again = run(*prepared.start_args(prepared.alice), env=prepared.env)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert "hint: WorkMail allows one export per mailbox per 24 hours" in again.stderr, again.stderr


def test_download_without_kms_decrypt(server: MailcrateServer, prepared: Prepared, exported: dict,
                                      tmp_path: Path) -> None:  # fmt: skip
    """A caller who may read the object but not decrypt with the export's key gets one line
    naming the missing kms:Decrypt, not a traceback."""
    iam = server.client("iam")
    name = "reader-" + uuid.uuid4().hex[:6]
    iam.create_user(UserName=name)
    iam.put_user_policy(
        UserName=name,
        PolicyName="read-exports",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": ["workmail:Describe*", "workmail:List*"], "Resource": "*"},
                    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"},
                ],
            }
        ),
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    env = {
        **prepared.env,
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }
    result = run("export", "download", exported["job_id"], "--organization-id", prepared.alice.organization_id,
                 "--to", str(tmp_path), env=env)  # fmt: skip
    error, hint = one_line_error(result)
    assert "denied" in error and "kms:Decrypt" in hint, result.stderr
    assert not list(tmp_path.glob("*.zip*"))
