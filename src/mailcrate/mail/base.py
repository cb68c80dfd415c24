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

import importlib
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
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
    "OpenOptions",
    "SourceError",
    "SourceSpec",
    "SourceType",
    "TransientSourceError",
    "config_type",
    "nfc",
    "open_source",
    "source_type",
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

    def pieces(self) -> Iterator[bytes]:
        """Yield the raw bytes as the source read them, without cutting them to
        :data:`CHUNK_SIZE`: slicing ``bytes`` copies, and an IMAP body (up to 32 MiB, already in
        memory) would be copied once more in 1 MiB pieces. For consumers that cut views of
        their own (the export's zip writer); the pieces are as bounded as the source's reads.
        """
        return self.reader()

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
class OpenOptions:
    """How a source is opened: ``owner`` is the mailbox owner's address (``From`` of calendar
    items); ``quick`` asks a network source to give up after one retry (a check, not an export)."""

    owner: str | None = None
    quick: bool = False


@dataclass(frozen=True)
class SourceType:
    """One kind of place a mailbox can live, as its module registers it (see :data:`SOURCE_TYPES`).

    ``holds``: the kinds of item it reads (at most one mail and one calendar source per spec).
    ``load``/``dump``: its configuration from/to the JSON value stored (sealed) with the user.
    ``open``: the source itself."""

    name: str
    holds: frozenset[ItemKind]
    load: Callable[[Any], Any]
    dump: Callable[[Any], Any]
    open: Callable[[Any, OpenOptions], MailboxSource]


def config_type(cls: type) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """``load``/``dump`` for a configuration dataclass: every field round-trips, and an unknown
    key is refused so a typo is not silently lost."""

    def load(data: Any) -> Any:
        if isinstance(data, cls):
            return data
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
        return cls(**data)

    return load, asdict


#: Every source type by the key it has in a spec, as ``module:attribute`` of its
#: :class:`SourceType`: loaded on use (Radicale's plugin loading), so this interface imports no
#: concrete source and a new source is its own module plus one line here. Mail sources come
#: before calendar sources (the order a combined source lists them in).
SOURCE_TYPES: dict[str, str] = {
    "embedded": "mailcrate.mail.store:SOURCE",
    "imap": "mailcrate.mail.imap:SOURCE",
    "maildir": "mailcrate.mail.maildir:SOURCE",
    "caldav": "mailcrate.mail.caldav_source:SOURCE",
}


def source_type(name: str) -> SourceType:
    """The registered :class:`SourceType` called ``name``."""
    where = SOURCE_TYPES.get(name)
    if where is None:
        raise ValueError(f"unknown source type {name!r} (known: {', '.join(SOURCE_TYPES)})")
    module, _, attribute = where.partition(":")
    loaded = getattr(importlib.import_module(module), attribute)
    assert isinstance(loaded, SourceType) and loaded.name == name, where
    return loaded


class SourceSpec:
    """Where one user's mailbox lives; JSON-serialisable with :meth:`to_dict`/:meth:`from_dict`.

    ``SourceSpec(imap=ImapSpec(...), caldav=CalDavSpec(...), owner=...)``: one configuration per
    registered source type used (its key in :data:`SOURCE_TYPES`), at most one that holds mail
    and one that holds calendars (the embedded store holds both); a CalDAV-only spec exports
    calendars only. ``spec.imap`` reads a type's configuration (None when absent). ``owner`` is
    the mailbox owner's address, used as ``From`` of calendar items. The dict holds passwords:
    encrypt it at rest.
    """

    __slots__ = ("_parts", "owner")

    def __init__(self, *, owner: str | None = None, **parts: Any) -> None:
        loaded: dict[str, Any] = {}
        holders: dict[str, str] = {}
        for name in SOURCE_TYPES:  # the registry's order, whatever order they were given in
            value = parts.pop(name, None)
            if value is None:
                continue
            kind = source_type(name)
            for held in sorted(kind.holds):
                if held in holders:
                    raise ValueError(
                        f"a source spec takes one {held} source: {holders[held]} and {name} both hold {held}"
                    )
                holders[held] = name
            loaded[name] = kind.load(value)
        if parts:
            raise ValueError(f"unknown source spec keys: {sorted(parts)}")
        if not loaded:
            raise ValueError(f"a source spec needs one of: {', '.join(SOURCE_TYPES)}")
        object.__setattr__(self, "_parts", loaded)
        object.__setattr__(self, "owner", owner)

    def __getattr__(self, name: str) -> Any:
        if name in SOURCE_TYPES:
            return self._parts.get(name)
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a SourceSpec is immutable; use with_owner()")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SourceSpec) and (self._parts, self.owner) == (other._parts, other.owner)

    def __hash__(self) -> int:
        return hash((tuple(self._parts), self.owner))

    def __repr__(self) -> str:
        return f"SourceSpec({self.describe()!r})"

    @property
    def types(self) -> tuple[str, ...]:
        """The source types this spec uses, in the registry's order."""
        return tuple(self._parts)

    def with_owner(self, owner: str | None) -> SourceSpec:
        return SourceSpec(owner=owner, **self._parts)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (includes passwords)."""
        out = {name: source_type(name).dump(value) for name, value in self._parts.items()}
        if self.owner is not None:
            out["owner"] = self.owner
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SourceSpec:
        """Inverse of :meth:`to_dict`; unknown keys are rejected so typos are not silently lost."""
        data = dict(data)
        return cls(owner=data.pop("owner", None), **data)

    def describe(self) -> dict[str, Any]:
        """The spec without secrets, for ``mailbox show`` and logs."""
        out = self.to_dict()
        for key, value in out.items():
            if isinstance(value, dict):
                out[key] = {k: v for k, v in value.items() if k != "password"}
        return out


def open_source(spec: SourceSpec, *, quick: bool = False) -> MailboxSource:
    """Open the source(s) a spec describes; mail and calendar sources are combined.

    ``quick``: network sources give up after one retry (``mailbox bind`` checks a binding)."""
    options = OpenOptions(owner=spec.owner, quick=quick)
    parts: list[MailboxSource] = []
    try:
        for name in spec.types:
            parts.append(source_type(name).open(getattr(spec, name), options))
    except BaseException:
        for part in parts:
            part.close()
        raise
    if len(parts) == 1:
        return parts[0]
    from mailcrate.mail.composite import CompositeSource  # the combiner, not a source of its own

    return CompositeSource(parts)
