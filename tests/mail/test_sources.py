"""Acceptance: every source yields every item byte-exact, and nothing gets \\Seen.

One mailbox of 2,000+ messages over 8 folders (non-ASCII names included) and 30 calendar items is
written to a real Dovecot (straight into its Maildir), to the embedded store, and to a real
Radicale; then each source is read back and compared by SHA-256 with what the server returns.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from imapclient import IMAPClient

from mailcrate.mail.base import CalDavSpec, Folder, ImapSpec, SourceError, SourceSpec, open_source
from mailcrate.mail.calendar_mime import ics_from_calendar_mime
from mailcrate.mail.maildir import MaildirSource
from mailcrate.mail.store import add_calendar_item, create_mailbox, deliver

from .corpus import FOLDERS, big_message, message, sha, vevent, vtodo

PER_FOLDER = 255
CALENDARS = {"Work": range(0, 20), "Privat \u2013 Familie": range(20, 30)}


@pytest.fixture(scope="module")
def fast_dir() -> Iterator[Path]:
    """tmpfs when there is one: the store fsyncs every message, which ext4 makes slow."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(dir=base) as d:
        yield Path(d)


@pytest.fixture(scope="module")
def corpus(dovecot, radicale, fast_dir):  # type: ignore[no-untyped-def]
    expected: dict[tuple[str, ...], list[bytes]] = {}
    root = fast_dir / "mailbox"
    create_mailbox(root)
    for fi, path in enumerate(FOLDERS):
        msgs = [message(fi * 1000 + k, size=300 + (k * 37) % 3000) for k in range(PER_FOLDER)]
        if path == ("Drafts",):
            msgs += [big_message(3 * 1024 * 1024 + 17), big_message(1024 * 1024 + 1)]
        letters = ["" if k % 3 == 0 else "S" for k in range(len(msgs))]
        dovecot.put_messages("alice", path, zip(msgs, letters, strict=True))
        for m, flag in zip(msgs, letters, strict=True):
            deliver(root, path, m, flags=["\\Seen"] if flag else [])
        expected[path] = msgs
    session = requests.Session()
    session.auth = ("alice", "alicepw")
    events: dict[str, list[bytes]] = {}
    for ci, (cal, numbers) in enumerate(CALENDARS.items()):
        url = f"{radicale.url}alice/cal{ci}/"
        body = (
            '<?xml version="1.0"?><C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
            f"<D:set><D:prop><D:displayname>{cal}</D:displayname></D:prop></D:set></C:mkcalendar>"
        )
        assert session.request("MKCALENDAR", url, data=body.encode()).status_code == 201
        for i in numbers:
            ics = vevent(i, overrides=2 if i % 5 == 0 else 0, tz=i % 3 == 0)
            r = session.put(f"{url}e{i}.ics", data=ics, headers={"Content-Type": "text/calendar"})
            assert r.status_code == 201
            add_calendar_item(root, cal, ics)
            events.setdefault(cal, []).append(ics)
        # a task in an event calendar is not exported
        session.put(f"{url}todo.ics", data=vtodo(ci), headers={"Content-Type": "text/calendar"})
    return {"expected": expected, "root": root, "events": events}


NOT_EXPORTABLE: Counter[tuple[str, ...]] = Counter()  # per calendar, from the last _read


def _read(spec: SourceSpec) -> dict[tuple[str, tuple[str, ...]], tuple[Folder, list[bytes]]]:
    """Every exportable item's bytes per folder; the items a source lists but cannot export
    (their reader raises SourceError, as the pipeline counts them) go to NOT_EXPORTABLE."""
    out = {}
    NOT_EXPORTABLE.clear()
    with open_source(spec) as src:
        for folder in src.folders():
            items = list(src.items(folder))
            assert len(items) == folder.count
            readable, datas = [], []
            for i in items:
                try:
                    datas.append(b"".join(i.chunks()))
                except SourceError:
                    NOT_EXPORTABLE[folder.path] += 1
                    continue
                readable.append(i)
            out[(folder.kind, folder.path)] = (folder, datas)
            assert all(len(d) == i.size for d, i in zip(datas, readable, strict=True))
    return out


def _server_bodies(dovecot) -> dict[tuple[str, ...], tuple[list[bytes], dict[int, tuple[bytes, ...]]]]:  # type: ignore[no-untyped-def]
    """What Dovecot returns for BODY[] (read-only EXAMINE, so nothing changes), and the flags."""
    out = {}
    with IMAPClient(dovecot.host, dovecot.port, ssl=False) as c:
        c.login("alice", "alicepw")
        for flags, delim, name in c.list_folders():
            if {b"\\Noselect", b"\\NonExistent"} & set(flags):
                continue
            c.select_folder(name, readonly=True)
            uids = c.search("ALL")
            data = c.fetch(uids, ["BODY.PEEK[]", "FLAGS"]) if uids else {}
            path = tuple(name.split(delim.decode()))
            path = ("Inbox",) if path == ("INBOX",) else path
            out[path] = ([data[u][b"BODY[]"] for u in sorted(data)], {u: data[u][b"FLAGS"] for u in data})
    return out


def test_embedded_store_yields_everything(corpus) -> None:  # type: ignore[no-untyped-def]
    got = _read(SourceSpec(embedded=str(corpus["root"]), owner="alice@example.test"))
    for path, msgs in corpus["expected"].items():
        assert Counter(map(sha, got[("mail", path)][1])) == Counter(map(sha, msgs)), path
    assert sum(len(v) for v in corpus["expected"].values()) >= 2000
    cal_items = {
        p[0]: [ics_from_calendar_mime(m) for m in v[1]] for (k, p), v in got.items() if k == "calendar"
    }
    assert sum(len(v) for v in cal_items.values()) == 30
    for cal, events in corpus["events"].items():
        assert Counter(map(sha, cal_items[cal])) == Counter(map(sha, events))


def test_imap_yields_every_message_byte_exact_and_unread_stays_unread(dovecot, corpus) -> None:  # type: ignore[no-untyped-def]
    before = _server_bodies(dovecot)
    spec = ImapSpec(dovecot.url, "alice", dovecot.master_password, master_user=dovecot.master_user)
    got = _read(SourceSpec(imap=spec))
    after = _server_bodies(dovecot)
    assert {p for k, p in got} == set(corpus["expected"])
    for path, msgs in corpus["expected"].items():
        server_bodies, flags_before = before[path]
        assert [sha(b) for b in got[("mail", path)][1]] == [sha(b) for b in server_bodies], path
        assert Counter(map(sha, server_bodies)) == Counter(map(sha, msgs))  # CRLF corpus: as on disk
        assert after[path][1] == flags_before  # in particular no \Seen was added
        assert sum(b"\\Seen" not in f for f in flags_before.values()) == (len(msgs) + 2) // 3


def test_maildir_on_disk_yields_every_message(dovecot, corpus) -> None:  # type: ignore[no-untyped-def]
    got = _read(SourceSpec(maildir=str(dovecot.maildir("alice"))))
    assert {p for k, p in got} == set(corpus["expected"])
    for path in corpus["expected"]:
        on_disk = [
            f.read_bytes()
            for sub in ("cur", "new")
            for f in (dovecot.folder_dir("alice", path) / sub).iterdir()
        ]
        assert Counter(map(sha, got[("mail", path)][1])) == Counter(map(sha, on_disk)), path
    with MaildirSource(dovecot.maildir("alice")) as src:
        inbox = next(f for f in src.folders() if f.path == ("Inbox",))
        seen = [("\\Seen" in i.flags) for i in src.items(inbox)]
        assert seen.count(False) == (PER_FOLDER + 2) // 3


def test_caldav_yields_every_event_byte_exact(radicale, corpus) -> None:  # type: ignore[no-untyped-def]
    spec = SourceSpec(caldav=CalDavSpec(radicale.url, "alice", "alicepw"), owner="alice@example.test")
    got = _read(spec)
    assert {p for k, p in got} == {(c,) for c in CALENDARS}
    assert sum(len(v[1]) for v in got.values()) == 30
    assert {(c,): 1 for c in CALENDARS} == NOT_EXPORTABLE  # the task in each: counted, not exported
    session = requests.Session()
    session.auth = ("alice", "alicepw")
    for ci, cal in enumerate(CALENDARS):
        listing = [session.get(f"{radicale.url}alice/cal{ci}/e{i}.ics").content for i in CALENDARS[cal]]
        exported = [ics_from_calendar_mime(m) for m in got[("calendar", (cal,))][1]]
        assert Counter(map(sha, exported)) == Counter(map(sha, listing))
        assert all(m.startswith(b"From: alice@example.test\r\n") for m in got[("calendar", (cal,))][1])


def test_imap_plus_caldav_composite(dovecot, radicale, corpus) -> None:  # type: ignore[no-untyped-def]
    spec = SourceSpec(
        imap=ImapSpec(dovecot.url, "alice", "alicepw"),
        caldav=CalDavSpec(radicale.url, "alice", "alicepw"),
        owner="alice@example.test",
    )
    with open_source(spec) as src:
        folders = src.folders()
        assert {f.kind for f in folders} == {"mail", "calendar"}
        cal = next(f for f in folders if f.kind == "calendar")
        assert len(list(src.items(cal))) == cal.count
