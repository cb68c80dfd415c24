"""The source interface the export pipeline consumes.

Every place a mailbox can live (the embedded store, an IMAP server, a CalDAV server, a Maildir
on disk, or a mix of them) is read through one small contract, so the export pipeline never
knows where the mail comes from:

``Folder(path, kind, count)``
    ``path`` holds the folder's components as the user sees them: Unicode, NFC, IMAP modified
    UTF-7 already decoded, hierarchy delimiter already split off (a component may contain any
    character, even ``/`` or ``.``; making it safe for a zip is the exporter's job).  The IMAP
    ``INBOX`` and the Maildir root are always ``("Inbox",)``.  ``kind`` is ``"mail"`` or
    ``"calendar"`` (a calendar's path is its one-component display name).  ``count`` is known up
    front so progress can be computed; it is a snapshot - an export is not a point-in-time copy.

``Item(folder, source_id, size, internal_date, flags, kind)``
    ``source_id`` is stable within its folder and orders the folder's items (``items(after=)``
    resumes after it).  ``size`` is the size the source reports; the bytes from ``chunks()`` are
    authoritative.  ``flags`` are IMAP-style (``\\Seen``, ``\\Flagged``, keywords) without
    ``\\Recent``.  ``chunks()`` yields the raw RFC 5322 bytes exactly as stored, in bounded pieces
    (at most :data:`CHUNK_SIZE`), so a 50 MB message is never wholly in memory.  Calendar items are
    MIME messages built by :mod:`mailcrate.mail.calendar_mime`.

    Read an item's ``chunks()`` before asking the iterator for the next item: network and Maildir
    sources may release what backs the item (the selected IMAP folder, an open file) when the
    iterator moves on.  ``chunks()`` may be called again (it starts over).

``MailboxSource``
    ``folders()`` lists every exportable folder with counts; ``items(folder, after=None)`` streams
    its items in a stable order; ``close()`` releases connections.  Sources are context managers.

Errors: :class:`SourceError` means the mailbox cannot be read (bad credentials, host unreachable
after retries, UIDVALIDITY changed under a resume) and fails the job; :class:`TransientSourceError`
is raised for a failure that retrying later may fix.  Neither ever carries a password.
Content problems (malformed MIME, NUL bytes, a message deleted while reading) are never errors.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, Protocol, Self, runtime_checkable

__all__ = [
    "CHUNK_SIZE",
    "CalDavSpec",
    "Folder",
    "ImapSpec",
    "Item",
    "ItemKind",
    "MailboxSource",
    "SourceError",
    "SourceSpec",
    "TransientSourceError",
    "nfc",
    "open_source",
]

ItemKind = Literal["mail", "calendar"]

CHUNK_SIZE = 1024 * 1024
"""Upper bound of one piece yielded by :meth:`Item.chunks`."""


class SourceError(Exception):
    """The mailbox cannot be read (permanent). Message text never contains secrets."""


class TransientSourceError(SourceError):
    """A failure that retrying later may fix (server busy, connection dropped)."""


def nfc(name: str) -> str:
    """Folder names are compared and exported in NFC, whatever form the server used."""
    return unicodedata.normalize("NFC", name)


@dataclass(frozen=True)
class Folder:
    """One folder (mail) or calendar, with its item count at listing time."""

    path: tuple[str, ...]
    kind: ItemKind
    count: int


def _no_reader() -> Iterator[bytes]:
    raise SourceError("item has no content reader")


@dataclass(frozen=True)
class Item:
    """One message or calendar item; ``chunks()`` streams its raw bytes."""

    folder: Folder
    source_id: str
    size: int
    internal_date: datetime | None
    flags: tuple[str, ...]
    kind: ItemKind
    reader: Callable[[], Iterator[bytes]] = field(default=_no_reader, repr=False, compare=False)

    def chunks(self) -> Iterator[bytes]:
        """Yield the raw bytes in pieces of at most :data:`CHUNK_SIZE` bytes."""
        for chunk in self.reader():
            for start in range(0, len(chunk), CHUNK_SIZE):
                yield chunk[start : start + CHUNK_SIZE]

    def read_all(self) -> bytes:
        """Whole content; for tests and small items only (never on the export path)."""
        return b"".join(self.chunks())


@runtime_checkable
class MailboxSource(Protocol):
    """What the export pipeline reads a mailbox through (see the module docstring)."""

    def folders(self) -> list[Folder]: ...

    def items(self, folder: Folder, *, after: str | None = None) -> Iterator[Item]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class SourceBase:
    """Context-manager plumbing shared by the concrete sources."""

    def close(self) -> None:
        """Release connections; the default has nothing to release."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class ImapSpec:
    """An IMAP account.

    ``url`` is ``imap://host[:port]`` (plain, or STARTTLS when ``starttls``) or
    ``imaps://host[:port]`` (implicit TLS).  With ``master_user`` set, ``password`` is the master
    user's password and the login is ``user<master_separator>master`` (``auth="login"``, Dovecot
    style ``alice*admin``) or SASL PLAIN with authzid=user, authcid=master (``auth="plain"``).
    Certificates are always checked unless ``verify`` is false; ``ca_file`` trusts an extra CA.
    """

    url: str
    user: str
    password: str = field(repr=False)
    master_user: str | None = None
    master_separator: str = "*"
    auth: Literal["login", "plain"] = "login"
    starttls: bool = False
    ca_file: str | None = None
    verify: bool = True
    timeout: float = 60.0


@dataclass(frozen=True)
class CalDavSpec:
    """A CalDAV account: every calendar of the user's principal is exported."""

    url: str
    user: str
    password: str = field(repr=False)
    ca_file: str | None = None
    verify: bool = True


@dataclass(frozen=True)
class SourceSpec:
    """Where one user's mailbox lives; JSON-serialisable with :meth:`to_dict`/:meth:`from_dict`.

    Exactly one mail source (``embedded`` root path, ``imap``, or ``maildir`` path) and optionally
    ``caldav`` for calendars; ``embedded`` already holds calendars, so it cannot be combined with
    ``caldav``.  A CalDAV-only spec exports calendars only.  ``owner`` is the mailbox owner's
    address, used as ``From`` of calendar items.  The dict holds passwords: encrypt it at rest.
    """

    embedded: str | None = None
    imap: ImapSpec | None = None
    maildir: str | None = None
    caldav: CalDavSpec | None = None
    owner: str | None = None

    def __post_init__(self) -> None:
        mail = [x for x in (self.embedded, self.imap, self.maildir) if x is not None]
        if len(mail) > 1:
            raise ValueError("a source spec takes at most one of embedded, imap, maildir")
        if not mail and self.caldav is None:
            raise ValueError("a source spec needs embedded, imap, maildir or caldav")
        if self.embedded is not None and self.caldav is not None:
            raise ValueError("the embedded store holds its own calendars; caldav cannot be added")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (includes passwords)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SourceSpec:
        """Inverse of :meth:`to_dict`; unknown keys are rejected so typos are not silently lost."""
        known = {"embedded", "imap", "maildir", "caldav", "owner"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown source spec keys: {sorted(unknown)}")
        return cls(
            embedded=data.get("embedded"),
            imap=ImapSpec(**data["imap"]) if data.get("imap") else None,
            maildir=data.get("maildir"),
            caldav=CalDavSpec(**data["caldav"]) if data.get("caldav") else None,
            owner=data.get("owner"),
        )

    def describe(self) -> dict[str, Any]:
        """The spec without secrets, for ``mailbox show`` and logs."""
        out = self.to_dict()
        for key in ("imap", "caldav"):
            if key in out:
                out[key] = {k: v for k, v in out[key].items() if k != "password"}
        return out


def open_source(spec: SourceSpec) -> MailboxSource:
    """Open the source(s) a spec describes; mail and calendar sources are combined."""
    # Imported here so that importing the interface does not pull network libraries in.
    from mailcrate.mail.composite import CompositeSource

    parts: list[MailboxSource] = []
    if spec.embedded is not None:
        from mailcrate.mail.store import EmbeddedStore

        parts.append(EmbeddedStore(spec.embedded, owner=spec.owner))
    if spec.maildir is not None:
        from mailcrate.mail.maildir import MaildirSource

        parts.append(MaildirSource(spec.maildir))
    if spec.imap is not None:
        from mailcrate.mail.imap import ImapSource

        parts.append(ImapSource(spec.imap))
    if spec.caldav is not None:
        from mailcrate.mail.caldav_source import CalDavSource

        try:
            parts.append(CalDavSource(spec.caldav, owner=spec.owner or spec.caldav.user))
        except BaseException:
            for p in parts:
                p.close()
            raise
    return parts[0] if len(parts) == 1 else CompositeSource(parts)
