"""The one place that chooses a raw-deflate implementation for exports.

Why: deflate is the CPU bottleneck of an export. On the reference machine (RECIPES.md §7)
``isal.isal_zlib`` level 1 compresses mail 3-4x faster than stdlib ``zlib`` level 1 at a
slightly *better* ratio, and its CRC-32 is ~6x faster. ``isal`` is a declared dependency, but a
stripped-down install (or an exotic platform without a wheel) still works with stdlib ``zlib``.
The rest of the export code imports deflate and CRC only from here, so the choice is made once.
"""

from __future__ import annotations

import hashlib
import os
import threading
import zlib as _stdlib_zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

try:  # pragma: no cover - which branch runs depends on the install
    from isal import isal_zlib as _impl

    BACKEND = "isal"
except ImportError:  # pragma: no cover
    _impl = _stdlib_zlib  # type: ignore[assignment]
    BACKEND = "zlib"

#: Default level: isal level 1 (fast, ratio ~= zlib level 1-6 on mail; see RECIPES.md §7).
DEFAULT_LEVEL = 1
#: ``flush`` mode that emits all pending output but keeps the stream (and its window) open.
Z_SYNC_FLUSH: int = _impl.Z_SYNC_FLUSH
#: ``flush`` mode that ends the stream.
Z_FINISH: int = _impl.Z_FINISH

__all__ = [
    "BACKEND",
    "BLOCK_SIZE",
    "DEFAULT_LEVEL",
    "FINAL_BLOCK",
    "Z_FINISH",
    "Z_SYNC_FLUSH",
    "BlockDeflater",
    "Compressor",
    "clear_vector_state",
    "compressobj",
    "crc32",
    "deflate_block",
    "lane",
    "pool",
]


class Compressor(Protocol):
    """What ``compressobj`` returns (the common subset of zlib and isal_zlib compress objects)."""

    def compress(self, data: bytes | bytearray | memoryview, /) -> bytes: ...

    def flush(self, mode: int = ..., /) -> bytes: ...


#: log2 of the deflate window (history) the compressor searches for matches: 4 KiB, not
#: deflate's largest, 32 KiB. Why: mail as an IMAP server sends it has CRLF line ends, and in
#: base64 every ``\r\n`` plus the next line's first character is a 3-byte match somewhere in a
#: large window, so isal level 1 keeps finding (useless) matches instead of skipping ahead
#: through the incompressible part: on export-imap's mailbox with CRLF it costs 2.9-3.2 CPU-s
#: per GiB, against 1.7 on the same mail with LF. With a 4 KiB window it costs 2.15-2.2 and the
#: archive grows 2.1-2.4 % (ratio 0.632 -> 0.647); at 2 KiB +3.9 %, at 8 KiB only -15 % CPU.
#: Any inflater reads any window size (the stream does not name it): readers see no difference.
WINDOW_BITS = 12


def compressobj(level: int = DEFAULT_LEVEL, zdict: bytes = b"") -> Compressor:
    """Return a compressor producing a *raw* deflate stream (negative wbits: no zlib/gzip
    wrapper), which is what a ZIP entry with method 8 contains, with a window of
    :data:`WINDOW_BITS`; ``zdict`` primes its window.

    ``level`` uses zlib's 0-9 scale; isal only has levels 0-3, so higher levels are clamped to 3
    (isal's best) rather than rejected, letting callers ask for "better ratio" portably. isal
    gets memLevel 9 (its largest level buffer): 7-8 % faster on mail at the same ratio.
    """
    mem_level = _impl.DEF_MEM_LEVEL
    if BACKEND == "isal":
        level, mem_level = max(0, min(level, 3)), 9
    if zdict:
        return _impl.compressobj(level, _impl.DEFLATED, -WINDOW_BITS, mem_level, zdict=zdict)
    return _impl.compressobj(level, _impl.DEFLATED, -WINDOW_BITS, mem_level)


def crc32(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """CRC-32 (the ZIP/zlib polynomial) of ``data``, continuing from ``value``."""
    return _impl.crc32(data, value)


def clear_vector_state() -> None:
    """Call between isal (deflate or CRC-32) and a SHA-256 in the same thread.

    Why: isal's AVX-512 code returns with the upper halves of the vector registers in use (no
    ``vzeroupper``), and OpenSSL's SHA-256 (the SHA-NI code, legacy SSE encoding) then runs
    about a third slower in that thread, measured on the reference machine: 0.80 instead of
    0.60 CPU-s per GiB, until something clears the state, which a context switch does not.
    OpenSSL's AVX2 SHA-512 block function ends with ``vzeroupper``: a SHA-512 of nothing
    (~0.4 us) clears it. Where there is no such penalty it costs only that."""
    _sha512(b"").digest()


_sha512 = hashlib.sha512


# -- block-parallel deflate (pigz-style) -------------------------------------------------------

#: Input bytes deflated as one job of the parallel path.
BLOCK_SIZE = 1024 * 1024
#: The compressor's window: each block is primed with the previous block's last this many bytes.
WINDOW = 1 << WINDOW_BITS
#: An empty *final* block with fixed Huffman codes (BFINAL=1, BTYPE=01, end-of-block): it ends a
#: stream whose blocks were all closed with a sync flush, which leaves it byte-aligned.
FINAL_BLOCK = b"\x03\x00"

_pools: dict[str, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def workers() -> int:
    """Deflate threads: one per core, 2-4 (isal and zlib release the GIL while deflating)."""
    return max(2, min(4, os.cpu_count() or 2))


def _executor(name: str, threads: int) -> ThreadPoolExecutor:
    with _pools_lock:
        if name not in _pools:
            _pools[name] = ThreadPoolExecutor(threads, thread_name_prefix=name)
        return _pools[name]


def pool() -> ThreadPoolExecutor:
    """The process-wide deflate pool, created on first use (idle threads cost nothing)."""
    return _executor("deflate", workers())


def lane() -> ThreadPoolExecutor:
    """One thread that runs jobs in submission order: the CRC-32 and SHA-256 of a stream's
    blocks (hashlib and isal release the GIL), next to the deflate pool."""
    return _executor("digest", 1)


def deflate_block(data: bytes | memoryview, history: bytes, level: int = DEFAULT_LEVEL) -> list[bytes]:
    """Deflate ``data`` as a run of non-final blocks that ends byte-aligned (sync flush), with
    ``history`` (the up-to-:data:`WINDOW` bytes that precede it in the stream) as the window.
    Concatenating such outputs for consecutive pieces and then :data:`FINAL_BLOCK` gives one
    valid stream.
    Returned as two pieces, not joined: that would copy every output byte once more."""
    comp = compressobj(level, history)
    return [comp.compress(data), comp.flush(Z_SYNC_FLUSH)]


Block = bytes | memoryview


class BlockDeflater:
    """Deflates the rest of one stream as independent ~1 MiB blocks on :func:`pool`.

    Why: deflate is the producer's largest cost and one stream uses one core. Each block is
    primed with the window (:data:`WINDOW`) before it (so the ratio stays that of one stream)
    and ends with a sync flush; outputs come back in order. ``history`` is the stream's last window so far
    (the caller may have deflated a first part itself and sync-flushed it). ``observe`` (the
    entry's CRC-32/SHA-256) sees every block in order on :func:`lane`, off the caller's thread.
    Memory is bounded: at most ``depth`` blocks (input views and outputs) are in flight.

    ``start`` is where in the entry this stream begins (after a first part the caller deflated
    itself): blocks end at the entry's multiples of BLOCK_SIZE, so a source that reads in pieces
    of BLOCK_SIZE from the entry's start (the IMAP source's large bodies) hands over each block
    as one piece, a view that needs no joining copy.
    """

    def __init__(
        self,
        level: int = DEFAULT_LEVEL,
        history: bytes = b"",
        observe: Callable[[Block], object] = lambda block: None,
        *,
        depth: int = 0,
        start: int = 0,
    ) -> None:
        self._level = level
        self._first = BLOCK_SIZE - start % BLOCK_SIZE  # the first block's length
        self._history = bytes(history[-WINDOW:])
        self._observe = observe
        self._pieces: list[Block] = []
        self._buffered = 0
        self._inflight: deque[_InFlight] = deque()
        self._depth = depth or 2 * workers()
        # Buffers for blocks joined from several pieces, reused once their block is done: a
        # fresh 1 MiB allocation per block fragments glibc's heap over a long stream.
        self._spare: list[bytearray] = []

    def feed(self, data: Block) -> list[bytes]:
        """Take ``data`` (kept by reference until deflated); return the outputs now ready.

        Blocks are cut at the entry's multiples of BLOCK_SIZE whatever the sizes fed, so the
        same bytes give the same stream however the source chunked them."""
        view = memoryview(data).cast("B")
        while self._buffered + len(view) >= self._first:
            need = self._first - self._buffered
            self._pieces.append(view[:need])
            self._buffered = self._first
            self._submit()
            self._first = BLOCK_SIZE
            view = view[need:]
        if view:
            self._pieces.append(view)
            self._buffered += len(view)
        ready: list[bytes] = []
        inflight = self._inflight
        while inflight and (len(inflight) > self._depth or inflight[0][0].done()):
            ready += self._result(inflight.popleft())
        return ready

    def finish(self) -> list[bytes]:
        """The remaining outputs, the last ending the stream; every block has been observed."""
        if self._buffered:  # the tail, alongside the blocks still in flight
            self._submit()
        ready: list[bytes] = []
        while self._inflight:
            ready += self._result(self._inflight.popleft())
        self._spare.clear()
        ready.append(FINAL_BLOCK)
        return ready

    def _take(self) -> tuple[Block, bytearray | None]:
        """The buffered pieces as one block, and the spare buffer it was joined into (if any)."""
        pieces, size = self._pieces, self._buffered
        self._pieces, self._buffered = [], 0
        if len(pieces) == 1:
            return pieces[0], None
        buffer = self._spare.pop() if self._spare else bytearray(BLOCK_SIZE)
        at = 0
        for piece in pieces:
            buffer[at : at + len(piece)] = piece  # same length: the buffer is never resized
            at += len(piece)
        return memoryview(buffer)[:size], buffer

    def _submit(self) -> None:
        block, buffer = self._take()
        history, self._history = self._history, (self._history + bytes(block[-WINDOW:]))[-WINDOW:]
        deflated = pool().submit(deflate_block, block, history, self._level)
        self._inflight.append((deflated, lane().submit(self._observe, block), buffer))

    def _result(self, inflight: _InFlight) -> list[bytes]:
        deflated, observed, buffer = inflight
        try:
            observed.result()  # re-raises what observing failed with
            return deflated.result()
        finally:
            if buffer is not None and deflated.done() and observed.done():
                self._spare.append(buffer)  # both jobs are done with it


_InFlight = tuple["Future[list[bytes]]", "Future[object]", "bytearray | None"]
