"""Restore an export zip: into an embedded mailbox, an IMAP server, and a CalDAV server.

Every destination is resumable: re-running skips what is already there, so an interrupted
restore is simply started again.

* embedded: messages byte-exact with flags and internal date, skipped when the folder already
  holds a message with the same SHA-256 (the store's index); calendar items keyed by UID.
* IMAP: APPEND with the original flags (``\\Recent`` excepted: servers set it) and internal
  date, into the original folder path joined with the server's hierarchy delimiter (folders are
  created and subscribed, empty ones too). A message is "already there" only when the folder
  holds the same bytes as the server stores them (:func:`stored_form`), counted as a multiset: a
  folder holding one copy takes a second copy of the same bytes (its own flags and date). A
  message the server refuses is named in the report with the server's words and the restore
  goes on (:mod:`mailcrate.admin.imap_append` isolates it in its batch).
* CalDAV: each calendar item's original iCalendar bytes are PUT with ``If-None-Match: *`` into the
  calendar of the same display name (created when missing); an existing resource is kept; an
  object the server refuses (a 4xx other than authentication) is named in the report with the
  status and the restore goes on.

The IMAP restore verifies the archive while it reads it, instead of a separate pass before:
:func:`check_archive` does the checks that need no entry's bytes up front, the reader threads
check every entry's CRC-32, size and SHA-256 (against the manifest) before it is appended, and
the zip's SHA-384 (against the export log) is computed by one sequential read alongside. A
damaged entry stops the restore naming it; nothing after it is appended.
"""

from __future__ import annotations

import hashlib
import imaplib
import os
import ssl
import struct
import threading
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from mailcrate.admin.archive import ExportArchive, ItemReport, open_verified, opened, require_verified
from mailcrate.admin.errors import AdminError
from mailcrate.admin.imap_append import (
    AppenderPool,
    AppendError,
    Message,
    supports_pipelined_append,
)
from mailcrate.admin.imap_target import (
    ImapFolders,
    refusal_reason,
    storable_flag,
    stored_digest,
)
from mailcrate.admin.unpack import unpack_maildir
from mailcrate.export.manifest import ManifestItem
from mailcrate.export.verify import Problem, ZipDigest, content_problem, log_hash_problem
from mailcrate.mail.base import CalDavSpec, ImapSpec
from mailcrate.mail.calendar_mime import ics_from_calendar_mime
from mailcrate.mail.imap import ssl_context
from mailcrate.mail.store import calendar_item_uid

__all__ = ["check_archive", "restore_embedded", "restore_imap", "restore_remote_calendars"]

Tick = Callable[[ManifestItem], None]
_READ_AHEAD_ITEMS = 64
#: Bytes of checked items read ahead of the appends, and the MULTIAPPEND batches: what one
#: restore holds (``migrate run`` holds ``--parallel`` of them). At 8 MiB read ahead and 2 MiB
#: batches, two in flight and one queued per connection, a restore holds ~16 MiB where 32 MiB
#: and 8 MiB batches (four in flight, two queued) held up to ~90 MiB; see BENCHMARKS.md.
READ_AHEAD_BYTES = 8 << 20
BATCH_BYTES = 2 << 20
_BATCHES_IN_FLIGHT = 2
_BATCHES_QUEUED = 1
_READ_THREADS = 2

try:  # isal inflates ~3x faster than zlib; both release the GIL, so readers run in parallel
    from isal.isal_zlib import crc32 as _crc32
    from isal.isal_zlib import decompress as _inflate
    from isal.isal_zlib import decompressobj as _decompressobj
except ImportError:  # pragma: no cover - isal is a declared dependency
    from zlib import crc32 as _crc32
    from zlib import decompress as _inflate
    from zlib import decompressobj as _decompressobj

#: Deflated entries of this size or more are inflated in steps of :data:`_STEP` (see
#: :meth:`_ItemReader._inflate_in_steps`); smaller ones in one call (fewer Python steps).
_INFLATE_IN_STEPS = 4 << 20
_STEP = 1 << 20


class _Damaged(Exception):
    """An entry whose bytes do not match the zip directory or the manifest (a :class:`Problem`)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def _damaged(zip_path: Path, problem: Problem, what: str) -> AdminError:
    return AdminError(
        f"{zip_path} is damaged: {problem} ({what})",
        f"see every problem with: mailcrate export verify {zip_path}",
    )


def check_archive(zip_path: Path, log_path: Path | None = None) -> ExportArchive:
    """Before a restore that checks the entries' content itself: everything ``export verify``
    checks that needs no pass over the entries' bytes (central directory, manifest present,
    parseable and matching the zip's entries one to one, sizes, the log's totals). On a problem
    the full verification runs, so that the error names every damaged entry it can find.

    Returns the archive open, over the central directory and manifest items these checks read
    (for :func:`restore_imap`, which then reads neither again); the caller closes it."""
    return open_verified(zip_path, log_path, content=False)


def restore_embedded(
    zip_path: Path,
    root: Path,
    *,
    tick: Tick | None = None,
    archive: ExportArchive | None = None,
    report: ItemReport | None = None,
) -> ItemReport:
    """Into the embedded mailbox at ROOT (``<data-dir>/mailboxes/<org>/<user>``). ``archive``:
    the zip as :func:`~mailcrate.admin.archive.open_verified` verified it (the caller closes it);
    ``report``: the report to fill."""
    return unpack_maildir(zip_path, root, tick=tick, archive=archive, report=report)


# ------------------------------------------------------------------------------------ IMAP


def _imap_connect(spec: ImapSpec) -> IMAPClient:
    url = urlsplit(spec.url)
    if url.scheme not in ("imap", "imaps") or not url.hostname:
        raise AdminError(f"bad IMAP URL {spec.url!r}", "use imaps://host[:port] or imap://host[:port]")
    tls = url.scheme == "imaps"
    port = url.port or (993 if tls else 143)
    # loading the CA store takes ~0.1 s: only for TLS
    ctx = ssl_context(spec.ca_file, spec.verify) if tls or spec.starttls else None
    where = f"{url.hostname}:{port}"
    try:
        client = IMAPClient(url.hostname, port, ssl=tls, ssl_context=ctx, timeout=spec.timeout)
    except ssl.SSLCertVerificationError as exc:
        raise AdminError(
            f"IMAP server {where}: TLS certificate not trusted ({exc.verify_message})",
            "pass --imap-ca-file with the server's CA",
        ) from None
    except ssl.SSLError as exc:
        raise AdminError(
            f"TLS with IMAP server {where} failed ({exc.reason or exc})",
            "imaps:// is implicit TLS (port 993); for port 143 use imap:// (with --imap-starttls)",
        ) from None
    except OSError as exc:
        raise AdminError(
            f"cannot reach IMAP server {where}: {exc.strerror or exc}", "check the host and port"
        ) from None
    try:
        if spec.starttls and not tls:
            client.starttls(ctx)
        if spec.auth == "plain":
            client.plain_login(
                spec.master_user or spec.user,
                spec.password,
                authorization_identity=spec.user if spec.master_user else None,
            )
        else:
            login = f"{spec.user}{spec.master_separator}{spec.master_user}" if spec.master_user else spec.user
            client.login(login, spec.password)
    except LoginError:
        client.shutdown()
        raise AdminError(
            f"IMAP login failed for {spec.user} at {where}",
            "check --imap-user and the password file (with --imap-master-user: the master's password)",
        ) from None
    except BaseException:
        client.shutdown()
        raise
    return client


def restore_imap(
    zip_path: Path,
    imap: ImapSpec,
    *,
    caldav: CalDavSpec | None = None,
    tick: Tick | None = None,
    imap_pipelining: bool = True,
    imap_connections: int = 1,
    log_path: Path | None = None,
    archive: ExportArchive | None = None,
    report: ItemReport | None = None,
    read_ahead_bytes: int = READ_AHEAD_BYTES,
    batch_bytes: int = BATCH_BYTES,
    big_items_alone: int | None = None,
) -> ItemReport:
    """Every mail item APPENDed over IMAP (and calendar items to CalDAV when given).

    When the server has LITERAL+ and MULTIAPPEND, messages go out in pipelined MULTIAPPEND
    batches per folder (:mod:`mailcrate.admin.imap_append`), over ``imap_connections``
    connections (fewer when the server refuses more; default 1: on 2 cores more did not measure
    faster, and batches over several connections lose the messages' order within a folder);
    otherwise one APPEND at a time.

    Every item's content is checked against the manifest (CRC-32, size, SHA-256) before it is
    sent; with ``log_path`` the zip's SHA-384 is checked against the export log meanwhile (and
    before the last batch goes out). A mismatch raises :class:`AdminError` naming the entry;
    the items before a damaged entry are restored, nothing after it. The checks that need no
    entry's bytes are :func:`check_archive`'s (the CLI runs it first and passes the ``archive``
    it returns, so the zip's central directory and manifest are read once; the caller closes
    it). Without ``archive`` the zip is opened here. ``report``: the report to fill (a caller
    that reads it from ``tick``, to tell restored from already there item by item).
    ``read_ahead_bytes``, ``batch_bytes``: the bytes of checked items read ahead of the appends
    and of each MULTIAPPEND batch (smaller when several restores share a process).
    ``big_items_alone``: mail items of this many bytes or more are not read ahead: each is
    read, appended and flushed alone, one at a time in the whole process (several restores at
    once: ``migrate run``), so that they do not all hold large messages at the same moment."""
    report = report if report is not None else ItemReport(destination=imap.url)
    client = _imap_connect(imap)
    calendars = _CalDav(caldav) if caldav is not None else None
    digest = ZipDigest(Path(zip_path)) if log_path is not None else None
    appender: AppenderPool | None = None
    extra: list[IMAPClient] = []
    try:
        folders = ImapFolders(client)
        if imap_pipelining and supports_pipelined_append(client.capabilities()):
            for _ in range(max(1, imap_connections) - 1):
                try:
                    extra.append(_imap_connect(imap))
                except AdminError:
                    break  # e.g. a per-user connection limit: go on with fewer
            appender = AppenderPool(
                [c._imap for c in (client, *extra)],
                batch_bytes=batch_bytes,
                depth=_BATCHES_IN_FLIGHT,
                queued=_BATCHES_QUEUED,
            )
        with (
            opened(zip_path, archive) as archive,
            ThreadPoolExecutor(_READ_THREADS, thread_name_prefix="restore-read") as pool,
        ):
            reader = _ItemReader(archive)
            try:
                for item, data in _read_ahead(
                    archive.items(), reader, pool, read_ahead_bytes, big_items_alone
                ):
                    if digest is not None and digest.done():
                        _check_digest(digest, log_path, zip_path, report)
                        digest = None
                    alone = data is _ALONE
                    if alone:  # one such item in memory at a time, in this whole process
                        _BIG_ITEMS.acquire()
                    try:
                        try:
                            if data is None:
                                body = reader.calendar(item)
                            else:
                                body = reader.read(item) if alone else data.result()
                        except _Damaged as exc:
                            if appender is not None:
                                appender.flush()  # the items before it: checked, and in order
                            raise _damaged(
                                zip_path,
                                exc.problem,
                                f"the restore stopped there: {report.done} restored before it",
                            ) from None
                        if data is None:  # a calendar item
                            if calendars is None:
                                reason = "calendar items (give --caldav to restore them)"
                                report.not_restored[reason] = report.not_restored.get(reason, 0) + 1
                            else:
                                ics = ics_from_calendar_mime(body)
                                _put_calendar_item(calendars, item, ics, report)
                        else:
                            _append(folders, item, body, appender, report)
                            if alone and appender is not None:
                                _settle(appender, report)  # sent and stored: its bytes are freed
                        del body
                    finally:
                        if alone:
                            _BIG_ITEMS.release()
                    if tick:
                        tick(item)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)  # no read left before the close
                reader.close()
            if digest is not None:  # before the last batch: a zip that is not the log's stops here
                _check_digest(digest, log_path, zip_path, report)
            if appender is not None:
                _settle(appender, report)
            for kind, path in archive.header.empty_folders:  # recreated, empty
                if kind == "mail":
                    folders.ensure(folders.name_for(path))
                    report.folder(path)
                elif calendars is not None:
                    calendars.calendar(path[0])
                    report.calendar(path[0])
        if folders.renamed:
            report.not_restored[f"folder names containing {folders.delim!r} (restored with '_')"] = (
                folders.renamed
            )
    except (imaplib.IMAP4.error, IMAPClientError, AppendError) as exc:
        raise AdminError(
            f"the IMAP restore stopped: {exc} ({report.done} restored before it)",
            "run it again: what is already there is not sent twice",
        ) from None
    finally:
        if digest is not None:
            digest.close()  # a failure before it was checked: no need to finish reading
        if appender is not None:
            appender.close()
        for c in (*extra, client):
            try:
                c.logout()
            except Exception:
                c.shutdown()
    return report


def _check_digest(digest: ZipDigest, log_path: Path | None, zip_path: Path, report: ItemReport) -> None:
    """Raise when the zip's SHA-384 (being computed alongside) is not the export log's."""
    assert log_path is not None
    try:
        problem = log_hash_problem(log_path, digest.result())
    except OSError as exc:
        problem = Problem(None, f"cannot read {zip_path}: {exc}")
    if problem is None:
        return
    stopped = f"the restore stopped after {report.done} restored"
    try:  # which entries differ, if any: worth a full pass once the restore has stopped anyway
        require_verified(zip_path, log_path)
    except AdminError as exc:
        raise AdminError(f"{exc.message} ({stopped})", exc.hint) from None
    raise _damaged(zip_path, problem, stopped)


class _ItemReader:
    """Items' bytes straight from the zip's local entries (``os.pread``: thread-safe), with the
    CRC-32, size and SHA-256 checked (:class:`_Damaged` otherwise); entries of other methods go
    through :class:`ExportArchive`."""

    def __init__(self, archive: ExportArchive) -> None:
        self.archive = archive
        self.fd = os.open(archive.path, os.O_RDONLY)

    def close(self) -> None:
        os.close(self.fd)

    def read(self, item: ManifestItem) -> bytes | bytearray:
        data = self._read(item)
        problem = content_problem(item, data)  # SHA-256: hashlib releases the GIL
        if problem is not None:
            raise _Damaged(problem)
        return data

    def calendar(self, item: ManifestItem) -> bytes:
        """A calendar item, read in the caller's thread and checked the same way."""
        try:
            data = self.archive.read(item)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise _Damaged(_unreadable(item, exc)) from None
        problem = content_problem(item, data)
        if problem is not None:
            raise _Damaged(problem)
        return data

    def _read(self, item: ManifestItem) -> bytes | bytearray:
        info = self.archive._zip.getinfo(item.zip_path)
        if info.flag_bits & 0x1 or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            try:
                return self.archive.read(item)
            except (
                zipfile.BadZipFile,
                zlib.error,
                EOFError,
                OSError,
                NotImplementedError,
                RuntimeError,
            ) as exc:
                raise _Damaged(_unreadable(item, exc)) from None
        head = os.pread(self.fd, 30, info.header_offset)
        if len(head) != 30 or head[:4] != b"PK\x03\x04":
            raise _Damaged(_unreadable(item, zipfile.BadZipFile("Bad magic number for file header")))
        name_len, extra_len = struct.unpack("<HH", head[26:30])
        start = info.header_offset + 30 + name_len + extra_len
        if info.compress_type == zipfile.ZIP_DEFLATED and info.file_size >= _INFLATE_IN_STEPS:
            data: bytes | bytearray = self._inflate_in_steps(item, info, start)
        else:
            data = self._read_whole(item, info, start)
        if len(data) != info.file_size or _crc32(data) != info.CRC:
            raise _Damaged(_unreadable(item, zipfile.BadZipFile(f"Bad CRC-32 for file {item.zip_path!r}")))
        return data

    def _inflate_in_steps(self, item: ManifestItem, info: zipfile.ZipInfo, start: int) -> bytearray:
        """A large deflated entry inflated from 1 MiB reads into one buffer of its size: its
        compressed bytes are never held whole beside the inflated ones (a 27 MiB message: 20 MiB
        less at that moment)."""
        out = bytearray(info.file_size)
        view = memoryview(out)
        inflater = _decompressobj(-15)
        filled = offset = 0
        try:
            while offset < info.compress_size or inflater.unconsumed_tail:
                if inflater.unconsumed_tail:
                    raw = inflater.unconsumed_tail
                else:
                    raw = os.pread(self.fd, min(_STEP, info.compress_size - offset), start + offset)
                    if not raw:
                        break
                    offset += len(raw)
                chunk = inflater.decompress(raw, _STEP)
                if filled + len(chunk) > len(out):
                    raise _Damaged(_unreadable(item, zipfile.BadZipFile("entry longer than its size")))
                view[filled : filled + len(chunk)] = chunk
                filled += len(chunk)
            chunk = inflater.flush()
            view[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
        except _Damaged:
            raise
        except Exception as exc:  # zlib.error / isal error / a short entry
            raise _Damaged(_unreadable(item, exc)) from None
        finally:
            view.release()
        if filled != len(out):
            del out[filled:]
        return out

    def _read_whole(self, item: ManifestItem, info: zipfile.ZipInfo, start: int) -> bytes:
        raw = os.pread(self.fd, info.compress_size, start)
        if info.compress_type == zipfile.ZIP_DEFLATED:
            try:
                data = _inflate(raw, -15, max(info.file_size, 1))
            except Exception as exc:  # zlib.error / isal error
                raise _Damaged(_unreadable(item, exc)) from None
        else:
            data = raw
        return data


def _unreadable(item: ManifestItem, exc: BaseException) -> Problem:
    """The wording ``export verify`` uses for an entry zipfile cannot read."""
    return Problem(item.zip_path, f"unreadable content: {type(exc).__name__}: {exc}")


#: In :func:`_read_ahead`'s output: a mail item the caller reads itself (``big_items_alone``).
_ALONE = object()
#: Held while a restore of this process reads and appends a big item (``big_items_alone``).
_BIG_ITEMS = threading.Lock()


def _read_ahead(
    items: Iterable[ManifestItem],
    reader: _ItemReader,
    pool: ThreadPoolExecutor,
    limit: int = READ_AHEAD_BYTES,
    alone: int | None = None,
) -> Iterator[tuple[ManifestItem, Any]]:
    """The items in order, each mail item with its bytes being read (up to a bounded window
    of items and bytes ahead), or :data:`_ALONE` for one of ``alone`` bytes or more (the
    caller reads it); calendar items with None."""
    window: deque[tuple[ManifestItem, Any]] = deque()
    ahead = 0
    for item in items:
        if item.kind == "calendar":
            fut: Any = None
        elif alone is not None and item.size >= alone:
            fut = _ALONE
        else:
            fut = pool.submit(reader.read, item)
        window.append((item, fut))
        if fut is not _ALONE:  # not read ahead: no bytes held
            ahead += item.size
        while window and (len(window) > _READ_AHEAD_ITEMS or ahead > limit):
            out = window.popleft()
            ahead -= out[0].size
            yield out
    while window:
        yield window.popleft()


def _append(
    folders: ImapFolders, item: ManifestItem, data: bytes, appender: AppenderPool | None, report: ItemReport
) -> None:
    name = folders.name_for(item.folder)
    if appender is not None and (
        name not in folders.index or (name not in folders.names and name.upper() != "INBOX")
    ):
        _settle(appender, report)  # creating or indexing a folder takes the connection: nothing in flight
    folders.ensure(name)
    existing = folders.existing(name)
    # one copy there per copy in the archive (duplicates stay distinct); an empty folder needs
    # no digest (all of a fresh target)
    digest = stored_digest(data, item.sha256) if existing else ""
    if digest in existing:
        existing[digest] -= 1
        if not existing[digest]:
            del existing[digest]
        report.count(item, False)
        return
    if folders.limit is not None and len(data) > folders.limit:
        report.refuse(
            item,
            f"over the server's size limit ({len(data):,} bytes > APPENDLIMIT {folders.limit:,}); not sent",
        )
        return
    flags = [f for f in item.flags if f.lower() != "\\recent"]
    if any(not storable_flag(f) for f in flags):
        for f in (f for f in flags if not storable_flag(f)):
            key = f"flag {f!r}: IMAP cannot carry it (the message was restored without it)"
            report.not_restored[key] = report.not_restored.get(key, 0) + 1
        flags = [f for f in flags if storable_flag(f)]
    if appender is not None:
        appender.add(name, Message(data, flags, item.internal_date, ref=item))
        report.count(item, True)  # until the server says otherwise (_settle)
        return
    try:
        folders.client.append(name, data, flags=flags, msg_time=item.internal_date)
    except imaplib.IMAP4.abort:
        raise
    except (imaplib.IMAP4.error, IMAPClientError) as exc:
        report.refuse(item, refusal_reason(data, str(exc).removeprefix("append failed: "), folders.limit))
        return
    report.count(item, True)


def _settle(appender: AppenderPool, report: ItemReport) -> None:
    """Wait for every batch in flight, then move what the server refused (since the last call)
    from "restored" to "refused"."""
    appender.flush()
    for refused in appender.take_refused():
        assert isinstance(refused.message.ref, ManifestItem)
        reason = refusal_reason(refused.message.data, refused.text, None)
        report.refuse(refused.message.ref, reason, counted=True)


# ------------------------------------------------------------------------------------ CalDAV


class _CalDavRefused(Exception):
    """The CalDAV server refused one object (a 4xx other than authentication): named in the
    report, the restore goes on."""


def _put_calendar_item(target: _CalDav, item: ManifestItem, ics: bytes, report: ItemReport) -> None:
    try:
        report.count(item, target.put(item.folder[0], ics))
    except _CalDavRefused as exc:
        report.refuse(item, str(exc))


class _CalDav:
    """Calendars of one CalDAV principal, by display name."""

    def __init__(self, spec: CalDavSpec) -> None:
        import caldav
        from caldav.lib import error as caldav_error

        self.error = caldav_error
        verify: bool | str = spec.ca_file if (spec.verify and spec.ca_file) else spec.verify
        self.client = caldav.DAVClient(
            url=spec.url, username=spec.user, password=spec.password, ssl_verify_cert=verify
        )
        try:
            self.principal = self.client.principal()
            self.calendars = {str(c.get_display_name() or ""): c for c in self.principal.calendars()}
        except caldav_error.AuthorizationError:
            raise AdminError(
                f"CalDAV login failed for {spec.user} at {urlsplit(spec.url).netloc}",
                "check --caldav-user and --caldav-password-file",
            ) from None
        except Exception as exc:
            raise AdminError(
                f"cannot use CalDAV server {spec.url}: {type(exc).__name__}: {exc}", "check --caldav URL"
            ) from None

    def calendar(self, name: str) -> Any:
        cal = self.calendars.get(name)
        if cal is None:
            cal = self.principal.make_calendar(name=name)
            self.calendars[name] = cal
        return cal

    def put(self, name: str, ics: bytes) -> bool:
        """PUT the object unless a resource of that name exists; True when stored."""
        cal = self.calendar(name)
        leaf = hashlib.sha256(calendar_item_uid(ics).encode("utf-8")).hexdigest()[:40] + ".ics"
        url = urljoin(str(cal.url).rstrip("/") + "/", leaf)
        resp = self.client.put(
            url, ics, {"Content-Type": "text/calendar; charset=utf-8", "If-None-Match": "*"}
        )
        status = int(getattr(resp, "status", 0))
        if status == 412:
            return False
        if status in (200, 201, 204):
            return True
        if 400 <= status < 500 and status not in (401, 403, 404, 405):
            # this object (Radicale answers 400 to iTIP objects it cannot store): the rest goes on
            reason = str(getattr(resp, "reason", "") or "").strip()
            raise _CalDavRefused(f"the CalDAV server said: HTTP {status}" + (f" {reason}" if reason else ""))
        raise AdminError(f"CalDAV server refused {url}: HTTP {status}", "check the calendar's rights")


def restore_remote_calendars(
    zip_path: Path, caldav: CalDavSpec, *, tick: Tick | None = None, archive: ExportArchive | None = None
) -> ItemReport:
    """Only the calendar items, to CalDAV (for a restore whose mail goes elsewhere). ``archive``:
    the zip as :func:`~mailcrate.admin.archive.open_verified` verified it (the caller closes it);
    without it the zip is opened here."""
    report = ItemReport(destination=caldav.url)
    target = _CalDav(caldav)
    with opened(zip_path, archive) as archive:
        for item in archive.items():
            if item.kind == "calendar":
                _put_calendar_item(target, item, ics_from_calendar_mime(archive.read(item)), report)
            if tick:
                tick(item)
        for kind, path in archive.header.empty_folders:  # empty calendars, recreated
            if kind == "calendar":
                target.calendar(path[0])
                report.calendar(path[0])
    return report
