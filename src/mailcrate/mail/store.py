"""The embedded mail store: one mailbox per directory, in standard formats.

Layout of a mailbox ROOT (the caller picks it: ``<data-dir>/mailboxes/<org-id>/<user-id>``)::

    ROOT/Maildir/                      Maildir++; the root is the Inbox
    ROOT/Maildir/.Sent Items/          other folders, names as in mailcrate.mail.maildirpp
    ROOT/Maildir/<folder>/mailcrate-sha256   "<sha256> <unique>" per delivered message (dedup)
    ROOT/calendars/<calendar>/<sha256(UID)[:40]>.ics   one iCalendar object per calendar item

Calendar directory names percent-encode ``%``, ``/``, ``\\``, control characters and a leading
``.``, so any display name is one safe directory entry.  Directories are 0700 and files 0600:
only the service's user reads mail.  Standard formats mean Dovecot can serve the same Maildir
and an administrator can inspect it with ordinary tools.

Delivery is durable: the message is written to ``tmp/``, fsynced, renamed into ``new/`` (no
flags) or ``cur/`` (``:2,<flags>``) and the directory is fsynced before :func:`deliver` returns,
so an SMTP ``250`` or an import report never claims a message a crash can lose.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import socket
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote

from mailcrate.durable import fsync_dir
from mailcrate.mail.base import Folder, Item, OpenOptions, SourceBase, SourceError, SourceType, nfc
from mailcrate.mail.calendar_mime import calendar_to_mime
from mailcrate.mail.ics import EXPORTABLE, object_kind
from mailcrate.mail.maildir import MaildirSource
from mailcrate.mail.maildirpp import (
    FLAG_TO_LETTER,
    INBOX,
    dir_name,
    letters_from_flags,
    read_dovecot_keywords,
)
from mailcrate.mail.not_exportable import not_exportable

DEFAULT_FOLDERS: tuple[str, ...] = ("Inbox", "Sent Items", "Drafts", "Deleted Items", "Junk E-mail")
DEFAULT_CALENDAR = "Calendar"
INDEX_NAME = "mailcrate-sha256"
EXTRA_KEYWORDS_NAME = "mailcrate-keywords"  # "<unique> kw..." past dovecot-keywords' 26
DIR_MODE = 0o700
FILE_MODE = 0o600

FolderArg = str | tuple[str, ...]


def _mkdir(path: Path) -> None:
    """mkdir -p where every directory created gets 0700 (``parents=True`` would use the umask)."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for p in reversed(missing):
        p.mkdir(mode=DIR_MODE, exist_ok=True)


def _as_path(folder: FolderArg) -> tuple[str, ...]:
    path = (folder,) if isinstance(folder, str) else tuple(folder)
    return tuple(nfc(p) for p in path)


def folder_dir(root: str | os.PathLike[str], folder: FolderArg) -> Path:
    """The Maildir directory of a folder (which may not exist yet)."""
    maildir = Path(root) / "Maildir"
    name = dir_name(_as_path(folder))
    return maildir if name is None else maildir / name


def _ensure_folder(root: Path, folder: FolderArg) -> Path:
    d = folder_dir(root, folder)
    if not (d / "cur").is_dir():
        for sub in ("cur", "new", "tmp"):
            _mkdir(d / sub)
        if d != root / "Maildir":
            marker = d / "maildirfolder"  # Maildir++ marks sub-folders with this file
            marker.touch(mode=FILE_MODE, exist_ok=True)
        fsync_dir(d.parent)
    return d


def ensure_folder(root: str | os.PathLike[str], folder: FolderArg) -> Path:
    """Create a mail folder (empty) unless it exists; returns its Maildir directory."""
    return _ensure_folder(Path(root), folder)


def calendar_dir_name(name: str) -> str:
    """One safe directory entry for a calendar display name (see the module docstring)."""
    if not name:
        raise ValueError("empty calendar name")
    out = "".join(
        f"%{ord(c):02X}" if c in "%/\\" or ord(c) < 0x20 or ord(c) == 0x7F else c for c in nfc(name)
    )
    return "%2E" + out[1:] if out.startswith(".") else out


def create_mailbox(root: str | os.PathLike[str]) -> None:
    """Create a mailbox with WorkMail's default folders and calendar; existing content is kept."""
    r = Path(root)
    _mkdir(r)
    os.chmod(r, DIR_MODE)
    for name in DEFAULT_FOLDERS:
        _ensure_folder(r, name)
    _mkdir(r / "calendars" / calendar_dir_name(DEFAULT_CALENDAR))
    fsync_dir(r)


def delete_mailbox(root: str | os.PathLike[str]) -> None:
    """Remove a mailbox and everything in it (deregistering a user does this); absent is fine."""
    if Path(root).exists():
        shutil.rmtree(root)


def _unique() -> str:
    now = time.time_ns()
    host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
    return f"{now // 10**9}.M{(now // 1000) % 10**6:06d}P{os.getpid()}R{os.urandom(4).hex()}.{host}"


def _index_lookup(index: Path, digest: str, nth: int) -> str | None:
    """The ``nth`` (1-based) message of that SHA-256 in the folder's index, if it holds that many."""
    try:
        with open(index, encoding="ascii", errors="replace") as f:
            for line in f:
                h, _, unique = line.strip().partition(" ")
                if h == digest:
                    nth -= 1
                    if nth == 0:
                        return unique
    except FileNotFoundError:
        pass
    return None


def _keyword_letters(folder: Path, flags: tuple[str, ...]) -> tuple[str, list[str]]:
    """Maildir letters for the keywords among ``flags`` through Dovecot's ``dovecot-keywords``
    (``a``..``z`` = keyword 0..25, added to the file when new), so Dovecot serving the same
    Maildir sees them; the keywords beyond 26 per folder are returned to be kept elsewhere.
    The caller holds the folder's index lock (the file is read, extended and replaced under it)."""
    wanted = sorted({f for f in flags if not f.startswith("\\") and f.lower() not in FLAG_TO_LETTER})
    if not wanted:
        return "", []
    known = read_dovecot_keywords(str(folder))
    by_word = {w: ch for ch, w in known.items()}
    letters, extra, added = [], [], False
    for word in wanted:
        ch = by_word.get(word)
        if ch is None:
            free = next((c for c in "abcdefghijklmnopqrstuvwxyz" if c not in known), None)
            if free is None:
                extra.append(word)
                continue
            known[free], by_word[word], ch, added = word, free, free, True
        letters.append(ch)
    if added:
        text = "".join(f"{ord(ch) - ord('a')} {w}\n" for ch, w in sorted(known.items()))
        tmp = folder / f".dovecot-keywords.{os.getpid()}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, folder / "dovecot-keywords")
    return "".join(letters), extra


def deliver_message(
    root: str | os.PathLike[str],
    folder: FolderArg,
    data: bytes | Iterable[bytes],
    flags: Iterable[str] = (),
    internal_date: datetime | None = None,
    *,
    dedupe: bool = False,
    copies: Counter[str] | None = None,
) -> tuple[str, bool]:
    """Deliver durably; returns ``(source_id, created)``.

    With ``dedupe`` a message whose SHA-256 is already in the folder's index is not stored
    again (``created`` is False), counted as a multiset: ``copies`` (the caller's per-folder
    counter of this run, updated here) makes the n-th copy of some bytes in one import or
    restore "already there" only when the folder holds n copies, so identical messages of the
    source (with their own flags and dates) stay distinct and a re-run adds nothing.

    Keywords go into the file name through ``dovecot-keywords`` (as Dovecot stores them); more
    than 26 distinct keywords in a folder: the rest in ``mailcrate-keywords`` beside it."""
    d = _ensure_folder(Path(root), folder)
    unique = _unique()
    tmp = d / "tmp" / unique
    digest = hashlib.sha256()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in [data] if isinstance(data, bytes | bytearray | memoryview) else data:
                digest.update(chunk)
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        if internal_date is not None:
            ts = internal_date.timestamp()
            os.utime(tmp, (ts, ts))
        flags = tuple(flags)
        size = tmp.stat().st_size
        name = f"{unique},S={size}"
        hexdigest = digest.hexdigest()
        nth = 1
        if copies is not None:
            copies[hexdigest] += 1
            nth = copies[hexdigest]
        with open(d / INDEX_NAME, "a", encoding="ascii", opener=_private_opener) as index:
            fcntl.flock(index.fileno(), fcntl.LOCK_EX)  # check + add atomically vs. other writers
            if dedupe and (existing := _index_lookup(d / INDEX_NAME, hexdigest, nth)) is not None:
                tmp.unlink()
                return existing, False
            keyword_letters, extra = _keyword_letters(d, flags)
            letters = "".join(sorted(letters_from_flags(flags) + keyword_letters))
            target = d / "cur" / f"{name}:2,{letters}" if letters else d / "new" / name
            if extra:
                with open(d / EXTRA_KEYWORDS_NAME, "a", encoding="utf-8", opener=_private_opener) as f:
                    f.write(f"{name} {' '.join(extra)}\n")
            os.rename(tmp, target)
            fsync_dir(target.parent)
            index.write(f"{hexdigest} {unique},S={size}\n")
            index.flush()
            os.fsync(index.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return f"{unique},S={size}", True


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_CLOEXEC, FILE_MODE)


def deliver(
    root: str | os.PathLike[str],
    folder: FolderArg,
    data: bytes | Iterable[bytes],
    flags: Iterable[str] = (),
    internal_date: datetime | None = None,
) -> str:
    """Store one message (bytes or an iterable of chunks, kept byte-exact) in a folder, creating
    the folder if needed; returns its source id.  Durable when it returns."""
    return deliver_message(root, folder, data, flags, internal_date)[0]


def calendar_dir(root: str | os.PathLike[str], calendar: str) -> Path:
    """The directory of a calendar (which may not exist yet)."""
    return Path(root) / "calendars" / calendar_dir_name(calendar)


def calendar_item_path(root: str | os.PathLike[str], calendar: str, uid: str) -> Path:
    """Where the calendar item with this UID lives (the name is derived from the UID)."""
    name = hashlib.sha256(uid.encode("utf-8")).hexdigest()[:40] + ".ics"
    return calendar_dir(root, calendar) / name


def calendar_item_uid(ics_bytes: bytes) -> str:
    """The UID that names an item's file (a content hash for an object without UID)."""
    from mailcrate.mail.ics import object_uid

    return object_uid(ics_bytes) or hashlib.sha256(ics_bytes).hexdigest()


def add_calendar_item(root: str | os.PathLike[str], calendar: str, ics_bytes: bytes) -> str:
    """Store one calendar item (all components of one UID), replacing the item with that UID;
    returns its source id.  Durable when it returns."""
    path = calendar_item_path(root, calendar, calendar_item_uid(ics_bytes))
    _mkdir(path.parent)
    tmp = path.with_name(f".tmp-{os.getpid()}-{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    with os.fdopen(fd, "wb") as f:
        f.write(ics_bytes)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return path.stem


class EmbeddedStore(SourceBase):
    """A mailbox ROOT as a :class:`~mailcrate.mail.base.MailboxSource`: its Maildir folders, then
    its calendars (items as MIME, ``From`` = ``owner``)."""

    def __init__(self, root: str | os.PathLike[str], owner: str | None = None) -> None:
        self.root = Path(root)
        if not (self.root / "Maildir").is_dir():
            raise SourceError(f"no mailbox at {self.root}")
        self.owner = owner or ""
        self._mail = MaildirSource(self.root / "Maildir")

    def _calendar_dirs(self) -> dict[str, Path]:
        base = self.root / "calendars"
        if not base.is_dir():
            return {}
        return {nfc(unquote(p.name)): p for p in sorted(base.iterdir()) if p.is_dir()}

    def folders(self) -> list[Folder]:
        mail = self._mail.folders()
        cals = [
            Folder((name,), "calendar", len(_ics_files(d)))
            for name, d in sorted(self._calendar_dirs().items(), key=_calendar_order)
        ]
        return mail + cals

    def items(self, folder: Folder, *, after: str | None = None) -> Iterator[Item]:
        if folder.kind == "mail":
            yield from self._mail.items(folder, after=after)
            return
        d = self._calendar_dirs().get(folder.path[0])
        if d is None or len(folder.path) != 1:
            raise SourceError(f"no such calendar {folder.path!r}")
        for path in _ics_files(d):
            if after is not None and path.stem <= after:
                continue
            try:
                ics = path.read_bytes()
                mtime = path.stat().st_mtime
            except FileNotFoundError:
                continue  # deleted while exporting
            if object_kind(ics) not in EXPORTABLE:  # a task, journal, free/busy: counted, not exported
                yield not_exportable(folder, path.stem, object_kind(ics) or "an object without components")
                continue
            mime = calendar_to_mime(ics, self.owner)
            yield Item(
                folder=folder,
                source_id=path.stem,
                size=len(mime),
                internal_date=datetime.fromtimestamp(mtime).astimezone(),
                flags=(),
                kind="calendar",
                reader=lambda m=mime: iter((m,)),
            )


def _calendar_order(kv: tuple[str, Path]) -> tuple[bool, str]:
    return (kv[0] != DEFAULT_CALENDAR, kv[0])


def _ics_files(d: Path) -> list[Path]:
    return sorted(p for p in d.glob("*.ics") if not p.name.startswith("."))


__all__ = [
    "DEFAULT_CALENDAR",
    "DEFAULT_FOLDERS",
    "INBOX",
    "EmbeddedStore",
    "add_calendar_item",
    "calendar_dir",
    "calendar_item_path",
    "calendar_item_uid",
    "create_mailbox",
    "delete_mailbox",
    "deliver",
    "deliver_message",
    "ensure_folder",
    "folder_dir",
]


def _open(root: str, options: OpenOptions) -> EmbeddedStore:
    return EmbeddedStore(root, owner=options.owner)


#: The embedded store's registration (mail.base.SOURCE_TYPES): its configuration is the
#: mailbox's root directory.
SOURCE = SourceType("embedded", frozenset({"mail", "calendar"}), str, str, _open)
