"""Multipart part uploads with several parts in flight, bounded memory and an in-order hash.

The producer (zip writer) hands finished parts to :meth:`PartUploader.submit`, which blocks
while ``in_flight`` parts are uploading (none is queued behind them: a queued part would only
be one more part-sized buffer), so memory stays at about part size x (in_flight + 1) (one
more being the part the producer is filling) whatever the mailbox size. Uploads run on their own threads (HTTP, and in embedded mode the server's
encryption and disk writes), in parallel with the producer's reading and deflating.

The SHA-384 of the whole object (the export log's ``sha384Hash``) is computed in part order by
a helper thread of each upload, while that part is being sent (both release the GIL), keeping it
off the producer and out of the part's latency: the last part of a small export, uploaded only
once the archive ends, does not wait for its hash (~6 ms per 5 MB) before its upload starts.

Any failed part (after botocore's own retries) stops the upload: later submits raise the
error, and the caller aborts the multipart upload. :meth:`PartUploader.cancel` stops it too.

**Streaming** (``stream_part``, the embedded S3 in-process): a part's upload starts when the
producer starts filling it (:meth:`PartUploader.open_part`, :class:`StreamingPartSink`), and
takes it 1 MiB chunk by chunk as each is filled (:class:`PartStream`): the handler checks the
policy and opens the data key at once, and seals and writes each chunk while the producer fills
the next, and this thread adds each chunk to the object's hash first. When the archive ends only
the last chunk, the fsync, the rename and the part's row remain (a 1k-message export: ~11 ms
-> ~3 ms); two parts are open at once (:data:`STREAM_SLOTS`). A streamed part is filled through
a ring of :data:`STREAM_RING` bytes, not a buffer of its own size: the producer waits only when
it is a whole ring ahead of the handler, so a part's size no longer costs memory, and streamed
parts can be large (each UploadPart costs the worker ~8 ms of CPU whatever its size: policy,
data key, rows). HTTP (S3 UploadPart needs the length up front) keeps whole parts.
"""

from __future__ import annotations

import logging
import mmap
import threading
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from mailcrate.export import deflate
from mailcrate.export.resumable_hash import ResumableSha384

log = logging.getLogger("mailcrate.export")

Buffer = bytearray | mmap.mmap | memoryview
UploadPart = Callable[[int, Buffer], str]  # (part number, data) -> ETag
Frames = Iterator[tuple[memoryview, bool]]  # (chunk, last) of one part, as it is filled
StreamPart = Callable[[int, Frames], str]  # (part number, frames) -> ETag

#: Parts of a streaming upload open at once: the one being filled and one closing. A streamed
#: part is sealed and written while it fills, so once closed only its last chunk, the fsync and
#: its row remain; more closing parts only held more part buffers. ``in_flight`` (for whole
#: parts over HTTP) does not apply. Two slots beat four on both peak memory and time
#: (``export-scaling --only size``; figures in BENCHMARKS.md).
STREAM_SLOTS = 2
#: The chunk a streamed part is handed over in (the blob store's chunk size).
CHUNK = 1 << 20
#: The ring a streamed part larger than it is filled through (a multiple of CHUNK, at least two):
#: how far the producer may run ahead of the handler sealing and writing the part's chunks.
STREAM_RING = 4 * CHUNK
#: How much newly filled data wakes a streamed part's thread to hash it (the hash, ~1.2 ms per
#: MiB, is the slow step: hashed a chunk at a time, a whole chunk could be left at the end).
HASH_STEP = 256 << 10


def new_part_buffer(size: int) -> mmap.mmap:
    """A zeroed part buffer whose pages are not touched until written: an anonymous mapping.

    ``bytearray(size)`` memsets all of it (8 MiB: ~5 ms of page faults on the producer before
    the first byte of a job, and the short last part pays for pages it never fills); the kernel
    zero-fills a mapping's pages on first write instead. Dropping the last reference unmaps it,
    so its memory goes back to the system at once (no allocator heap to fragment)."""
    return mmap.mmap(-1, max(size, 1))


class _BufferPool:
    """The free part buffers of this process, shared by all its uploaders (several jobs run at
    once in one worker process): an uploader takes its part buffers here and gives each back
    once its part is uploaded.

    Why keep any: a mapping's pages are faulted in (and zeroed by the kernel) on first write,
    ~0.8 ms per MB, and unmapped when dropped (~1 ms for 8 MiB): per part of a big export, and
    for a small export ~5 ms of its fixed cost. Reusing one keeps its pages.

    How many: while jobs run, at most :attr:`per_job` free buffers for each (an uploader's
    parts free one and take one in turn, so more would only be idle memory), plus :attr:`idle`;
    when a job leaves, the surplus is dropped, so an idle worker holds at most :attr:`idle`
    (one part buffer: a small export's; a streamed part's is its ring, :data:`STREAM_RING`)."""

    def __init__(self, *, idle: int, per_job: int) -> None:
        self.idle = idle
        self.per_job = per_job
        self._lock = threading.Lock()
        self._free: list[mmap.mmap] = []  # oldest first
        self._jobs = 0

    def _limit(self) -> int:
        return self.idle + self.per_job * self._jobs

    def join(self) -> None:
        """A job starts using the pool: it may keep :attr:`per_job` more buffers."""
        with self._lock:
            self._jobs += 1

    def leave(self) -> None:
        """A job is done: drop the free buffers beyond what the remaining jobs may keep."""
        with self._lock:
            self._jobs -= 1
            surplus = len(self._free) - self._limit()
            dropped = self._free[:surplus] if surplus > 0 else []
            del self._free[: len(dropped)]
        del dropped  # unmapped here, outside the lock

    def take(self, size: int) -> mmap.mmap | None:
        """A free buffer of exactly ``size`` bytes (the most recently given), or None."""
        with self._lock:
            for i in range(len(self._free) - 1, -1, -1):
                if len(self._free[i]) == size:
                    return self._free.pop(i)
        return None

    def give(self, buf: Buffer) -> None:
        """Keep an uploaded part's buffer (a mapping) if the bound allows; when full, it
        replaces one of another size (the part size grows in a long export)."""
        if not isinstance(buf, mmap.mmap) or buf.closed:
            return
        dropped: mmap.mmap | None = None
        with self._lock:
            if len(self._free) < self._limit():
                self._free.append(buf)
            else:
                for i, kept in enumerate(self._free):
                    if len(kept) != len(buf):
                        dropped = self._free.pop(i)
                        self._free.append(buf)
                        break
        del dropped  # unmapped here, outside the lock


#: This process's free part buffers: 2 per running job, 1 between jobs.
BUFFERS = _BufferPool(idle=1, per_job=2)


@dataclass(frozen=True, slots=True)
class Resume:
    """An upload continued from a checkpoint: parts 1..``parts`` are uploaded (their ETags) and
    in the hash (its state after them)."""

    parts: int
    etags: list[str]
    hash_state: bytes


class UploadStopped(Exception):
    """The upload was cancelled; no more parts are accepted."""


class PartUploader:
    def __init__(
        self,
        upload_part: UploadPart,
        *,
        in_flight: int = 3,
        on_uploaded: Callable[[int], None] | None = None,
        name: str = "export",
        stream_part: StreamPart | None = None,
        resume: Resume | None = None,
    ) -> None:
        if in_flight < 1:
            raise ValueError("in_flight must be at least 1")
        self._upload_part = upload_part
        self._stream_part = stream_part
        self._on_uploaded = on_uploaded
        self._name = name
        slots = STREAM_SLOTS if stream_part is not None else in_flight
        self._pool = ThreadPoolExecutor(max_workers=slots, thread_name_prefix=f"{name}-upload")
        self._slots = threading.BoundedSemaphore(slots)
        self._streams: set[PartStream] = set()  # parts being streamed, aborted by cancel()
        self._futures: list[Future[str]] = []
        self._error: BaseException | None = None
        self._stopped = threading.Event()
        # The object's hash, resumable (mailcrate.export.checkpoint); its state after each part
        # and each part's ETag, until a checkpoint takes them (durable()).
        self._hash = ResumableSha384.from_state(resume.hash_state) if resume else ResumableSha384()
        self._first = resume.parts + 1 if resume else 1  # the number of this uploader's first part
        self._earlier = list(resume.etags) if resume else []  # ETags of the parts before it
        self._hashed = self._first - 1  # parts hashed so far (they are hashed strictly in order)
        self._hash_turn = threading.Condition()
        self._states: dict[int, bytes] = {}
        self._etags: dict[int, str] = {}
        self._durable = self._first - 1
        self.bytes_submitted = 0
        self.bytes_uploaded = 0
        self._lock = threading.Lock()
        BUFFERS.join()  # part buffers come from and go back to the process's pool
        # Leave it once, at finish() or cancel(), or when dropped without either.
        self._leave_buffers = weakref.finalize(self, BUFFERS.leave)

    @property
    def parts(self) -> int:
        return len(self._futures)

    def _raise_if_stopped(self) -> None:
        if self._error is not None:
            raise self._error
        if self._stopped.is_set():
            raise UploadStopped("upload cancelled")

    def _acquire(self) -> None:
        self._raise_if_stopped()
        while not self._slots.acquire(timeout=0.2):
            self._raise_if_stopped()

    def sink(
        self, part_size: int, resume: tuple[int, int, int, int] | None = None
    ) -> PartSink | StreamingPartSink:
        """The zip writer's sink for parts of ``part_size``: streamed when this uploader streams.
        ``resume`` = (parts uploaded, their bytes, the offset of the item written at their end,
        the CRC-32 of its bytes up to there) continues an upload (:class:`Resume`)."""
        if self._stream_part is not None:
            return StreamingPartSink(part_size, self.open_part, resume)
        return PartSink(part_size, self.submit, self.buffer, resume)

    def open_part(self, size: int) -> PartStream:
        """Start the next part (numbered from 1) of at most ``size`` bytes, to be filled by the
        caller (:class:`PartStream`); its upload runs meanwhile. Blocks while the slots are
        full."""
        if self._stream_part is None:
            raise RuntimeError("this uploader takes whole parts (submit)")
        self._acquire()
        try:
            self._raise_if_stopped()
            stream = PartStream(self.buffer(min(size, STREAM_RING)), self._stopped)
            with self._lock:
                self._streams.add(stream)
            number = self._first + len(self._futures)
            self._futures.append(self._pool.submit(self._run_stream, number, stream))
        except BaseException:
            self._slots.release()
            raise
        return stream

    def _hashed_frames(self, number: int, stream: PartStream) -> Frames:
        """The part's chunks; its bytes go into the object's hash as they are filled (in
        steps of :data:`HASH_STEP`, so that at the end of the archive only the last step is
        left to hash, not a whole chunk), the first once parts 1..number-1 are in; the part
        is counted in once its last chunk is."""
        turn = False

        def wait_turn() -> None:
            nonlocal turn
            if not self._wait_hash_turn(number):
                raise UploadStopped("upload cancelled")
            turn = True

        def hash_bytes(piece: memoryview) -> None:
            if not turn:
                wait_turn()
            self._hash.update(piece)

        for chunk, last in stream.frames(hash_bytes):
            if last:
                if not turn:  # an empty part
                    wait_turn()
                with self._hash_turn:
                    self._states[number] = self._hash.state()
                    self._hashed = number
                    self._hash_turn.notify_all()
            yield chunk, last
            if last:
                return

    def _run_stream(self, number: int, stream: PartStream) -> str:
        assert self._stream_part is not None
        try:
            if self._stopped.is_set() or self._error is not None:
                raise UploadStopped("upload cancelled")
            etag = self._stream_part(number, self._hashed_frames(number, stream))
            if self._hashed < number:  # the handler did not take the whole part
                raise UploadStopped("upload cancelled")
            size = stream.size or 0
            with self._lock:
                self.bytes_submitted += size
                self._streams.discard(stream)
                self._etags[number] = etag
            self._uploaded(size, stream.buf)
            return etag
        except BaseException as exc:
            with self._lock:
                self._streams.discard(stream)
            self._failed(exc)
            stream.abort(self._error or exc)  # the producer filling it stops at its next chunk
            with self._hash_turn:
                self._hash_turn.notify_all()
            raise
        finally:
            self._slots.release()

    def submit(self, data: Buffer) -> None:
        """Queue the next part (numbered from 1); blocks while the queue is full."""
        self._acquire()
        try:
            self._raise_if_stopped()
            number = self._first + len(self._futures)
            self.bytes_submitted += len(data)
            self._futures.append(self._pool.submit(self._run, number, data))
        except BaseException:
            self._slots.release()
            raise

    def _hash_in_order(self, number: int, data: Buffer) -> None:
        """Add part ``number`` to the object's hash once parts 1..number-1 are in."""
        if not self._wait_hash_turn(number):
            return  # the upload is over: its hash is of no use
        with self._hash_turn:
            self._hash.update(data)
            self._states[number] = self._hash.state()
            self._hashed = number
            self._hash_turn.notify_all()

    def _wait_hash_turn(self, number: int) -> bool:
        """Wait until parts 1..number-1 are in the object's hash; False if the upload stopped."""
        with self._hash_turn:
            while self._hashed != number - 1:
                if self._stopped.is_set():
                    return False
                self._hash_turn.wait(0.2)
        return True

    def _uploaded(self, size: int, buf: Buffer) -> None:
        """A part is stored: count it, and give its buffer (a mapping) back for the next part."""
        with self._lock:
            self.bytes_uploaded += size
        BUFFERS.give(buf)
        if self._on_uploaded is not None:
            self._on_uploaded(size)

    def _failed(self, exc: BaseException) -> None:
        """A part failed or was stopped: the first real failure is what later calls raise."""
        with self._lock:
            if self._error is None and not isinstance(exc, UploadStopped):
                self._error = exc
        self._stopped.set()

    def _run(self, number: int, data: Buffer) -> str:
        hasher: threading.Thread | None = None
        try:
            if self._stopped.is_set() or self._error is not None:
                raise UploadStopped("upload cancelled")
            hasher = threading.Thread(
                target=self._hash_in_order, args=(number, data), name=f"{self._name}-hash", daemon=True
            )
            hasher.start()
            etag = self._upload_part(number, data)
            hasher.join()
            hasher = None
            if self._hashed < number:  # stopped before this part's turn came
                raise UploadStopped("upload cancelled")
            with self._lock:
                self._etags[number] = etag
            self._uploaded(len(data), data)
            return etag
        except BaseException as exc:
            self._failed(exc)
            if hasher is not None:
                hasher.join()  # it still reads the buffer
            raise
        finally:
            self._slots.release()

    def buffer(self, size: int) -> Buffer:
        """A part buffer of ``size`` bytes: an uploaded part's buffer when one is free (reusing
        them saves mapping and faulting in fresh pages per part), else a new mapping
        (:func:`new_part_buffer`)."""
        return BUFFERS.take(size) or new_part_buffer(size)

    def durable(self) -> tuple[int, bytes, list[str]] | None:
        """The last part N such that parts 1..N are all uploaded and hashed, the hash's state
        after it and the ETags of parts 1..N (None when no part is, beyond those this uploader
        resumed after); what a checkpoint records. The states and ETags of parts 1..N are
        forgotten here (a checkpoint asks for each run once)."""
        with self._lock:
            n = self._durable
            while (n + 1) in self._etags and (n + 1) in self._states:
                n += 1
            if n == self._durable:
                return None
            state = self._states[n]
            for part in range(self._durable + 1, n + 1):
                self._earlier.append(self._etags.pop(part))
                del self._states[part]
            self._durable = n
            return n, state, list(self._earlier)

    def finish(self) -> list[str]:
        """Wait for every part; the ETags in part order (those of the parts before a resumed
        upload's first included). Raises the first failure."""
        etags: list[str] = self._earlier[: self._first - 1]
        try:
            for future in self._futures:
                try:
                    etags.append(future.result())
                except UploadStopped:
                    self._raise_if_stopped()
                    raise
        finally:
            self._pool.shutdown(wait=True)
            self._leave_buffers()
        self._raise_if_stopped()
        return etags

    def sha384_hex(self) -> str:
        """The whole object's SHA-384 (of a resumed upload, its earlier parts' bytes included);
        valid after :meth:`finish`."""
        return self._hash.hexdigest()

    def cancel(self) -> None:
        """Stop: queued parts are dropped, running uploads finish or fail; returns when idle."""
        self._stopped.set()
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            stream.abort(UploadStopped("upload cancelled"))
        for future in self._futures:
            future.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._leave_buffers()


class _PartFiller:
    """The zip writer's ``write``: fills parts of exactly ``part_size`` bytes (the last may be
    shorter). Subclasses say where a part's buffer comes from (:meth:`_begin`, called at its
    first byte), what happens as it fills (:meth:`_filled`) and once it is full (:meth:`_end`).

    Each part is one preallocated buffer (a streamed part's is a ring: :meth:`_room`) filled by
    slice assignment and handed over as is (no copy, no regrowth): large copies hold the GIL,
    and the producer shares it with the upload threads.

    Small parts keep memory low, but S3 allows only 10,000 parts and the archive size is not
    known up front: the part size doubles every :data:`GROW_EVERY` parts (8 MiB parts then
    cover 8 MiB x 2,500 x (1 + 2 + 4 + 8) = 300 GiB; streamed 64 MiB ones 2.3 TiB).
    """

    GROW_EVERY = 2500

    def __init__(self, part_size: int, resume: tuple[int, int, int, int] | None = None) -> None:
        self.part_size = part_size
        self._buf: Any = None  # the part being filled (None between parts)
        self._fill = 0
        self._parts = 0
        self.total = 0
        # For resume checkpoints (mailcrate.export.checkpoint), once a checkpointer turns
        # ``tracking`` on: the offset where the item being written started (the producer sets
        # it before each item), the CRC-32 of its bytes so far (computed as they are written:
        # isal, ~0.08 CPU-s/GiB, whatever buffers the parts use), and per part not yet
        # checkpointed: its end, that offset and that CRC at the end.
        self.tracking = False
        self.item_start = 0
        self._crc_start, self._crc = 0, 0
        self._boundaries: dict[int, tuple[int, int, int]] = {}
        if resume is not None:  # parts 1..parts (total bytes) are uploaded already
            self._parts, self.total, self.item_start, self._crc = resume
            self._crc_start = self.item_start
            self.tracking = True

    def size_after(self, part: int) -> int:
        """The size of part ``part + 1`` (the growth rule below)."""
        return self._base_size * 2 ** (part // self.GROW_EVERY)

    @property
    def _base_size(self) -> int:
        return self.part_size // 2 ** (self._parts // self.GROW_EVERY)

    def boundary(self, part: int) -> tuple[int, int, int] | None:
        """Part ``part``'s end offset, the start of the item written there, and the CRC-32 of
        the bytes from that start to the end (None once forgotten)."""
        return self._boundaries.get(part)

    def forget_boundaries(self, upto: int) -> None:
        for part in [p for p in self._boundaries if p <= upto]:
            del self._boundaries[part]

    def _track(self, data: memoryview) -> None:
        """``data`` is being written: add it to the current item's CRC-32 (a new item: from 0)."""
        if self._crc_start != self.item_start:
            self._crc_start, self._crc = self.item_start, 0
        self._crc = deflate.crc32(data, self._crc)

    def _begin(self, size: int) -> Buffer:
        raise NotImplementedError

    def _filled(self, fill: int) -> None:
        """The part being filled holds ``fill`` bytes now (and is not full)."""

    def _end(self, fill: int) -> None:
        raise NotImplementedError

    def _room(self, want: int) -> tuple[int, int]:
        """Where in the buffer the part's next bytes go, and how many of ``want`` fit there now
        (at least one): a whole part's buffer takes them all at the part's offset."""
        return self._fill, want

    def write(self, data: bytes | bytearray | memoryview) -> None:
        size = len(data)
        self.total += size
        view = memoryview(data)
        pos = 0
        while pos < size:
            if self._buf is None:
                self._buf = self._begin(self.part_size)
            at, take = self._room(min(size - pos, self.part_size - self._fill))
            self._buf[at : at + take] = view[pos : pos + take]
            if self.tracking:
                self._track(view[pos : pos + take])
            self._fill += take
            pos += take
            if self._fill == self.part_size:
                if self.tracking:
                    self._boundaries[self._parts + 1] = (self.total - size + pos, self._crc_start, self._crc)
                self._end(self._fill)
                self._buf, self._fill = None, 0
                self._parts += 1
                if self._parts % self.GROW_EVERY == 0:
                    self.part_size *= 2
            else:
                self._filled(self._fill)


class PartSink(_PartFiller):
    """Parts handed whole to ``submit`` once full; the last one, at :meth:`close`, as a
    ``memoryview`` of its filled bytes (a mapping cannot shrink, and a view copies nothing)."""

    def __init__(
        self,
        part_size: int,
        submit: Callable[[Buffer], None],
        new_buffer: Callable[[int], Buffer] = bytearray,
        resume: tuple[int, int, int, int] | None = None,
    ) -> None:
        super().__init__(part_size, resume)
        self._submit = submit
        self._new_buffer = new_buffer

    def _begin(self, size: int) -> Buffer:
        return self._new_buffer(size)

    def _end(self, fill: int) -> None:
        self._submit(self._buf)

    def close(self) -> None:
        """Submit the last, possibly short, part (a zip is never empty, so there is one)."""
        if self._fill or self.total == 0:
            last = memoryview(self._buf if self._buf is not None else b"")[: self._fill]
            self._buf, self._fill = None, 0
            self._submit(last)


class PartStream:
    """One part shared by the producer filling it and the upload thread writing it.

    :attr:`buf` is a ring: the part's byte ``n`` goes to ``n % len(buf)`` (a part no larger
    than the buffer never wraps). The producer asks :meth:`room` where its next bytes go,
    copies them there and calls :meth:`advance` with its fill (it only needs to when
    :attr:`wake_at` is passed, i.e. once per :data:`HASH_STEP`), then :meth:`close` with the
    part's size. :meth:`frames` (upload thread) hands each newly filled range to its
    ``on_bytes`` (the hash) and yields each chunk once it is final: when the producer wrote
    past it, or the part is closed (then the last one is flagged). A chunk's place in the ring
    is given back when the handler asks for the next one (it has sealed and written it), and
    the producer never writes more than a ring ahead of that, so filled bytes are not written
    to again until hashed and handed over: the upload thread reads them without a lock.
    """

    def __init__(self, buf: Buffer, stopped: threading.Event) -> None:
        self.buf = buf
        self._view = memoryview(buf).cast("B") if not isinstance(buf, memoryview) else buf
        self._ring = len(self._view)
        self._stopped = stopped
        self._cond = threading.Condition()
        self._released = 0  # the part's bytes below this are handed over: their room is free
        self._fill = 0
        self.size: int | None = None  # set by close()
        self.wake_at = HASH_STEP  # the producer calls advance() once its fill passes this
        self._failure: BaseException | None = None

    def advance(self, fill: int) -> None:
        """Producer: the part holds ``fill`` bytes now. Raises the upload's failure, if any."""
        if self._failure is not None:
            raise self._failure
        with self._cond:
            self._fill = fill
            self._cond.notify()
        self.wake_at = (fill // HASH_STEP + 1) * HASH_STEP

    def room(self, fill: int, want: int) -> tuple[int, int]:
        """Producer: where in :attr:`buf` the part's bytes from ``fill`` on go, and how many
        of ``want`` fit there now; waits (having published ``fill``) while the ring is full.
        Raises the upload's failure, or :class:`UploadStopped`."""
        if fill >= self._released + self._ring:
            self.advance(fill)  # the upload thread may be waiting for these bytes
            with self._cond:
                while fill >= self._released + self._ring:
                    if self._failure is not None:
                        raise self._failure
                    if self._stopped.is_set():
                        raise UploadStopped("upload cancelled")
                    self._cond.wait(0.2)
        at = fill % self._ring
        return at, min(want, self._released + self._ring - fill, self._ring - at)

    def _release(self, upto: int) -> None:
        """Upload thread: the part's bytes below ``upto`` are handed over; the producer may
        write over their room."""
        with self._cond:
            self._released = upto
            self._cond.notify_all()

    def close(self, size: int) -> None:
        """Producer: the part is complete at ``size`` bytes."""
        if self._failure is not None:
            raise self._failure
        with self._cond:
            self._fill = self.size = size
            self._cond.notify()

    def abort(self, failure: BaseException) -> None:
        """The upload stopped: :meth:`frames` raises, the producer's next call raises."""
        with self._cond:
            if self._failure is None:
                self._failure = failure
            self._cond.notify_all()

    def frames(self, on_bytes: Callable[[memoryview], None]) -> Frames:
        """Upload thread: ``(chunk, last)`` views of the part, each once it is final; every
        filled byte goes to ``on_bytes`` first, in order."""
        start = seen = 0
        ring, view = self._ring, self._view
        while True:
            with self._cond:
                while self.size is None and self._fill <= seen:
                    if self._failure is not None or self._stopped.is_set():
                        raise UploadStopped("upload cancelled")
                    self._cond.wait(0.2)
                if self._failure is not None:
                    raise UploadStopped("upload cancelled")
                fill, size = self._fill, self.size
            while seen < fill:  # in at most two ranges: up to the ring's end, then from its start
                at = seen % ring
                step = min(fill - seen, ring - at)
                on_bytes(view[at : at + step])
                seen += step
            while fill > start + CHUNK or (size is not None and start < size):
                at = start % ring  # a chunk never wraps: the ring is a multiple of CHUNK
                if size is not None and start + CHUNK >= size:
                    yield view[at : at + size - start], True
                    return
                yield view[at : at + CHUNK], False
                start += CHUNK
                self._release(start)
            if size is not None:  # an empty part
                yield view[0:0], True
                return


class StreamingPartSink(_PartFiller):
    """Parts for a streaming uploader: each part is opened (its upload started) when its first
    byte arrives, filled through its ring (:meth:`PartStream.room`), told of its fill once per
    :data:`HASH_STEP`, and closed when full or at the end; the same growth rule as
    :class:`PartSink`."""

    def __init__(
        self,
        part_size: int,
        open_part: Callable[[int], PartStream],
        resume: tuple[int, int, int, int] | None = None,
    ) -> None:
        super().__init__(part_size, resume)
        self._open = open_part
        self._stream: PartStream | None = None

    def _begin(self, size: int) -> Buffer:
        self._stream = self._open(size)
        return self._stream.buf

    def _room(self, want: int) -> tuple[int, int]:
        assert self._stream is not None
        return self._stream.room(self._fill, want)

    def _filled(self, fill: int) -> None:
        assert self._stream is not None
        if fill > self._stream.wake_at:
            self._stream.advance(fill)

    def _end(self, fill: int) -> None:
        assert self._stream is not None
        stream, self._stream = self._stream, None
        stream.close(fill)

    def close(self) -> None:
        """Close the last, possibly short, part (opened now if the archive was empty)."""
        if self._stream is None and self.total == 0:
            self._buf = self._begin(self.part_size)
        if self._stream is not None:
            self._end(self._fill)
            self._buf, self._fill = None, 0
