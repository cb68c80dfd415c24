"""Import (mbox, Maildir, eml, ics) is idempotent; SMTP delivery, 550 and 552."""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest

from mailcrate.mail.base import SourceSpec, open_source
from mailcrate.mail.calendar_mime import ics_from_calendar_mime
from mailcrate.mail.intake import import_paths
from mailcrate.mail.smtp import start_smtp
from mailcrate.mail.store import create_mailbox, deliver

from .corpus import message, sha, vevent

try:
    from servers import free_port
except ImportError:  # pragma: no cover
    from tests.servers import free_port  # type: ignore[no-redef]


def _contents(root: Path) -> dict[tuple[str, tuple[str, ...]], list[tuple[bytes, tuple[str, ...]]]]:
    out = {}
    with open_source(SourceSpec(embedded=str(root))) as src:
        for f in src.folders():
            out[(f.kind, f.path)] = [(i.read_all(), i.flags) for i in src.items(f)]
    return out


def _inputs(tmp: Path) -> list[Path]:
    mbox = tmp / "Old Stuff.mbox"
    mbox.write_bytes(
        b"From alice@example.test Mon Jan  5 10:00:00 2026\n"
        b"Subject: one\nStatus: RO\n\nbody\n>From quoted line\n\n"
        b"From bob@example.test Tue Jan  6 11:00:00 2026\n"
        b"Subject: two\nX-Status: F\n\ntext\nFrom here inside a paragraph is not a separator\n\n"
    )
    src = tmp / "src-maildir"
    inbox = tmp / "tree"
    root = inbox
    for d in ("", ".Work", ".Work.Reports", ".&AMQ-rger"):
        for sub in ("cur", "new", "tmp"):
            (root / d / sub).mkdir(parents=True, exist_ok=True)
    (root / "cur" / "1.a.host:2,S").write_bytes(message(1))
    (root / "new" / "2.b.host").write_bytes(message(2))
    (root / ".Work.Reports" / "cur" / "3.c.host:2,FRS").write_bytes(message(3))
    (root / ".&AMQ-rger" / "cur" / "4.d.host:2,").write_bytes(message(4, lf=True))
    emls = tmp / "emls"
    emls.mkdir()
    (emls / "a.eml").write_bytes(message(10))
    (emls / "b.eml").write_bytes(message(11))
    (emls / "notes.txt").write_bytes(b"not mail")
    ics = tmp / "cal.ics"
    one, two = vevent(1, overrides=2, tz=True), vevent(2)
    head, _, rest = two.partition(b"BEGIN:VEVENT")
    ics.write_bytes(
        one.replace(b"END:VCALENDAR\r\n", b"BEGIN:VEVENT" + rest.replace(b"END:VCALENDAR\r\n", b""))
        + b"END:VCALENDAR\r\n"
    )
    del src, head
    return [mbox, inbox, emls, ics]


def test_import_all_formats_is_idempotent(tmp_path: Path) -> None:
    root = tmp_path / "mb"
    paths = _inputs(tmp_path)
    first = import_paths(root, paths)
    got = {k: (v.imported, v.skipped) for k, v in first.mail.items()}
    assert got[("Old Stuff",)] == (2, 0)
    assert got[("Inbox",)] == (4, 0)  # 2 from the Maildir, 2 .eml files
    assert got[("Work", "Reports")] == (1, 0)
    assert got[("Ärger",)] == (1, 0)
    assert first.calendars["Calendar"].imported == 2
    assert not first.errors
    before = _contents(root)
    second = import_paths(root, paths)
    assert all(v.imported == 0 for v in second.mail.values())
    assert all(v.imported == 0 for v in second.calendars.values())
    assert _contents(root) == before
    mbox_msgs = before[("mail", ("Old Stuff",))]
    assert sorted(mbox_msgs) == sorted(
        [
            (b"Subject: one\nStatus: RO\n\nbody\nFrom quoted line\n", ("\\Seen",)),
            (
                b"Subject: two\nX-Status: F\n\ntext\nFrom here inside a paragraph is not a separator\n",
                ("\\Flagged",),
            ),
        ]
    )
    reports = before[("mail", ("Work", "Reports"))]
    assert reports == [(message(3), ("\\Answered", "\\Flagged", "\\Seen"))]
    assert before[("mail", ("Ärger",))] == [(message(4, lf=True), ())]
    cal = [ics_from_calendar_mime(m) for m, _ in before[("calendar", ("Calendar",))]]
    assert sorted(cal) == sorted([vevent(1, overrides=2, tz=True), vevent(2)])
    assert first.to_dict()["errors"] == []


def test_import_into_named_folder(tmp_path: Path) -> None:
    root = tmp_path / "mb"
    eml = tmp_path / "x.eml"
    eml.write_bytes(message(5))
    report = import_paths(root, [eml], folder="Archive")
    assert report.mail[("Archive",)].imported == 1
    assert [sha(m) for m, _ in _contents(root)[("mail", ("Archive",))]] == [sha(message(5))]


def test_store_permissions(tmp_path: Path) -> None:
    root = tmp_path / "mb"
    create_mailbox(root)
    sid = deliver(root, "Inbox", b"Subject: x\r\n\r\n")
    files = list((root / "Maildir" / "new").iterdir())
    assert files[0].name.startswith(sid) and files[0].stat().st_mode & 0o777 == 0o600
    assert (root / "Maildir").stat().st_mode & 0o777 == 0o700


@pytest.fixture
def smtp_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    root = tmp_path / "alice"
    create_mailbox(root)
    boxes = {"alice@example.test": root}
    port = free_port()
    handle = start_smtp("127.0.0.1", port, lambda addr: boxes.get(addr.lower()), max_message_size=100_000)
    yield port, root
    handle.stop()


def test_smtp_delivers_to_inbox_and_rejects(smtp_server) -> None:  # type: ignore[no-untyped-def]
    port, root = smtp_server
    raw = b"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: hi\r\n\r\n.leading dot\r\nhello\r\n"
    with smtplib.SMTP("127.0.0.1", port) as s:
        refused = s.sendmail("bob@example.test", ["alice@example.test"], raw)
        assert refused == {}
        with pytest.raises(smtplib.SMTPRecipientsRefused) as err:
            s.sendmail("bob@example.test", ["nobody@example.test"], raw)
        assert err.value.recipients["nobody@example.test"][0] == 550
        code, _ = s.rcpt("nobody@example.test") if s.mail("bob@example.test")[0] == 250 else (0, b"")
        assert code == 550
        s.rset()
        with pytest.raises(smtplib.SMTPException) as big:
            s.sendmail("bob@example.test", ["alice@example.test"], raw + b"x" * 200_000 + b"\r\n")
        assert "552" in str(big.value)
    inbox = _contents(root)[("mail", ("Inbox",))]
    assert [m for m, _ in inbox] == [raw]
