"""The one place that chooses a raw-deflate implementation for exports.

Why: deflate is the CPU bottleneck of an export. On the reference machine (RECIPES.md §7)
``isal.isal_zlib`` level 1 compresses mail 3-4x faster than stdlib ``zlib`` level 1 at a
slightly *better* ratio, and its CRC-32 is ~6x faster. ``isal`` is a declared dependency, but a
stripped-down install (or an exotic platform without a wheel) still works with stdlib ``zlib``.
The rest of the export code imports deflate and CRC only from here, so the choice is made once.
"""

from __future__ import annotations

import zlib as _stdlib_zlib
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

__all__ = ["BACKEND", "DEFAULT_LEVEL", "Z_FINISH", "Z_SYNC_FLUSH", "Compressor", "compressobj", "crc32"]


class Compressor(Protocol):
    """What ``compressobj`` returns (the common subset of zlib and isal_zlib compress objects)."""

    def compress(self, data: bytes | bytearray | memoryview, /) -> bytes: ...

    def flush(self, mode: int = ..., /) -> bytes: ...


def compressobj(level: int = DEFAULT_LEVEL) -> Compressor:
    """Return a compressor producing a *raw* deflate stream (wbits -15: no zlib/gzip wrapper),
    which is what a ZIP entry with method 8 contains.

    ``level`` uses zlib's 0-9 scale; isal only has levels 0-3, so higher levels are clamped to 3
    (isal's best) rather than rejected, letting callers ask for "better ratio" portably.
    """
    if BACKEND == "isal":
        level = max(0, min(level, 3))
    return _impl.compressobj(level, _impl.DEFLATED, -15)


def crc32(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """CRC-32 (the ZIP/zlib polynomial) of ``data``, continuing from ``value``."""
    return _impl.crc32(data, value)
