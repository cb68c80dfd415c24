"""A lazy, forward-only ZIP writer for export archives (in the spirit of zipstream-ng).

Why it exists: an export streams a whole mailbox (tens of GiB, single items of 2 GiB+) into
S3 multipart parts. The stdlib ``zipfile`` either seeks back to patch headers or needs to know
sizes up front; here bytes only ever go forward into a ``write(bytes)`` sink, each entry is
consumed chunk by chunk, and CRC-32, sizes and SHA-256 are computed while streaming.

Format decisions (see DESIGN.md "Zip layout"):

* Every name is UTF-8 with general-purpose flag bit 11 set.
* Deflated entries (method 8) always use a data descriptor (bit 3): their sizes are unknown
  until the stream ends.
* ``compress=None`` decides per entry: the first 64 KiB is deflated and, if it does not shrink
  below 97 %, the entry is *stored* (method 0) so already-compressed data costs no CPU.
  A stored entry that fits in that 64 KiB probe is written with CRC and sizes in its local
  header and no data descriptor (stored + descriptor cannot be read by streaming unzippers
  such as Java's ``ZipInputStream``); larger stored entries use a descriptor, which the
  central directory makes unambiguous for ``zipfile`` and Info-ZIP.
* Deflate past the probe runs in 1 MiB blocks on a thread pool, each primed with the window
  before it and sync-flushed, ended by an empty final block: one valid stream, cut at fixed
  offsets so the bytes do not depend on how the source chunked them
  (:class:`~mailcrate.export.deflate.BlockDeflater`). :func:`prepare` does a whole in-memory
  entry's work (method, deflate, CRC, SHA-256) anywhere, for :meth:`ZipStreamWriter.add_prepared`.
* zip64: the central directory gets zip64 fields for exactly the values above
  ``zip64_limit``; a local header gets a zip64 extra (and its descriptor 8-byte sizes) when the
  entry's final size is known to need it or, for entries larger than the probe, when
  ``size_hint`` is ``None`` or large. If an entry written without it grows past the limit,
  the writer raises instead of emitting a corrupt archive.
* Timestamps: DOS date/time holds the UTC wall-clock time (servers have no meaningful local
  zone) plus an extended-timestamp extra (0x5455) with the UTC mtime. ``date_time=None`` gives
  1980-01-01 00:00 and no extra, keeping archives byte-reproducible.

Any failure in the middle of an entry (the chunk iterator raises, the sink raises, a size
overflows) *poisons* the writer: every later call raises :class:`ZipStreamPoisoned`.
"""

from __future__ import annotations

import hashlib
import itertools
import struct
import tempfile
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import IO

from mailcrate.export import deflate

__all__ = [
    "METHOD_DEFLATED",
    "METHOD_STORED",
    "PreparedEntry",
    "ZipEntry",
    "ZipNameError",
    "ZipStreamError",
    "ZipStreamPoisoned",
    "ZipStreamWriter",
    "prepare",
]

METHOD_STORED = 0
METHOD_DEFLATED = 8

_FLAG_DATA_DESCRIPTOR = 0x0008
_FLAG_UTF8 = 0x0800
_VERSION_DEFAULT = 20  # 2.0: deflate, data descriptor
_VERSION_ZIP64 = 45  # 4.5: zip64
_MADE_BY = (3 << 8) | _VERSION_ZIP64  # host system 3 = UNIX, so external_attr holds a mode
_DOS_EPOCH = (0, (1 << 5) | 1)  # (time, date) = 1980-01-01 00:00:00

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_DESCRIPTOR32 = struct.Struct("<IIII")
_DESCRIPTOR64 = struct.Struct("<IIQQ")
_CENTRAL = struct.Struct("<IHHHHHHIIIHH")  # ... up to the extra length; then _CENTRAL_TAIL + offset
_EOCD64 = struct.Struct("<IQHHIIQQQQ")
_EOCD64_LOCATOR = struct.Struct("<IIQI")
_EOCD = struct.Struct("<IHHHHIIH")
_EXTRA_HEADER = struct.Struct("<HH")
_EXTRA_UT = struct.Struct("<HHBi")

_SIG_LOCAL = 0x04034B50
_SIG_DESCRIPTOR = 0x08074B50
_SIG_CENTRAL = 0x02014B50
_SIG_EOCD64 = 0x06064B50
_SIG_EOCD64_LOCATOR = 0x07064B50
_SIG_EOCD = 0x06054B50
_CENTRAL_TAIL = struct.pack("<HHHI", 0, 0, 0, 0o100644 << 16)  # no comment, disk 0, rw-r--r-- file

_U32_MAX = 0xFFFFFFFF
_U16_MAX = 0xFFFF

#: Bytes read before deciding stored vs deflated (and whether an entry is "small").
PROBE_SIZE = 64 * 1024
#: Store when deflate output exceeds this fraction of the input.
STORE_RATIO = 0.97
#: Largest slice handed to the compressor at once, bounding its output buffer: the deflate block.
_SLICE = deflate.BLOCK_SIZE
#: Flush central-directory records to the sink in batches of about this size.
_CD_BATCH = 256 * 1024
#: Central-directory records kept in memory before they spill to a temporary file. Small: a
#: growing in-memory spool reallocates and, at rollover, copies itself; long exports kept that
#: as fragmented heap (the 5 GiB export's peak RSS grew where the 100 MiB one's did not).
_CD_SPOOL_IN_MEMORY = 256 * 1024


class ZipStreamError(Exception):
    """The archive cannot be written correctly; nothing corrupt was emitted silently."""


class ZipNameError(ZipStreamError, ValueError):
    """An entry name is unsafe, malformed or already used. The writer stays usable."""


class ZipStreamPoisoned(ZipStreamError):
    """A previous entry failed mid-stream: the bytes written so far are not a valid archive."""


@dataclass(frozen=True, slots=True)
class ZipEntry:
    """One written entry. ``offset`` is the local header position in the archive."""

    name: str
    size: int
    compressed_size: int
    crc32: int
    sha256_hex: str
    offset: int
    method: int


_Meta = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class _Record:
    """What the central directory needs to know about an entry, beyond :class:`ZipEntry`."""

    entry: ZipEntry
    name_bytes: bytes
    meta: _Meta  # flags, method, DOS time, DOS date: same in both headers
    mtime: int | None
    local_zip64: bool


def _dos_and_mtime(date_time: datetime | None) -> tuple[int, int, int | None]:
    """(DOS time, DOS date, UTC epoch seconds or None) for an entry timestamp.

    Naive datetimes are taken as UTC. DOS fields are clamped to their 1980-2107 range; the
    0x5455 mtime is a signed 32-bit value and is omitted when out of range.
    """
    if date_time is None:
        return _DOS_EPOCH[0], _DOS_EPOCH[1], None
    utc = date_time.replace(tzinfo=UTC) if date_time.tzinfo is None else date_time.astimezone(UTC)
    if utc.year < 1980:
        dos_time, dos_date = _DOS_EPOCH
    elif utc.year > 2107:
        dos_time, dos_date = (23 << 11) | (59 << 5) | 29, (127 << 9) | (12 << 5) | 31
    else:
        dos_time = (utc.hour << 11) | (utc.minute << 5) | (utc.second // 2)
        dos_date = ((utc.year - 1980) << 9) | (utc.month << 5) | utc.day
    epoch = int(utc.timestamp())
    mtime = epoch if -(2**31) <= epoch < 2**31 else None
    return dos_time, dos_date, mtime


def _check_name(name: str) -> bytes:
    """UTF-8 bytes of a safe relative file name, or raise :class:`ZipNameError`."""
    if not isinstance(name, str) or not name:
        raise ZipNameError(f"entry name must be a non-empty str, got {name!r}")
    if "\\" in name or "\x00" in name:
        raise ZipNameError(f"entry name contains a backslash or NUL: {name!r}")
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ZipNameError(f"entry name must be relative, without empty, '.' or '..' parts: {name!r}")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ZipNameError(f"entry name is not encodable as UTF-8: {name!r}") from exc
    if len(encoded) > _U16_MAX:
        raise ZipNameError(f"entry name longer than 65535 bytes: {name[:80]!r}...")
    return encoded


def _slices(chunk: bytes | bytearray | memoryview, offset: int) -> Iterator[memoryview]:
    """Split a chunk that starts at ``offset`` in its entry into views (no copies) that end at
    the entry's multiples of ``_SLICE``: the deflate blocks' boundaries
    (:class:`~mailcrate.export.deflate.BlockDeflater` with ``start``), so a block is one view."""
    view = memoryview(chunk).cast("B")
    at = 0
    while at < len(view):
        end = at + _SLICE - (offset + at) % _SLICE
        yield view[at:end]
        at = end


class ZipStreamWriter:
    """Write a ZIP archive forward-only into ``write``.

    ``write`` receives every byte of the archive in order and is never asked to seek.
    ``compresslevel`` uses zlib's scale (isal supports 0-3; higher is clamped).
    ``zip64_limit`` is the largest size/offset written without zip64; tests lower it to
    exercise the zip64 paths with small archives.
    """

    def __init__(
        self,
        write: Callable[[bytes], object],
        *,
        compresslevel: int = deflate.DEFAULT_LEVEL,
        zip64_limit: int = _U32_MAX - 1,
    ) -> None:
        if not 0 < zip64_limit < _U32_MAX:
            raise ValueError("zip64_limit must be in 1..0xFFFFFFFE")
        self._write = write
        self._level = compresslevel
        self._limit = zip64_limit
        self._written = 0
        # Central-directory records are built as each entry ends and spooled to a temporary
        # file (in memory up to _CD_SPOOL_IN_MEMORY), so memory does not grow with the entry count.
        self._central = tempfile.SpooledTemporaryFile(max_size=_CD_SPOOL_IN_MEMORY)  # noqa: SIM115 - closed by close()
        self._count = 0
        self._names = _NameSet()
        self._closed = False
        self._poison: BaseException | None = None

    # -- public -----------------------------------------------------------------------------

    @property
    def bytes_written(self) -> int:
        """Bytes handed to the sink so far."""
        return self._written

    @property
    def entry_count(self) -> int:
        """Entries written so far."""
        return self._count

    @property
    def central_length(self) -> int:
        """Bytes of central-directory records so far (the spool's end)."""
        return self._central.tell()

    def central_bytes(self, start: int, end: int) -> bytes:
        """Central-directory records ``[start, end)`` (for a resume checkpoint)."""
        return read_range(self._central, start, end)

    def resume_at(self, offset: int, entries: int, central: bytes) -> None:
        """Continue an archive whose first ``offset`` bytes (``entries`` entries, whose
        central-directory records are ``central``) were written by an earlier attempt: the
        next entry starts at ``offset`` (mailcrate.export.checkpoint)."""
        if self._written or self._count:
            raise ZipStreamError("resume_at is for a new writer")
        self._central.write(central)
        self._written, self._count = offset, entries
        for name in self._written_names():
            self._names.add(_NameSet.key(name))

    def add(
        self,
        name: str,
        chunks: Iterable[bytes],
        *,
        date_time: datetime | None,
        compress: bool | None = None,
        size_hint: int | None = None,
    ) -> ZipEntry:
        """Stream one entry from ``chunks`` and return what was written.

        ``compress``: True deflates, False stores, None decides from the first 64 KiB.
        ``size_hint``: expected uncompressed size. Only matters for entries larger than 64 KiB:
        ``None`` or a hint near/above ``zip64_limit`` makes the local header zip64, so items
        of unknown size can safely exceed 4 GiB; a small hint saves 20 bytes but the writer
        raises (poisoned) if the entry then outgrows the limit.
        """
        return self._entry(
            name, lambda name_bytes: self._add(name, name_bytes, chunks, date_time, compress, size_hint)
        )

    def add_bytes(
        self,
        name: str,
        data: bytes,
        *,
        date_time: datetime | None,
        compress: bool | None = None,
    ) -> ZipEntry:
        """Write an entry whose content is already in memory."""
        return self.add(name, (data,), date_time=date_time, compress=compress, size_hint=len(data))

    def add_prepared(self, name: str, prepared: PreparedEntry, *, date_time: datetime | None) -> ZipEntry:
        """Write an entry computed ahead by :func:`prepare` (e.g. on a worker thread)."""
        return self._entry(
            name, lambda name_bytes: self._write_prepared(name, name_bytes, prepared, date_time)
        )

    def _entry(self, name: str, write: Callable[[bytes], _Record]) -> ZipEntry:
        """The bookkeeping around writing one entry, whichever way its data comes: the name is
        checked and unique, a failed write poisons the writer (the stream is no longer a valid
        zip), a written one gets its central directory record."""
        self._check_usable()
        name_bytes = _check_name(name)
        key = self._check_unique(name, name_bytes)
        try:
            record = write(name_bytes)
        except BaseException as exc:
            self._poison = exc
            raise
        self._names.add(key)
        self._central.write(self._central_record(record))
        self._count += 1
        return record.entry

    def close(self) -> int:
        """Write the central directory and end records; return the archive size in bytes.

        Calling it again returns the same total without writing anything.
        """
        if self._closed:
            return self._written
        self._check_usable()
        try:
            self._write_central_directory()
        except BaseException as exc:
            self._poison = exc
            raise
        finally:
            self._central.close()
        self._closed = True
        return self._written

    def __enter__(self) -> ZipStreamWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
        elif self._poison is None and not self._closed:
            self._poison = exc  # never finish an archive whose producer failed
            self._central.close()

    # -- internals --------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._poison is not None:
            raise ZipStreamPoisoned(
                "an earlier failure left this archive incomplete; start a new one"
            ) from self._poison
        if self._closed:
            raise ZipStreamError("archive already closed")

    def _check_unique(self, name: str, name_bytes: bytes) -> int:
        """The name's key for :class:`_NameSet`; raise if an entry of that name was written.
        A key already seen is confirmed against the names in the central directory spool
        (a 64-bit collision must not reject a new name)."""
        key = _NameSet.key(name_bytes)
        if key in self._names and name_bytes in self._written_names():
            raise ZipNameError(f"duplicate entry name: {name!r}")
        return key

    def _written_names(self) -> set[bytes]:
        """Every name in the central directory spool (read back: rare, see _check_unique)."""
        central = self._central
        end = central.tell()
        central.seek(0)
        data = central.read(end)
        central.seek(end)
        names: set[bytes] = set()
        at = 0
        while at < len(data):
            name_len, extra_len = struct.unpack_from("<HH", data, at + _CENTRAL.size - 4)
            start = at + _CENTRAL.size + len(_CENTRAL_TAIL) + 4
            names.add(data[start : start + name_len])
            at = start + name_len + extra_len
        return names

    def _emit(self, data: bytes) -> None:
        if data:  # a sink never sees an empty write
            self._write(data)
            self._written += len(data)

    @staticmethod
    def _local_header(meta: _Meta, name: bytes, mtime: int | None, zip64: bool, *sizes: int) -> bytes:
        """Local file header. ``sizes`` = (crc, size, csize); all 0 when a descriptor follows."""
        crc, size, csize = sizes or (0, 0, 0)
        extra = b""
        if zip64:
            # APPNOTE 4.5.3: the local zip64 extra carries both sizes (0 with a descriptor).
            extra += _EXTRA_HEADER.pack(0x0001, 16) + struct.pack("<QQ", size, csize)
            size = csize = 0 if meta[0] & _FLAG_DATA_DESCRIPTOR else _U32_MAX
        if mtime is not None:
            extra += _EXTRA_UT.pack(0x5455, 5, 1, mtime)
        version = _VERSION_ZIP64 if zip64 else _VERSION_DEFAULT
        fixed = _LOCAL.pack(_SIG_LOCAL, version, *meta, crc, csize, size, len(name), len(extra))
        return fixed + name + extra

    def _add(
        self,
        name: str,
        name_bytes: bytes,
        chunks: Iterable[bytes],
        date_time: datetime | None,
        compress: bool | None,
        size_hint: int | None,
    ) -> _Record:
        """Read up to PROBE_SIZE, then write the entry as small (in memory) or large (streamed)."""
        iterator = iter(chunks)
        probe: list[bytes] = []
        probed = 0
        for chunk in iterator:
            _check_chunk(name, chunk)
            probe.append(chunk if _immutable(chunk) else bytes(chunk))  # kept past the next chunk
            probed += len(chunk)
            if probed >= PROBE_SIZE:
                return self._add_large(name, name_bytes, probe, iterator, date_time, compress, size_hint)
        prepared = prepare(b"".join(probe), compress=compress, level=self._level)
        return self._write_prepared(name, name_bytes, prepared, date_time)

    def _write_prepared(
        self, name: str, name_bytes: bytes, prepared: PreparedEntry, date_time: datetime | None
    ) -> _Record:
        """Whole entry in memory: the method and exact sizes are known, so a stored entry
        needs no data descriptor."""
        offset = self._written
        dos_time, dos_date, mtime = _dos_and_mtime(date_time)
        method, payload, crc, size = prepared.method, prepared.payload, prepared.crc32, prepared.size
        csize = len(payload)
        zip64 = size > self._limit or csize > self._limit
        if method == METHOD_STORED:  # sizes in the header, no descriptor: any reader copes
            meta = (_FLAG_UTF8, method, dos_time, dos_date)
            header = self._local_header(meta, name_bytes, mtime, zip64, crc, size, csize)
            trailer = b""
        else:
            meta = (_FLAG_UTF8 | _FLAG_DATA_DESCRIPTOR, method, dos_time, dos_date)
            header = self._local_header(meta, name_bytes, mtime, zip64)
            trailer = _descriptor(crc, size, csize, zip64)
        self._emit(header)
        self._emit(payload)
        self._emit(trailer)
        entry = ZipEntry(name, size, csize, crc, prepared.sha256_hex, offset, method)
        return _Record(entry, name_bytes, meta, mtime, zip64)

    def _add_large(
        self,
        name: str,
        name_bytes: bytes,
        probe: list[bytes],
        rest: Iterator[bytes],
        date_time: datetime | None,
        compress: bool | None,
        size_hint: int | None,
    ) -> _Record:
        """Entry larger than the probe: streamed, sizes and CRC in a trailing data descriptor.

        The first PROBE_SIZE bytes are deflated here to decide the method; everything after
        them goes to :class:`~mailcrate.export.deflate.BlockDeflater` (deflate on the pool,
        CRC-32/SHA-256 on the digest lane), so this thread only hands blocks on and writes.
        """
        offset = self._written
        dos_time, dos_date, mtime = _dos_and_mtime(date_time)
        zip64 = size_hint is None or size_hint + size_hint // 20 + 1024 > self._limit
        head, tail = _split(probe, PROBE_SIZE)
        digest = _Digest()
        digest.update(head)
        size, csize = len(head), 0
        method, first = METHOD_STORED, head
        blocks: deflate.BlockDeflater | None = None
        if compress is not False:
            comp = deflate.compressobj(self._level)
            deflated = comp.compress(head) + comp.flush(deflate.Z_SYNC_FLUSH)
            if compress or len(deflated) <= size * STORE_RATIO:
                method, first = METHOD_DEFLATED, deflated
                blocks = deflate.BlockDeflater(
                    self._level, head[-deflate.WINDOW :], digest.update, start=len(head)
                )
        meta = (_FLAG_UTF8 | _FLAG_DATA_DESCRIPTOR, method, dos_time, dos_date)
        self._emit(self._local_header(meta, name_bytes, mtime, zip64))
        self._emit(first)
        csize += len(first)
        del probe, head, first
        for chunk in itertools.chain(tail, rest):
            _check_chunk(name, chunk)
            immutable = _immutable(chunk)  # views of it may be deflated later, elsewhere
            for piece in _slices(chunk, size):
                size += len(piece)
                if blocks is not None:
                    outs = blocks.feed(piece if immutable else bytes(piece))
                else:
                    digest.update(piece)
                    outs = [bytes(piece)]
                for out in outs:
                    if out:
                        self._emit(out)
                        csize += len(out)
        for out in blocks.finish() if blocks is not None else ():
            self._emit(out)
            csize += len(out)
        if not zip64 and (size > self._limit or csize > self._limit):
            raise ZipStreamError(
                f"entry {name!r} grew to {size} bytes, beyond the non-zip64 limit its size_hint "
                f"({size_hint}) promised; pass size_hint=None for items of unknown size"
            )
        self._emit(_descriptor(digest.crc, size, csize, zip64))
        entry = ZipEntry(name, size, csize, digest.crc, digest.sha.hexdigest(), offset, method)
        return _Record(entry, name_bytes, meta, mtime, zip64)

    def _central_record(self, record: _Record) -> bytes:
        """Central directory header; zip64 fields for exactly the values above the limit."""
        entry = record.entry
        values = [entry.size, entry.compressed_size, entry.offset]
        wide = [v for v in values if v > self._limit]  # APPNOTE order: size, csize, offset
        size, csize, offset = (_U32_MAX if v > self._limit else v for v in values)
        extra = b""
        if wide:
            extra += _EXTRA_HEADER.pack(0x0001, 8 * len(wide)) + struct.pack(f"<{len(wide)}Q", *wide)
        if record.mtime is not None:
            extra += _EXTRA_UT.pack(0x5455, 5, 1, record.mtime)
        version = _VERSION_ZIP64 if wide or record.local_zip64 else _VERSION_DEFAULT
        lengths = (len(record.name_bytes), len(extra))
        fixed = _CENTRAL.pack(
            _SIG_CENTRAL, _MADE_BY, version, *record.meta, entry.crc32, csize, size, *lengths
        )
        return fixed + _CENTRAL_TAIL + struct.pack("<I", offset) + record.name_bytes + extra

    def _write_central_directory(self) -> None:
        cd_offset = self._written
        self._central.seek(0)
        while batch := self._central.read(_CD_BATCH):
            self._emit(batch)
        cd_size = self._written - cd_offset
        count = self._count
        count_big = count >= _U16_MAX
        size_big = cd_size > self._limit
        offset_big = cd_offset > self._limit
        if count_big or size_big or offset_big:
            eocd64_offset = self._written
            body = (_MADE_BY, _VERSION_ZIP64, 0, 0, count, count, cd_size, cd_offset)
            record64 = _EOCD64.pack(_SIG_EOCD64, _EOCD64.size - 12, *body)
            self._emit(record64 + _EOCD64_LOCATOR.pack(_SIG_EOCD64_LOCATOR, 0, eocd64_offset, 1))
        count16 = _U16_MAX if count_big else count
        ends = (_U32_MAX if size_big else cd_size, _U32_MAX if offset_big else cd_offset)
        self._emit(_EOCD.pack(_SIG_EOCD, 0, 0, count16, count16, *ends, 0))


@dataclass(frozen=True, slots=True)
class PreparedEntry:
    """An in-memory entry whose method, payload, CRC-32 and SHA-256 were computed ahead (by
    :func:`prepare`, possibly on another thread), so writing it only copies bytes."""

    size: int
    payload: bytes
    method: int
    crc32: int
    sha256_hex: str


def prepare(
    data: bytes, *, compress: bool | None = None, level: int = deflate.DEFAULT_LEVEL
) -> PreparedEntry:
    """Deflate, CRC and hash a whole entry. ``compress=None`` stores it when deflate does not
    shrink it below ``STORE_RATIO``. Thread-safe (the heavy parts release the GIL)."""
    size = len(data)
    crc = deflate.crc32(data)
    method, payload = METHOD_STORED, data
    if compress is not False:
        comp = deflate.compressobj(level)
        deflated = comp.compress(data) + comp.flush(deflate.Z_FINISH)
        if compress or len(deflated) <= size * STORE_RATIO:
            method, payload = METHOD_DEFLATED, deflated
    deflate.clear_vector_state()  # after isal, before SHA-256: see there
    return PreparedEntry(size, payload, method, crc, hashlib.sha256(data).hexdigest())


def read_range(spool: IO[bytes], start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of a spool file that is being appended to (its position, the end,
    is kept)."""
    here = spool.tell()
    spool.seek(start)
    data = spool.read(end - start)
    spool.seek(here)
    return data


class _NameSet:
    """64-bit keys of the names written, in an open-addressing table of 8-byte slots.

    Why not a ``set[str]``: that costs ~130 bytes per entry, and an export of 5 GiB has
    ~35,000 entries (4-5 MiB that a 100 MiB export does not have, and the peak RSS may grow
    at most 15 % from 100 MiB to 5 GiB). This costs 16-32 bytes per entry. A key seen before is only a candidate duplicate:
    the writer confirms it against the central directory (:meth:`ZipStreamWriter._check_unique`).
    """

    __slots__ = ("_slots", "_used")

    def __init__(self) -> None:
        self._slots = array("Q", bytes(8 * 1024))
        self._used = 0

    @staticmethod
    def key(name: bytes) -> int:
        """A non-zero 64-bit key (0 marks an empty slot)."""
        return int.from_bytes(hashlib.blake2b(name, digest_size=8).digest(), "little") or 1

    def __contains__(self, key: int) -> bool:
        slots, mask = self._slots, len(self._slots) - 1
        at = key & mask
        while slots[at]:
            if slots[at] == key:
                return True
            at = (at + 1) & mask
        return False

    def add(self, key: int) -> None:
        if key in self:
            return
        if 2 * (self._used + 1) > len(self._slots):  # keep the load under 1/2
            old, self._slots = self._slots, array("Q", bytes(16 * len(self._slots)))
            for k in old:
                if k:
                    self._insert(k)
        self._insert(key)
        self._used += 1

    def _insert(self, key: int) -> None:
        slots, mask = self._slots, len(self._slots) - 1
        at = key & mask
        while slots[at]:
            at = (at + 1) & mask
        slots[at] = key


class _Digest:
    """CRC-32 and SHA-256 of an entry, fed in order (on the caller's thread or the digest lane)."""

    __slots__ = ("crc", "sha")

    def __init__(self) -> None:
        self.crc = 0
        self.sha = hashlib.sha256()

    def update(self, data: bytes | memoryview) -> None:
        self.crc = deflate.crc32(data, self.crc)
        deflate.clear_vector_state()  # after isal's CRC-32, before SHA-256: see there
        self.sha.update(data)


def _descriptor(crc: int, size: int, csize: int, zip64: bool) -> bytes:
    """Data descriptor (with its optional signature, which every reader expects in practice)."""
    if zip64:
        return _DESCRIPTOR64.pack(_SIG_DESCRIPTOR, crc, csize, size)
    return _DESCRIPTOR32.pack(_SIG_DESCRIPTOR, crc, csize, size)


def _split(chunks: list[bytes], n: int) -> tuple[bytes, list[bytes]]:
    """The first ``n`` bytes of immutable ``chunks`` (copied) and the chunks after them (the
    rest of a split chunk as a view, no copy)."""
    head: list[bytes | memoryview] = []
    tail: list[bytes] = []
    need = n
    for chunk in chunks:
        if need <= 0:
            tail.append(chunk)
            continue
        view = memoryview(chunk).cast("B")
        head.append(view[:need])
        if len(view) > need:
            rest = view[need:]
            tail.append(rest)  # type: ignore[arg-type]
        need -= len(view)
    return b"".join(head), tail


def _immutable(chunk: bytes | bytearray | memoryview) -> bool:
    """Whether ``chunk`` can be kept by reference: ``bytes`` or a view of ``bytes`` (a caller
    may refill a ``bytearray`` as soon as the next chunk is asked for)."""
    return isinstance(chunk, bytes) or (isinstance(chunk, memoryview) and isinstance(chunk.obj, bytes))


def _check_chunk(name: str, chunk: object) -> None:
    if not isinstance(chunk, bytes | bytearray | memoryview):
        raise TypeError(f"entry {name!r}: chunks must be bytes-like, got {type(chunk).__name__}")
