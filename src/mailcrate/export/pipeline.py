"""The producer side of an export: mailbox source -> streaming zip -> ``write``.

:func:`write_archive` reads every folder of a :class:`~mailcrate.mail.base.MailboxSource` and
writes the archive of DESIGN.md (``mail/<folder>/.../000001.eml``, ``calendar/<name>/...``,
``manifest.jsonl`` last) into a forward-only ``write`` callable, chunk by chunk: no item is
ever wholly in memory, and the manifest is spooled to a temporary file (it grows with the
item count) and streamed into the zip at the end. Where the bytes go (S3 parts, a local file)
is the caller's business, which keeps this testable on its own.

Progress is kept in a :class:`Progress` the caller's monitor thread reads: items and bytes done
against the counts the source listed up front.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import queue
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from mailcrate.export import deflate
from mailcrate.export.checkpoint import Checkpointer, Position, ResumePoint, SkipToEnd
from mailcrate.export.manifest import MANIFEST_NAME, ManifestHeader, ManifestItem
from mailcrate.export.names import item_path
from mailcrate.export.zipstream import PreparedEntry, ZipStreamWriter, prepare
from mailcrate.jobs.control import StopExport
from mailcrate.mail.base import Folder, Item, MailboxSource, SourceError, TransientSourceError

__all__ = ["ArchiveFigures", "Progress", "StopExport", "write_archive"]

#: Manifest bytes kept in memory before the spool goes to disk. Small on purpose: a growing
#: in-memory spool reallocates (and at rollover copies) a block of this size, which a long export
#: then keeps as fragmented heap; a 100 MiB export never reaches it, a 5 GiB one always did.
_SPOOL_IN_MEMORY = 256 * 1024
_COPY_CHUNK = 1024 * 1024


class Progress:
    """Counters the producer advances and a monitor thread reads (plain ints: no locking needed
    for a monotone estimate)."""

    def __init__(self) -> None:
        self.items_total = 0
        self.items_done = 0
        self.bytes_done = 0
        self._item_size = 0
        self._item_bytes = 0
        self.finished = threading.Event()

    def start_item(self, size: int) -> None:
        self._item_size, self._item_bytes = max(size, 1), 0

    def add_bytes(self, n: int) -> None:
        self._item_bytes += n
        self.bytes_done += n

    def end_item(self) -> None:
        self.items_done += 1
        self._item_size = self._item_bytes = 0

    def percent(self) -> int:
        """0-99 (100 belongs to COMPLETED): items done, plus the part of the current item."""
        if self.items_total <= 0:
            return 0
        partial = min(self._item_bytes / self._item_size, 1.0) if self._item_size else 0.0
        done = (self.items_done + partial) / self.items_total
        return max(0, min(99, int(done * 99)))


@dataclass(frozen=True, slots=True)
class ArchiveFigures:
    """What the export log reports (besides the hash, which the uploader computes)."""

    total_messages: int  # items exported (mail and calendar)
    total_folders: int
    total_bytes: int  # sum of item sizes, uncompressed
    total_non_exportable_items: int
    archive_bytes: int


def _counted(
    first: bytes, rest: Iterator[bytes], progress: Progress, check: Callable[[], None]
) -> Iterator[bytes]:
    progress.add_bytes(len(first))
    yield first
    for chunk in rest:
        check()
        progress.add_bytes(len(chunk))
        yield chunk


def _open_item(item: Item) -> tuple[bytes, Iterator[bytes]] | None:
    """The first chunk and the rest, or None when the item cannot be read at all (vanished,
    unreadable): such an item is counted as non-exportable instead of failing the export.
    The pieces come uncut (:meth:`Item.pieces`): the zip writer slices views of its own."""
    try:
        # Inside the try: a source's reader may refuse at the call, not only at the first piece
        # (mail.not_exportable's readers raise before yielding anything).
        chunks = item.pieces()
        first = next(chunks, b"")
    except TransientSourceError:
        raise
    except SourceError:
        return None
    return first, chunks


#: Bytes read ahead of the producer: a byte budget (an entry count would let 1 MiB stream
#: chunks and ~1 MiB batches weigh the same as tiny ones). One entry may overshoot it.
_READ_AHEAD_BYTES = 4 * 1024 * 1024
_BATCH_BYTES = 1024 * 1024  # small items travel in batches of about this size
_BATCH_ITEMS = 512
_WHOLE_ITEM = 1024 * 1024  # items up to this size are read whole; larger ones stream
_STREAM = object()  # in a batch: this item's chunks follow one by one, then _END
_END = object()
_DONE = object()

_Entry = tuple[int, Item, "list[bytes] | object | None"]  # folder index, item, chunks|_STREAM|None
_Ready = tuple[int, Item, "PreparedEntry | object | None"]  # the same with whole items prepared


def _prepare_batch(batch: list[_Entry], level: int) -> list[_Ready]:
    """Deflate, CRC and hash the whole items of a batch (a job on the deflate pool)."""
    return [
        (index, item, prepare(b"".join(chunks), level=level) if isinstance(chunks, list) else chunks)
        for index, item, chunks in batch
    ]


class _ReadAhead:
    """Reads the mailbox in a thread of its own, ahead of the producer, so that file (or
    network) reads overlap deflate and hashing, which release the GIL. Small items are read
    whole and handed over in batches (one thread handoff per ~1 MiB, not per item), each
    batch already on its way through the deflate pool (:func:`_prepare_batch`), so both cores
    deflate and hash them while the producer only writes; large items stream chunk by chunk.
    At most about ``_READ_AHEAD_BYTES`` are buffered.

    Only this thread touches the source until :meth:`close` has joined it. A source error is
    handed over in order and raised where the producer reaches it, as without read-ahead.
    """

    def __init__(
        self,
        source: MailboxSource,
        folders: list[Folder],
        level: int,
        start: tuple[int, str | None] = (0, None),
    ) -> None:
        self._source = source
        self._level = level
        self._folders = folders
        self._start = start  # (folder index, source id of the item before it there): a resumed export
        self._queue: queue.SimpleQueue[tuple[Any, int]] = queue.SimpleQueue()
        self._budget = threading.Condition()
        self._buffered = 0  # bytes put and not yet consumed by the producer
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="export-read-ahead", daemon=True)
        self._thread.start()

    def _put_batch(self, batch: list[_Entry], size: int) -> None:
        self._put(deflate.pool().submit(_prepare_batch, batch, self._level), size)

    def _put(self, value: Any, size: int = 0) -> None:
        """Queue ``value`` once the bytes buffered leave room for ``size`` more (or none are
        buffered: an entry larger than the budget still goes through, alone)."""
        with self._budget:
            while self._buffered and self._buffered + size > _READ_AHEAD_BYTES:
                if self._stop.is_set():
                    raise StopExport()
                self._budget.wait(0.1)
            if self._stop.is_set():
                raise StopExport()
            self._buffered += size
        self._queue.put((value, size))

    def _release(self, size: int) -> None:
        if size:
            with self._budget:
                self._buffered -= size
                self._budget.notify()

    def _run(self) -> None:
        batch: list[_Entry] = []
        size = 0
        try:
            start_folder, after = self._start
            for index, folder in enumerate(self._folders):
                if index < start_folder:
                    continue
                for item in self._source.items(folder, after=after if index == start_folder else None):
                    if self._stop.is_set():
                        return
                    opened = _open_item(item)
                    if opened is None:
                        batch.append((index, item, None))
                        continue
                    first, rest = opened
                    chunks, whole = [first], len(first)
                    if item.size <= _WHOLE_ITEM:
                        for chunk in rest:
                            chunks.append(chunk)
                            whole += len(chunk)
                            if whole > _WHOLE_ITEM:
                                break
                    if item.size <= _WHOLE_ITEM and whole <= _WHOLE_ITEM:
                        batch.append((index, item, chunks))
                        size += whole
                        if size >= _BATCH_BYTES or len(batch) >= _BATCH_ITEMS:
                            self._put_batch(batch, size)
                            batch, size = [], 0
                        continue
                    batch.append((index, item, _STREAM))
                    self._put_batch(batch, size)
                    batch, size = [], 0
                    for chunk in chunks:
                        self._put(chunk, len(chunk))
                    for chunk in rest:
                        self._put(chunk, len(chunk))
                    self._put(_END)
            if batch:
                self._put_batch(batch, size)
                batch = []
            self._put(_DONE)
        except StopExport:
            return
        except BaseException as exc:
            try:
                if batch:
                    self._put_batch(batch, size)
                self._put(exc)
            except StopExport:
                return

    def _get(self) -> tuple[Any, int]:
        value, size = self._queue.get()
        if isinstance(value, BaseException):
            raise value
        return value, size

    def entries(self) -> Iterator[_Ready]:
        while True:
            value, size = self._get()
            if value is _DONE:
                return
            ready = value.result()
            self._release(size)  # the raw bytes are gone; the prepared ones are written next
            yield from ready

    def stream(self) -> Iterator[bytes]:
        """The chunks of the current streamed item."""
        while True:
            value, size = self._get()
            self._release(size)
            if value is _END:
                return
            yield value

    def close(self) -> None:
        self._stop.set()
        with self._budget:
            self._budget.notify_all()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.1)
        self._thread.join()


def write_archive(
    source: MailboxSource,
    write: Callable[[bytes], object],
    *,
    header: ManifestHeader,
    progress: Progress | None = None,
    should_stop: Callable[[], None] = lambda: None,
    compresslevel: int = deflate.DEFAULT_LEVEL,
    zip64_limit: int | None = None,
    folders: list[Folder] | None = None,
    resume: ResumePoint | None = None,
    checkpointer: Checkpointer | None = None,
) -> ArchiveFigures:
    """Write the whole archive of ``source`` into ``write``; see the module docstring.

    ``should_stop`` is called before every item and chunk and raises to stop (e.g.
    :class:`StopExport`). Source errors propagate (:class:`TransientSourceError` for retryable
    ones); the bytes written so far are then not a valid archive.

    ``resume`` continues an archive an earlier attempt wrote up to the end of its uploaded parts
    (``write`` then receives the bytes from there on); ``checkpointer`` is told where the
    producer stands before each item (see :mod:`mailcrate.export.checkpoint`).
    """
    progress = progress or Progress()
    folders = source.folders() if folders is None else folders
    progress.items_total = sum(f.count for f in folders)
    kwargs = {} if zip64_limit is None else {"zip64_limit": zip64_limit}
    at: Position | None = None
    writer = ZipStreamWriter(
        SkipToEnd(write, resume).write if resume else write, compresslevel=compresslevel, **kwargs
    )
    exported = total_bytes = skipped = 0
    filled: set[int] = set()  # folders that listed an item; the others go in the header as empty
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as manifest:
        current, seq, after = -1, 0, None
        if resume is not None:
            at = resume.position
            writer.resume_at(at.offset, at.entries, resume.central)
            manifest.write(resume.manifest)
            exported, total_bytes, skipped, filled = at.exported, at.total_bytes, at.skipped, set(at.filled)
            current, seq, after = at.folder, at.seq, at.after
            progress.items_done, progress.bytes_done = at.items_done, at.bytes_done
        if checkpointer is not None:
            checkpointer.attach(writer, manifest)
        reader = _ReadAhead(source, folders, compresslevel, (at.folder, at.after) if at else (0, None))

        def position(index: int) -> Position:
            return Position(
                offset=writer.bytes_written,
                entries=writer.entry_count,
                central=writer.central_length,
                manifest=manifest.tell(),
                folder=index,
                after=after if index == current else None,
                seq=seq if index == current else 0,
                exported=exported,
                total_bytes=total_bytes,
                skipped=skipped,
                filled=tuple(sorted(filled)),
                items_done=progress.items_done,
                bytes_done=progress.bytes_done,
            )

        try:
            for index, item, chunks in reader.entries():
                should_stop()
                if checkpointer is not None:
                    checkpointer.before(position(index))
                if index != current:
                    current, seq, after = index, 0, None
                after = item.source_id  # for the next item's position
                folder = folders[index]
                progress.start_item(item.size)
                filled.add(index)
                if chunks is None:
                    skipped += 1
                    progress.end_item()
                    continue
                seq += 1
                name = item_path(item.kind, folder.path, seq)
                if isinstance(chunks, PreparedEntry):
                    entry = writer.add_prepared(name, chunks, date_time=item.internal_date)
                    progress.add_bytes(entry.size)
                else:
                    stream = reader.stream()
                    entry = writer.add(
                        name,
                        _counted(next(stream, b""), stream, progress, should_stop),
                        date_time=item.internal_date,
                        size_hint=item.size,
                    )
                manifest.write(
                    ManifestItem(
                        zip_path=name,
                        kind=item.kind,
                        folder=folder.path,
                        source_id=item.source_id,
                        size=entry.size,
                        sha256=entry.sha256_hex,
                        internal_date=item.internal_date,
                        flags=item.flags,
                    ).to_json_line()
                )
                exported += 1
                total_bytes += entry.size
                progress.end_item()
        finally:
            reader.close()
        should_stop()
        if checkpointer is not None:
            checkpointer.before(position(len(folders)))
        empty = tuple((f.kind, f.path) for i, f in enumerate(folders) if i not in filled)
        head = dataclasses.replace(header, empty_folders=empty).to_json_line()
        size = manifest.tell()
        manifest.seek(0)
        writer.add(
            MANIFEST_NAME,
            itertools.chain((head,), iter(lambda: manifest.read(_COPY_CHUNK), b"")),
            date_time=header.start_time,
            compress=True,
            size_hint=len(head) + size,
        )
    archive_bytes = writer.close()
    return ArchiveFigures(
        total_messages=exported,
        total_folders=len(folders),
        total_bytes=total_bytes,
        total_non_exportable_items=skipped,
        archive_bytes=archive_bytes,
    )
