"""Restore inputs mailcrate did not write: a zip of MIME messages without a manifest, an mbox
(Google Takeout's ``X-Gmail-Labels`` too) or a Maildir tree.

Each is read as a mail source and written by the export pipeline into a temporary export zip
(manifest, flags, dates, empty folders), which the ordinary restores then take: one road for
every input, the same reconciliation report. The temporary zip is private (0600) and removed
when the restore is done.

A zip without a manifest (another exporter; real WorkMail, whose layout is not documented) is
taken as found: every file is one message, its folder the directories above it (a file at the
top level is in Inbox; a directory entry is a folder, empty ones too). A zip in mailcrate's own
layout (``mail/...``, ``calendar/...``) whose manifest was lost has its names decoded as the
export encoded them. The internal date is the message's ``Date`` header when it has one; there
are no flags. Files that are not messages (``__MACOSX/``, ``.DS_Store``) are named, not restored.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import TracebackType

from mailcrate.admin.errors import AdminError
from mailcrate.export.manifest import MANIFEST_NAME, ManifestHeader
from mailcrate.export.names import CALENDAR_PREFIX, MAIL_PREFIX, unsafe_component
from mailcrate.export.pipeline import write_archive
from mailcrate.mail.base import CHUNK_SIZE, Folder, Item, ItemKind, MailboxSource, SourceBase, nfc
from mailcrate.mail.maildir import MaildirSource, is_maildir
from mailcrate.mail.mbox import MboxSource

__all__ = ["ForeignInput", "ForeignZipSource", "foreign_input", "zip_without_manifest"]

_JUNK_DIRS = ("__MACOSX/",)
_JUNK_NAMES = (".DS_Store", "Thumbs.db", "desktop.ini")


def zip_without_manifest(path: Path) -> bool:
    """A readable zip that has no ``manifest.jsonl``."""
    try:
        with zipfile.ZipFile(path) as zf:
            return MANIFEST_NAME not in zf.NameToInfo
    except (OSError, zipfile.BadZipFile):
        return False


def _date(head: bytes) -> datetime | None:
    value = BytesHeaderParser(policy=compat32).parsebytes(head).get("Date")
    if value is None:
        return None
    try:
        when = parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


class ForeignZipSource(SourceBase):
    """The messages of a zip without a manifest; see the module docstring. ``junk``: the names
    skipped as not messages."""

    def __init__(self, path: Path) -> None:
        self._zip = zipfile.ZipFile(path)
        infos = self._zip.infolist()
        self.junk = [i.filename for i in infos if not i.is_dir() and _is_junk(i.filename)]
        files = [i for i in infos if not i.is_dir() and not _is_junk(i.filename)]
        own = bool(files) and all(
            i.filename.split("/", 1)[0] in (MAIL_PREFIX, CALENDAR_PREFIX) for i in files
        )
        self._files: dict[tuple[ItemKind, tuple[str, ...]], list[zipfile.ZipInfo]] = {}
        for info in infos:
            if _is_junk(info.filename):
                continue
            parts = [p for p in info.filename.split("/") if p]
            if info.is_dir():
                if parts and not (own and len(parts) == 1):
                    self._files.setdefault(_place(parts, own), [])
                continue
            self._files.setdefault(_place(parts[:-1], own), []).append(info)

    def folders(self) -> list[Folder]:
        order = sorted(self._files, key=lambda k: (k[0] != "mail", k[1][0] != "Inbox", k[1]))
        return [Folder(path, kind, len(self._files[(kind, path)])) for kind, path in order]

    def items(self, folder: Folder, *, after: str | None = None) -> Iterator[Item]:
        for info in self._files.get((folder.kind, folder.path), []):
            if after is not None and info.filename <= after:
                continue
            with self._zip.open(info) as fh:
                head = fh.read(64 * 1024)
            yield Item(
                folder=folder,
                source_id=info.filename,
                size=info.file_size,
                internal_date=_date(head) if folder.kind == "mail" else None,
                flags=(),
                kind=folder.kind,
                reader=lambda info=info: self._read(info),
            )

    def _read(self, info: zipfile.ZipInfo) -> Iterator[bytes]:
        with self._zip.open(info) as fh:
            while chunk := fh.read(CHUNK_SIZE):
                yield chunk

    def close(self) -> None:
        self._zip.close()


def _is_junk(name: str) -> bool:
    return name.startswith(_JUNK_DIRS) or name.rsplit("/", 1)[-1] in _JUNK_NAMES


def _place(parts: list[str], own: bool) -> tuple[ItemKind, tuple[str, ...]]:
    """(kind, folder) of an entry's directory components."""
    if own and parts and parts[0] in (MAIL_PREFIX, CALENDAR_PREFIX):
        kind: ItemKind = "mail" if parts[0] == MAIL_PREFIX else "calendar"
        names = []
        for p in parts[1:]:
            try:
                names.append(unsafe_component(p))
            except ValueError:
                names.append(p)  # not one of ours after all: as found
        return kind, tuple(nfc(n) for n in names) or ("Inbox",)
    path = tuple(nfc(p) for p in parts) or ("Inbox",)
    return "mail", ("Inbox", *path[1:]) if path[0].lower() == "inbox" else path


class ForeignInput:
    """A foreign input packed into a temporary export zip (:attr:`zip_path`); a context
    manager that removes it. :attr:`not_restored` names what was not taken (reason -> count)."""

    def __init__(self, source: MailboxSource, what: str, not_restored: dict[str, int]) -> None:
        self.what = what
        self.not_restored = not_restored
        fd, name = tempfile.mkstemp(prefix="mailcrate-restore-", suffix=".zip")
        self.zip_path = Path(name)
        try:
            with os.fdopen(fd, "wb") as fh, source:
                header = ManifestHeader("", "", "", datetime.now(UTC))
                figures = write_archive(source, fh.write, header=header)
        except BaseException:
            self.zip_path.unlink(missing_ok=True)
            raise
        if figures.total_non_exportable_items:
            key = "items that could not be read from the input"
            self.not_restored[key] = self.not_restored.get(key, 0) + figures.total_non_exportable_items

    def close(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.zip_path.unlink()

    def __enter__(self) -> ForeignInput:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def foreign_input(path: Path) -> ForeignInput | None:
    """The input packed as an export zip, or None when it is to be read as an export zip (one
    with a manifest, or a file no reader recognises: the verification then says what is wrong
    with it). Raises :class:`AdminError` for a directory that is not a Maildir."""
    if path.is_dir():
        if not (is_maildir(path) or any(is_maildir(c) for c in path.iterdir() if c.is_dir())):
            raise AdminError(f"{path} is not a Maildir", "give an export zip, an mbox file or a Maildir")
        return ForeignInput(MaildirSource(path), f"Maildir {path}", {})
    if zip_without_manifest(path):
        source = ForeignZipSource(path)
        junk = {"files that are not messages (" + ", ".join(source.junk[:3]) + ")": len(source.junk)}
        return ForeignInput(source, f"zip without a manifest {path}", junk if source.junk else {})
    with open(path, "rb") as f:
        head = f.read(5)
    if head == b"From ":
        default = (
            (path.stem,) if path.suffix.lower() == ".mbox" and path.stem.lower() != "inbox" else ("Inbox",)
        )
        return ForeignInput(MboxSource(path, default), f"mbox {path}", {})
    return None  # an export zip, or a damaged one: its verification names what is wrong
