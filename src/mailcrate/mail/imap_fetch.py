"""The IMAP FETCH hot path: raw protocol reads and background folder fetchers.

Used by :class:`mailcrate.mail.imap.ImapSource`; see its module docstring for the why.

* :class:`RawImap` speaks ``UID SEARCH`` and ``UID FETCH`` directly on the socket of a logged-in
  imaplib connection (the one inside IMAPClient): one ``readline`` per response line and one
  ``read(n)`` per literal (per 1 MiB piece of a larger one: :class:`Pieces`), so a message body
  costs a few Python calls instead of IMAPClient's pure-Python response parser.  Login, TLS,
  LIST and SELECT stay with IMAPClient.
* :class:`FolderJob` is one folder being fetched in the background: a queue of items in UID order
  whose bytes are bounded by a budget (a run of bodies is only requested once its bytes fit, so a
  connection never stalls mid-response).  The consumer releases budget as it moves on.
* :class:`FetchPool` runs jobs on a bounded number of worker threads, each with its own
  connection, so the next batch (and the next folders) are in flight while the consumer zips.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import re
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from mailcrate.mail.base import SourceError

log = logging.getLogger(__name__)
T = TypeVar("T")

DROPPED = (imaplib.IMAP4.abort, OSError, EOFError)  # socket.timeout and ssl.SSLError are OSErrors

_LITERAL = re.compile(rb"\{(\d+)\+?\}\r?\n\Z")
_TOKEN = re.compile(rb'[ \t]*(?:(\()|(\))|"((?:[^"\\\r\n]|\\.)*)"|([^ \t\r\n()"]+))')
_MAX_LINE = 64 * 1024 * 1024  # a SEARCH answer for millions of UIDs still fits
#: Literals larger than this are read in pieces of this size (:class:`Pieces`).
PIECE = 1024 * 1024
_UNQUOTE = re.compile(rb"\\(.)")
_MONTHS = {m: i + 1 for i, m in enumerate(b"JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split())}


class Pieces(tuple[bytes, ...]):
    """A literal larger than :data:`PIECE`, as consecutive pieces of at most that size.

    Why not one ``bytes``: the worker process's malloc serves blocks above 2 MiB with a fresh
    ``mmap`` (``jobs.process.MALLOC_MMAP_THRESHOLD``), so every large body was faulted in page by
    page as the socket filled it and unmapped once zipped (~280,000 page faults per GiB). Pieces
    of 1 MiB come from the heap and reuse the memory the previous message freed; the zip writer
    cuts its deflate blocks at the same 1 MiB offsets, so it never joins them either."""

    __slots__ = ()

    @property
    def size(self) -> int:
        return sum(len(p) for p in self)


def pieces_of(value: bytes | Pieces) -> tuple[bytes, ...]:
    """A body's pieces: itself when it came in one."""
    return value if isinstance(value, Pieces) else (value,)


def size_of(value: bytes | Pieces) -> int:
    return value.size if isinstance(value, Pieces) else len(value)


def parse_tokens(parts: Sequence[bytes | Pieces]) -> list[Any]:
    """Nest the tokens of one response: lists for parentheses, ``None`` for NIL, bytes otherwise.

    ``parts`` alternates text and literal: text, literal, text, ..., text.
    """
    root: list[Any] = []
    stack = [root]
    for n, part in enumerate(parts):
        if n % 2:  # a literal: its bytes as they are (never copied)
            stack[-1].append(part)
            continue
        for m in _TOKEN.finditer(part.rstrip(b"\r\n")):
            opened, closed, quoted, atom = m.groups()
            if opened:
                new: list[Any] = []
                stack[-1].append(new)
                stack.append(new)
            elif closed:
                if len(stack) == 1:
                    raise imaplib.IMAP4.abort("unbalanced ')' in IMAP response")
                stack.pop()
            elif quoted is not None:
                stack[-1].append(_UNQUOTE.sub(rb"\1", quoted) if b"\\" in quoted else quoted)
            elif atom is not None:
                stack[-1].append(None if atom.upper() == b"NIL" else atom)
    return root


def parse_internaldate(value: bytes | None) -> datetime | None:
    """``"17-Jul-1996 02:44:25 -0700"`` -> an aware datetime (None when unparsable)."""
    if not value:
        return None
    try:
        day, mon, rest = value.strip().split(b"-", 2)
        year, hms, tz = rest.split()
        h, mi, s = hms.split(b":")
        off = timedelta(hours=int(tz[1:3]), minutes=int(tz[3:5]))
        return datetime(
            int(year),
            _MONTHS[mon.upper()],
            int(day),
            int(h),
            int(mi),
            int(s),
            tzinfo=timezone(-off if tz[:1] == b"-" else off),
        )
    except (ValueError, KeyError, IndexError):
        return None


def uid_set(uids: Iterable[int]) -> bytes:
    """``[1, 2, 3, 7, 9, 10]`` -> ``b"1:3,7,9:10"`` (only truly consecutive UIDs become ranges)."""
    out: list[bytes] = []
    start = prev = -2
    for u in uids:
        if u == prev + 1:
            prev = u
            continue
        if start >= 0:
            out.append(b"%d" % start if start == prev else b"%d:%d" % (start, prev))
        start = prev = u
    if start >= 0:
        out.append(b"%d" % start if start == prev else b"%d:%d" % (start, prev))
    return b",".join(out)


class RawImap:
    """``UID SEARCH``/``UID FETCH`` on the socket of a logged-in, folder-selected imaplib connection.

    Any protocol surprise raises :class:`imaplib.IMAP4.abort` (the connection is then unusable
    and must be dropped); a tagged ``NO``/``BAD`` raises :class:`imaplib.IMAP4.error`, except
    that ``UID FETCH ... NO`` returns what arrived (messages expunged meanwhile are missing).
    """

    _tags = 0
    _tag_lock = threading.Lock()

    def __init__(self, imap: imaplib.IMAP4) -> None:
        self.imap = imap
        self.file = imap.file  # type: ignore[attr-defined]

    def _tag(self) -> bytes:
        with RawImap._tag_lock:
            RawImap._tags += 1
            return b"mc%d" % RawImap._tags

    def _line(self) -> bytes:
        line = self.file.readline(_MAX_LINE)
        if not line.endswith(b"\n"):
            if len(line) >= _MAX_LINE:
                raise imaplib.IMAP4.abort("IMAP response line too long")
            raise imaplib.IMAP4.abort("connection closed by the IMAP server")
        return line

    def _response(self, line: bytes) -> list[bytes | Pieces]:
        """The text pieces and literals of the response starting with ``line``; a literal above
        :data:`PIECE` comes as :class:`Pieces`."""
        parts: list[bytes | Pieces] = []
        while (m := _LITERAL.search(line)) is not None:
            parts.append(line[: m.start()])
            n = int(m.group(1))
            parts.append(self._literal(n) if n > PIECE else self._read(n))
            line = self._line()
        parts.append(line)
        return parts

    def _read(self, n: int) -> bytes:
        data = self.file.read(n) if n else b""
        if len(data) != n:
            raise imaplib.IMAP4.abort("connection closed by the IMAP server inside a literal")
        return data

    def _literal(self, n: int) -> Pieces:
        return Pieces(self._read(min(PIECE, n - at)) for at in range(0, n, PIECE))

    def command(self, command: bytes, untagged: Callable[[list[Any]], None]) -> bytes:
        """Send ``command``; feed each parsed untagged response to ``untagged``; return the tagged
        status (``OK`` or ``NO``)."""
        tag = self._tag()
        self.imap.send(tag + b" " + command + b"\r\n")
        prefix = tag + b" "
        while True:
            line = self._line()
            if line.startswith(prefix):
                status = line[len(prefix) :].split(None, 1)[0].upper() if len(line) > len(prefix) else b""
                if status == b"OK" or status == b"NO":
                    return status
                raise imaplib.IMAP4.error(f"IMAP server answered {line.decode('ascii', 'replace').strip()!r}")
            if not line.startswith(b"* "):
                raise imaplib.IMAP4.abort("unexpected line from the IMAP server")
            parts = self._response(line)
            if len(parts) == 1 and line[2:5].upper() == b"BYE":
                raise imaplib.IMAP4.abort("IMAP server said BYE")
            untagged(parse_tokens(parts))

    def search_after(self, start: int) -> array[int]:
        """UIDs greater than ``start``, ascending (``n:*`` always includes the highest UID)."""
        found = array("Q")

        def on(resp: list[Any]) -> None:
            if len(resp) > 1 and isinstance(resp[1], bytes) and resp[1].upper() == b"SEARCH":
                found.extend(
                    u for u in (int(t) for t in resp[2:] if isinstance(t, bytes) and t.isdigit()) if u > start
                )

        if self.command(b"UID SEARCH UID %d:*" % (start + 1), on) != b"OK":
            raise imaplib.IMAP4.error("UID SEARCH was refused")
        return array("Q", sorted(found))

    def fetch(self, uids: Iterable[int], items: bytes) -> dict[int, dict[bytes, Any]]:
        """``UID FETCH`` -> {uid: {ITEM: value}} (keys upper-case; bodies as ``BODY[]``)."""
        out: dict[int, dict[bytes, Any]] = {}

        def on(resp: list[Any]) -> None:
            if len(resp) == 4 and isinstance(resp[2], bytes) and resp[2].upper() == b"FETCH":
                values = resp[3]
                if not isinstance(values, list):
                    return
                d = {
                    values[i].upper(): values[i + 1]
                    for i in range(0, len(values) - 1, 2)
                    if isinstance(values[i], bytes)
                }
                uid = d.get(b"UID")
                if uid is not None:  # a server may split one message's items over responses
                    out.setdefault(int(uid), {}).update(d)

        self.command(b"UID FETCH " + uid_set(uids) + b" " + items, on)
        return out


def body_of(values: dict[bytes, Any]) -> bytes | Pieces | None:
    """The ``BODY[]`` / ``BODY[]<n>`` value of a FETCH response, ``None`` when absent."""
    for key, value in values.items():
        if key.startswith(b"BODY[]"):
            return b"" if value is None else value if isinstance(value, bytes | Pieces) else None
    return None


# --------------------------------------------------------------------------- background jobs


class Cancelled(Exception):
    """The job was cancelled (consumer gone, source closed): stop working on it."""


@dataclass
class Entry:
    """One queued thing: an item (``item`` set), or a piece of the streamed item before it."""

    reserved: int
    item: Any = None
    uid: int = 0
    data: bytes | Pieces | None = None  # first piece (streamed items) or a later piece
    last: bool = True  # no more pieces follow
    error: BaseException | None = None
    moved_on: bool = field(default=False)  # the consumer has asked for the next item
    streaming: bool = field(default=False)  # chunks() is (or was) reading the queued pieces


class FolderJob:
    """One folder fetched in the background; a bounded queue between a worker and a consumer."""

    def __init__(self, folder: Any, raw: bytes | str, start: int, validity: int | None, budget: int) -> None:
        self.folder = folder
        self.path: tuple[str, ...] = folder.path
        self.raw = raw
        self.start = start
        self.validity = validity  # expected (from ``after=``); set by the worker on SELECT
        self.budget = budget
        self.adopted = False
        self.cond = threading.Condition()
        self.entries: deque[Entry] = deque()
        self.used = 0
        self.done = False
        self.cancelled = False
        self.error: BaseException | None = None

    # worker side
    def check(self) -> None:
        if self.cancelled:
            raise Cancelled

    def reserve(self, n: int) -> None:
        """Wait until ``n`` more bytes fit the budget (always when nothing is held)."""
        with self.cond:
            while not self.cancelled and self.used and self.used + n > self.budget:
                self.cond.wait()
            self.check()
            self.used += n

    def release(self, n: int) -> None:
        if n:
            with self.cond:
                self.used -= n
                self.cond.notify_all()

    def put(self, entry: Entry) -> None:
        with self.cond:
            self.check()
            self.entries.append(entry)
            self.cond.notify_all()

    def finish(self, error: BaseException | None = None) -> None:
        with self.cond:
            self.done = True
            self.error = error
            self.cond.notify_all()

    # consumer side
    def get(self) -> Entry | None:
        """The next entry, ``None`` at the end; raises the worker's error in its place."""
        with self.cond:
            while not self.entries and not self.done:
                self.cond.wait()
            if self.entries:
                return self.entries.popleft()
            if self.error is not None:
                raise self.error
            return None

    def get_piece(self, uid: int) -> Entry | None:
        """The next piece of the streamed item ``uid``; ``None`` if the queue holds something else."""
        with self.cond:
            while not self.entries and not self.done:
                self.cond.wait()
            if self.entries:
                head = self.entries[0]
                if head.item is None and head.uid == uid:
                    return self.entries.popleft()
                return None
            if self.error is not None:
                raise self.error
            return None

    def cancel(self) -> None:
        with self.cond:
            self.cancelled = True
            self.entries.clear()
            self.used = 0
            self.cond.notify_all()


class FetchPool:
    """At most ``size`` worker threads (more only when every worker serves a consumer), each
    owning one connection, running :class:`FolderJob`s in submission order."""

    def __init__(self, size: int, run: Callable[[Any, FolderJob], None], new_conn: Callable[[], Any]) -> None:
        self.size = size
        self._run = run
        self._new_conn = new_conn
        self._lock = threading.Condition()
        self._pending: deque[FolderJob] = deque()
        self._running: dict[threading.Thread, FolderJob | None] = {}
        self._conns: list[Any] = []
        self._closed = False

    def submit(self, job: FolderJob, *, front: bool = False) -> None:
        with self._lock:
            if self._closed:
                raise SourceError("IMAP source is closed")
            (self._pending.appendleft if front else self._pending.append)(job)
            self._lock.notify_all()
        self._spawn_if_needed(job)

    def _spawn_if_needed(self, job: FolderJob) -> None:
        with self._lock:
            if self._closed or job not in self._pending:
                return
            idle = sum(1 for j in self._running.values() if j is None)
            busy_all_adopted = all(j is not None and j.adopted for j in self._running.values())
            if idle < len(self._pending) and (
                len(self._running) < self.size or (job.adopted and busy_all_adopted and not idle)
            ):
                t = threading.Thread(target=self._worker, name="imap-fetch", daemon=True)
                self._running[t] = None
                t.start()

    def promote(self, job: FolderJob) -> None:
        """Run ``job`` next if it is still waiting for a worker."""
        with self._lock:
            if job in self._pending:
                self._pending.remove(job)
                self._pending.appendleft(job)
                self._lock.notify_all()
        self._spawn_if_needed(job)

    def cancel(self, job: FolderJob) -> None:
        job.cancel()
        with self._lock, contextlib.suppress(ValueError):
            self._pending.remove(job)

    def _worker(self) -> None:
        me = threading.current_thread()
        conn = self._new_conn()
        with self._lock:
            self._conns.append(conn)
        try:
            while True:
                with self._lock:
                    self._running[me] = None
                    while not self._closed and not self._pending:
                        if len(self._running) > self.size:  # an extra worker: leave when idle
                            return
                        self._lock.wait()
                    if self._closed:
                        return
                    job = self._pending.popleft()
                    self._running[me] = job
                try:
                    self._run(conn, job)
                    job.finish()
                except Cancelled:
                    job.finish()
                except BaseException as e:  # handed to the consumer, who raises it
                    job.finish(e if isinstance(e, SourceError) else _as_source_error(e, job))
        finally:
            with self._lock:
                self._running.pop(me, None)
                with contextlib.suppress(ValueError):
                    self._conns.remove(conn)
            conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            jobs = list(self._pending) + [j for j in self._running.values() if j is not None]
            threads = list(self._running)
            conns = list(self._conns)
            self._lock.notify_all()
        for job in jobs:
            job.cancel()
        deadline = time.monotonic() + 5.0
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()) / 2)
        for c in conns:  # still stuck in a read: cut the socket
            if any(t.is_alive() for t in threads):
                c.abort()
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))


def _as_source_error(e: BaseException, job: FolderJob) -> SourceError:
    if isinstance(e, imaplib.IMAP4.error):
        err = SourceError(f"IMAP server refused reading folder {'/'.join(job.path)!r}: {e}")
    else:
        err = SourceError(f"reading IMAP folder {'/'.join(job.path)!r} failed: {type(e).__name__}: {e}")
    err.__cause__ = e
    return err


__all__ = [
    "DROPPED",
    "Cancelled",
    "Entry",
    "FetchPool",
    "FolderJob",
    "Pieces",
    "RawImap",
    "body_of",
    "parse_internaldate",
    "parse_tokens",
    "pieces_of",
    "size_of",
    "uid_set",
]
