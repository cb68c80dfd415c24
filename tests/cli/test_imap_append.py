"""Pipelined MULTIAPPEND (``mailcrate.admin.imap_append``) and the IMAP restore on top of it,
against a real Dovecot (which has LITERAL+ and MULTIAPPEND)."""

from __future__ import annotations

import hashlib
import socket
import threading
import zipfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from imapclient import IMAPClient

from mailcrate.admin import restore as restore_mod
from mailcrate.admin.errors import AdminError
from mailcrate.admin.imap_append import (
    Message,
    PipelinedAppender,
    _send_parts,
    supports_pipelined_append,
)
from mailcrate.admin.restore import restore_imap
from mailcrate.export.manifest import MANIFEST_NAME, ManifestHeader, ManifestItem, manifest_lines
from mailcrate.mail.base import ImapSpec
from tests.cli.support import module_dovecot
from tests.servers import DovecotServer

USERS = {f"u{i}": f"pw{i}" for i in range(18)}
START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
FLAGS = [(), ("\\Seen",), ("\\Seen", "\\Flagged"), ("\\Answered", "$Label1"), ("\\Recent", "\\Draft")]


dovecot = module_dovecot(USERS)


def _login(dv: DovecotServer, user: str) -> IMAPClient:
    client = IMAPClient(dv.host, dv.port, ssl=False)
    client.login(user, dv.users[user])
    return client


def _message(i: int, size: int = 300) -> bytes:
    head = (
        f"From: a{i}@example.com\r\nTo: b@example.com\r\nSubject: message {i}\r\n"
        f"Message-ID: <m{i}@example.com>\r\nDate: Fri, 02 Jan 2026 03:04:05 +0000\r\n\r\n"
    ).encode()
    return head + (f"line {i} " * (size // 8)).encode() + b"\r\n"


def _contents(dv: DovecotServer, user: str) -> Counter:
    client = _login(dv, user)
    found: Counter = Counter()
    try:
        for flags, _delim, name in client.list_folders():
            if b"\\Noselect" in flags:
                continue  # a parent the restore did not create (the server names it)
            client.select_folder(name, readonly=True)
            ids = client.search(["ALL"])
            for data in client.fetch(ids, ["BODY.PEEK[]", "FLAGS", "INTERNALDATE"]).values():
                flags = tuple(sorted(f.decode() for f in data[b"FLAGS"] if f.lower() != b"\\recent"))
                when = int(data[b"INTERNALDATE"].timestamp())
                found[(name, hashlib.sha256(data[b"BODY[]"]).hexdigest(), flags, when)] += 1
            client.close_folder()
    finally:
        client.logout()
    return found


def test_capabilities() -> None:
    assert supports_pipelined_append([b"IMAP4REV1", b"LITERAL+", b"MULTIAPPEND"])
    assert supports_pipelined_append(["literal+", "multiappend"])
    assert not supports_pipelined_append([b"IMAP4REV1", b"MULTIAPPEND"])  # no LITERAL+
    assert not supports_pipelined_append([b"IMAP4REV1", b"LITERAL+"])


def test_batches_keep_flags_dates_and_bytes(dovecot: DovecotServer) -> None:
    """Small batches (many MULTIAPPEND commands, 3 in flight), alternating between folders,
    one message bigger than the batch bound: every message arrives with its flags and date."""
    client = _login(dovecot, "u0")
    client.create_folder("Two")
    client.create_folder("Dr\u00fcben")  # modified UTF-7 on the wire
    app = PipelinedAppender(client._imap, batch_bytes=4096, batch_messages=7, depth=3)
    want: Counter = Counter()
    for i in range(90):
        folder = ("INBOX", "Two", "Dr\u00fcben")[(i // 11) % 3]
        data = _message(i, size=20_000 if i == 40 else 300)
        flags = FLAGS[i % len(FLAGS)]
        when = START + timedelta(hours=i)
        app.add(folder, Message(data, [f for f in flags if f != "\\Recent"], when))
        kept = tuple(sorted(f for f in flags if f != "\\Recent"))
        want[(folder, hashlib.sha256(data).hexdigest(), kept, int(when.timestamp()))] += 1
    app.flush()
    assert app.appended == 90 and not app.in_flight
    assert client.list_folders()  # the connection is in step again
    client.logout()
    assert _contents(dovecot, "u0") == want


def test_refused_messages_are_isolated_and_the_rest_stored(dovecot: DovecotServer) -> None:
    """MULTIAPPEND stores a batch all or nothing: a refused batch is split until each refused
    message is alone; the others of its batch and the batches behind it are stored."""
    client = _login(dovecot, "u1")
    app = PipelinedAppender(client._imap, batch_messages=8, depth=4)
    for i in range(20):
        data = b"" if i in (5, 6, 13) else _message(i)  # Dovecot cannot store 0 bytes
        app.add("INBOX", Message(data, ref=i))
    for i in range(3):
        app.add("Missing", Message(_message(100 + i), ref=100 + i))
    app.flush()
    refused = sorted((r.message.ref, r.folder) for r in app.refused)  # type: ignore[type-var]
    assert refused == [
        (5, "INBOX"),
        (6, "INBOX"),
        (13, "INBOX"),
        (100, "Missing"),
        (101, "Missing"),
        (102, "Missing"),
    ]
    assert all("zero byte" in r.text for r in app.refused if r.folder == "INBOX")
    assert all("Missing" in r.text or "exist" in r.text.lower() for r in app.refused if r.folder == "Missing")
    assert dovecot.users["u1"] not in " ".join(r.text for r in app.refused)
    assert not app.in_flight and app.appended == 17
    client.noop()
    client.select_folder("INBOX", readonly=True)
    got = client.fetch(client.search(["ALL"]), ["BODY.PEEK[]"])
    assert sorted(v[b"BODY[]"] for v in got.values()) == sorted(
        _message(i) for i in range(20) if i not in (5, 6, 13)
    )
    client.logout()


Msg = tuple[tuple[str, ...], bytes, tuple[str, ...], datetime]


def _export_zip(path: Path, messages: list[Msg], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    items = []
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for n, (folder, data, flags, when) in enumerate(messages):
            zip_path = "/".join(folder) + f"/{n:05d}.eml"
            zf.writestr(zip_path, data)
            items.append(
                ManifestItem(
                    zip_path=zip_path,
                    kind="mail",
                    folder=folder,
                    source_id=str(n),
                    size=len(data),
                    sha256=hashlib.sha256(data).hexdigest(),
                    internal_date=when,
                    flags=flags,
                )
            )
        zf.writestr(MANIFEST_NAME, b"".join(manifest_lines(ManifestHeader("j", "o", "e", START), items)))
    return path


def _messages(n: int) -> list[Msg]:
    folders = [("Inbox",), ("Archive", "2024"), ("Archive",), ("S\u00e9v\u00e8re",)]
    return [
        (folders[(i // 37) % 4], _message(i), FLAGS[i % len(FLAGS)], START + timedelta(minutes=i))
        for i in range(n)
    ]


def _spec(dv: DovecotServer, user: str) -> ImapSpec:
    return ImapSpec(url=dv.url, user=user, password=dv.users[user])


def test_restore_pipelined_equals_one_by_one_and_resumes(
    dovecot: DovecotServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    msgs = _messages(300)
    full = _export_zip(tmp_path / "full.zip", msgs)
    half = _export_zip(tmp_path / "half.zip", msgs[::2], zipfile.ZIP_STORED)

    one_by_one = restore_imap(full, _spec(dovecot, "u2"), imap_pipelining=False)
    assert (one_by_one.done, one_by_one.skipped) == (300, 0)

    # an interrupted restore (half of it there), then the whole, pipelined in small batches
    sent: list[int] = []
    real_send = PipelinedAppender._send

    def counting_send(self: PipelinedAppender, p: object) -> None:
        sent.append(len(p.messages))  # type: ignore[attr-defined]
        real_send(self, p)  # type: ignore[arg-type]

    monkeypatch.setattr(PipelinedAppender, "_send", counting_send)
    first = restore_imap(half, _spec(dovecot, "u3"))
    assert (first.done, first.skipped) == (150, 0)
    second = restore_imap(full, _spec(dovecot, "u3"))
    assert (second.done, second.skipped) == (150, 150)
    assert sum(sent) == 300 and len(sent) < 300  # batches, not one command per message

    expected = _contents(dovecot, "u2")
    assert _contents(dovecot, "u3") == expected
    assert sum(expected.values()) == 300
    again = restore_imap(full, _spec(dovecot, "u3"))
    assert (again.done, again.skipped) == (0, 300)
    assert _contents(dovecot, "u3") == expected


def test_restore_without_literal_plus_falls_back(
    dovecot: DovecotServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server without LITERAL+/MULTIAPPEND gets the one-by-one APPENDs."""
    monkeypatch.setattr(restore_mod, "supports_pipelined_append", lambda caps: False)

    def no_pipelining(*a: object, **k: object) -> None:
        raise AssertionError("pipelined append used without LITERAL+")

    monkeypatch.setattr(restore_mod, "AppenderPool", no_pipelining)
    report = restore_imap(_export_zip(tmp_path / "x.zip", _messages(40)), _spec(dovecot, "u4"))
    assert (report.done, report.skipped) == (40, 0)
    assert sum(_contents(dovecot, "u4").values()) == 40


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_restore_names_a_refused_message_and_restores_the_rest(
    dovecot: DovecotServer, tmp_path: Path, pipelining: bool
) -> None:
    """A message the server refuses (here: 0 bytes) is named as such with the server's words;
    the other 29 are restored; the report is not complete; no password anywhere. A flag IMAP
    cannot carry is named too (its message restored without it)."""
    msgs = [
        (("Inbox",), b"" if i == 25 else _message(i), ("\\Bogus",) if i == 7 else (), START)
        for i in range(30)
    ]
    user = "u5" if pipelining else "u10"
    report = restore_imap(
        _export_zip(tmp_path / "bad.zip", msgs), _spec(dovecot, user), imap_pipelining=pipelining
    )
    assert (report.done, report.skipped, len(report.refused)) == (29, 0, 1)
    assert report.mail[("Inbox",)].archive == 30
    assert not report.complete
    (refused,) = report.refused
    assert refused.item == "Inbox/00025.eml"
    assert (
        refused.reason.startswith("empty message (0 bytes); the server said: ")
        and "zero byte" in refused.reason
    )
    assert report.not_restored == {
        "flag '\\\\Bogus': IMAP cannot carry it (the message was restored without it)": 1
    }
    assert dovecot.users[user] not in str(report.to_dict())
    assert sum(_contents(dovecot, user).values()) == 29


def _damage(path: Path, suffix: str) -> zipfile.ZipInfo:
    """Flip one byte in the middle of the entry whose name ends with ``suffix``; its info."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(next(n for n in zf.namelist() if n.endswith(suffix)))
    raw = bytearray(path.read_bytes())
    at = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + info.compress_size // 2
    raw[at] ^= 0x55
    path.write_bytes(bytes(raw))
    return info


def test_restore_stops_at_a_damaged_entry(dovecot: DovecotServer, tmp_path: Path) -> None:
    """The entries are read straight from the zip (ahead, in threads): a flipped byte in one is
    an error naming it, not a wrong message on the server."""
    path = _export_zip(tmp_path / "d.zip", _messages(20))
    _damage(path, "00007.eml")
    with pytest.raises(AdminError) as err:
        restore_imap(path, _spec(dovecot, "u8"))
    assert "00007.eml" in str(err.value) and "damaged" in str(err.value)


def test_restore_over_three_connections(dovecot: DovecotServer, tmp_path: Path) -> None:
    """Batches spread over 3 connections (small batches so that all of them take some): the
    same messages, flags and dates as one connection; a re-run skips them all."""
    path = _export_zip(tmp_path / "m.zip", _messages(200))
    one = restore_imap(path, _spec(dovecot, "u6"))
    real = restore_mod.AppenderPool

    def small_batches(imaps, **kw):  # type: ignore[no-untyped-def]
        assert len(imaps) == 3
        return real(imaps, **{**kw, "batch_bytes": 4096})

    restore_mod.AppenderPool = small_batches  # type: ignore[assignment,misc]
    try:
        three = restore_imap(path, _spec(dovecot, "u7"), imap_connections=3)
    finally:
        restore_mod.AppenderPool = real  # type: ignore[misc]
    assert (one.done, three.done) == (200, 200)
    assert _contents(dovecot, "u7") == _contents(dovecot, "u6")
    again = restore_imap(path, _spec(dovecot, "u7"), imap_connections=3)
    assert (again.done, again.skipped) == (0, 200)


def test_send_parts_gathers_in_order_through_partial_sends() -> None:
    """The batch's pieces go out with sendmsg (no join): more pieces than one call takes, empty
    ones, and a small socket buffer (partial sends mid-piece) still arrive byte for byte."""
    parts = [b"", b"A1 APPEND x"] + [bytes([i % 251]) * (i * 37 % 5000) for i in range(1500)] + [b"\r\n"]
    want = b"".join(parts)
    left, right = socket.socketpair()
    left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    got = bytearray()

    def receive() -> None:
        while len(got) < len(want):
            got.extend(right.recv(3000))

    reader = threading.Thread(target=receive)
    reader.start()
    _send_parts(left, parts)
    reader.join(timeout=30)
    left.close()
    right.close()
    assert bytes(got) == want


class _CountingLock:
    """``restore._BIG_ITEMS`` with a count of the items that took it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.taken = 0

    def acquire(self) -> None:
        self._lock.acquire()
        self.taken += 1

    def release(self) -> None:
        self._lock.release()


def test_big_items_go_alone_across_concurrent_restores(
    dovecot: DovecotServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``big_items_alone`` (``migrate run``'s restores, several at once in one process): items
    of that size or more are not read ahead but read, appended and flushed one at a time in
    the process; two restores at once store exactly what a plain restore stores, in the same
    order, and a re-run skips everything."""
    big = 64 << 10
    msgs = [
        (folder, _message(i, big + 1000 * i if i % 9 == 4 else 300), flags, when)
        for i, (folder, _data, flags, when) in enumerate(_messages(120))
    ]
    bigs = sum(1 for m in msgs if len(m[1]) >= big)
    path = _export_zip(tmp_path / "big.zip", msgs)
    plain = restore_imap(path, _spec(dovecot, "u12"))
    lock = _CountingLock()
    monkeypatch.setattr(restore_mod, "_BIG_ITEMS", lock)
    reports: dict[str, object] = {}

    def run(user: str) -> None:
        reports[user] = restore_imap(
            path, _spec(dovecot, user), read_ahead_bytes=big, batch_bytes=16 << 10, big_items_alone=big
        )

    threads = [threading.Thread(target=run, args=(u,)) for u in ("u13", "u14")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert plain.done == 120 and [r.done for r in reports.values()] == [120, 120]  # type: ignore[attr-defined]
    assert bigs >= 10 and lock.taken == 2 * bigs
    expected = _contents(dovecot, "u12")
    assert _contents(dovecot, "u13") == expected and _contents(dovecot, "u14") == expected
    assert _order(dovecot, "u13") == _order(dovecot, "u12")
    again = restore_imap(path, _spec(dovecot, "u13"), big_items_alone=big)
    assert (again.done, again.skipped) == (0, 120)


def _order(dv: DovecotServer, user: str) -> dict[str, list[bytes]]:
    """Each folder's Message-IDs in UID order."""
    client = _login(dv, user)
    try:
        out: dict[str, list[bytes]] = {}
        for _flags, _delim, name in client.list_folders():
            client.select_folder(name, readonly=True)
            got = client.fetch(client.search(), ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
            out[name] = [got[uid][b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].strip() for uid in sorted(got)]
        return out
    finally:
        client.logout()


def test_large_entries_inflated_in_steps(
    dovecot: DovecotServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries from ``_INFLATE_IN_STEPS`` on are inflated from small reads into one buffer: the
    server stores the same bytes as from a one-call inflate, and a flipped byte in such an entry
    stops the restore there, naming it."""
    msgs = [
        (folder, _message(i, 150_000 + 997 * i if i % 5 == 0 else 400), flags, when)
        for i, (folder, _data, flags, when) in enumerate(_messages(40))
    ]
    path = _export_zip(tmp_path / "steps.zip", msgs)
    whole = restore_imap(path, _spec(dovecot, "u15"))
    monkeypatch.setattr(restore_mod, "_INFLATE_IN_STEPS", 100_000)
    monkeypatch.setattr(restore_mod, "_STEP", 16 << 10)
    stepped = restore_imap(path, _spec(dovecot, "u16"))
    assert (whole.done, stepped.done) == (40, 40)
    assert _contents(dovecot, "u16") == _contents(dovecot, "u15")

    assert _damage(path, "00010.eml").file_size >= 100_000
    with pytest.raises(AdminError) as err:
        restore_imap(path, _spec(dovecot, "u17"))
    assert "00010.eml" in str(err.value) and "damaged" in str(err.value)
