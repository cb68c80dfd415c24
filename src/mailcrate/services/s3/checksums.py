"""S3's checksums: Content-MD5, x-amz-checksum-* (CRC32, CRC32C, SHA1, SHA256) and ETags.

Values are base64 of the big-endian digest, as S3 sends them. CRC32C uses the optional
``crc32c`` package or a small table-driven fallback (slow: object data should use CRC32 or a
SHA, which is what SDKs send by default).
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from typing import Protocol

from mailcrate.protocol.errors import ServiceError

ALGORITHMS = ("CRC32", "CRC32C", "SHA1", "SHA256")
HEADER_FOR = {name: f"x-amz-checksum-{name.lower()}" for name in ALGORITHMS}


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...


class _Crc32:
    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes) -> None:
        self.value = zlib.crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


class _Crc32C:
    _table: list[int] | None = None

    def __init__(self) -> None:
        self.value = 0
        try:
            import crc32c  # type: ignore[import-not-found]

            self._fast = crc32c.crc32c
        except ImportError:
            self._fast = None
            if _Crc32C._table is None:
                _Crc32C._table = _crc32c_table()

    def update(self, data: bytes) -> None:
        if self._fast is not None:
            self.value = self._fast(data, self.value)
            return
        table = self._table
        assert table is not None
        c = self.value ^ 0xFFFFFFFF
        for byte in data:
            c = table[(c ^ byte) & 0xFF] ^ (c >> 8)
        self.value = c ^ 0xFFFFFFFF

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


def new_hasher(algorithm: str) -> _Hasher:
    if algorithm == "CRC32":
        return _Crc32()
    if algorithm == "CRC32C":
        return _Crc32C()
    if algorithm == "SHA1":
        return hashlib.sha1()
    if algorithm == "SHA256":
        return hashlib.sha256()
    raise InvalidRequest(f"Checksum algorithm {algorithm} is not supported.")


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


class BadDigest(ServiceError):
    code = "BadDigest"


class InvalidDigest(ServiceError):
    code = "InvalidDigest"


class InvalidRequest(ServiceError):
    code = "InvalidRequest"


class ContentSHA256Mismatch(ServiceError):
    code = "XAmzContentSHA256Mismatch"


def check_content_md5(header: str | None) -> bytes | None:
    """The decoded Content-MD5 (16 bytes), InvalidDigest if malformed, None when absent."""
    if header is None:
        return None
    try:
        raw = base64.b64decode(header, validate=True)
    except (ValueError, TypeError):
        raise InvalidDigest("The Content-MD5 you specified was invalid.") from None
    if len(raw) != 16:
        raise InvalidDigest("The Content-MD5 you specified was invalid.")
    return raw


def multipart_etag(part_md5s: list[bytes]) -> str:
    """S3's ETag for a completed multipart upload: md5 of the parts' md5s, dash, part count."""
    return f'"{hashlib.md5(b"".join(part_md5s)).hexdigest()}-{len(part_md5s)}"'


def composite_checksum(algorithm: str, part_digests: list[bytes]) -> str:
    """S3's COMPOSITE checksum of a multipart object: checksum of the part checksums, ``-N``."""
    hasher = new_hasher(algorithm)
    hasher.update(b"".join(part_digests))
    return f"{b64(hasher.digest())}-{len(part_digests)}"
