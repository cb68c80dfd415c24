"""A Maildir or Maildir++ tree on disk (Dovecot/Postfix layout), read-only.

The Maildir may be live: the MDA delivers, the IMAP server renames files when flags change and
deletes expunged ones while we read.  An export is not a snapshot, so a message that vanished
since the listing is skipped (looked for under its new name first), never an error.  Each
message is opened once when the iterator reaches it and read from that descriptor, so a rename
or unlink after that point cannot tear the item.

Two layouts are understood: Maildir++ (the root is the Inbox, folders are ``.A.B`` sub-directories,
see :mod:`mailcrate.mail.maildirpp`) and a plain tree of Maildirs (each directory holding
``cur``/``new`` is a folder, named by its relative path - what ``mbsync`` writes).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from mailcrate.mail.base import (
    CHUNK_SIZE,
    Folder,
    Item,
    OpenOptions,
    SourceBase,
    SourceError,
    SourceType,
    nfc,
)
from mailcrate.mail.maildirpp import (
    INBOX,
    flags_from_letters,
    path_from_dir,
    read_dovecot_keywords,
    split_info,
)


def is_maildir(path: Path) -> bool:
    """A directory with ``cur`` or ``new`` is a Maildir."""
    return (path / "cur").is_dir() or (path / "new").is_dir()


def _entries(folder_dir: Path) -> list[tuple[str, str, str]]:
    """``(unique, sub, filename)`` of every message in ``new`` and ``cur``, sorted by unique."""
    out: list[tuple[str, str, str]] = []
    for sub in ("new", "cur"):
        try:
            names = os.listdir(folder_dir / sub)
        except FileNotFoundError:
            continue
        for name in names:
            if not name.startswith("."):
                out.append((split_info(name)[0], sub, name))
    out.sort()
    return out


class _OpenMessage:
    """One message's open descriptor; reads with pread so repeated ``chunks()`` calls start over.

    ``size`` is the size ``fstat`` gave when the message was listed. The first read asks for one
    byte more than that: a message of that size (nearly all of them: Maildir files do not change)
    comes in one ``pread`` of its own size, whose short count already says end of file. Reading
    ``CHUNK_SIZE`` until an empty read cost a 1 MiB allocation and a second syscall (and GIL
    hand-over) per message, which the reader thread of an export of small messages paid 1,000s
    of times."""

    def __init__(self, fd: int, folder_dir: Path, unique: str, sub: str, name: str, size: int) -> None:
        self.fd: int | None = fd
        self.location = (folder_dir, unique, sub, name)
        self.size = size

    def read(self) -> Iterator[bytes]:
        fd = self.fd
        owned = fd is None  # this read opened its own descriptor, and alone may close it
        if fd is None:  # read after the iterator moved on: open it again, wherever it is now
            opened = _open_message(*self.location)
            if opened is None:
                raise SourceError(f"message {self.location[1]} vanished before it was read")
            fd = opened[0]
        try:
            offset = 0
            while True:
                want = CHUNK_SIZE if offset >= self.size else min(CHUNK_SIZE, self.size - offset + 1)
                chunk = os.pread(fd, want, offset)
                if not chunk:
                    return
                offset += len(chunk)
                yield chunk
                if len(chunk) < want:  # a short read of a regular file: its end
                    return
        finally:
            # Not "fd != self.fd": an interrupted export closes the iterator (and with it the
            # shared descriptor, self.fd = None) before this suspended read is finalized, which
            # then closed the same number again, by then possibly another thread's file.
            if owned:
                os.close(fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class MaildirSource(SourceBase):
    """Mail folders of a Maildir(++) tree; see the module docstring."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise SourceError(f"Maildir not found: {self.root}")
        self._dirs: dict[tuple[str, ...], Path] = {}

    def _scan(self) -> dict[tuple[str, ...], Path]:
        dirs: dict[tuple[str, ...], Path] = {}
        if is_maildir(self.root):
            dirs[(INBOX,)] = self.root
            for entry in sorted(os.listdir(self.root)):
                sub = self.root / entry
                if entry.startswith(".") and entry not in (".", "..") and is_maildir(sub):
                    dirs.setdefault(path_from_dir(entry), sub)
        else:
            for dirpath, dirnames, _ in os.walk(self.root):
                here = Path(dirpath)
                dirnames[:] = sorted(d for d in dirnames if d not in ("cur", "new", "tmp"))
                if here != self.root and is_maildir(here):
                    rel = here.relative_to(self.root).parts
                    path = tuple(nfc(os.fsencode(p).decode("utf-8", "replace")) for p in rel)
                    if path[0].lower() == "inbox":
                        path = (INBOX, *path[1:])
                    dirs.setdefault(path, here)
        return dirs

    def folders(self) -> list[Folder]:
        self._dirs = self._scan()
        order = sorted(self._dirs, key=lambda p: (p[0] != INBOX, p))
        return [Folder(p, "mail", len(_entries(self._dirs[p]))) for p in order]

    def folder_dir(self, folder: Folder) -> Path:
        if not self._dirs:
            self._dirs = self._scan()
        try:
            return self._dirs[folder.path]
        except KeyError:
            raise SourceError(f"no such folder {folder.path!r}") from None

    def items(self, folder: Folder, *, after: str | None = None) -> Iterator[Item]:
        folder_dir = self.folder_dir(folder)
        keywords = read_dovecot_keywords(str(folder_dir))
        extra = _extra_keywords(folder_dir)
        for unique, sub, name in _entries(folder_dir):
            if after is not None and unique <= after:
                continue
            opened = _open_message(folder_dir, unique, sub, name)
            if opened is None:
                continue  # expunged while we were reading: not a failure
            fd, sub, name = opened
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                os.close(fd)
                continue
            handle = _OpenMessage(fd, folder_dir, unique, sub, name, st.st_size)
            try:
                yield Item(
                    folder=folder,
                    source_id=unique,
                    size=st.st_size,
                    internal_date=datetime.fromtimestamp(st.st_mtime, UTC),
                    flags=_flags(
                        split_info(name)[1] if sub == "cur" else "", keywords, extra.get(unique, ())
                    ),
                    kind="mail",
                    reader=handle.read,
                )
            finally:
                handle.close()


def _flags(letters: str, keywords: dict[str, str], extra: tuple[str, ...]) -> tuple[str, ...]:
    flags = flags_from_letters(letters, keywords)
    return tuple(sorted({*flags, *extra})) if extra else flags


def _extra_keywords(folder_dir: Path) -> dict[str, tuple[str, ...]]:
    """Keywords the embedded store kept beside ``dovecot-keywords`` (past its 26 letters)."""
    out: dict[str, tuple[str, ...]] = {}
    try:
        with open(folder_dir / "mailcrate-keywords", encoding="utf-8", errors="replace") as f:
            for line in f:
                unique, *words = line.split()
                out[unique] = tuple(words)
    except OSError:
        pass
    return out


def _open_message(folder_dir: Path, unique: str, sub: str, name: str) -> tuple[int, str, str] | None:
    """Open a listed message; if it was renamed (flag change, new -> cur) find it by its unique."""
    try:
        return os.open(folder_dir / sub / name, os.O_RDONLY | os.O_CLOEXEC), sub, name
    except FileNotFoundError:
        pass
    for other in ("cur", "new"):
        try:
            names = os.listdir(folder_dir / other)
        except FileNotFoundError:
            continue
        for candidate in names:
            if split_info(candidate)[0] == unique:
                try:
                    fd = os.open(folder_dir / other / candidate, os.O_RDONLY | os.O_CLOEXEC)
                    return fd, other, candidate
                except FileNotFoundError:
                    return None
    return None


def _open(root: str, options: OpenOptions) -> MaildirSource:
    return MaildirSource(root)


#: A Maildir on disk (mail.base.SOURCE_TYPES): its configuration is the Maildir's path.
SOURCE = SourceType("maildir", frozenset({"mail"}), str, str, _open)
