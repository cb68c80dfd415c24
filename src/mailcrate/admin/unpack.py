"""Unpacking an export into ordinary files: a Maildir++ tree plus one ``.ics`` per calendar item
(the embedded store's own layout, which Dovecot and mutt read as is), or one mbox per folder.

The Maildir form and restoring into an embedded mailbox are the same operation: every message is
delivered byte-exact with its flags (keywords too) and internal date (file mtime); a message
is already there when its folder holds as many copies of its bytes as the archive has so far,
so identical messages stay distinct and running it again adds nothing. Calendar items get their original iCalendar bytes
back from the MIME wrapper and are keyed by UID.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path
from typing import BinaryIO

from mailcrate.admin.archive import ExportArchive, ItemReport, opened
from mailcrate.export.manifest import ManifestItem
from mailcrate.export.names import safe_component
from mailcrate.mail.calendar_mime import ics_from_calendar_mime
from mailcrate.mail.store import (
    add_calendar_item,
    calendar_dir,
    calendar_item_path,
    calendar_item_uid,
    deliver_message,
    ensure_folder,
)

__all__ = ["restore_calendar_item", "unpack_maildir", "unpack_mbox"]

Tick = Callable[[ManifestItem], None]
_FROM = re.compile(rb"^>*From ")


def restore_calendar_item(root: Path, archive: ExportArchive, item: ManifestItem) -> bool:
    """Store one calendar item in ROOT/calendars; False when the same bytes are already there."""
    ics = ics_from_calendar_mime(archive.read(item))
    path = calendar_item_path(root, item.folder[0], calendar_item_uid(ics))
    try:
        if path.read_bytes() == ics:
            return False
    except FileNotFoundError:
        pass
    add_calendar_item(root, item.folder[0], ics)
    return True


def unpack_maildir(
    zip_path: Path,
    root: Path,
    *,
    tick: Tick | None = None,
    archive: ExportArchive | None = None,
    report: ItemReport | None = None,
) -> ItemReport:
    """Every item into the mailbox ROOT (``ROOT/Maildir``, ``ROOT/calendars``); idempotent.

    ``archive``: the zip already open, as :func:`~mailcrate.admin.archive.open_verified` or
    :func:`~mailcrate.admin.archive.verify_opened` verified it (its central directory and
    manifest are not read again; the caller closes it); without it the zip is opened here.
    ``report``: the report to fill (a caller reading it from ``tick``)."""
    report = report if report is not None else ItemReport(destination=str(root))
    copies: dict[tuple[str, ...], Counter[str]] = {}  # per folder: identical messages stay distinct
    with opened(zip_path, archive) as archive:
        for item in archive.items():
            if item.kind == "mail":
                created = deliver_message(
                    root,
                    item.folder,
                    archive.chunks(item),
                    item.flags,
                    item.internal_date,
                    dedupe=True,
                    copies=copies.setdefault(item.folder, Counter()),
                )[1]
            else:
                created = restore_calendar_item(root, archive, item)
            report.count(item, created)
            if tick:
                tick(item)
        for kind, path in archive.header.empty_folders:
            if kind == "mail":
                ensure_folder(root, path)
                report.folder(path)
            else:
                calendar_dir(root, path[0]).mkdir(parents=True, exist_ok=True, mode=0o700)
                report.calendar(path[0])
    return report


def _mbox_path(base: Path, folder: tuple[str, ...]) -> Path:
    *parents, leaf = (safe_component(c) for c in folder)
    return base.joinpath(*parents, leaf + ".mbox")


def _quoted(lines: Iterator[bytes]) -> Iterator[bytes]:
    """mboxrd quoting: a line starting with ``>*From `` gets one more ``>``."""
    last = b"\n"
    for line in lines:
        yield b">" + line if _FROM.match(line) else line
        last = line
    if not last.endswith(b"\n"):
        yield b"\n"


def _lines(archive: ExportArchive, item: ManifestItem) -> Iterator[bytes]:
    pending = b""
    for chunk in archive.chunks(item):
        pending += chunk
        *whole, pending = pending.split(b"\n")
        for line in whole:
            yield line + b"\n"
    if pending:
        yield pending


def unpack_mbox(
    zip_path: Path, base: Path, *, tick: Tick | None = None, archive: ExportArchive | None = None
) -> ItemReport:
    """One mboxrd file per mail folder under BASE/mbox (path components made safe as in the
    zip), calendar items as ``.ics`` under BASE/calendars. Files are rewritten on each run.

    ``archive``: as for :func:`unpack_maildir`."""
    report = ItemReport(destination=str(base))
    started: set[Path] = set()
    current: tuple[Path, BinaryIO] | None = None  # items of a folder are usually contiguous
    try:
        with opened(zip_path, archive) as archive:
            for item in archive.items():
                if item.kind == "calendar":
                    report.count(item, restore_calendar_item(base, archive, item))
                else:
                    path = _mbox_path(base / "mbox", item.folder)
                    if current is None or current[0] != path:
                        if current is not None:
                            current[1].close()
                        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                        current = (path, open(path, "ab" if path in started else "wb"))  # noqa: SIM115
                        started.add(path)
                    fh = current[1]
                    when = item.internal_date.astimezone(UTC) if item.internal_date else None
                    stamp = when.strftime("%a %b %d %H:%M:%S %Y") if when else "Thu Jan  1 00:00:00 1970"
                    fh.write(f"From MAILER-DAEMON {stamp}\n".encode())
                    fh.writelines(_quoted(_lines(archive, item)))
                    fh.write(b"\n")
                    report.count(item, True)
                if tick:
                    tick(item)
            for kind, path in archive.header.empty_folders:  # an empty mbox, an empty directory
                if kind == "mail":
                    mbox = _mbox_path(base / "mbox", path)
                    mbox.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                    mbox.touch(mode=0o600)
                    report.folder(path)
                else:
                    calendar_dir(base, path[0]).mkdir(parents=True, exist_ok=True, mode=0o700)
                    report.calendar(path[0])
    finally:
        if current is not None:
            current[1].close()
    return report
