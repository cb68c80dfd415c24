"""An IMAP mailbox as a source (imapclient).

Why it is shaped this way:

* ``BODY.PEEK[]`` and read-only ``SELECT`` so an export never sets ``\\Seen``.
* UIDs are fetched in batches (~500 UIDs, and at most :attr:`ImapSource.batch_bytes` of bodies at
  a time): Dovecot serves ~250 MB/s that way against ~40 MB/s one message per round trip.
  Messages above :attr:`ImapSource.large_threshold` are read with partial fetches
  (``BODY.PEEK[]<offset.length>``) so a 50 MB message is never wholly in memory.
* ``source_id`` is ``"<UIDVALIDITY>:<UID>"``.  If the connection drops, the source reconnects
  (bounded retries with back-off), reselects the folder, checks UIDVALIDITY and repeats the
  command that failed: every fetch is by UID, so there are no duplicates and no gaps.  A changed
  UIDVALIDITY makes resuming impossible and is a :class:`SourceError`.
* Login failures and certificate errors are permanent (no retries).  Error texts name the user
  and host, never the password.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import ssl
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from imapclient import IMAPClient, imap_utf7
from imapclient.exceptions import LoginError

from mailcrate.mail.base import Folder, ImapSpec, Item, SourceBase, SourceError, nfc

log = logging.getLogger(__name__)
T = TypeVar("T")

_DROPPED = (imaplib.IMAP4.abort, OSError, EOFError)  # socket.timeout and ssl.SSLError are OSErrors


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
    batch_bytes = 16 * 1024 * 1024
    large_threshold = 1024 * 1024
    partial_size = 4 * 1024 * 1024

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
        self._retry(lambda c: None)  # connect now: bad credentials fail at open time

    # ------------------------------------------------------------------ connection
    def _where(self) -> str:
        return f"{self.spec.user}@{self.host}:{self.port}"

    def _connect(self) -> IMAPClient:
        spec = self.spec
        ctx = ssl_context(spec.ca_file, spec.verify)
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
        return result

    def _select(self, folder: Folder) -> int:
        if not self._raw_names:
            self.folders()
        raw = self._raw_names.get(folder.path)
        if raw is None:
            raise SourceError(f"no such IMAP folder {folder.path!r}")
        self._selected = None
        info = self._retry(lambda c: c.select_folder(raw, readonly=True))
        validity = int(info[b"UIDVALIDITY"])
        self._selected = (raw, validity)
        return validity

    # ------------------------------------------------------------------ items
    def items(self, folder: Folder, *, after: str | None = None) -> Iterator[Item]:
        validity = self._select(folder)
        start = 0
        if after is not None:
            v, _, u = after.partition(":")
            if int(v) != validity:
                raise SourceError(f"UIDVALIDITY of folder {folder.path!r} changed; cannot resume")
            start = int(u)
        uids = sorted(u for u in self._retry(lambda c: c.search(["UID", f"{start + 1}:*"])) if u > start)
        for i in range(0, len(uids), self.batch_uids):
            batch = uids[i : i + self.batch_uids]
            meta = self._retry(lambda c, b=batch: c.fetch(b, [b"RFC822.SIZE", b"FLAGS", b"INTERNALDATE"]))
            present = [u for u in batch if u in meta]  # the others were expunged since the search
            yield from self._batch_items(folder, validity, present, meta)

    def _batch_items(
        self, folder: Folder, validity: int, uids: list[int], meta: dict[int, dict[bytes, Any]]
    ) -> Iterator[Item]:
        """Small messages in runs of at most ``batch_bytes`` per FETCH; large ones on their own."""

        def size(u: int) -> int:
            return int(meta[u].get(b"RFC822.SIZE", 0))

        i = 0
        while i < len(uids):
            if size(uids[i]) > self.large_threshold:
                yield self._item(folder, validity, uids[i], meta[uids[i]], None)
                i += 1
                continue
            run: list[int] = []
            total = 0
            while i < len(uids) and size(uids[i]) <= self.large_threshold:
                if run and total + size(uids[i]) > self.batch_bytes:
                    break
                run.append(uids[i])
                total += size(uids[i])
                i += 1
            bodies = self._bodies(run)
            for uid in run:
                if uid in bodies:  # absent: expunged between the two fetches
                    yield self._item(folder, validity, uid, meta[uid], bodies.pop(uid))

    def _bodies(self, uids: list[int]) -> dict[int, bytes]:
        data = self._retry(lambda c: c.fetch(uids, [b"BODY.PEEK[]"]))
        out: dict[int, bytes] = {}
        for uid, d in data.items():
            body = _body(d)
            if body is not None:
                out[uid] = body
        return out

    def _item(
        self, folder: Folder, validity: int, uid: int, info: dict[bytes, Any], body: bytes | None
    ) -> Item:
        flags = tuple(
            f.decode("utf-8", "replace") if isinstance(f, bytes) else str(f)
            for f in info.get(b"FLAGS", ())
            if (f.decode() if isinstance(f, bytes) else str(f)).lower() != "\\recent"
        )
        date = info.get(b"INTERNALDATE")
        size = len(body) if body is not None else int(info.get(b"RFC822.SIZE", 0))
        if body is not None:
            reader: Callable[[], Iterator[bytes]] = lambda b=body: iter((b,))  # noqa: E731
        else:
            selected = self._selected
            reader = lambda: self._read_large(uid, selected)  # noqa: E731
        return Item(
            folder=folder,
            source_id=f"{validity}:{uid}",
            size=size,
            internal_date=date if isinstance(date, datetime) else None,
            flags=flags,
            kind="mail",
            reader=reader,
        )

    def _read_large(self, uid: int, selected: tuple[bytes | str, int] | None) -> Iterator[bytes]:
        if selected is not None and self._selected != selected:  # read after moving to another folder
            raw, validity = selected
            self._selected = None
            info = self._retry(lambda c: c.select_folder(raw, readonly=True))
            if int(info[b"UIDVALIDITY"]) != validity:
                raise SourceError(f"UIDVALIDITY of folder {_decode_name(raw)!r} changed")
            self._selected = selected
        offset = 0
        while True:
            part = f"BODY.PEEK[]<{offset}.{self.partial_size}>".encode()
            data = self._retry(lambda c, p=part: c.fetch([uid], [p]))
            if uid not in data or (chunk := _body(data[uid])) is None:
                if offset == 0:
                    return  # expunged before we read it
                raise SourceError(f"message UID {uid} vanished while it was being read")
            if chunk:
                offset += len(chunk)
                yield chunk
            if len(chunk) < self.partial_size:
                return


def _body(data: dict[bytes, Any]) -> bytes | None:
    for key, value in data.items():
        if key.startswith(b"BODY[]"):
            return value if isinstance(value, bytes) else b"" if value is None else bytes(value)
    return None


def _quiet_close(client: IMAPClient) -> None:
    with contextlib.suppress(Exception):  # already gone
        client.shutdown()


__all__ = ["ImapSource", "ssl_context"]
