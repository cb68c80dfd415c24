"""Pipelined IMAP APPEND: MULTIAPPEND (RFC 3502) batches with LITERAL+ (RFC 7888) literals.

With ``LITERAL+`` the client sends ``{n+}`` literals without waiting for a continuation, so a
whole batch of messages of one folder goes out as one ``APPEND`` command (``MULTIAPPEND``: one
round trip, and the server stores the batch atomically), and further batches are sent before the
completion of the earlier ones is read (up to ``depth`` commands in flight per connection).

This works on the socket of an already logged-in :class:`imaplib.IMAP4` (``IMAPClient._imap``)
with tags of its own; every command sent is completed before the connection is handed back, and
no mailbox may be selected meanwhile (untagged responses other than the completions are ignored).
Nothing here logs or reports credentials: the errors carry the server's response text only.
"""

from __future__ import annotations

import imaplib
import itertools
import queue
import socket
import ssl
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from imapclient.imap_utf7 import encode as utf7_encode

__all__ = [
    "AppendError",
    "AppenderPool",
    "Message",
    "PipelinedAppender",
    "Refused",
    "supports_pipelined_append",
]

_tags = itertools.count(1)
_FLUSH = "flush"
_IOV_MAX = 512  # buffers per sendmsg (Linux allows 1024)


class AppendError(Exception):
    """The connection broke, or the server ended it (its response text)."""


@dataclass
class Message:
    data: bytes
    flags: Sequence[str] = ()
    internal_date: datetime | None = None
    ref: object = None  # the caller's handle for the message (named when it is refused)


@dataclass(frozen=True)
class Refused:
    """A message the server would not store, and the server's own words."""

    message: Message
    folder: str
    text: str


@dataclass
class _Batch:
    tag: bytes
    folder: str
    messages: list[Message]
    nbytes: int

    @property
    def count(self) -> int:
        return len(self.messages)


@dataclass
class _Pending:
    folder: str
    messages: list[Message] = field(default_factory=list)
    nbytes: int = 0


def supports_pipelined_append(capabilities: Sequence[bytes | str]) -> bool:
    caps = {(c.decode() if isinstance(c, bytes) else c).upper() for c in capabilities}
    return "LITERAL+" in caps and "MULTIAPPEND" in caps


def quote_mailbox(name: str) -> bytes:
    """The mailbox name as an IMAP quoted string (modified UTF-7 for non-ASCII)."""
    raw = utf7_encode(name)
    if isinstance(raw, str):
        raw = raw.encode("ascii")
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _flag_list(flags: Sequence[str]) -> bytes:
    return b"(" + b" ".join(f.encode("ascii", "replace") for f in flags) + b")"


def _date(when: datetime | None) -> bytes:
    if when is None:
        return b""
    return imaplib.Time2Internaldate(when).encode("ascii") + b" "


class _Batcher:
    """Gathers one folder's messages into a batch until the next one would pass ``batch_bytes``
    or ``batch_messages`` (or belongs to another folder), then hands the batch to ``_submit``.
    Shared by one connection's appender and the pool that spreads batches over several."""

    batch_bytes: int
    batch_messages: int
    pending: _Pending | None

    def add(self, folder: str, message: Message) -> None:
        p = self.pending
        if p is not None and (
            p.folder != folder
            or p.nbytes + len(message.data) > self.batch_bytes
            or len(p.messages) >= self.batch_messages
        ):
            self._submit(p)
            p = None
        if p is None:
            p = self.pending = _Pending(folder)
        p.messages.append(message)
        p.nbytes += len(message.data)

    def _submit(self, p: _Pending) -> None:
        raise NotImplementedError


class PipelinedAppender(_Batcher):
    """Batches of messages per folder, sent as MULTIAPPEND commands, ``depth`` in flight.

    :meth:`add` queues a message; a folder's batch goes out when it reaches ``batch_bytes`` or
    ``batch_messages`` (or another folder's message arrives); :meth:`flush` sends the rest and
    waits for every completion.  A batch the server refuses (MULTIAPPEND stores all or nothing)
    is split in halves, sent again one command at a time, until each message it refuses is
    alone: those are listed in :attr:`refused` with the server's words, the rest are stored (after
    the batches that were in flight meanwhile, so a folder's order moves there).  A broken
    connection raises :class:`AppendError` (from the next :meth:`add` or :meth:`flush`).  With ``threaded``, a sender thread does the socket work, so
    the caller reads and checks the next batch while the server takes this one; at most
    ``queued`` finished batches wait for it (memory: about ``(queued + 2) * batch_bytes``).
    Call :meth:`close` when done (it abandons whatever was not sent yet).
    """

    def __init__(
        self,
        imap: imaplib.IMAP4,
        *,
        batch_bytes: int = 8 << 20,
        batch_messages: int = 1000,
        depth: int = 4,
        threaded: bool = True,
        queued: int = 2,
    ) -> None:
        self.imap = imap
        self.batch_bytes = batch_bytes
        self.batch_messages = batch_messages
        self.depth = max(1, depth)
        self.in_flight: deque[_Batch] = deque()
        self.pending: _Pending | None = None
        self.appended = 0
        self.refused: list[Refused] = []
        self._to_split: list[tuple[_Batch, str]] = []
        self.error: AppendError | None = None
        self._closing = False
        self._queue: queue.Queue[_Pending | str | None] | None = None
        self._thread: threading.Thread | None = None
        if threaded:
            self._queue = queue.Queue(maxsize=max(1, queued))
            self._thread = threading.Thread(target=self._run, name="imap-append", daemon=True)
            self._thread.start()

    # -------------------------------------------------------------------------- queueing

    def add(self, folder: str, message: Message) -> None:
        self._check()
        super().add(folder, message)

    def flush(self) -> None:
        if self.pending is not None and self.pending.messages:
            self._submit(self.pending)
        self.pending = None
        if self._queue is None:
            self._finish()
        else:
            self._queue.put(_FLUSH)
            self._queue.join()
        self._check()

    def close(self) -> None:
        """Stop the sender thread; batches not sent yet are dropped (call :meth:`flush` first)."""
        self._closing = True
        if self._thread is not None and self._queue is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=60)

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    def _submit(self, p: _Pending) -> None:
        self.pending = None
        if self._queue is None:
            self._send(p)
        else:
            self._queue.put(p)

    def _run(self) -> None:
        assert self._queue is not None
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                if self.error is not None or self._closing:
                    continue
                if job == _FLUSH:
                    self._finish()
                elif isinstance(job, _Pending):
                    self._send(job)
            except AppendError as exc:
                self.error = exc
            except BaseException as exc:  # handed to the caller's thread
                self.error = AppendError(f"append failed: {type(exc).__name__}: {exc}")
            finally:
                self._queue.task_done()

    # -------------------------------------------------------------------------- wire

    def _finish(self) -> None:
        """Every completion read; every refused batch split until its refused messages are
        alone (each half is one command, waited for: a refusal is rare, its cost small)."""
        while self.in_flight:
            self._complete()
        while self._to_split:
            batch, text = self._to_split.pop()
            if batch.count == 1:
                self.refused.append(Refused(batch.messages[0], batch.folder, text))
                continue
            half = batch.count // 2
            for part in (batch.messages[:half], batch.messages[half:]):
                self._send(_Pending(batch.folder, part, sum(len(m.data) for m in part)))
                self._complete()

    def _send(self, p: _Pending) -> None:
        while len(self.in_flight) >= self.depth:
            self._complete()
        tag = b"MCA%d" % next(_tags)
        parts: list[bytes] = [tag + b" APPEND " + quote_mailbox(p.folder)]
        for m in p.messages:
            parts += [b" %s %s{%d+}\r\n" % (_flag_list(m.flags), _date(m.internal_date), len(m.data)), m.data]
        parts.append(b"\r\n")
        try:
            _send_parts(self.imap.sock, parts)
        except OSError as exc:
            raise AppendError(
                f"connection lost while sending to {p.folder!r}: {exc.strerror or exc}"
            ) from None
        self.in_flight.append(_Batch(tag, p.folder, p.messages, p.nbytes))

    def _line(self) -> bytes:
        try:
            line = self.imap.readline()
        except (OSError, imaplib.IMAP4.abort) as exc:
            raise AppendError(f"connection lost while appending: {exc}") from None
        if not line:
            raise AppendError("connection closed by the server while appending")
        return line

    def _complete(self) -> None:
        batch = self.in_flight[0]
        while True:
            line = self._line()
            if line.startswith(b"* BYE"):
                raise AppendError(f"server closed the connection: {_text(line)}")
            if line.startswith(b"+"):
                # a continuation: the server did not take LITERAL+ after all
                raise AppendError("server asked for a literal continuation (no LITERAL+)")
            tag, _, rest = line.partition(b" ")
            if tag == batch.tag:
                break
            # untagged (EXISTS, ...) or a tag of ours that is further back: ignore/unexpected
            if tag.startswith(b"MCA") and any(b.tag == tag for b in self.in_flight):
                raise AppendError(f"out-of-order completion {_text(line)}")
        self.in_flight.popleft()
        status = rest.split(b" ", 1)[0].upper()
        if status != b"OK":  # NO or BAD: nothing of the batch was stored
            self._to_split.append((batch, _text(rest.split(b" ", 1)[1] if b" " in rest else rest)))
            return
        self.appended += batch.count


def _send_parts(sock: socket.socket, parts: list[bytes]) -> None:
    """Send the pieces in order without joining them (``sendmsg``: the kernel gathers them,
    where a join copied every batch once more: ~0.25 s of CPU per GiB); TLS sockets have no
    ``sendmsg``, they get the join."""
    if isinstance(sock, ssl.SSLSocket) or not hasattr(sock, "sendmsg"):
        sock.sendall(b"".join(parts))
        return
    views = [memoryview(p) for p in parts]
    i = 0
    while i < len(views):
        sent = sock.sendmsg(views[i : i + _IOV_MAX])
        while sent and i < len(views):  # drop what went out; a partial send resumes mid-piece
            n = views[i].nbytes
            if sent < n:
                views[i] = views[i][sent:]
                break
            sent -= n
            i += 1
        while i < len(views) and not views[i].nbytes:
            i += 1


def _text(line: bytes) -> str:
    return line.rstrip(b"\r\n").decode("utf-8", "replace")[:300]


class AppenderPool(_Batcher):
    """:class:`PipelinedAppender` over several connections: each full batch goes to the
    connection with the fewest batches waiting (the server stores them in parallel; the order of
    the messages within a folder is then the order of the batches' completions)."""

    def __init__(
        self,
        imaps: Sequence[imaplib.IMAP4],
        *,
        batch_bytes: int = 8 << 20,
        batch_messages: int = 1000,
        depth: int = 4,
        queued: int = 2,
    ) -> None:
        self.appenders = [
            PipelinedAppender(
                m, batch_bytes=batch_bytes, batch_messages=batch_messages, depth=depth, queued=queued
            )
            for m in imaps
        ]
        self.batch_bytes = batch_bytes
        self.batch_messages = batch_messages
        self.pending: _Pending | None = None
        self._turn = 0

    @property
    def appended(self) -> int:
        return sum(a.appended for a in self.appenders)

    def take_refused(self) -> list[Refused]:
        """The messages refused since the last call (call after :meth:`flush`)."""
        out = [r for a in self.appenders for r in a.refused]
        for a in self.appenders:
            a.refused = []
        return out

    def _submit(self, p: _Pending) -> None:
        self.pending = None
        for a in self.appenders:
            a._check()
        n = len(self.appenders)
        order = [self.appenders[(self._turn + i) % n] for i in range(n)]
        self._turn += 1
        target = min(order, key=lambda a: a._queue.qsize() if a._queue is not None else 0)
        target._submit(p)

    def flush(self) -> None:
        if self.pending is not None and self.pending.messages:
            self._submit(self.pending)
        self.pending = None
        error: AppendError | None = None
        for a in self.appenders:
            try:
                a.flush()
            except AppendError as exc:
                error = error or exc
        if error is not None:
            raise error

    def close(self) -> None:
        for a in self.appenders:
            a.close()
