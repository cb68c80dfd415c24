"""SHA-384 whose state can be saved and restored: the export log's hash across attempts.

An attempt that resumes an export from its last uploaded part (:mod:`mailcrate.export.checkpoint`)
must go on hashing the zip where the killed attempt left off, without the bytes already uploaded
(S3 cannot read back the parts of an open multipart upload). :mod:`hashlib` objects cannot be
serialized, and no maintained package offers a resumable SHA-384 (``rehash`` pokes into
OpenSSL 1.x's opaque ``EVP_MD_CTX`` and refuses OpenSSL 3; ``rehashes`` has SHA-256 and SHA-512
only). So this binds the same OpenSSL the interpreter's :mod:`hashlib` uses, through its
low-level ``SHA384_Init/Update/Final``: the same compression code and speed, and a context that
is a *public* struct of ``openssl/sha.h`` (``SHA512_CTX``: h[8], Nl, Nh, a 128-byte block,
num, md_len), so its bytes are a state that is stable for the library on this machine. A saved
state is checked for size and for a plausible ``num``/``md_len`` before it is used, and the
resumed attempt's zip is verified end to end against the export log anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import struct

#: sizeof(SHA512_CTX) on LP64: 8*8 + 8 + 8 + 128 + 4 + 4.
_CTX_SIZE = 216
_NUM_AT = 208  # offset of ``num`` (bytes buffered in ``u``), then ``md_len``
_DIGEST = 48


class ResumableHashError(RuntimeError):
    """A saved state that does not belong to this hash (or libcrypto is missing)."""


@functools.cache
def _libcrypto() -> ctypes.CDLL:
    """The libcrypto the interpreter's ``_hashlib`` is linked against (found by name)."""
    name = ctypes.util.find_library("crypto")
    if name is None:
        raise ResumableHashError("libcrypto (OpenSSL) is not installed")
    lib = ctypes.CDLL(name)
    for fn in ("SHA384_Init", "SHA384_Update", "SHA384_Final"):
        getattr(lib, fn).restype = ctypes.c_int
    lib.SHA384_Update.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    lib.SHA384_Init.argtypes = [ctypes.c_void_p]
    lib.SHA384_Final.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    return lib


class ResumableSha384:
    """``hashlib.sha384`` with :meth:`state` / :meth:`from_state`. ``update`` takes any
    C-contiguous buffer (bytes, bytearray, memoryview, mmap) without copying it, and releases
    the GIL while hashing (a ctypes call), as ``hashlib`` does for large inputs."""

    __slots__ = ("_ctx",)

    def __init__(self) -> None:
        self._ctx = ctypes.create_string_buffer(_CTX_SIZE)
        if _libcrypto().SHA384_Init(self._ctx) != 1:
            raise ResumableHashError("SHA384_Init failed")

    def update(self, data: bytes | bytearray | memoryview | object) -> None:
        view = memoryview(data).cast("B")  # type: ignore[arg-type]
        n = len(view)
        if not n:
            return
        if view.readonly:  # bytes, or a view of them: ctypes passes a bytes object's own buffer
            pointer: object = data if isinstance(data, bytes) and len(data) == n else view.tobytes()
        else:
            pointer = ctypes.addressof(ctypes.c_char.from_buffer(view))
        if _libcrypto().SHA384_Update(self._ctx, pointer, n) != 1:
            raise ResumableHashError("SHA384_Update failed")

    def state(self) -> bytes:
        """The hash's state after the bytes so far: restore it with :meth:`from_state`."""
        return self._ctx.raw

    @classmethod
    def from_state(cls, state: bytes) -> ResumableSha384:
        if len(state) != _CTX_SIZE:
            raise ResumableHashError("not a SHA-384 state")
        num, md_len = struct.unpack_from("<II", state, _NUM_AT)
        if num >= 128 or md_len != _DIGEST:
            raise ResumableHashError("not a SHA-384 state")
        hasher = cls.__new__(cls)
        hasher._ctx = ctypes.create_string_buffer(state, _CTX_SIZE)
        return hasher

    def hexdigest(self) -> str:
        """The digest of the bytes so far (the state is kept: it finalizes a copy)."""
        copy = ctypes.create_string_buffer(self._ctx.raw, _CTX_SIZE)
        out = ctypes.create_string_buffer(_DIGEST)
        if _libcrypto().SHA384_Final(out, copy) != 1:
            raise ResumableHashError("SHA384_Final failed")
        return out.raw.hex()
