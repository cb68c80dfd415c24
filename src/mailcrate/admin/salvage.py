"""Name the entry at fault when an export zip has no readable central directory.

A truncated download loses the end of the archive - the central directory and the manifest -
so a reader that starts from the end (``zipfile``, :func:`verify_export`) can only say "not a
zip". Export zips are written forward with local headers, so they can also be read forward:
this walks the local headers from the start, inflating (or measuring) each entry and checking
its CRC-32, and reports the entry the archive ends inside, or the first entry whose content is
damaged. It reads in bounded chunks and never holds an entry in memory.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["ScanResult", "scan_local_entries"]

_LOCAL = b"PK\x03\x04"
_DESCRIPTOR = b"PK\x07\x08"
_CENTRAL = b"PK\x01\x02"
_CHUNK = 1024 * 1024


@dataclass
class ScanResult:
    complete: list[str]
    bad_entry: str | None = None
    problem: str | None = None


class _Reader:
    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.buf = b""
        self.eof = False

    def fill(self, n: int) -> bool:
        while len(self.buf) < n and not self.eof:
            chunk = self.fh.read(_CHUNK)
            if not chunk:
                self.eof = True
            self.buf += chunk
        return len(self.buf) >= n

    def take(self, n: int) -> bytes:
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def _zip64_sizes(extra: bytes) -> tuple[int, int] | None:
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        if tag == 1 and size >= 16:
            usize, csize = struct.unpack_from("<QQ", extra, pos + 4)
            return usize, csize
        pos += 4 + size
    return None


def _descriptor(r: _Reader, crc: int, csize: int, usize: int, zip64: bool) -> str | None:
    """Consume the data descriptor after an entry; a problem text when it does not match."""
    if not r.fill(4):
        return "the archive ends before this entry's data descriptor"
    if r.buf[:4] == _DESCRIPTOR:
        r.take(4)
    width = 8 if zip64 else 4
    if not r.fill(4 + 2 * width):
        return "the archive ends inside this entry's data descriptor"
    got_crc = struct.unpack("<I", r.take(4))[0]
    fmt = "<Q" if zip64 else "<I"
    got_csize = struct.unpack(fmt, r.take(width))[0]
    got_usize = struct.unpack(fmt, r.take(width))[0]
    if got_crc != crc:
        return f"CRC-32 of the content is {crc:08x}, its data descriptor says {got_crc:08x}"
    if (got_csize, got_usize) != (csize, usize):
        return "sizes in its data descriptor do not match the content"
    return None


def _stored_with_descriptor(r: _Reader) -> tuple[int, int] | None:
    """A stored entry of unknown size: read up to the descriptor whose sizes equal the bytes
    read so far (32- or 64-bit), consume it; returns (CRC of the content, CRC it records)."""
    crc = 0
    size = 0
    while True:
        r.fill(_CHUNK + 24)
        pos = 0
        while (at := r.buf.find(_DESCRIPTOR, pos)) >= 0:
            r.fill(at + 24)
            here = size + at
            fields = r.buf[at + 4 : at + 24]
            if len(fields) >= 12:
                c, s32, u32 = struct.unpack_from("<III", fields)
                if s32 == u32 == here:
                    crc = zlib.crc32(r.take(at), crc)
                    r.take(16)
                    return crc, c
            if len(fields) >= 20:
                c = struct.unpack_from("<I", fields)[0]
                s64, u64 = struct.unpack_from("<QQ", fields, 4)
                if s64 == u64 == here:
                    crc = zlib.crc32(r.take(at), crc)
                    r.take(24)
                    return crc, c
            pos = at + 1
        if r.eof:
            return None
        data = r.take(max(0, len(r.buf) - 23))  # a signature may straddle the chunk end
        crc = zlib.crc32(data, crc)
        size += len(data)


def scan_local_entries(path: Path) -> ScanResult:
    """Walk the archive forward; see the module docstring."""
    result = ScanResult(complete=[])
    with open(path, "rb") as fh:
        r = _Reader(fh)
        while True:
            if not r.fill(4):
                result.problem = "the archive ends before its central directory"
                return result
            sig = r.buf[:4]
            if sig == _CENTRAL or sig == b"PK\x06\x06" or sig == b"PK\x05\x06":
                return result  # reached the central directory: every entry was whole
            if sig != _LOCAL:
                result.problem = f"unexpected bytes {sig!r} after entry {len(result.complete)}"
                return result
            after = f"the entry after {result.complete[-1]}" if result.complete else "the first entry"
            if not r.fill(30):
                result.problem = f"the archive ends inside the local header of {after}"
                return result
            header = r.take(30)
            (_sig, _ver, flags, method, _t, _d, crc, csize, usize, nlen, xlen) = struct.unpack(
                "<IHHHHHIIIHH", header
            )
            if not r.fill(nlen + xlen):
                if len(r.buf) >= nlen:
                    result.bad_entry = r.buf[:nlen].decode("utf-8", "replace")
                    result.problem = "truncated: the archive ends inside this entry's local header"
                else:
                    result.problem = f"the archive ends inside the local header of {after}"
                return result
            name = r.take(nlen).decode("utf-8", "replace")
            extra = r.take(xlen)
            z64 = _zip64_sizes(extra)
            zip64 = z64 is not None
            if z64 and csize == 0xFFFFFFFF:
                usize, csize = z64
            has_descriptor = bool(flags & 0x0008)
            problem = _entry(r, method, has_descriptor, crc, csize, usize, zip64)
            if problem is not None:
                result.bad_entry, result.problem = name, problem
                return result
            result.complete.append(name)


def _entry(
    r: _Reader, method: int, has_descriptor: bool, crc: int, csize: int, usize: int, zip64: bool
) -> str | None:
    truncated = "truncated: the archive ends inside this entry"
    if method == 8:
        inflater = zlib.decompressobj(-15)
        got_crc, got_usize, got_csize = 0, 0, 0
        while not inflater.eof:
            if not r.buf and not r.fill(1):
                return truncated
            data = r.take(len(r.buf))
            try:
                out = inflater.decompress(data)
            except zlib.error as exc:
                return f"deflate data is corrupt ({exc})"
            got_crc = zlib.crc32(out, got_crc)
            got_usize += len(out)
            got_csize += len(data) - len(inflater.unused_data)
            if inflater.eof:
                r.buf = inflater.unused_data + r.buf
        if has_descriptor:
            return _descriptor(r, got_crc, got_csize, got_usize, zip64)
        if got_crc != crc:
            return f"CRC-32 of the content is {got_crc:08x}, its header says {crc:08x}"
        return None
    if method == 0:
        if has_descriptor and csize == 0:
            found = _stored_with_descriptor(r)
            if found is None:
                return truncated
            got, recorded = found
            return (
                None
                if got == recorded
                else f"CRC-32 of the content is {got:08x}, its descriptor says {recorded:08x}"
            )
        got_crc = 0
        left = csize
        while left:
            if not r.buf and not r.fill(1):
                return truncated
            data = r.take(min(left, len(r.buf)))
            got_crc = zlib.crc32(data, got_crc)
            left -= len(data)
        if has_descriptor:
            return _descriptor(r, got_crc, csize, csize, zip64)
        if got_crc != crc:
            return f"CRC-32 of the content is {got_crc:08x}, its header says {crc:08x}"
        return None
    return f"compression method {method} is not used by exports"
