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

import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from mailcrate.export import deflate
from mailcrate.export.manifest import MANIFEST_NAME, ManifestHeader, ManifestItem
from mailcrate.export.names import item_path
from mailcrate.export.zipstream import ZipStreamWriter
from mailcrate.mail.base import Folder, Item, MailboxSource, SourceError, TransientSourceError

__all__ = ["ArchiveFigures", "Progress", "StopExport", "write_archive"]

_SPOOL_IN_MEMORY = 4 * 1024 * 1024
_COPY_CHUNK = 1024 * 1024


class StopExport(Exception):
    """Raised by a ``should_stop`` check: the job was cancelled or the worker is stopping."""


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
    unreadable): such an item is counted as non-exportable instead of failing the export."""
    chunks = item.chunks()
    try:
        first = next(chunks, b"")
    except TransientSourceError:
        raise
    except SourceError:
        return None
    return first, chunks


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
) -> ArchiveFigures:
    """Write the whole archive of ``source`` into ``write``; see the module docstring.

    ``should_stop`` is called before every item and chunk and raises to stop (e.g.
    :class:`StopExport`). Source errors propagate (:class:`TransientSourceError` for retryable
    ones); the bytes written so far are then not a valid archive.
    """
    progress = progress or Progress()
    folders = source.folders() if folders is None else folders
    progress.items_total = sum(f.count for f in folders)
    kwargs = {} if zip64_limit is None else {"zip64_limit": zip64_limit}
    writer = ZipStreamWriter(write, compresslevel=compresslevel, **kwargs)
    exported = total_bytes = skipped = 0
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as manifest:
        manifest.write(header.to_json_line())
        for folder in folders:
            seq = 0
            for item in source.items(folder):
                should_stop()
                progress.start_item(item.size)
                opened = _open_item(item)
                if opened is None:
                    skipped += 1
                    progress.end_item()
                    continue
                seq += 1
                name = item_path(item.kind, folder.path, seq)
                entry = writer.add(
                    name,
                    _counted(opened[0], opened[1], progress, should_stop),
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
        should_stop()
        size = manifest.tell()
        manifest.seek(0)
        writer.add(
            MANIFEST_NAME,
            iter(lambda: manifest.read(_COPY_CHUNK), b""),
            date_time=header.start_time,
            compress=True,
            size_hint=size,
        )
    archive_bytes = writer.close()
    return ArchiveFigures(
        total_messages=exported,
        total_folders=len(folders),
        total_bytes=total_bytes,
        total_non_exportable_items=skipped,
        archive_bytes=archive_bytes,
    )
