"""Shared pieces of the admin-CLI e2e tests: mailboxes compared with export zips."""

from __future__ import annotations

import hashlib
import zipfile
from collections import Counter
from pathlib import Path

from mailcrate.export.manifest import MANIFEST_NAME, Manifest
from mailcrate.mail.calendar_mime import ics_from_calendar_mime
from mailcrate.mail.store import EmbeddedStore


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def crlf(data: bytes) -> bytes:
    """How IMAP hands a message out: every bare LF as CRLF."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def zip_contents(zip_path: Path) -> tuple[Manifest, Counter, Counter]:
    """(manifest, mail multiset (folder, sha256, flags, internal second), calendar multiset (calendar, ics sha256))."""
    with zipfile.ZipFile(zip_path) as zf:
        manifest = Manifest.parse(zf.read(MANIFEST_NAME))
        mail: Counter = Counter()
        cals: Counter = Counter()
        for item in manifest.items:
            data = zf.read(item.zip_path)
            assert sha(data) == item.sha256
            if item.kind == "mail":
                when = int(item.internal_date.timestamp()) if item.internal_date else None
                mail[(item.folder, item.sha256, tuple(sorted(item.flags)), when)] += 1
            else:
                cals[(item.folder[0], sha(ics_from_calendar_mime(data)))] += 1
    return manifest, mail, cals


def mailbox_contents(root: Path) -> tuple[Counter, Counter]:
    """The same multisets read from an embedded mailbox (or an unpacked Maildir tree)."""
    mail: Counter = Counter()
    cals: Counter = Counter()
    with EmbeddedStore(root, owner="someone@example.com") as store:
        for folder in store.folders():
            for item in store.items(folder):
                data = item.read_all()
                if item.kind == "mail":
                    when = int(item.internal_date.timestamp()) if item.internal_date else None
                    mail[(folder.path, sha(data), tuple(sorted(item.flags)), when)] += 1
                else:
                    cals[(folder.path[0], sha(ics_from_calendar_mime(data)))] += 1
    return mail, cals


def ical_fingerprint(ics: bytes) -> tuple:
    """An iCalendar object's meaning: its components and their properties, order-free (CalDAV
    servers such as Radicale re-serialize what they store, reordering properties)."""
    from icalendar import Calendar

    def props(component) -> tuple:
        out = []
        for name, value in component.property_items(recursive=False):
            if name in ("BEGIN", "END"):
                continue
            out.append((name, value.to_ical() if hasattr(value, "to_ical") else str(value)))
        return (
            component.name,
            tuple(sorted(out, key=repr)),
            tuple(sorted((props(c) for c in component.subcomponents), key=repr)),
        )

    cal = Calendar.from_ical(ics)
    return tuple(sorted((props(c) for c in cal.subcomponents), key=repr))
