"""An IMAP mailbox as a source (imapclient).

Why it is shaped this way:

* ``BODY.PEEK[]`` and read-only ``SELECT`` so an export never sets ``\\Seen``.
* Reading is pipelined (:mod:`mailcrate.mail.imap_fetch`): ``items(folder)`` hands the folder to
  a background worker with its own connection, which fetches metadata in windows of
  :attr:`ImapSource.batch_uids` UIDs and bodies in runs of consecutive UIDs of at most
  :attr:`ImapSource.batch_bytes`, so the next run is in flight while the consumer zips the current
  one (Dovecot serves ~250-440 MB/s to one client that way, ~40 MB/s one message per round trip).
  Fetched-but-unread bytes per folder are bounded by :attr:`ImapSource.prefetch_bytes`.
* Messages up to :attr:`ImapSource.whole_limit` come whole in one FETCH; larger ones as partial
  fetches (``BODY.PEEK[]<offset.length>``) of :attr:`ImapSource.partial_size`, queued within the
  same budget, so a 50 MB message is never wholly in memory.
* Several folders at once: while the consumer reads one folder, the next non-empty folders of the
  listing are prefetched on up to :attr:`ImapSource.connections` - 1 other connections (bounded, and
  each within its budget).  Each folder's items still come in UID order.
* Several sources open in one process (an export worker running several jobs): each folder job
  started meanwhile takes :attr:`ImapSource.shared_bounds` and prefetches
  :attr:`ImapSource.shared_ahead` folder(s) ahead; a source alone keeps the full bounds.
* The FETCH hot path reads the socket directly (one ``read(n)`` per body, per 1 MiB above that, see
  :class:`~mailcrate.mail.imap_fetch.RawImap`); IMAPClient's pure-Python response parser cost more
  than Dovecot's sending.  Login, TLS, LIST, STATUS and SELECT stay with IMAPClient.
* ``source_id`` is ``"<UIDVALIDITY>:<UID>"``.  If a connection drops, its worker reconnects
  (bounded retries with back-off), reselects the folder, checks UIDVALIDITY and repeats the
  command that failed: every fetch is by UID and nothing is queued before its FETCH completed, so
  there are no duplicates and no gaps.  A changed UIDVALIDITY makes resuming impossible and is a
  :class:`SourceError`.
* Login failures and certificate errors are permanent (no retries).  Error texts name the user
  and host, never the password.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

from imapclient import IMAPClient, imap_utf7
from imapclient.exceptions import LoginError

from mailcrate.mail.base import (
    Folder,
    ImapSpec,
    Item,
    OpenOptions,
    SourceBase,
    SourceError,
    SourceType,
    config_type,
    nfc,
)
from mailcrate.mail.imap_fetch import (
    DROPPED,
    Entry,
    FetchPool,
    FolderJob,
    Pieces,
    RawImap,
    body_of,
    parse_internaldate,
    pieces_of,
    size_of,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

_DROPPED = DROPPED


def _decode_name(raw: bytes | str) -> str:
    if isinstance(raw, str):
        return nfc(raw)
    if raw.isascii():
        try:
            return nfc(imap_utf7.decode(raw))
        except Exception:  # not modified UTF-7: keep it literally
            return raw.decode("ascii")
    return nfc(raw.decode("utf-8", "replace"))  # servers with UTF8=ACCEPT send raw UTF-8


def ssl_context(ca_file: str | None, verify: bool) -> ssl.SSLContext:
    """System trust store plus an optional extra CA; ``verify=False`` is an explicit opt-out."""
    ctx = ssl.create_default_context()
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class ImapSource(SourceBase):
    """Mail folders of one IMAP account; see the module docstring."""

    batch_uids = 500
    """UIDs per metadata FETCH (Dovecot: ranges of 100-500 UIDs serve 250-440 MB/s)."""
    batch_bytes = 4 * 1024 * 1024
    """At most this many bytes of bodies per body FETCH (a run of consecutive UIDs)."""
    whole_limit = 32 * 1024 * 1024
    """Messages up to this size are fetched whole, in one round trip; larger ones in pieces."""
    partial_size = 8 * 1024 * 1024
    """Piece size of the partial fetches of messages above :attr:`whole_limit`."""
    prefetch_bytes = 16 * 1024 * 1024
    """Budget of fetched-but-not-consumed bytes per folder being fetched (one message above
    it is still fetched when nothing else is held)."""
    connections = 3
    """Fetch connections (worker threads): the folder being read plus prefetches of the next ones."""
    shared_bounds = {"whole_limit": 8 << 20, "partial_size": 4 << 20, "prefetch_bytes": 8 << 20}
    """What every source takes instead (at most) while another is open in this process
    (several exports in one worker process; see :meth:`_bound`). Alone, a 27 MiB message fetched whole and 16 MiB per
    folder keep one export fast; two or four at once held several such messages and prefetches
    (BENCHMARKS.md, "Tenth session")."""
    shared_ahead = 1
    """Folders prefetched ahead (of ``connections - 1``) while other sources are open."""
    _open = 0  # sources open in this process
    _open_lock = threading.Lock()

    def __init__(self, spec: ImapSpec, *, max_retries: int = 5, retry_delay: float = 0.2) -> None:
        self.spec = spec
        url = urlsplit(spec.url)
        if url.scheme not in ("imap", "imaps") or not url.hostname:
            raise SourceError("IMAP url must be imap://host[:port] or imaps://host[:port]")
        self.host = url.hostname
        self.tls = url.scheme == "imaps"
        self.port = url.port or (993 if self.tls else 143)
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self._client: IMAPClient | None = None
        self._raw_names: dict[tuple[str, ...], bytes | str] = {}
        self._selected: tuple[bytes | str, int] | None = None  # (raw name, UIDVALIDITY)
        self._order: list[Folder] = []
        self._lock = threading.Lock()
        self._ssl: ssl.SSLContext | None = None
        self._active: dict[tuple[str, ...], FolderJob] = {}  # folders whose items() is running
        self._ahead: dict[tuple[str, ...], FolderJob] = {}  # prefetches of folders to come
        with ImapSource._open_lock:
            if ImapSource._open:
                for name, bound in self.shared_bounds.items():
                    setattr(self, name, min(getattr(self, name), bound))
            ImapSource._open += 1
        self._counted = True
        self._pool = FetchPool(self.connections, self._run_job, lambda: _WorkerConn(self))
        try:
            self._retry(lambda c: None)  # connect now: bad credentials fail at open time
        except BaseException:
            self.close()
            raise

    def _bound(self, name: str) -> int:
        """``name``'s bound now: the shared one while another source is open in the process.
        Each folder job (and each window of its fetches) takes it when it starts, so a source
        opened alone (the first export of a migrate run) shrinks once others open beside it,
        instead of keeping 16 MiB per folder and whole 32 MiB messages for its whole run."""
        value: int = getattr(self, name)
        if ImapSource._open > 1 and name in self.shared_bounds:
            value = min(value, self.shared_bounds[name])
        return value

    # ------------------------------------------------------------------ connection
    def _where(self) -> str:
        return f"{self.spec.user}@{self.host}:{self.port}"

    def _ssl_context(self) -> ssl.SSLContext | None:
        """One context per source, and none for plain IMAP (loading the system trust store
        costs ~30 ms, once per connection otherwise)."""
        if not (self.tls or self.spec.starttls):
            return None
        with self._lock:
            if self._ssl is None:
                self._ssl = ssl_context(self.spec.ca_file, self.spec.verify)
            return self._ssl

    def _connect(self) -> IMAPClient:
        spec = self.spec
        ctx = self._ssl_context()
        try:
            client = IMAPClient(self.host, self.port, ssl=self.tls, ssl_context=ctx, timeout=spec.timeout)
        except ssl.SSLCertVerificationError as e:
            raise SourceError(
                f"IMAP TLS certificate not trusted for {self.host}: {e.verify_message}"
            ) from None
        try:
            client.folder_encode = False  # keep raw names: decode ourselves, select byte-exact
            client.normalise_times = False  # timezone-aware INTERNALDATE
            if spec.starttls and not self.tls:
                client.starttls(ctx)
            if spec.auth == "plain":
                identity = spec.master_user or spec.user
                authz = spec.user if spec.master_user else None
                client.plain_login(identity, spec.password, authorization_identity=authz)
            else:
                login = (
                    f"{spec.user}{spec.master_separator}{spec.master_user}" if spec.master_user else spec.user
                )
                client.login(login, spec.password)
        except LoginError:
            _quiet_close(client)
            raise SourceError(f"IMAP authentication failed for {self._where()}") from None
        except ssl.SSLCertVerificationError as e:
            _quiet_close(client)
            raise SourceError(
                f"IMAP TLS certificate not trusted for {self.host}: {e.verify_message}"
            ) from None
        except BaseException:
            _quiet_close(client)
            raise
        return client

    def _reconnect(self) -> IMAPClient:
        client = self._connect()
        self._client = client
        if self._selected is not None:
            raw, validity = self._selected
            info = client.select_folder(raw, readonly=True)
            if int(info[b"UIDVALIDITY"]) != validity:
                raise SourceError(f"UIDVALIDITY of folder {_decode_name(raw)!r} changed; cannot resume")
        return client

    def _drop(self) -> None:
        if self._client is not None:
            _quiet_close(self._client)
            self._client = None

    def _retry(self, op: Callable[[IMAPClient], T]) -> T:
        """Run ``op`` on a live, logged-in connection with the current folder selected;
        reconnect and repeat it after a dropped connection (it must be idempotent)."""
        attempt = 0
        while True:
            try:
                client = self._client if self._client is not None else self._reconnect()
                return op(client)
            except SourceError:
                self._drop()
                raise
            except _DROPPED as e:
                self._drop()
                attempt += 1
                if attempt > self.max_retries:
                    raise SourceError(
                        f"IMAP server {self.host}:{self.port} unreachable after {self.max_retries} retries "
                        f"({type(e).__name__})"
                    ) from None
                log.warning("IMAP connection to %s lost (%s); reconnecting", self._where(), type(e).__name__)
                time.sleep(min(self.retry_delay * 2 ** (attempt - 1), 5.0))

    def close(self) -> None:
        with ImapSource._open_lock:
            if self._counted:
                self._counted = False
                ImapSource._open -= 1
        self._pool.close()
        with self._lock:
            self._active.clear()
            self._ahead.clear()
        if self._client is not None:
            with contextlib.suppress(Exception):  # closing a dead connection is not an error
                self._client.logout()
            self._drop()

    # ------------------------------------------------------------------ folders
    def folders(self) -> list[Folder]:
        listing = self._retry(lambda c: c.list_folders())
        result: list[Folder] = []
        self._raw_names.clear()
        for flags, delim, raw in listing:
            lowered = {f.lower() if isinstance(f, bytes) else str(f).lower().encode() for f in flags}
            if b"\\noselect" in lowered or b"\\nonexistent" in lowered:
                continue
            name = _decode_name(raw)
            sep = delim.decode() if isinstance(delim, bytes) else delim
            path = tuple(name.split(sep)) if sep else (name,)
            if path[0].upper() == "INBOX":
                path = ("Inbox", *path[1:])
            self._raw_names[path] = raw
            try:
                status = self._retry(lambda c, r=raw: c.folder_status(r, [b"MESSAGES"]))
                count = int(status[b"MESSAGES"])
            except imaplib.IMAP4.error:
                count = 0
            result.append(Folder(path, "mail", count))
        result.sort(key=lambda f: (f.path[0] != "Inbox", f.path))
        self._order = result
        return result

    # ------------------------------------------------------------------ items
    def items(self, folder: Folder, *, after: str | None = None) -> Iterator[Item]:
        job = self._job_for(folder, after)
        try:
            while True:
                entry = job.get()
                if entry is None:
                    return
                if entry.item is None:  # a piece of a streamed item the consumer moved past
                    job.release(entry.reserved)
                    continue
                yield entry.item
                entry.moved_on = True
                entry.data = None
                job.release(entry.reserved)
        finally:
            self._pool.cancel(job)
            with self._lock:
                if self._active.get(folder.path) is job:
                    del self._active[folder.path]

    def _job_for(self, folder: Folder, after: str | None) -> FolderJob:
        """The job reading ``folder``: adopt its prefetch, or start one ahead of all others."""
        if not self._raw_names:
            self.folders()
        raw = self._raw_names.get(folder.path)
        if raw is None:
            raise SourceError(f"no such IMAP folder {folder.path!r}")
        start, validity = 0, None
        if after is not None:
            v, _, u = after.partition(":")
            start, validity = int(u), int(v)
        with self._lock:
            job = self._ahead.pop(folder.path, None)
            if job is not None and (after is not None or job.cancelled):
                self._pool.cancel(job)
                job = None
            if job is None:
                job = FolderJob(folder, raw, start, validity, self._bound("prefetch_bytes"))
                job.adopted = True
                self._pool.submit(job, front=True)
            else:
                job.adopted = True
                self._pool.promote(job)
            self._active[folder.path] = job
            self._schedule_ahead(folder.path)
        return job

    def _schedule_ahead(self, path: tuple[str, ...]) -> None:
        """Prefetch the next non-empty folders of the listing on the other connections; drop
        prefetches the consumer has passed (it reads folders in listing order, or it skipped)."""
        paths = [f.path for f in self._order]
        at = paths.index(path) if path in paths else len(paths)
        ahead = [f for f in self._order[at + 1 :] if f.count and f.path not in self._active][
            : max(
                0,
                self.connections - 1
                if ImapSource._open <= 1
                else min(self.shared_ahead, self.connections - 1),
            )
        ]
        wanted = {f.path for f in ahead}
        for p in list(self._ahead):
            if p not in wanted:
                self._pool.cancel(self._ahead.pop(p))
        for f in ahead:
            if f.path not in self._ahead:
                job = FolderJob(f, self._raw_names[f.path], 0, None, self._bound("prefetch_bytes"))
                self._ahead[f.path] = job
                self._pool.submit(job)

    # ------------------------------------------------------------------ worker side
    def _run_job(self, conn: _WorkerConn, job: FolderJob) -> None:
        """Fetch one folder into ``job`` (on a worker thread, with the worker's connection)."""
        validity = conn.select(job)
        uids = conn.op(job, lambda raw: raw.search_after(job.start))
        meta_items = b"(UID RFC822.SIZE FLAGS INTERNALDATE)"
        for w in range(0, len(uids), self.batch_uids):
            window = uids[w : w + self.batch_uids]
            meta = conn.op(job, lambda raw, win=window: raw.fetch(win, meta_items))
            present = [u for u in window if u in meta]  # the others were expunged since the search
            sizes = {u: _int(meta[u].get(b"RFC822.SIZE")) for u in present}
            whole_limit = self._bound("whole_limit")
            i = 0
            while i < len(present):
                if sizes[present[i]] > whole_limit:
                    self._stream_large(conn, job, validity, present[i], meta[present[i]])
                    i += 1
                    continue
                run: list[int] = []
                total = 0
                while i < len(present) and sizes[present[i]] <= whole_limit:
                    if run and total + sizes[present[i]] > self.batch_bytes:
                        break
                    run.append(present[i])
                    total += sizes[present[i]]
                    i += 1
                job.reserve(total)
                try:
                    bodies = conn.op(job, lambda raw, r=run: raw.fetch(r, b"(UID BODY.PEEK[])"))
                except BaseException:
                    job.release(total)
                    raise
                for uid in run:
                    body = body_of(bodies.get(uid, {}))
                    if body is None:  # expunged between the two fetches
                        job.release(sizes[uid])
                        continue
                    job.put(Entry(sizes[uid], item=self._item(job.folder, validity, uid, meta[uid], body)))

    def _stream_large(
        self, conn: _WorkerConn, job: FolderJob, validity: int, uid: int, info: dict[bytes, Any]
    ) -> None:
        """A message above ``whole_limit``: partial fetches of ``partial_size``, each one queued
        (within the budget) as a piece that the item's ``chunks()`` takes in order. A piece is
        at most half the budget: the first piece's bytes are held until the item is done, so a
        second piece of the budget's size would wait for them forever."""
        n = max(1, min(self._bound("partial_size"), job.budget // 2))
        offset = 0
        while True:
            job.reserve(n)
            try:
                data = conn.op(
                    job, lambda raw, o=offset: raw.fetch([uid], b"(UID BODY.PEEK[]<%d.%d>)" % (o, n))
                )
            except BaseException:
                job.release(n)
                raise
            chunk = body_of(data.get(uid, {}))
            if chunk is None:
                job.release(n)
                if offset:
                    job.put(
                        Entry(
                            0,
                            uid=uid,
                            error=SourceError(f"message UID {uid} vanished while it was being read"),
                        )
                    )
                return  # expunged before we read it: not an item at all
            last = size_of(chunk) < n
            entry = Entry(n, uid=uid, data=chunk, last=last)
            if offset == 0:
                entry.item = self._item(job.folder, validity, uid, info, None, job=job, entry=entry)
            job.put(entry)
            offset += size_of(chunk)
            if last:
                return

    # ------------------------------------------------------------------ items (consumer side)
    def _item(
        self,
        folder: Folder,
        validity: int,
        uid: int,
        info: dict[bytes, Any],
        body: bytes | Pieces | None,
        *,
        job: FolderJob | None = None,
        entry: Entry | None = None,
    ) -> Item:
        flags = tuple(
            f.decode("utf-8", "replace")
            for f in info.get(b"FLAGS") or ()
            if isinstance(f, bytes) and f.lower() != b"\\recent"
        )
        if body is not None:
            reader: Callable[[], Iterator[bytes]] = lambda b=pieces_of(body): iter(b)  # noqa: E731
            size = size_of(body)
        else:
            selected = (self._raw_names[folder.path], validity)
            reader = lambda: self._streamed(job, entry, uid, selected)  # noqa: E731
            size = _int(info.get(b"RFC822.SIZE"))
        return Item(
            folder=folder,
            source_id=f"{validity}:{uid}",
            size=size,
            internal_date=parse_internaldate(info.get(b"INTERNALDATE")),
            flags=flags,
            kind="mail",
            reader=reader,
        )

    def _streamed(
        self, job: FolderJob | None, entry: Entry | None, uid: int, selected: tuple[bytes | str, int]
    ) -> Iterator[bytes]:
        """The pieces the worker queued, while the consumer is still at this item; otherwise (or
        when read a second time) partial fetches over the main connection."""
        offset = 0
        if job is not None and entry is not None and not entry.streaming and not entry.moved_on:
            entry.streaming = True
            data, last = entry.data, entry.last
            entry.data = None
            while data is not None:
                offset += size_of(data)
                yield from pieces_of(data)
                if last or entry.moved_on:
                    break
                piece = job.get_piece(uid)
                if piece is None:
                    break
                job.release(piece.reserved)
                if piece.error is not None:
                    raise piece.error
                data, last = piece.data, piece.last
            if last:
                return
        yield from self._read_large(uid, selected, offset)

    def _read_large(self, uid: int, selected: tuple[bytes | str, int], offset: int = 0) -> Iterator[bytes]:
        if self._selected != selected:  # read after moving to another folder
            raw, validity = selected
            self._selected = None
            info = self._retry(lambda c: c.select_folder(raw, readonly=True))
            if int(info[b"UIDVALIDITY"]) != validity:
                raise SourceError(f"UIDVALIDITY of folder {_decode_name(raw)!r} changed")
            self._selected = selected
        first = offset == 0
        while True:
            part = f"BODY.PEEK[]<{offset}.{self.partial_size}>".encode()
            data = self._retry(lambda c, p=part: c.fetch([uid], [p]))
            if uid not in data or (chunk := _body(data[uid])) is None:
                if first:
                    return  # expunged before we read it
                raise SourceError(f"message UID {uid} vanished while it was being read")
            first = False
            if chunk:
                offset += len(chunk)
                yield chunk
            if len(chunk) < self.partial_size:
                return


class _WorkerConn:
    """One fetch worker's connection: reconnects after a drop, reselects the job's folder,
    checks UIDVALIDITY, and repeats the idempotent operation that failed."""

    def __init__(self, source: ImapSource) -> None:
        self.source = source
        self.client: IMAPClient | None = None
        self.selected: tuple[bytes | str, int] | None = None

    def _reconnect(self) -> IMAPClient:
        client = self.source._connect()
        self.client = client
        if self.selected is not None:
            raw, validity = self.selected
            info = client.select_folder(raw, readonly=True)
            if int(info[b"UIDVALIDITY"]) != validity:
                raise SourceError(f"UIDVALIDITY of folder {_decode_name(raw)!r} changed; cannot resume")
        return client

    def op(self, job: FolderJob, fn: Callable[[RawImap], T]) -> T:
        return self._retry(job, lambda c: fn(RawImap(c._imap)))

    def select(self, job: FolderJob) -> int:
        self.selected = None
        info = self._retry(job, lambda c: c.select_folder(job.raw, readonly=True))
        validity = int(info[b"UIDVALIDITY"])
        if job.validity is not None and job.validity != validity:
            raise SourceError(f"UIDVALIDITY of folder {job.folder.path!r} changed; cannot resume")
        self.selected = (job.raw, validity)
        return validity

    def _retry(self, job: FolderJob, op: Callable[[IMAPClient], T]) -> T:
        src = self.source
        attempt = 0
        while True:
            job.check()
            try:
                client = self.client if self.client is not None else self._reconnect()
                return op(client)
            except SourceError:
                self.drop()
                raise
            except DROPPED as e:
                self.drop()
                attempt += 1
                if attempt > src.max_retries:
                    raise SourceError(
                        f"IMAP server {src.host}:{src.port} unreachable after {src.max_retries} retries "
                        f"({type(e).__name__})"
                    ) from None
                log.warning("IMAP connection to %s lost (%s); reconnecting", src._where(), type(e).__name__)
                time.sleep(min(src.retry_delay * 2 ** (attempt - 1), 5.0))

    def drop(self) -> None:
        if self.client is not None:
            _quiet_close(self.client)
            self.client = None

    def abort(self) -> None:
        """Unblock a read in progress (from another thread, at close)."""
        client = self.client
        if client is not None:
            with contextlib.suppress(Exception):
                client._imap.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.logout()
            self.drop()


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _body(data: dict[bytes, Any]) -> bytes | None:
    for key, value in data.items():
        if key.startswith(b"BODY[]"):
            return value if isinstance(value, bytes) else b"" if value is None else bytes(value)
    return None


def _quiet_close(client: IMAPClient) -> None:
    with contextlib.suppress(Exception):  # already gone
        client.shutdown()


__all__ = ["ImapSource", "ssl_context"]


def _open(spec: ImapSpec, options: OpenOptions) -> ImapSource:
    if options.quick:  # a check: an unreachable server fails after one retry, not five
        return ImapSource(spec, max_retries=1, retry_delay=0.1)
    return ImapSource(spec)


#: An IMAP account (mail.base.SOURCE_TYPES).
SOURCE = SourceType("imap", frozenset({"mail"}), *config_type(ImapSpec), _open)
