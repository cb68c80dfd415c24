"""Object records and their files: the one place that writes, commits and frees object data.

An object row lists its *segments* (encrypted files with their plaintext sizes): one file for a
PUT or copy, one per part for a completed multipart upload (assembled by reference, nothing is
re-encrypted). Durability rules:

* a file is registered in ``s3_garbage`` with ``remove_after`` a day ahead *before* it is
  written, so a crash between writing and committing leaves nothing unaccounted for;
* the transaction that commits an object (or part) removes that registration and queues the
  files it replaces for removal now; files are deleted only after that transaction commits.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, BinaryIO

from sqlalchemy import Connection, delete, insert, select

from mailcrate.datadir import DataDir
from mailcrate.services.s3.blobstore import BlobStore, new_file_id
from mailcrate.storage.db import as_utc, utcnow
from mailcrate.storage.tables_kms_s3 import s3_garbage, s3_objects

PENDING_GRACE = timedelta(days=1)


@dataclass(frozen=True)
class ObjectRecord:
    bucket: str
    key: str
    object_id: str
    size: int
    etag: str
    last_modified: datetime
    attributes: dict[str, Any]
    segments: list[tuple[str, int]]
    data_key_blob: str

    @classmethod
    def from_row(cls, row: Any) -> ObjectRecord:
        return cls(
            bucket=row.bucket,
            key=row.key,
            object_id=row.object_id,
            size=row.size,
            etag=row.etag,
            last_modified=as_utc(row.last_modified),  # type: ignore[arg-type]
            attributes=json.loads(row.attributes),
            segments=[(f, s) for f, s in json.loads(row.segments)],
            data_key_blob=row.data_key_blob,
        )


class Store:
    def __init__(self, data_dir: DataDir) -> None:
        self.data_dir = data_dir
        self.blobs = BlobStore(data_dir.s3_root)

    # -- files ----------------------------------------------------------------------------
    def write_file(
        self, data_key: bytes, pieces: Iterable[Any], *, pipelined: bool = True, framed: bool = False
    ) -> tuple[str, int]:
        """Encrypt ``pieces`` into a new file, registered for removal until committed.

        ``pipelined`` runs the encryption in a writer thread while this one produces the pieces
        (worth it when producing them is work: receiving and verifying a request body). For a
        body already in memory (an in-process caller's buffer) it is not: there the handoff per
        chunk and the extra thread only cost CPU and GIL switches, so the file is written here.

        ``framed``: ``pieces`` are ``(chunk, last)`` pairs from a producer still filling them
        (:meth:`BlobStore.write_framed`, with early writeback), written here as they come.
        """
        file_id = new_file_id()
        with self.data_dir.db.begin() as conn:
            conn.execute(insert(s3_garbage).values(file_id=file_id, remove_after=utcnow() + PENDING_GRACE))
        try:
            if framed:
                size = self.blobs.write_framed(file_id, data_key, pieces, writeback=True)
            elif pipelined:
                size = _pipelined(lambda source: self.blobs.write(file_id, data_key, source), pieces)
            else:
                size = self.blobs.write(file_id, data_key, pieces)
        except BaseException:
            self.free([file_id])
            raise
        return file_id, size

    @staticmethod
    def claim(conn: Connection, file_ids: Iterable[str]) -> None:
        """Inside the committing transaction: these files are now referenced."""
        ids = list(file_ids)
        if ids:
            conn.execute(delete(s3_garbage).where(s3_garbage.c.file_id.in_(ids)))

    @staticmethod
    def release(conn: Connection, file_ids: Iterable[str]) -> list[str]:
        """Inside a transaction: these files are no longer referenced (delete after commit)."""
        ids = list(file_ids)
        now = utcnow()
        for file_id in ids:
            conn.execute(delete(s3_garbage).where(s3_garbage.c.file_id == file_id))
            conn.execute(insert(s3_garbage).values(file_id=file_id, remove_after=now))
        return ids

    def free(self, file_ids: Iterable[str]) -> None:
        """Delete released files and forget them (call after the releasing commit)."""
        for file_id in file_ids:
            self.blobs.delete(file_id)
            with self.data_dir.db.begin() as conn:
                conn.execute(delete(s3_garbage).where(s3_garbage.c.file_id == file_id))

    def sweep(self) -> int:
        """Remove every file whose removal time has come (crashed writers, missed frees)."""
        with self.data_dir.db.read() as conn:
            due = [
                r.file_id
                for r in conn.execute(
                    select(s3_garbage.c.file_id).where(s3_garbage.c.remove_after <= utcnow())
                )
            ]
        self.free(due)
        self.blobs.clean_tmp()
        return len(due)

    def open(
        self, record: ObjectRecord, data_key: bytes, start: int = 0, end: int | None = None
    ) -> ObjectBody:
        """The plaintext of ``record`` from ``start`` to ``end`` (exclusive), with every file it
        needs already open: an overwrite or delete that frees them afterwards cannot cut the
        body short (it used to: a 32 MiB GET ended after 8 MiB). Raises :class:`Vanished` if
        a file was freed before it could be opened (re-read the record and try again)."""
        end = record.size if end is None else end
        spans: list[tuple[str, int, int, int]] = []
        offset = 0
        for file_id, size in record.segments:
            lo, hi = max(start - offset, 0), min(end - offset, size)
            if lo < hi or (size == 0 and record.size == 0):
                spans.append((file_id, size, lo, hi))
            offset += size
            if offset >= end:
                break
        body = ObjectBody(self.blobs, data_key)
        try:
            for file_id, size, lo, hi in spans:
                body.add(self.blobs.open(file_id), file_id, size, lo, hi)
        except FileNotFoundError:
            body.close()
            raise Vanished(record.key) from None
        except BaseException:
            body.close()
            raise
        return body

    def read(
        self, record: ObjectRecord, data_key: bytes, start: int = 0, end: int | None = None
    ) -> Iterator[bytes]:
        """Plaintext of ``record`` from ``start`` to ``end`` (exclusive), segment by segment."""
        with self.open(record, data_key, start, end) as body:
            yield from body

    # -- object rows ----------------------------------------------------------------------
    @staticmethod
    def get(conn: Connection, bucket: str, key: str) -> ObjectRecord | None:
        row = conn.execute(
            select(s3_objects).where(s3_objects.c.bucket == bucket, s3_objects.c.key == key)
        ).first()
        return ObjectRecord.from_row(row) if row is not None else None

    def commit(self, conn: Connection, record: ObjectRecord) -> list[str]:
        """Insert or replace an object in this transaction; returns files to free afterwards."""
        old = self.get(conn, record.bucket, record.key)
        released: list[str] = []
        if old is not None:
            conn.execute(
                delete(s3_objects).where(s3_objects.c.bucket == record.bucket, s3_objects.c.key == record.key)
            )
            released = self.release(conn, [f for f, _ in old.segments])
        conn.execute(
            insert(s3_objects).values(
                bucket=record.bucket,
                key=record.key,
                object_id=record.object_id,
                size=record.size,
                etag=record.etag,
                last_modified=record.last_modified,
                attributes=json.dumps(record.attributes),
                segments=json.dumps(record.segments),
                data_key_blob=record.data_key_blob,
            )
        )
        self.claim(conn, [f for f, _ in record.segments])
        return released

    def remove(self, conn: Connection, bucket: str, key: str) -> list[str]:
        old = self.get(conn, bucket, key)
        if old is None:
            return []
        conn.execute(delete(s3_objects).where(s3_objects.c.bucket == bucket, s3_objects.c.key == key))
        return self.release(conn, [f for f, _ in old.segments])


class Vanished(Exception):
    """A file of the object was freed (overwritten or deleted) between reading its record and
    opening the file."""


class ObjectBody:
    """An object's bytes over files opened up front (see :meth:`Store.open`); iterate once, and
    :meth:`close` (the server does, also for a body it never started) to release the files."""

    def __init__(self, blobs: BlobStore, data_key: bytes) -> None:
        self._blobs = blobs
        self._data_key = data_key
        self._spans: list[tuple[BinaryIO, str, int, int, int]] = []

    def add(self, source: BinaryIO, file_id: str, size: int, lo: int, hi: int) -> None:
        self._spans.append((source, file_id, size, lo, hi))

    def __iter__(self) -> Iterator[bytes]:
        try:
            for source, file_id, size, lo, hi in self._spans:
                yield from self._blobs.read(file_id, self._data_key, size, lo, hi, source=source)
                source.close()
        finally:
            self.close()

    def close(self) -> None:
        for source, *_ in self._spans:
            source.close()

    def __enter__(self) -> ObjectBody:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_DONE = object()


def _pipelined(consume: Callable[[Iterator[bytes]], int], pieces: Iterable[bytes], depth: int = 2) -> int:
    """Run ``consume`` (encrypt + write) in its own thread while this one produces ``pieces``
    (receive + verify hashes): hashing, AES and the kernel's page-cache copy then overlap. A
    failure on either side stops both; the producer's exception wins (it names the bad input).
    """
    channel: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    result: dict[str, Any] = {}

    def feed() -> Iterator[bytes]:
        while True:
            item = channel.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def run() -> None:
        try:
            result["size"] = consume(feed())
        except BaseException as exc:  # reported to the producer below
            result["error"] = exc
            stop.set()

    worker = threading.Thread(target=run, name="s3-writer", daemon=True)
    worker.start()

    def put(item: Any) -> None:
        while not stop.is_set():
            try:
                channel.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    try:
        for piece in pieces:
            if stop.is_set():
                break
            put(piece)
    except BaseException as exc:
        put(_Aborted())
        worker.join()
        raise exc
    put(_DONE)
    worker.join()
    if "error" in result:
        raise result["error"]
    return int(result["size"])


class _Aborted(Exception):
    """Tells the writer thread to discard its temporary file."""
