"""Synthetic, realistic sample mailboxes: seeded, fast, in the store's own layout.

Used by ``mailcrate quickstart`` (the ``small`` profile) and by the benchmarks (``realistic``)::

    from mailcrate.mail.samples import generate, generate_maildir

    report = generate(root, profile="small")                          # quickstart: ~300 messages, < 1 s
    report = generate(root, total_bytes=1 << 30, seed=1)               # ~1 GiB embedded mailbox
    report = generate(root, messages=100_000, total_bytes=1 << 30)     # both: attachment rate is tuned
    report = generate_maildir(dovecot_maildir, total_bytes=1 << 30, owner=(uid, gid))  # for Dovecot

What it writes (same seed, same arguments -> byte-identical files and names):

* messages: RFC 5322 with LF line ends as Maildir stores them; ``Received``, ``From``, ``To``,
  sometimes ``Cc``, ``Subject`` (some RFC 2047 encoded UTF-8), ``Date``, ``Message-ID``; text/plain
  or multipart/alternative with HTML; sizes log-normal around 8 KB, mostly 2-50 KB.  A tail of
  messages carries one attachment of 0.1-20 MB (log-uniform), base64 of incompressible bytes
  (like JPEG/PDF/ZIP, 70 %) or of compressible text (CSV/logs, 30 %).  Text comes from a seeded
  Zipf-distributed vocabulary, so it compresses like real prose (~2x with deflate).
* folders: 10-30 (``realistic``) or 8 (``small``): WorkMail's defaults, nested folders and
  non-ASCII names (never ``.``, ``/`` or ``\\``, so Dovecot's default Maildir++ layout holds the
  very same directory names).  Messages spread Zipf-like over folders, Inbox largest.
* flags and dates: mostly ``\\Seen``, some flagged/answered, some unread in ``new/``; dates over
  the last three years, also set as the file mtime (the internal date).
* calendar items (``generate`` only): VEVENTs with a VTIMEZONE, some recurring (RRULE) with
  overridden instances (RECURRENCE-ID) in the same object, via :func:`store.add_calendar_item`.

Message files are written directly (no per-message fsync: this is sample data, not delivery),
named ``<epoch>.M<n>P<seed>R<hex>.mailcrate,S=<size>[:2,<flags>]`` - the store's naming - with
the store's ``mailcrate-sha256`` dedup index, 0700 directories and 0600 files.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import os
import random
import sys
import time
from bisect import bisect
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.utils import format_datetime
from pathlib import Path

from mailcrate.durable import write_all
from mailcrate.mail.maildirpp import dir_name
from mailcrate.mail.store import (
    DIR_MODE,
    FILE_MODE,
    INDEX_NAME,
    add_calendar_item,
    create_mailbox,
)

PROFILES = ("realistic", "small")
KB, MB = 1024, 1024 * 1024

# Folder catalogue: (path, weight).  Non-ASCII, nesting, spaces and '&' (modified UTF-7 '&-').
_FOLDERS: list[tuple[tuple[str, ...], float]] = [
    (("Inbox",), 30.0),
    (("Sent Items",), 12.0),
    (("Drafts",), 0.6),
    (("Deleted Items",), 4.0),
    (("Junk E-mail",), 1.5),
    (("Archive",), 8.0),
    (("Archive", "2023"), 6.0),
    (("Archive", "2024"), 6.0),
    (("Projekte",), 3.0),
    (("Projekte", "Übersicht"), 2.0),
    (("Клиенты",), 2.5),
    (("日本語のメール",), 1.5),
    (("Reçus & Factures",), 2.0),
    (("R&D", "Prototypes"), 1.5),
    (("Inbox", "Newsletters"), 5.0),
    (("Inbox", "Notifications"), 4.0),
    (("Ελληνικά",), 0.8),
    (("Travel ✈",), 1.0),
    (("Archive", "2022"), 4.0),
    (("Archive", "2022", "Q4"), 1.0),
    (("Customers", "ACME Corp"), 2.0),
    (("Customers", "Globex"), 1.5),
    (("Customers", "Initech"), 1.0),
    (("HR",), 0.7),
    (("HR", "Bewerbungen 2024"), 0.5),
    (("Legal hold",), 0.4),
    (("Receipts",), 1.2),
    (("Mailing lists", "dovecot"), 3.0),
    (("Mailing lists", "python-dev"), 3.0),
    (("Family 👪",), 0.8),
]
_SMALL_FOLDERS = [0, 1, 3, 5, 6, 10, 11, 12]  # Inbox, Sent, Deleted, Archive(/2023), Клиенты, 日本語, Reçus


@dataclass
class _Profile:
    body_median: float  # bytes, log-normal message body
    body_sigma: float
    body_min: int
    body_max: int
    attach_rate: float  # share of messages with one attachment
    attach_min: int
    attach_max: int
    calendar_items: int
    default_messages: int


_PROFILES = {
    "realistic": _Profile(8 * KB, 0.9, 1_200, 60 * KB, 0.04, 100 * KB, 20 * MB, 24, 10_000),
    "small": _Profile(6 * KB, 0.8, 1_200, 40 * KB, 0.08, 100 * KB, 1 * MB, 6, 300),
}


@dataclass
class SampleReport:
    """What was generated."""

    root: str
    profile: str
    seed: int
    messages: int = 0
    bytes: int = 0  # message bytes (files in the Maildir), not counting calendar items
    attachments: int = 0
    largest: int = 0
    folders: list[list[str]] = field(default_factory=list)  # folder paths (all created)
    per_folder: dict[str, int] = field(default_factory=dict)  # "A/B" -> messages
    calendar_items: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class _Text:
    """Seeded Zipf text: a 2 MiB pool of words, sliced at random offsets (fast, prose-like)."""

    def __init__(self, rng: random.Random, pool_size: int = 2 * MB) -> None:
        letters = "etaoinshrdlcumwfgypbvkjxqz"
        lw = [12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8, 2.4, 2.4, 2.2, 2.0, 2.0,
              1.9, 1.5, 1.0, 0.8, 0.15, 0.15, 0.1, 0.07]  # fmt: skip
        vocab = []
        for _ in range(6000):
            n = max(1, min(12, int(rng.lognormvariate(1.5, 0.45))))
            vocab.append("".join(rng.choices(letters, lw, k=n)))
        cum = list(_cumulative([1.0 / (r + 1) for r in range(len(vocab))]))
        words = [
            vocab[min(len(vocab) - 1, bisect(cum, rng.random() * cum[-1]))] for _ in range(pool_size // 5)
        ]
        out, line = [], 0
        for i, w in enumerate(words):
            out.append(w)
            line += len(w) + 1
            if line > 66:
                out.append(".\n" if i % 7 == 0 else "\n")
                line = 0
            else:
                out.append(" ")
        self.pool = "".join(out).encode("ascii")

    def take(self, rng: random.Random, size: int) -> bytes:
        size = max(1, size)
        if size >= len(self.pool):
            reps = size // len(self.pool) + 1
            return (self.pool * reps)[:size]
        start = rng.randrange(0, len(self.pool) - size)
        return self.pool[start : start + size]


def _cumulative(weights: list[float]):
    total = 0.0
    for w in weights:
        total += w
        yield total


class _Attachments:
    """Base64 pools (76-column lines, LF): random bytes and compressible text."""

    def __init__(self, rng: random.Random, text: _Text, pool_bytes: int) -> None:
        raw = rng.randbytes(pool_bytes)
        self.random = base64.encodebytes(raw)
        csv = text.pool.replace(b" ", b";")
        self.text = base64.encodebytes((csv * (pool_bytes // len(csv) + 1))[:pool_bytes])

    def take(self, rng: random.Random, size: int, compressible: bool) -> bytes:
        pool = self.text if compressible else self.random
        size -= size % 77  # whole lines
        size = max(77, size)
        if size >= len(pool):
            reps = size // len(pool) + 1
            return (pool * reps)[:size]
        start = rng.randrange(0, (len(pool) - size) // 77) * 77
        return pool[start : start + size]


_PEOPLE = [
    ("Alice Martin", "alice.martin@example.com"), ("Bob Schmidt", "bob@example.de"),
    ("Chloé Dubois", "chloe.dubois@example.fr"), ("Дмитрий Иванов", "d.ivanov@example.ru"),
    ("山田 太郎", "taro.yamada@example.jp"), ("Eve Johnson", "eve@example.org"),
    ("Fatima Khan", "fatima@example.co.uk"), ("Günther Müller", "g.mueller@example.at"),
    ("Hiroshi Sato", "sato@example.jp"), ("Isabel García", "isabel@example.es"),
    ("noreply", "noreply@notifications.example.net"), ("Newsletter", "news@lists.example.com"),
]  # fmt: skip
_SUBJECTS = ["Re: quarterly numbers", "Meeting notes", "Invoice {n}", "Your order #{n} has shipped",
             "Fwd: contract draft v{n}", "Lunch?", "Angebot Nr. {n}", "Счёт №{n}", "会議の議事録 {n}",
             "Weekly digest", "Re: Re: the build is red again", "Photos from the trip",
             "Reçu de paiement {n}", "Urgent: please review", "Ενημέρωση λογαριασμού"]  # fmt: skip
_EXT = [("photo.jpg", "image/jpeg"), ("report.pdf", "application/pdf"), ("archive.zip", "application/zip"),
        ("slides.pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation")]  # fmt: skip
_TEXT_EXT = [("export.csv", "text/csv"), ("server.log", "text/plain"), ("data.json", "application/json")]


def _header(value: str) -> str:
    return value if value.isascii() else Header(value, "utf-8").encode()


def _address(name: str, addr: str) -> str:
    return f"{_header(name) if not name.isascii() else chr(34) + name + chr(34)} <{addr}>"


class _Writer:
    """Writes one mailbox's Maildir folders."""

    def __init__(self, maildir: Path, owner: tuple[int, int] | None, index: bool) -> None:
        self.maildir = maildir
        self.owner = owner
        self.index = index
        self.dirs: dict[tuple[str, ...], Path] = {}
        self.index_lines: dict[Path, list[str]] = {}

    def _mkdir(self, p: Path) -> None:
        if not p.is_dir():
            p.mkdir(mode=DIR_MODE, parents=True)
            if self.owner:
                os.chown(p, *self.owner)

    def folder(self, path: tuple[str, ...]) -> Path:
        d = self.dirs.get(path)
        if d is None:
            name = dir_name(path)
            d = self.maildir if name is None else self.maildir / name
            self._mkdir(self.maildir)
            self._mkdir(d)
            for sub in ("cur", "new", "tmp"):
                self._mkdir(d / sub)
            if d != self.maildir and not (d / "maildirfolder").exists():
                self._write(d / "maildirfolder", b"")
            self.dirs[path] = d
        return d

    def _write(self, path: Path, data: bytes, mtime: float | None = None) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
        try:
            with open(fd, "wb", buffering=0, closefd=False) as out:
                write_all(out, memoryview(data))
            if self.owner:
                os.fchown(fd, *self.owner)
            if mtime is not None:
                os.utime(fd, (mtime, mtime))
        finally:
            os.close(fd)

    def message(
        self, path: tuple[str, ...], unique: str, data: bytes, letters: str | None, mtime: float
    ) -> None:
        d = self.folder(path)
        name = f"{unique},S={len(data)}"
        target = d / "new" / name if letters is None else d / "cur" / f"{name}:2,{letters}"
        self._write(target, data, mtime)
        if self.index:
            self.index_lines.setdefault(d, []).append(f"{hashlib.sha256(data).hexdigest()} {name}\n")

    def finish(self) -> None:
        for d, lines in self.index_lines.items():
            with open(d / INDEX_NAME, "a", encoding="ascii", opener=_private_opener) as f:
                f.writelines(lines)
            if self.owner:
                os.chown(d / INDEX_NAME, *self.owner)


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_CLOEXEC, FILE_MODE)


def _folders(rng: random.Random, profile: str) -> list[tuple[tuple[str, ...], float]]:
    if profile == "small":
        return [_FOLDERS[i] for i in _SMALL_FOLDERS]
    n = rng.randint(10, len(_FOLDERS))
    chosen = _FOLDERS[:5] + rng.sample(_FOLDERS[5:], n - 5)
    # parents of nested folders exist as folders too (as IMAP servers show them)
    paths = {p for p, _ in chosen}
    for p, _ in list(chosen):
        for k in range(1, len(p)):
            if p[:k] not in paths and p[0] != "Inbox":
                chosen.append((p[:k], 0.3))
                paths.add(p[:k])
    return chosen


def _message(rng: random.Random, text: _Text, att: _Attachments, n: int, seed: int, prof: _Profile,
             date: datetime, attach_size: int | None) -> tuple[bytes, bool]:  # fmt: skip
    sender = rng.choice(_PEOPLE)
    to = rng.choice(_PEOPLE)
    subject = rng.choice(_SUBJECTS).format(n=n)
    body_size = int(
        min(
            prof.body_max, max(prof.body_min, rng.lognormvariate(math.log(prof.body_median), prof.body_sigma))
        )
    )
    mid = f"<{seed}.{n}.{rng.getrandbits(48):012x}@mailcrate.example>"
    relay = f"mx{rng.randint(1, 9)}.example.net"
    head = [
        f"Return-Path: <{sender[1]}>",
        f"Received: from {relay} ({relay} [192.0.2.{rng.randint(1, 254)}])\n\tby mail.example.com with ESMTPS"
        f" id {rng.getrandbits(40):010x}\n\tfor <{to[1]}>; {format_datetime(date)}",
        f"From: {_address(*sender)}",
        f"To: {_address(*to)}",
    ]
    if rng.random() < 0.25:
        head.append(f"Cc: {_address(*rng.choice(_PEOPLE))}")
    head += [f"Subject: {_header(subject)}", f"Date: {format_datetime(date)}", f"Message-ID: {mid}",
             "MIME-Version: 1.0"]  # fmt: skip
    plain = text.take(rng, body_size if rng.random() < 0.6 else body_size // 2)
    html = None
    if len(plain) < body_size:
        html = (
            b"<html><body><p>"
            + text.take(rng, body_size - len(plain)).replace(b"\n", b"</p>\n<p>")
            + b"</p></body></html>\n"
        )
    boundary = f"=_mc_{n}_{rng.getrandbits(32):08x}"
    parts: list[bytes] = []
    if html is None:
        alt = b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n" + plain
    else:
        b2 = boundary + "_alt"
        alt = (
            (
                f'Content-Type: multipart/alternative; boundary="{b2}"\n\n--{b2}\n'
                "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
            ).encode()
            + plain
            + (
                f"\n--{b2}\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
            ).encode()
            + html
            + f"\n--{b2}--\n".encode()
        )
    if attach_size is None:
        return "\n".join(head).encode() + b"\n" + alt, False
    compressible = rng.random() < 0.3
    fname, ctype = rng.choice(_TEXT_EXT if compressible else _EXT)
    parts.append(alt)
    parts.append(
        f'Content-Type: {ctype}; name="{fname}"\nContent-Disposition: attachment; filename="{fname}"\n'
        "Content-Transfer-Encoding: base64\n\n".encode()
        + att.take(rng, attach_size, compressible)
    )
    head.append(f'Content-Type: multipart/mixed; boundary="{boundary}"')
    body = b"This is a multi-part message in MIME format.\n"
    for p in parts:
        body += f"\n--{boundary}\n".encode() + p
    body += f"\n--{boundary}--\n".encode()
    return "\n".join(head).encode() + b"\n\n" + body, True


_TZ = """BEGIN:VTIMEZONE\r
TZID:Europe/Berlin\r
BEGIN:DAYLIGHT\r
TZOFFSETFROM:+0100\r
TZOFFSETTO:+0200\r
TZNAME:CEST\r
DTSTART:19700329T020000\r
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r
END:DAYLIGHT\r
BEGIN:STANDARD\r
TZOFFSETFROM:+0200\r
TZOFFSETTO:+0100\r
TZNAME:CET\r
DTSTART:19701025T030000\r
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r
END:STANDARD\r
END:VTIMEZONE\r
"""
_EVENTS = [
    "Team standup",
    "Quarterly review",
    "Zahnarzt",
    "Обед с клиентом",  # noqa: RUF001
    "1:1 with Bob",
    "Sprint planning",
    "会議: ロードマップ",
    "Board meeting",
    "Release party 🎉",
    "Budget sync",
]


def calendar_item(rng: random.Random, n: int, seed: int, recurring: bool) -> bytes:
    """One iCalendar object: a VEVENT in Europe/Berlin (with its VTIMEZONE); recurring ones have
    an RRULE and one or two overridden instances (components with RECURRENCE-ID)."""
    uid = f"{seed}-{n}-{rng.getrandbits(64):016x}@mailcrate.example"
    start = datetime(2025, 1, 6, 9, 0) + timedelta(days=rng.randint(0, 300), hours=rng.randint(0, 8))
    f = "%Y%m%dT%H%M%S"
    stamp = "20250101T120000Z"
    summary = rng.choice(_EVENTS)
    comps = [
        "BEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:{stamp}\r\nDTSTART;TZID=Europe/Berlin:{start.strftime(f)}\r\n"
        f"DTEND;TZID=Europe/Berlin:{(start + timedelta(minutes=30 * rng.randint(1, 4))).strftime(f)}\r\n"
        f"SUMMARY:{summary}\r\nLOCATION:Raum {rng.randint(1, 40)}\r\nORGANIZER;CN=Alice:mailto:alice@example.com\r\n"
        + ("RRULE:FREQ=WEEKLY;COUNT=20\r\n" if recurring else "")
        + "DESCRIPTION:"
        + "Agenda: items\\, notes\\; and a long line that needs\r\n"
        "  folding because it is longer than seventy-five octets.\r\nEND:VEVENT\r\n"
    ]
    if recurring:
        for k in range(1, rng.randint(2, 3)):
            orig = start + timedelta(weeks=2 * k)
            moved = orig + timedelta(hours=1)
            comps.append(
                "BEGIN:VEVENT\r\n"
                f"UID:{uid}\r\nDTSTAMP:{stamp}\r\nRECURRENCE-ID;TZID=Europe/Berlin:{orig.strftime(f)}\r\n"
                f"DTSTART;TZID=Europe/Berlin:{moved.strftime(f)}\r\n"
                f"DTEND;TZID=Europe/Berlin:{(moved + timedelta(minutes=30)).strftime(f)}\r\n"
                f"SUMMARY:{summary} (moved)\r\nEND:VEVENT\r\n"
            )
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//mailcrate//samples//EN\r\n"
        + _TZ
        + "".join(comps)
        + "END:VCALENDAR\r\n"
    ).encode("utf-8")


def _generate(
    maildir: Path,
    *,
    messages: int | None,
    total_bytes: int | None,
    seed: int,
    profile: str,
    owner: tuple[int, int] | None,
    index: bool,
    report: SampleReport,
) -> None:
    if profile not in _PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}")
    if (messages or 0) < 0 or (total_bytes or 0) < 0:
        raise ValueError("messages and total_bytes must be >= 0")
    prof = _PROFILES[profile]
    if messages is None and total_bytes is None:
        messages = prof.default_messages
    rng = random.Random(seed)
    text = _Text(rng)
    att_cap = min(prof.attach_max, total_bytes or prof.attach_max)
    att = _Attachments(rng, text, pool_bytes=min(24 * MB, max(2 * MB, att_cap)))
    folders = _folders(rng, profile)
    cum = list(_cumulative([w for _, w in folders]))
    writer = _Writer(maildir, owner, index)
    for path, _ in folders:
        writer.folder(path)
    report.folders = [list(p) for p, _ in folders]

    body_mean = prof.body_median * math.exp(prof.body_sigma**2 / 2) + 1_500  # + headers
    log_lo, log_hi = math.log(prof.attach_min), math.log(prof.attach_max)
    att_mean = (prof.attach_max - prof.attach_min) / (log_hi - log_lo)
    end = datetime(2025, 11, 1, tzinfo=UTC)
    span = 3 * 365 * 86400
    n = 0
    written = 0
    while True:
        if messages is not None and n >= messages:
            break
        if messages is None and total_bytes is not None and written >= total_bytes:
            break
        attach_size = None
        rate = prof.attach_rate
        if messages is not None and total_bytes is not None:
            left_n = messages - n
            avg = (total_bytes - written) / left_n
            rate = min(0.6, max(0.0, (avg - body_mean) / att_mean))
        if rng.random() < rate:
            attach_size = int(math.exp(rng.uniform(log_lo, log_hi)))
            if total_bytes is not None:
                attach_size = min(attach_size, max(prof.attach_min, total_bytes - written))
        # chronological: message n is dated in order, so unique names sort by date
        frac = (n + rng.random()) / (
            messages or max(1, (total_bytes or 1) // int(body_mean + prof.attach_rate * att_mean))
        )
        when = end - timedelta(seconds=span * max(0.0, 1.0 - min(1.0, frac)))
        data, has_att = _message(rng, text, att, n, seed, prof, when, attach_size)
        path = folders[min(len(folders) - 1, bisect(cum, rng.random() * cum[-1]))][0]
        if path[0] == "Drafts" or rng.random() < 0.08:
            letters = None if path[0] != "Drafts" else "DS"
        else:
            letters = "S" + ("F" if rng.random() < 0.05 else "") + ("R" if rng.random() < 0.15 else "")
            letters = "".join(sorted(letters))
        ts = int(when.timestamp())
        unique = f"{ts}.M{n:07d}P{seed}R{rng.getrandbits(32):08x}.mailcrate"
        writer.message(path, unique, data, letters, ts)
        n += 1
        written += len(data)
        report.attachments += has_att
        report.largest = max(report.largest, len(data))
        key = "/".join(path)
        report.per_folder[key] = report.per_folder.get(key, 0) + 1
    writer.finish()
    report.messages = n
    report.bytes = written


def generate(
    root: str | os.PathLike[str],
    *,
    messages: int | None = None,
    total_bytes: int | None = None,
    seed: int = 0,
    profile: str = "realistic",
    calendar_items: int | None = None,
) -> SampleReport:
    """Fill an embedded mailbox ROOT (``ROOT/Maildir`` + ``ROOT/calendars``; created if missing,
    existing content kept) with sample mail and calendar items.

    ``messages`` and/or ``total_bytes`` set the size (neither: the profile's default, 300 for
    ``small``, 10,000 for ``realistic``); with both, the attachment rate is tuned so both are met.
    ``calendar_items`` overrides the profile's count (``small`` 6, ``realistic`` 24)."""
    started = time.perf_counter()
    root = Path(root)
    create_mailbox(root)
    report = SampleReport(str(root), profile, seed)
    _generate(root / "Maildir", messages=messages, total_bytes=total_bytes, seed=seed, profile=profile,
              owner=None, index=True, report=report)  # fmt: skip
    count = _PROFILES[profile].calendar_items if calendar_items is None else calendar_items
    rng = random.Random(seed + 7919)
    for i in range(count):
        calendar = "Calendar" if i % 3 else "Team Ünïcode 📅"
        add_calendar_item(root, calendar, calendar_item(rng, i, seed, recurring=i % 2 == 0))
    report.calendar_items = count
    report.seconds = time.perf_counter() - started
    return report


def generate_maildir(
    maildir: str | os.PathLike[str],
    *,
    messages: int | None = None,
    total_bytes: int | None = None,
    seed: int = 0,
    profile: str = "realistic",
    owner: tuple[int, int] | None = None,
) -> SampleReport:
    """The same mail (same seed -> same bytes as :func:`generate`) into a plain Maildir++ root
    such as Dovecot's ``~/Maildir``; files and directories get ``owner`` (uid, gid) when given.
    Folder names avoid ``.``/``/``/``\\``, so Dovecot's default layout reads them as written."""
    started = time.perf_counter()
    maildir = Path(maildir)
    report = SampleReport(str(maildir), profile, seed)
    _generate(maildir, messages=messages, total_bytes=total_bytes, seed=seed, profile=profile,
              owner=owner, index=False, report=report)  # fmt: skip
    for p in (maildir.parent, maildir) if owner else ():
        os.chown(p, *owner)
    report.seconds = time.perf_counter() - started
    return report


def _size(text: str) -> int:
    units = {"k": KB, "m": MB, "g": 1024 * MB}
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    if t and t[-1] in units:
        return int(float(t[:-1]) * units[t[-1]])
    return int(t)


def main(argv: list[str] | None = None) -> int:
    """``python -m mailcrate.mail.samples ROOT [--messages N] [--total-bytes 1GiB] [--seed S]
    [--profile small|realistic] [--maildir]``: prints the report as JSON."""
    p = argparse.ArgumentParser(prog="python -m mailcrate.mail.samples")
    p.add_argument("root")
    p.add_argument("--messages", type=int)
    p.add_argument("--total-bytes", type=_size)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", choices=PROFILES, default="realistic")
    p.add_argument("--maildir", action="store_true", help="ROOT is a plain Maildir (no calendars)")
    a = p.parse_args(argv)
    fn = generate_maildir if a.maildir else generate
    r = fn(a.root, messages=a.messages, total_bytes=a.total_bytes, seed=a.seed, profile=a.profile)
    print(json.dumps(r.to_dict(), ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["PROFILES", "SampleReport", "calendar_item", "generate", "generate_maildir"]
