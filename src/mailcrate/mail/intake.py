"""Importing existing mail into the embedded store (``mailcrate mailbox import``).

Accepted inputs: mbox files, Maildir / Maildir++ trees (folders and flags kept), ``.eml`` files
or directories of them, and ``.ics`` files (each calendar object - the components of one UID,
an event with its overrides - becomes one calendar item; of several versions of one UID the
newest is kept, see :func:`_import_calendars`).  Re-running an
import adds nothing twice: each folder keeps an index of the SHA-256 of its messages (see
:mod:`mailcrate.mail.store`), and a calendar item is keyed by its UID.  Message bytes are stored
exactly as read, except the mbox envelope: the ``From `` separator line goes, and ``>From ``
quoting (mboxrd) loses one ``>``.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from mailcrate.mail.base import nfc
from mailcrate.mail.ics import EXPORTABLE, CalendarObject, calendar_objects, newest_versions, object_version
from mailcrate.mail.maildir import MaildirSource, is_maildir
from mailcrate.mail.mbox import MboxSource
from mailcrate.mail.reconcile import Reconciliation
from mailcrate.mail.store import (
    DEFAULT_CALENDAR,
    add_calendar_item,
    calendar_item_path,
    calendar_item_uid,
    create_mailbox,
    deliver_message,
    ensure_folder,
)

FolderArg = str | tuple[str, ...] | None
_SPOOL = 8 * 1024 * 1024


class ImportReport(Reconciliation):
    """What an import did, per mail folder and per calendar; ``errors`` lists unreadable inputs.

    ``copies`` counts this run's messages per folder and SHA-256, so that identical messages
    of the input are stored as distinct items (see :func:`~mailcrate.mail.store.deliver_message`)."""

    def __init__(self) -> None:
        super().__init__()
        self.copies: dict[tuple[str, ...], Counter[str]] = {}
        self.ics_files: list[tuple[str, Path]] = []  # read after the walk: versions span files

    def deliver(
        self,
        root: Path,
        folder: tuple[str, ...],
        data: Iterable[bytes],
        flags: Iterable[str] = (),
        date: datetime | None = None,
    ) -> None:
        copies = self.copies.setdefault(folder, Counter())
        created = deliver_message(root, folder, data, flags, date, dedupe=True, copies=copies)[1]
        t = self.folder(folder)
        t.done += created
        t.already += not created

    def to_dict(self, done: str = "imported") -> dict[str, object]:
        return super().to_dict(done)


def import_paths(
    root: str | os.PathLike[str], paths: Iterable[str | os.PathLike[str]], folder: FolderArg = None
) -> ImportReport:
    """Import every path into the mailbox at ``root`` (created if missing).

    ``folder`` overrides the target: the folder for mbox and ``.eml`` input (default: Inbox for
    ``.eml``, the file's stem for ``name.mbox``), the calendar for ``.ics`` (default "Calendar"),
    and the parent for a Maildir tree (its Inbox goes into ``folder`` itself).
    """
    create_mailbox(root)
    report = ImportReport()
    target = None if folder is None else ((folder,) if isinstance(folder, str) else tuple(folder))
    for p in paths:
        _import_one(Path(root), Path(p), target, report)
    _import_calendars(Path(root), report)
    return report


def _import_one(root: Path, path: Path, target: tuple[str, ...] | None, report: ImportReport) -> None:
    try:
        if path.is_dir():
            if is_maildir(path) or any(is_maildir(c) for c in path.iterdir() if c.is_dir()):
                _import_maildir(root, path, target, report)
            else:
                for child in sorted(path.iterdir()):
                    if child.is_dir() or _kind(child) != "eml" or child.suffix.lower() == ".eml":
                        _import_one(root, child, target, report)
            return
        kind = _kind(path)
        if kind == "mbox":
            default = (path.stem,) if path.suffix.lower() == ".mbox" else ("Inbox",)
            dest = target or (("Inbox",) if default[0].lower() == "inbox" else (nfc(default[0]),))
            _import_mbox(root, path, dest, report)
        elif kind == "ics":
            report.ics_files.append((target[0] if target else DEFAULT_CALENDAR, path))
        else:
            dest = target or ("Inbox",)
            with open(path, "rb") as f:
                report.deliver(root, dest, _read_chunks(f))
    except OSError as e:
        report.errors.append(f"{path}: {e.strerror or type(e).__name__}")


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".mbox", ".mbx"):
        return "mbox"
    if suffix in (".ics", ".ical", ".ifb"):
        return "ics"
    if suffix == ".eml":
        return "eml"
    with open(path, "rb") as f:
        head = f.read(64)
    if head.startswith(b"From "):
        return "mbox"
    if head.lstrip(b"\xef\xbb\xbf \r\n").upper().startswith(b"BEGIN:VCALENDAR"):
        return "ics"
    return "eml"


def _read_chunks(f: BinaryIO) -> Iterator[bytes]:
    while chunk := f.read(1024 * 1024):
        yield chunk


def _import_maildir(root: Path, path: Path, target: tuple[str, ...] | None, report: ImportReport) -> None:
    with MaildirSource(path) as src:
        for folder in src.folders():
            dest = folder.path
            if target is not None:
                dest = target if folder.path == ("Inbox",) else (*target, *folder.path)
            report.folder(dest)  # listed even when empty
            ensure_folder(root, dest)  # an empty folder of the source is kept
            for item in src.items(folder):
                report.deliver(root, dest, item.chunks(), item.flags, item.internal_date)


# ---------------------------------------------------------------------------- mbox


def _import_mbox(root: Path, path: Path, dest: tuple[str, ...], report: ImportReport) -> None:
    """Every message into ``dest``, or a Google Takeout mbox's into its labels' folders."""
    with MboxSource(path, dest) as src:
        folders = src.folders()
        if not folders:
            report.folder(dest)  # an empty mbox: its folder, empty
        for folder in folders:
            report.folder(folder.path)
            for item in src.items(folder):
                report.deliver(root, folder.path, item.chunks(), item.flags, item.internal_date)


# ---------------------------------------------------------------------------- ics


def _import_calendars(root: Path, report: ImportReport) -> None:
    """Every ``.ics`` of the import, per calendar: all their objects read first, so that of
    several objects with one UID (an iTIP sequence, in one file or several) the newest is kept
    and the others are counted as superseded (:func:`~mailcrate.mail.ics.newest_versions`);
    one that is older than the calendar's stored version is superseded too. Tasks, journals,
    free/busy and availability are stored but reported as not exportable (exports carry
    events; the export log counts them in totalNonExportableItems)."""
    by_calendar: dict[str, list[CalendarObject]] = {}
    for calendar, path in report.ics_files:
        try:
            data = path.read_bytes()
        except OSError as e:
            report.errors.append(f"{path}: {e.strerror or type(e).__name__}")
            continue
        objects = by_calendar.setdefault(calendar, [])
        for obj in calendar_objects(data):  # positions across files: a later file wins a tie
            objects.append(dataclasses.replace(obj, position=len(objects)))
    for calendar, objects in by_calendar.items():
        t = report.calendar(calendar)
        kept, superseded = newest_versions(objects)
        t.superseded += len(superseded)
        for obj in kept:
            path = calendar_item_path(root, calendar, calendar_item_uid(obj.ics))
            try:
                stored = path.read_bytes()
            except FileNotFoundError:
                stored = None
            exportable = obj.kind in EXPORTABLE
            if stored == obj.ics:
                if exportable:
                    t.already += 1
                else:
                    t.not_exportable += 1
                continue
            if stored is not None and object_version(stored) > (obj.sequence, obj.stamp):
                t.superseded += 1  # the calendar holds a newer version of it
                continue
            add_calendar_item(root, calendar, obj.ics)
            if exportable:
                t.done += 1
            else:
                t.not_exportable += 1
