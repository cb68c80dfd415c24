"""An mbox file as a mail source (``mailbox import`` and ``export restore`` of an mbox).

The file is scanned once: each message's byte range, the date of its ``From `` line, its flags
(``Status``/``X-Status``) and, for a Google Takeout mbox, its folders from ``X-Gmail-Labels``.
Items are then read by range, line by line, so a large message is never whole in memory.

Message bytes are the file's, except the mbox envelope: the ``From `` separator line goes, the
blank line before the next one goes, and ``>From `` quoting (mboxrd) loses one ``>``. A ``From ``
line starts a message only at the top of the file or after a blank line.

Takeout labels (comma-separated, quoted when they hold a comma; ``/`` nests): the label names a
folder, except those Gmail uses as state: ``Opened`` (``\\Seen``), ``Unread``, ``Starred``
(``\\Flagged``), ``Important`` (keyword ``$Important``), ``Archived`` and the ``Category ...``
tabs. A message with several folder labels is in each of those folders (as Gmail's IMAP shows
it); one with none is in ``Archive`` (Gmail's "All Mail" only). Without the header every message
is in the folder the caller names.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path

from mailcrate.mail.base import CHUNK_SIZE, Folder, Item, SourceBase, SourceError, nfc

__all__ = ["MboxSource", "from_line_date", "gmail_labels"]

_FROM_QUOTED = re.compile(rb"^>+From ")
_HEADER_LIMIT = 256 * 1024
_STATUS = {"R": "\\Seen", "A": "\\Answered", "F": "\\Flagged", "D": "\\Deleted", "T": "\\Draft"}
_STATE_LABELS = {"opened", "unread", "starred", "important", "archived"}


@dataclass(frozen=True)
class _Entry:
    start: int
    end: int
    date: datetime | None
    flags: tuple[str, ...]
    folders: tuple[tuple[str, ...], ...]


def from_line_date(line: bytes) -> datetime | None:
    """The date of an mbox ``From `` line (asctime form, taken as UTC), if it has one."""
    text = " ".join(line.decode("latin-1").split())
    m = re.search(r"(\w{3} \w{3} \d{1,2} \d{1,2}:\d{2}:\d{2} \d{4})", text)
    if not m:
        return None
    try:
        return datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y").replace(tzinfo=UTC)
    except ValueError:
        return None


def gmail_labels(value: str) -> tuple[tuple[tuple[str, ...], ...], tuple[str, ...]]:
    """``(folders, flags)`` of an ``X-Gmail-Labels`` value (see the module docstring)."""
    labels = [nfc(x.strip()) for x in next(csv.reader([" ".join(value.split())]), []) if x.strip()]
    lower = {x.lower() for x in labels}
    flags = {"\\Seen"} if "opened" in lower else set()
    if "starred" in lower:
        flags.add("\\Flagged")
    if "important" in lower:
        flags.add("$Important")
    folders: list[tuple[str, ...]] = []
    for label in labels:
        if label.lower() in _STATE_LABELS or label.lower().startswith("category "):
            continue
        if label.lower() == "drafts" or label.lower() == "draft":
            flags.add("\\Draft")
        path = tuple(p for p in label.split("/") if p) or (label,)
        path = ("Inbox", *path[1:]) if path[0].lower() == "inbox" else path
        if path not in folders:
            folders.append(path)
    return tuple(folders) or (("Archive",),), tuple(sorted(flags))


def _headers(head: bytes, folder: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    headers = BytesHeaderParser(policy=compat32).parsebytes(head)
    status = str(headers.get("Status", "")) + str(headers.get("X-Status", ""))
    flags = {_STATUS[c] for c in status if c in _STATUS}
    labels = headers.get("X-Gmail-Labels")
    if labels is None:
        return tuple(sorted(flags)), (folder,)
    folders, label_flags = gmail_labels(str(labels))
    return tuple(sorted(flags | set(label_flags))), folders


class MboxSource(SourceBase):
    """The messages of one mbox file; ``folder``: where they go without ``X-Gmail-Labels``."""

    def __init__(self, path: str | Path, folder: tuple[str, ...] = ("Inbox",)) -> None:
        self.path = Path(path)
        try:
            self._entries = list(self._scan(folder))
        except OSError as exc:
            raise SourceError(f"cannot read {self.path}: {exc.strerror or exc}") from None

    def _scan(self, folder: tuple[str, ...]) -> Iterator[_Entry]:
        start = -1
        date: datetime | None = None
        head: list[bytes] = []
        in_head = False
        blank_at: int | None = None  # a blank line held back: it may be the separator
        pos = 0

        def entry(end: int) -> _Entry:
            flags, folders = _headers(b"".join(head), folder)
            return _Entry(start, end, date, flags, folders)

        with open(self.path, "rb") as f:
            for line in f:
                here, pos = pos, pos + len(line)
                if line.startswith(b"From ") and (start < 0 or blank_at is not None):
                    if start >= 0:
                        yield entry(blank_at if blank_at is not None else here)
                    start, date, head, in_head, blank_at = pos, from_line_date(line), [], True, None
                    continue
                if start < 0:
                    continue  # garbage before the first From line
                blank = line in (b"\n", b"\r\n")
                blank_at = here if blank else None
                if in_head:
                    head.append(line)
                    in_head = not blank and pos - start <= _HEADER_LIMIT
            if start >= 0:
                yield entry(blank_at if blank_at is not None else pos)

    def folders(self) -> list[Folder]:
        counts: dict[tuple[str, ...], int] = {}
        for e in self._entries:
            for f in e.folders:
                counts[f] = counts.get(f, 0) + 1
        order = sorted(counts, key=lambda p: (p[0] != "Inbox", p))
        return [Folder(p, "mail", counts[p]) for p in order]

    def items(self, folder: Folder, *, after: str | None = None) -> Iterator[Item]:
        for n, e in enumerate(self._entries):
            if folder.path not in e.folders:
                continue
            source_id = f"{n:09d}"
            if after is not None and source_id <= after:
                continue
            yield Item(
                folder=folder,
                source_id=source_id,
                size=e.end - e.start,
                internal_date=e.date,
                flags=e.flags,
                kind="mail",
                reader=lambda e=e: self._read(e),
            )

    def _read(self, e: _Entry) -> Iterator[bytes]:
        with open(self.path, "rb") as f:
            f.seek(e.start)
            pos, out, size = e.start, [], 0
            while pos < e.end:
                line = f.readline(e.end - pos)
                if not line:
                    break
                pos += len(line)
                out.append(line[1:] if _FROM_QUOTED.match(line) else line)
                size += len(line)
                if size >= CHUNK_SIZE:
                    yield b"".join(out)
                    out, size = [], 0
            if out:
                yield b"".join(out)
