"""The sample-mailbox generator: shape, targets, determinism, and that the store, the Maildir
source and a real Dovecot read what it writes."""

from __future__ import annotations

import email
import email.policy
import hashlib
import os
import time
import zlib
from pathlib import Path

import pytest

from mailcrate.mail.base import SourceSpec, open_source
from mailcrate.mail.ics import summarize
from mailcrate.mail.samples import calendar_item, generate, generate_maildir
from mailcrate.mail.store import EmbeddedStore


def _files(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_small_profile_for_quickstart(tmp_path: Path) -> None:
    started = time.perf_counter()
    report = generate(tmp_path / "mb", profile="small")
    assert time.perf_counter() - started < 3
    assert 200 <= report.messages <= 500
    assert report.attachments >= 5
    assert report.calendar_items >= 3
    assert len(report.folders) >= 6
    assert any(not "".join(f).isascii() for f in report.folders)
    assert any(len(f) > 1 for f in report.folders)

    store = EmbeddedStore(tmp_path / "mb", owner="alice@example.com")
    folders = store.folders()
    mail = {f.path: f.count for f in folders if f.kind == "mail"}
    cals = [f for f in folders if f.kind == "calendar"]
    assert sum(mail.values()) == report.messages
    for path in report.folders:
        assert tuple(path) in mail
    assert sum(f.count for f in cals) == report.calendar_items
    assert any(not f.path[0].isascii() for f in cals)
    items = [i for f in cals for i in store.items(f)]
    assert all(b"text/calendar" in i.read_all() for i in items)


def test_messages_parse_and_look_real(tmp_path: Path) -> None:
    report = generate(tmp_path / "mb", messages=400, seed=3, calendar_items=0)
    store = EmbeddedStore(tmp_path / "mb")
    sizes, seen_flags, encoded_subject = [], set(), False
    for folder in store.folders():
        for item in store.items(folder):
            raw = item.read_all()
            assert len(raw) == item.size
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            assert msg["Message-ID"] and msg["Date"] and msg["From"]
            encoded_subject |= "=?utf-8?" in raw.split(b"\n\n", 1)[0].decode("ascii", "replace")
            for part in msg.walk():
                if part.get_content_disposition() == "attachment":
                    assert len(part.get_payload(decode=True)) > 50_000
            sizes.append(len(raw))
            seen_flags.update(item.flags)
            assert item.internal_date.year >= 2022
    assert len(sizes) == report.messages == 400
    sizes.sort()
    assert 2_000 <= sizes[len(sizes) // 2] <= 50_000  # most messages 2-50 KB
    assert sizes[-1] >= 100_000  # a tail of attachments
    assert "\\Seen" in seen_flags and "\\Flagged" in seen_flags
    assert encoded_subject
    # prose-like text: deflate roughly halves a text message, but not absurdly more
    text = next(
        r for r in (p.read_bytes() for p in (tmp_path / "mb/Maildir").rglob("*,S=*")) if len(r) < 30_000
    )
    assert 1.4 < len(text) / len(zlib.compress(text, 1)) < 4


def test_targets_by_bytes_and_by_both(tmp_path: Path) -> None:
    r = generate(tmp_path / "a", total_bytes=60 << 20, seed=1, calendar_items=0)
    assert 60 << 20 <= r.bytes <= (60 << 20) + (21 << 20)
    assert 10 <= len(r.folders) <= 30
    r = generate(tmp_path / "b", messages=2_000, total_bytes=100 << 20, seed=2, calendar_items=0)
    assert r.messages == 2_000
    assert 0.85 * (100 << 20) <= r.bytes <= 1.15 * (100 << 20)
    r = generate(tmp_path / "c", messages=3_000, total_bytes=30 << 20, seed=2, calendar_items=0)
    assert r.messages == 3_000 and r.attachments == 0  # small average: no attachment tail


def test_same_seed_same_bytes_and_names(tmp_path: Path) -> None:
    generate(tmp_path / "a", messages=150, seed=9)
    generate(tmp_path / "b", messages=150, seed=9)
    generate(tmp_path / "c", messages=150, seed=10)
    a, b, c = (_files(tmp_path / x) for x in "abc")
    assert a == b
    assert a != c


def test_modes_and_dedup_index(tmp_path: Path) -> None:
    generate(tmp_path / "mb", messages=50, seed=1, calendar_items=1)
    for p in (tmp_path / "mb").rglob("*"):
        assert (p.stat().st_mode & 0o777) == (0o700 if p.is_dir() else 0o600), p
    index = (tmp_path / "mb/Maildir/mailcrate-sha256").read_text().splitlines()
    inbox = sorted(os.listdir(tmp_path / "mb/Maildir/cur")) + sorted(os.listdir(tmp_path / "mb/Maildir/new"))
    assert len(index) == len(inbox)
    name = inbox[0].split(":2,")[0]
    digest = next(line.split()[0] for line in index if line.endswith(name))
    data = next((tmp_path / "mb/Maildir").glob(f"*/{name}*")).read_bytes()
    assert hashlib.sha256(data).hexdigest() == digest


def test_calendar_items_have_timezones_and_overrides() -> None:
    import random

    rng = random.Random(1)
    plain = calendar_item(rng, 1, 0, recurring=False)
    recurring = calendar_item(rng, 2, 0, recurring=True)
    for ics in (plain, recurring):
        assert b"BEGIN:VTIMEZONE" in ics and b"TZID=Europe/Berlin" in ics
        assert summarize(ics).uid
    assert b"RRULE:FREQ=WEEKLY" in recurring and b"RECURRENCE-ID" in recurring
    assert b"RRULE:FREQ=WEEKLY" not in plain and b"RECURRENCE-ID" not in plain
    assert max(len(line) for line in recurring.split(b"\r\n")) <= 75  # folded as RFC 5545 asks


def test_maildir_matches_generate_and_reads_as_maildir(tmp_path: Path) -> None:
    r1 = generate(tmp_path / "store", messages=120, seed=5, calendar_items=0)
    r2 = generate_maildir(tmp_path / "home" / "Maildir", messages=120, seed=5)
    assert (r1.messages, r1.bytes, r1.per_folder) == (r2.messages, r2.bytes, r2.per_folder)
    src = open_source(SourceSpec(maildir=str(tmp_path / "home" / "Maildir")))
    counts = {f.path: f.count for f in src.folders()}
    assert sum(counts.values()) == 120
    assert {"/".join(p) for p in counts if counts[p]} == set(r2.per_folder)


def test_dovecot_serves_generated_maildir(fresh_dovecot) -> None:  # type: ignore[no-untyped-def]
    from imapclient import IMAPClient

    dv = fresh_dovecot
    uid, gid = dv._uid, dv._gid
    report = generate_maildir(dv.maildir("alice"), messages=300, seed=4, owner=(uid, gid))
    with IMAPClient(dv.host, port=dv.port, ssl=False) as c:
        c.login("alice", dv.users["alice"])
        names = {name for _flags, _sep, name in c.list_folders()}
        total = 0
        for name in names:
            total += c.select_folder(name, readonly=True)[b"EXISTS"]
    assert total == report.messages
    delim = "."
    for path in report.folders:
        want = delim.join(["INBOX" if p == "Inbox" and i == 0 else p for i, p in enumerate(path)])
        assert want in names, (want, names)


@pytest.mark.parametrize("bad", [{"messages": -1}, {"profile": "huge"}])
def test_bad_arguments(tmp_path: Path, bad: dict) -> None:
    with pytest.raises(ValueError):
        generate(tmp_path / "x", **bad)
