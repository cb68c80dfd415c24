"""Deterministic test content: ordinary messages, odd ones, and calendar items."""

from __future__ import annotations

import datetime
import hashlib
import random

FOLDERS: list[tuple[str, ...]] = [
    ("Inbox",),
    ("Sent Items",),
    ("Drafts",),
    ("Deleted Items",),
    ("Junk E-mail",),
    ("Ärger & Co",),
    ("日本語",),
    ("Projects", "2026 Q1"),
]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def message(i: int, size: int = 1500, *, lf: bool = False) -> bytes:
    rnd = random.Random(i)
    body = "".join(rnd.choice("abcdefghij klmnopqrstuvwxyz") for _ in range(size))
    lines = [body[k : k + 70] for k in range(0, len(body), 70)]
    nl = "\n" if lf else "\r\n"
    head = (
        f"From: Sender {i} <s{i}@example.test>{nl}To: alice@example.test{nl}"
        f"Subject: message {i}{nl}Date: Mon, 5 Jan 2026 10:{i % 60:02d}:00 +0000{nl}"
        f"Message-ID: <m{i}@example.test>{nl}{nl}"
    )
    return (head + nl.join(lines) + nl).encode()


def odd_messages() -> dict[str, bytes]:
    """Content that must never stop an export, and must come out byte-exact."""
    return {
        "malformed-mime": b'Content-Type: multipart/mixed; boundary="zz"\r\nSubject: broken\r\n\r\n--zz\r\n'
        b"Content-Type: text/plain\r\n\r\nno closing boundary\r\n--z",
        "8bit-headers": b"Subject: caf\xe9 \xff\xfe latin-1\r\nFrom: J\xf6rg <j@example.test>\r\n\r\nbody \xe9\r\n",
        "bare-lf": b"Subject: bare lf\nFrom: a@example.test\n\nline one\nline two\n",
        "no-date": b"From: a@example.test\r\nSubject: no date\r\n\r\nhello\r\n",
        "nul-bytes": b"Subject: nul\r\n\r\nbefore\x00after\x00\r\n",
        "no-headers": b"just a body without any header\r\n",
        "empty": b"",
        "long-line": b"Subject: long\r\n\r\n" + b"x" * 200_000 + b"\r\n",
    }


def big_message(size: int) -> bytes:
    """A message of exactly ``size`` bytes with CRLF lines (served unchanged by IMAP)."""
    head = b"Subject: big\r\nFrom: big@example.test\r\n\r\n"
    line = b"0123456789" * 7 + b"\r\n"
    body = line * ((size - len(head)) // len(line) + 1)
    return (head + body)[: size - 2] + b"\r\n"


def vevent(i: int, *, overrides: int = 0, tz: bool = False) -> bytes:
    uid = f"event-{i}@example.test"
    first = datetime.datetime(2026, 1, 1 + i % 10, 8 + i % 10)
    start = first.strftime("%Y%m%dT%H%M%S")
    parts = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//mailcrate tests//EN"]
    if tz:
        parts += [
            "BEGIN:VTIMEZONE", "TZID:Europe/Berlin", "BEGIN:STANDARD", "DTSTART:19701025T030000",
            "TZOFFSETFROM:+0200", "TZOFFSETTO:+0100", "END:STANDARD", "END:VTIMEZONE",
        ]  # fmt: skip
    dt = f"DTSTART;TZID=Europe/Berlin:{start}" if tz else f"DTSTART:{start}Z"
    parts += [
        "BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20251201T120000Z", dt, "DURATION:PT1H",
        f"SUMMARY:Meeting {i} \u2013 Planung", "LOCATION:Room 4", "ORGANIZER;CN=Bob:mailto:bob@example.test",
    ]  # fmt: skip
    if overrides:
        parts.append("RRULE:FREQ=WEEKLY;COUNT=5")
    parts.append("END:VEVENT")
    for k in range(overrides):
        rid = (first + datetime.timedelta(days=7 * (k + 1))).strftime("%Y%m%dT%H%M%S")
        parts += [
            "BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20251201T120000Z",
            f"RECURRENCE-ID;TZID=Europe/Berlin:{rid}" if tz else f"RECURRENCE-ID:{rid}Z",
            f"DTSTART:{rid}Z", "DURATION:PT2H", f"SUMMARY:Meeting {i} (moved)", "END:VEVENT",
        ]  # fmt: skip
    parts.append("END:VCALENDAR")
    return ("\r\n".join(parts) + "\r\n").encode()


def vtodo(i: int) -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VTODO\r\n"
        f"UID:todo-{i}@example.test\r\nDTSTAMP:20251201T120000Z\r\nSUMMARY:task {i}\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    ).encode()
