"""``mailcrate migrate`` (issue 21) moves a whole organization from ``mailcrate serve`` (the
WorkMail stand-in: embedded mailboxes and one bound to a source Dovecot) to a second Dovecot
(master-user logins) and Radicale, on real messages and calendars from public test suites
(tests/corpus): every message arrives with its bytes (as IMAP stores them), flags and internal
date, per folder; calendars arrive in Radicale; a user whose target login fails is reported
while the others complete; a ``kill -9`` mid-run followed by a rerun gives the same result
without a duplicate; a delta run restores exactly the new items (and not what the user deleted
in the target meanwhile), and a delta within the mailbox interval waits; the embedded store of
another organization is a target too, and a terminal gets the live display.

The 24-hour rule is the server's real one, shortened with serve's own
``--export-mailbox-interval-seconds`` so the delta test need not wait a day.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import signal
import sqlite3
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from imapclient import IMAPClient

from mailcrate.admin.imap_target import stored_form
from mailcrate.mail.base import CalDavSpec
from mailcrate.mail.caldav_source import CalDavSource
from mailcrate.mail.calendar_mime import ics_from_calendar_mime
from mailcrate.mail.store import add_calendar_item, deliver_message
from tests import corpus
from tests.cli.support import MAILCRATE, module_dovecot, run, server_env
from tests.e2e.admin_support import ical_fingerprint
from tests.servers import DovecotServer, RadicaleServer, start_dovecot, start_radicale
from tests.support.mailcrate_server import MailcrateServer

INTERVAL = 3  # serve's one-export-per-mailbox interval in this module, seconds
# two exports at once per organization (WorkMail: 10) so that --parallel 4 meets LimitExceeded
SERVE_ARGS = ("--export-mailbox-interval-seconds", str(INTERVAL), "--export-max-running-per-org", "2")
SOURCE_USER = "mig-source"  # on the session's Dovecot: a WorkMail user's mailbox bound to it
CAL_USERS = ("u01", "u02", "u03")  # with calendars (Radicale accounts)
CALENDARS = ("ical-org--Serialization-Event1.ics", "ical-org--Serialization-Google1.ics")
REFUSED = "apple--privateevents-7.ics"  # an event Radicale answers with 400: u03 has it too
Key = tuple[str, str, frozenset[str], datetime]

dovecot = module_dovecot({SOURCE_USER: "mig-source-pw"})


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DovecotServer]:
    """The second Dovecot: where the organization moves (master user admin/adminpw)."""
    server = start_dovecot(tmp_path_factory.mktemp("target"), users={"seed": "seedpw"})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RadicaleServer]:
    server = start_radicale(tmp_path_factory.mktemp("radicale"), users={u: f"{u}-cal" for u in CAL_USERS})
    yield server
    server.stop()


@dataclass
class Org:
    organization_id: str
    users: dict[str, str]  # local part -> user id
    expected: dict[str, Counter[Key]] = field(default_factory=dict)  # local part -> messages
    calendars: dict[str, Counter] = field(default_factory=dict)


@dataclass
class Prepared:
    env: dict[str, str]
    bucket: str
    key_arn: str
    role_arn: str


@pytest.fixture(scope="module")
def prepared(server: MailcrateServer) -> Prepared:
    env = server_env(server)
    bucket = "migrate-" + uuid.uuid4().hex[:10]
    done = run("export", "setup", "--bucket", bucket, "--prefix", "migration", "--output", "json", env=env)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    return Prepared(env, bucket, out["kmsKeyArn"], out["roleArn"])


def _key(folder: tuple[str, ...], data: bytes, flags: tuple[str, ...], when: datetime) -> Key:
    return ("/".join(folder), hashlib.sha256(stored_form(data)).hexdigest(), frozenset(flags), when)


def make_org(
    server: MailcrateServer, count: int, *, bound: DovecotServer | None = None, calendars: bool = True
) -> Org:
    """An organization of ``count`` registered users u00.. with corpus mail (u00 empty, one
    with a 3 MB message), calendars for CAL_USERS, the last one bound to the source Dovecot,
    plus one user never registered (skipped)."""
    wm = server.client("workmail")
    org_id = wm.create_organization(Alias="mig" + uuid.uuid4().hex[:12])["OrganizationId"]
    domain = wm.describe_organization(OrganizationId=org_id)["DefaultMailDomain"]
    org = Org(org_id, {})
    placed = corpus.mailbox()
    for n in range(count):
        local = f"u{n:02d}"
        uid = wm.create_user(OrganizationId=org_id, Name=local, DisplayName=local, Password="Corr3ct-Horse")[
            "UserId"
        ]
        wm.register_to_work_mail(OrganizationId=org_id, EntityId=uid, Email=f"{local}@{domain}")
        org.users[local] = uid
        root = server.data_dir / "mailboxes" / org_id / uid
        mine = [] if n == 0 else [p for i, p in enumerate(placed) if (i + n) % 3 != 0]
        expected: Counter[Key] = Counter()
        for p in mine:
            deliver_message(root, p.folder, p.data, p.flags, p.internal_date)
            expected[_key(p.folder, p.data, p.flags, p.internal_date)] += 1
        if n == 5:
            big = b"From: big@example.org\r\nSubject: big\r\n\r\n" + os.urandom(3 << 19).hex().encode()
            when = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
            deliver_message(root, ("Inbox",), big, ("\\Seen",), when)
            expected[_key(("Inbox",), big, ("\\Seen",), when)] += 1
        org.expected[local] = expected
        if calendars and local in CAL_USERS:
            cals: Counter = Counter()
            for name in CALENDARS:
                ics = corpus.calendar_path(name).read_bytes()
                add_calendar_item(root, "Calendar", ics)
                cals[("Calendar", ical_fingerprint(ics))] += 1
            org.calendars[local] = cals
            if local == "u03":
                add_calendar_item(root, "Calendar", corpus.calendar_path(REFUSED).read_bytes())
    if bound is not None:  # the last user reads its mailbox from the source Dovecot
        local = f"u{count - 1:02d}"
        password = Path(server.data_dir.parent / f"src-{org_id}")
        password.write_text(bound.master_password)
        done = run("mailbox", "bind", "--data-dir", str(server.data_dir), "--organization-id", org_id,
                   "--entity-id", org.users[local], "--imap", bound.url, "--imap-user", SOURCE_USER,
                   "--imap-master-user", bound.master_user, "--imap-password-file", str(password),
                   env={**os.environ})  # fmt: skip
        assert done.returncode == 0, done.stderr
        org.expected[local] = imap_view(bound, SOURCE_USER)
    skipped = wm.create_user(
        OrganizationId=org_id, Name="zz-unregistered", DisplayName="x", Password="Corr3ct-Horse"
    )
    org.users["zz-unregistered"] = skipped["UserId"]
    return org


def imap_view(dv: DovecotServer, user: str, *, master: bool = False) -> Counter[Key]:
    """Every message of ``user``: (folder, SHA-256 of its bytes, flags, INTERNALDATE)."""
    client = IMAPClient(dv.host, dv.port, ssl=False)
    client.normalise_times = False
    if master:
        client.login(f"{user}*{dv.master_user}", dv.master_password)
    else:
        client.login(user, dv.users[user])
    seen: Counter[Key] = Counter()
    try:
        for flags, delim, name in client.list_folders():
            if {b"\\Noselect", b"\\NonExistent"} & set(flags):
                continue
            client.select_folder(name, readonly=True)
            ids = client.search(["ALL"])
            for v in (client.fetch(ids, ["BODY.PEEK[]", "FLAGS", "INTERNALDATE"]) if ids else {}).values():
                got = frozenset(f.decode() for f in v[b"FLAGS"] if f != b"\\Recent")
                folder = "/".join(name.split(delim.decode())) if name != "INBOX" else "Inbox"
                seen[
                    (
                        folder,
                        hashlib.sha256(v[b"BODY[]"]).hexdigest(),
                        got,
                        v[b"INTERNALDATE"].astimezone(UTC),
                    )
                ] += 1
            client.close_folder()
    finally:
        client.logout()
    return seen


def per_folder(view: Counter[Key]) -> dict[str, tuple[int, int]]:
    """Counts per folder (the bytes are in the SHA-256s: equal multisets mean equal bytes)."""
    out: dict[str, tuple[int, int]] = {}
    for (folder, *_rest), n in view.items():
        count, kinds = out.get(folder, (0, 0))
        out[folder] = (count + n, kinds + 1)
    return out


def caldav_view(radicale: RadicaleServer, user: str) -> Counter:
    with CalDavSource(CalDavSpec(radicale.url, user, radicale.users[user])) as source:
        return Counter(
            (folder.path[0], ical_fingerprint(ics_from_calendar_mime(item.read_all())))
            for folder in source.folders()
            for item in source.items(folder)
        )


def migrate_args(org: Org, prepared: Prepared, target: DovecotServer, radicale: RadicaleServer, tmp: Path,
                 prefix: str, *extra: str) -> list[str]:  # fmt: skip
    (tmp / "master").write_text(target.master_password + "\n")
    (tmp / "cal.csv").write_text("".join(f"{u},{radicale.users[u]}\n" for u in CAL_USERS))
    return ["migrate", "run", "--organization-id", org.organization_id, "--bucket", prepared.bucket,
            "--prefix", prefix, "--kms-key", prepared.key_arn, "--role", prepared.role_arn,
            "--imap", target.url, "--imap-master-user", target.master_user,
            "--imap-password-file", str(tmp / "master"), "--caldav", radicale.url,
            "--caldav-passwords-csv", str(tmp / "cal.csv"), "--state", str(tmp / "state.sqlite"),
            "--work-dir", str(tmp / "work"), *extra]  # fmt: skip


def check_arrived(org: Org, target: DovecotServer, radicale: RadicaleServer, locals_: list[str]) -> None:
    for local in locals_:
        got = imap_view(target, local, master=True)
        assert per_folder(got) == per_folder(org.expected[local]), local
        assert got == org.expected[local], local
        if local in org.calendars:
            assert caldav_view(radicale, local) == org.calendars[local], local


@pytest.fixture(scope="module")
def whole(server: MailcrateServer, prepared: Prepared, dovecot: DovecotServer, target: DovecotServer,
          radicale: RadicaleServer, tmp_path_factory: pytest.TempPathFactory) -> dict:  # fmt: skip
    """25 users migrated in one run; u13's target login does not exist (the bad user)."""
    for n, (folder, name) in enumerate([(("INBOX",), "mikel--rfc6532-utf8_headers.eml"),
                                        (("Archive",), "mailgun--messages-8bitmime.eml")]):  # fmt: skip
        dovecot.put_messages(SOURCE_USER, folder, [(corpus.read(name), "S" if n else "F")])
    org = make_org(server, 25, bound=dovecot)
    target.add_users({local: f"{local}-pw" for local in org.users if local != "u13"})
    tmp = tmp_path_factory.mktemp("whole")
    (tmp / "map.csv").write_text("address,login\nu13@" + org_domain(server, org) + ",no-such-login\n")
    args = migrate_args(org, prepared, target, radicale, tmp, "migration/whole", "--login-template", "{local}",
                        "--login-map", str(tmp / "map.csv"), "--output", "json")  # fmt: skip
    result = run(*args, env=prepared.env, timeout=600)
    assert "Traceback" not in result.stderr, result.stderr
    return {"org": org, "tmp": tmp, "args": args, "result": result}


def org_domain_of(result: subprocess.CompletedProcess[str]) -> str:
    return json.loads(result.stdout)["users"][-1]["user"].split("@")[1]


def org_domain(server: MailcrateServer, org: Org) -> str:
    return server.client("workmail").describe_organization(OrganizationId=org.organization_id)[
        "DefaultMailDomain"
    ]


def test_whole_organization_arrives_and_one_bad_user_is_reported(whole: dict, target: DovecotServer,
                                                                 radicale: RadicaleServer) -> None:  # fmt: skip
    org, result = whole["org"], whole["result"]
    assert result.returncode == 1, result.stderr  # u13 did not arrive: the exit status says so
    report = json.loads(result.stdout)
    by_user = {row["user"].split("@")[0]: row for row in report["users"]}
    assert by_user["u13"]["state"] == "failed"
    assert "IMAP login failed for no-such-login" in by_user["u13"]["reason"]
    # without a terminal: plain progress lines, the organization's limit met with backoff
    assert "\x1b[" not in result.stderr
    assert "exporting LimitExceededException: retrying in " in result.stderr
    n05 = sum(org.expected["u05"].values())
    assert f"u05@{org_domain_of(result)}: done: {n05} restored, 0 already there\n" in result.stderr
    assert by_user["zz-unregistered"]["state"] == "skipped"
    assert by_user["zz-unregistered"]["reason"] == "not registered to WorkMail (no mailbox)"
    good = [local for local in org.expected if local != "u13"]
    for local in good:
        row = by_user[local]
        assert row["state"] == "done" and row["arrived"] == (local != "u03"), (row["reason"], row["refused"])
        expected = sum(org.expected[local].values()) + sum(org.calendars.get(local, Counter()).values())
        refused = len(row["refused"])
        assert row["exported_items"] == row["verified_items"] == row["restored_items"] + refused, row
        assert row["restored_items"] == expected, row
        if not refused:
            assert row["restored_bytes"] == row["exported_bytes"], row
    # the calendar item Radicale refused is named with its answer; the rest of u03 arrived
    (refusal,) = by_user["u03"]["refused"]
    assert refusal["item"].startswith("calendar/Calendar/") and refusal["reason"].startswith(
        "the CalDAV server said: HTTP 400"
    )
    assert report["totals"]["done"] == 24 and report["totals"]["failed"] == 1
    check_arrived(org, target, radicale, good)
    # every message of u05 (3 MB one included) and of the Dovecot-bound user
    assert sum(org.expected["u24"].values()) == 2 and org.expected["u24"] == imap_view(
        target, "u24", master=True
    )
    # the report again, from the state file, as a table and CSV; a rerun sends nothing again
    table = run("migrate", "report", "--state", str(whole["tmp"] / "state.sqlite"), env={**os.environ})
    assert table.returncode == 1 and "failed: u13@" in table.stdout and "24/26 done" in table.stdout
    assert (
        f"refused: u03@{org_domain_of(result)}: {refusal['item']}: the CalDAV server said: HTTP 400"
        in table.stdout
    )
    csv_out = run(
        "migrate",
        "report",
        "--state",
        str(whole["tmp"] / "state.sqlite"),
        "--output",
        "csv",
        env={**os.environ},
    )
    assert csv_out.stdout.splitlines()[0].startswith("user,entity_id,login,state,round,job_id,exported_items")
    status = run("migrate", "status", "--state", str(whole["tmp"] / "state.sqlite"), env={**os.environ})
    assert status.stdout.splitlines()[-1] == "24 done, 1 failed, 1 skipped"


def fix_bad_user(
    whole: dict, prepared: Prepared, target: DovecotServer
) -> subprocess.CompletedProcess[str] | None:
    """The operator creates u13's missing account, drops the map line and reruns (once)."""
    if "u13" in target.users:
        return None
    (whole["tmp"] / "map.csv").write_text("address,login\n")
    target.add_users({"u13": "u13-pw"})
    return run(*whole["args"], "--keep", env=prepared.env, timeout=600)


def test_fixed_bad_user_completes_on_rerun_without_duplicates(whole: dict, prepared: Prepared,
                                                               target: DovecotServer, radicale: RadicaleServer) -> None:  # fmt: skip
    """After the fix u13 arrives on a rerun (its export of the last 24 hours is reused:
    WorkMail would refuse a second); nobody else gets anything twice."""
    org = whole["org"]
    again = fix_bad_user(whole, prepared, target)
    assert again is not None and again.returncode == 1, again and again.stdout + again.stderr
    report = json.loads(again.stdout)
    # everything arrived but u03's refused calendar item (named again: the exit status stays 1)
    assert [r["user"].split("@")[0] for r in report["users"] if not r["arrived"]] == ["u03"]
    u13 = next(r for r in report["users"] if r["user"].startswith("u13@"))
    assert u13["state"] == "done" and u13["restored_items"] == sum(org.expected["u13"].values())
    before = next(r for r in json.loads(whole["result"].stdout)["users"] if r["user"].startswith("u13@"))
    assert u13["jobId"] == before["jobId"]  # its export reused, not a second one
    # --keep: the decrypted export stays, for its owner's eyes only; so does the state file
    (kept,) = (whole["tmp"] / "work").iterdir()
    assert f"kept the downloaded exports in {kept}" in again.stderr
    files = sorted(kept.rglob("*"))
    assert {f.name for f in files if f.is_file()} == {f"{before['jobId']}.zip", f"{before['jobId']}.json"}
    assert {oct(f.stat().st_mode & 0o777) for f in files if f.is_file()} == {"0o600"}
    assert {oct(d.stat().st_mode & 0o777) for d in [kept, *(f for f in files if f.is_dir())]} == {"0o700"}
    assert oct((whole["tmp"] / "state.sqlite").stat().st_mode & 0o777) == "0o600"
    check_arrived(org, target, radicale, list(org.expected))


def test_plan_is_a_dry_run(server: MailcrateServer, prepared: Prepared, whole: dict) -> None:
    org = whole["org"]
    listed = run("migrate", "plan", "--organization-id", org.organization_id, "--login-template", "{local}@new.example",
                 "--output", "json", env=prepared.env)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    rows = {r["user"].split("@")[0]: r for r in json.loads(listed.stdout)["users"]}
    assert rows["u05"]["login"] == "u05@new.example" and rows["u05"]["mailboxMB"] > 1
    assert rows["zz-unregistered"]["action"] == "skip: not registered to WorkMail (no mailbox)"
    assert rows["u01"]["action"].startswith("reuse export ")  # within 24 h of the run's export
    # a users file limits the plan (and the run); a name the organization lacks is an error
    users = whole["tmp"] / "users.txt"
    users.write_text(f"# two of them\nu01@{org_domain(server, org)}\nu02\n")
    some = run("migrate", "plan", "--organization-id", org.organization_id, "--login-template", "{local}",
               "--users-file", str(users), "--output", "json", env=prepared.env)  # fmt: skip
    assert [r["login"] for r in json.loads(some.stdout)["users"]] == ["u01", "u02"]
    users.write_text("u01\nnobody-of-ours\n")
    bad = run("migrate", "plan", "--organization-id", org.organization_id, "--login-template", "{local}",
              "--users-file", str(users), env=prepared.env)  # fmt: skip
    assert (
        bad.returncode == 1
        and "error: the users file names 1 user(s) the organization does not have: nobody-of-ours"
        in bad.stderr
    )


def _done_count(state: Path) -> int:
    if not state.exists():
        return 0
    try:
        with sqlite3.connect(state, timeout=5) as db:
            return db.execute("SELECT count(*) FROM users WHERE phase = 'done'").fetchone()[0]
    except sqlite3.Error:
        return 0


def _started_not_done(state: Path) -> dict[str, str]:
    """The users whose export job was started but who are not done: entity id -> job id."""
    if not state.exists():
        return {}
    try:
        with sqlite3.connect(state, timeout=5) as db:
            query = "SELECT entity_id, job_id FROM users WHERE phase != 'done' AND job_id IS NOT NULL"
            return dict(db.execute(query))
    except sqlite3.Error:
        return {}


def test_kill_9_mid_run_then_rerun_gives_the_same_result(server: MailcrateServer, prepared: Prepared,
                                                          target: DovecotServer, radicale: RadicaleServer,
                                                          tmp_path: Path) -> None:  # fmt: skip
    org = make_org(server, 6, calendars=False)  # mail only: the Radicale accounts are the first org's
    logins = {local: f"k{local}" for local in org.users}
    target.add_users({login: f"{login}-pw" for local, login in logins.items() if local != "zz-unregistered"})
    tmp_path.joinpath("map.csv").write_text("".join(f"{local}@{org_domain(server, org)},{login}\n"
                                                    for local, login in logins.items()))  # fmt: skip
    args = migrate_args(org, prepared, target, radicale, tmp_path, "migration/kill", "--login-map",
                        str(tmp_path / "map.csv"), "--parallel", "1", "--output", "json")  # fmt: skip
    args = [
        a
        for a in args
        if a not in ("--caldav", radicale.url, "--caldav-passwords-csv", str(tmp_path / "cal.csv"))
    ]
    proc = subprocess.Popen(
        [*MAILCRATE, *args], env=prepared.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    state = tmp_path / "state.sqlite"
    deadline = time.monotonic() + 120
    most_ahead = 0  # users with a job started but not restored yet, at once
    while _done_count(state) < 2 and time.monotonic() < deadline and proc.poll() is None:
        most_ahead = max(most_ahead, len(_started_not_done(state)))
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    done_at_kill = _done_count(state)
    assert 2 <= done_at_kill < 6, done_at_kill  # killed in the middle
    # the exports run ahead of the restores: with one user restored at a time, more than one
    # user had a job started and was not done yet (serve here lets 2 run at once)
    assert most_ahead >= 2, most_ahead
    ahead = _started_not_done(state)  # the rerun waits for these jobs instead of exporting again
    again = run(*args, env=prepared.env, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    report = json.loads(again.stdout)
    assert report["totals"]["done"] == 6 and report["complete"]
    jobs = {u["entityId"]: u["jobId"] for u in report["users"]}
    assert {e: jobs[e] for e in ahead} == ahead
    assert list((tmp_path / "work").iterdir()) == []  # the killed run's decrypted download removed too
    for local in (f"u{n:02d}" for n in range(6)):
        assert imap_view(target, logins[local], master=True) == org.expected[local], local


def test_delta_restores_exactly_the_new_items(whole: dict, server: MailcrateServer, prepared: Prepared,
                                              dovecot: DovecotServer, target: DovecotServer,
                                              radicale: RadicaleServer) -> None:  # fmt: skip
    """After the switch: new mail in the source (embedded and Dovecot-bound); the user deleted
    one message in the target meanwhile. The delta restores the new items only."""
    org = whole["org"]
    fix_bad_user(whole, prepared, target)  # (when this test runs alone)
    time.sleep(INTERVAL + 0.5)  # serve's (shortened) one-export-per-mailbox interval has passed
    new_at = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    fresh = corpus.read("spamscope--mails-mail_test_12.eml")
    root = server.data_dir / "mailboxes" / org.organization_id / org.users["u07"]
    deliver_message(root, ("Inbox",), fresh, ("\\Flagged",), new_at)
    org.expected["u07"][_key(("Inbox",), fresh, ("\\Flagged",), new_at)] += 1
    dovecot.put_messages(SOURCE_USER, ("INBOX",), [(corpus.read("mailgun--messages-long-links.eml"), "")])
    # u02 deleted one message in the new server after the switch
    client = IMAPClient(target.host, target.port, ssl=False)
    client.login(f"u02*{target.master_user}", target.master_password)
    client.select_folder("INBOX")
    first = client.search(["ALL"])[0]
    client.delete_messages([first])
    client.expunge()
    client.logout()
    after_delete = imap_view(target, "u02", master=True)

    delta = run(*whole["args"], "--delta", env=prepared.env, timeout=600)
    assert delta.returncode == 1, delta.stdout + delta.stderr  # u03's refused item, tried again
    report = json.loads(delta.stdout)
    assert [r["user"].split("@")[0] for r in report["users"] if not r["arrived"]] == ["u03"]
    assert len(next(r for r in report["users"] if r["user"].startswith("u03@"))["refused"]) == 1
    restored = {r["user"].split("@")[0]: r["restored_items"] for r in report["users"] if r["restored_items"]}
    assert restored == {"u07": 1, "u24": 1}
    assert imap_view(target, "u02", master=True) == after_delete  # not brought back
    org.expected["u24"] = imap_view(dovecot, SOURCE_USER)
    check_arrived(org, target, radicale, ["u07", "u24"])
    assert all(r["round"] == 1 for r in report["users"] if r["state"] == "done")


def test_delta_within_24_hours_waits_and_says_until_when(tmp_path: Path, target: DovecotServer,
                                                          radicale: RadicaleServer) -> None:  # fmt: skip
    """With the real rule's shape (one export per mailbox per interval; here an hour), a delta
    right after a complete run cannot have a newer export: each user is ``waiting`` with the
    time it becomes possible, nothing is restored, the exit status is 1; the first round's
    export is not mistaken for new mail."""
    with MailcrateServer.running(tmp_path / "data", "--export-mailbox-interval-seconds", "3600") as srv:
        env = server_env(srv)
        bucket = "wait-" + uuid.uuid4().hex[:10]
        done = run("export", "setup", "--bucket", bucket, "--prefix", "m", "--output", "json", env=env)
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        org = make_org(srv, 2, calendars=False)
        logins = {"u00": "w00", "u01": "w01"}
        target.add_users({login: "pw" for login in logins.values()})
        (tmp_path / "map.csv").write_text(
            "".join(f"{lo}@{org_domain(srv, org)},{li}\n" for lo, li in logins.items())
        )
        prepared = Prepared(env, bucket, out["kmsKeyArn"], out["roleArn"])
        args = migrate_args(org, prepared, target, radicale, tmp_path, "m", "--login-map", str(tmp_path / "map.csv"),
                            "--output", "json")  # fmt: skip
        first = run(*args, env=env, timeout=300)
        assert first.returncode == 0, first.stdout + first.stderr
        delta = run(*args, "--delta", env=env, timeout=300)
        assert delta.returncode == 1, delta.stdout + delta.stderr
        rows = [r for r in json.loads(delta.stdout)["users"] if r["state"] != "skipped"]
        assert [r["state"] for r in rows] == ["waiting", "waiting"]
        assert all(
            r["reason"].startswith("exported at most once per 24 hours: possible after ") for r in rows
        )
        assert all(r["restored_items"] == sum(org.expected[r["user"].split("@")[0]].values()) for r in rows)
        assert imap_view(target, "w01", master=True) == org.expected["u01"]
        status = run("migrate", "status", "--state", str(tmp_path / "state.sqlite"), env={**os.environ})
        assert status.stdout.splitlines()[-1] == "1 skipped, 2 waiting"


def test_into_the_embedded_store_of_another_organization(server: MailcrateServer, prepared: Prepared,
                                                          tmp_path: Path) -> None:  # fmt: skip
    """The target may be a mailcrate data directory's embedded store: each user's mail and
    calendars arrive byte for byte in the mapped user of another organization; a rerun adds
    nothing."""
    from tests.e2e.admin_support import mailbox_contents

    org = make_org(server, 3)
    wm = server.client("workmail")
    dest = wm.create_organization(Alias="dst" + uuid.uuid4().hex[:12])["OrganizationId"]
    domain = wm.describe_organization(OrganizationId=dest)["DefaultMailDomain"]
    roots = {}
    for local in ("u00", "u01", "u02"):
        uid = wm.create_user(
            OrganizationId=dest, Name=f"e{local}", DisplayName="e", Password="Corr3ct-Horse"
        )["UserId"]
        wm.register_to_work_mail(OrganizationId=dest, EntityId=uid, Email=f"e{local}@{domain}")
        roots[local] = server.data_dir / "mailboxes" / dest / uid
    src_domain = org_domain(server, org)
    (tmp_path / "map.csv").write_text("".join(f"{lo}@{src_domain},e{lo}@{domain}\n" for lo in roots))
    args = ["migrate", "run", "--organization-id", org.organization_id, "--bucket", prepared.bucket,
            "--prefix", "migration/embedded", "--kms-key", prepared.key_arn, "--role", prepared.role_arn,
            "--login-map", str(tmp_path / "map.csv"), "--target-data-dir", str(server.data_dir),
            "--target-organization-id", dest, "--state", str(tmp_path / "state.sqlite"), "--output", "json"]  # fmt: skip
    # in a terminal (stderr a pty, from script(1)): the live display, the JSON on stdout still
    command = shlex.join([*MAILCRATE, *args]) + f" > {shlex.quote(str(tmp_path / 'out.json'))}"
    shown = subprocess.run(["script", "-qec", command, "/dev/null"], env={**prepared.env, "COLUMNS": "160"},
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert shown.returncode == 0, shown.stdout
    assert "\x1b[" in shown.stdout and "all 3 users" in shown.stdout and "3/3 finished" in shown.stdout
    assert f"u01@{src_domain}: done: " in shown.stdout
    rows = {r["user"].split("@")[0]: r for r in json.loads((tmp_path / "out.json").read_text())["users"]}
    for local, root in roots.items():
        source = server.data_dir / "mailboxes" / org.organization_id / org.users[local]
        assert mailbox_contents(root) == mailbox_contents(source), local
        assert rows[local]["restored_items"] == rows[local]["exported_items"] > 0 or local == "u00"
    assert sum(mailbox_contents(roots["u01"])[1].values()) == len(CALENDARS)
    # a rerun of a finished migration has nothing to do, and the report says all arrived
    again = run(*args, env=prepared.env, timeout=300)
    assert again.returncode == 0 and json.loads(again.stdout)["complete"] is True
    # even with the state file lost, a run restores nothing twice: all is already there
    (tmp_path / "state.sqlite").unlink()
    lost = run(*args, env=prepared.env, timeout=300)
    assert lost.returncode == 0, lost.stdout + lost.stderr
    for row in json.loads(lost.stdout)["users"]:
        if row["state"] == "done":
            assert (row["restored_items"], row["already_items"]) == (0, row["exported_items"]), row
    for local, root in roots.items():
        source = server.data_dir / "mailboxes" / org.organization_id / org.users[local]
        assert mailbox_contents(root) == mailbox_contents(source), local
