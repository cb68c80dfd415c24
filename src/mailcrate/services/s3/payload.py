"""Request bodies of S3 calls: decoded (``aws-chunked``) and verified while they stream.

SigV4 for S3 signs the *declared* ``x-amz-content-sha256``; this module makes the body keep that
promise:

* a hex SHA-256 is checked against the bytes received (``XAmzContentSHA256Mismatch``);
* ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`` bodies are ``aws-chunked`` with a signature
  per chunk chained from the request's signature: each is verified (``SignatureDoesNotMatch``);
* ``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` bodies are ``aws-chunked`` with trailing headers;
* ``Content-MD5`` and ``x-amz-checksum-*`` (header or trailer) are computed and compared
  (``BadDigest``), and ``x-amz-decoded-content-length`` must match (``IncompleteBody``).

Verification completes when the last byte has been read: :meth:`Payload.chunks` raises *after*
yielding the final data, so a caller writing to a temporary file discards it and nothing is
committed. MD5 (for the ETag) is always computed over HTTP.

In-process callers (the export worker) hand a buffer over as :class:`BufferPayload`: nothing to
verify, no copies.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from mailcrate.protocol.errors import AuthError, ServiceError
from mailcrate.protocol.http import HttpRequest
from mailcrate.protocol.sigv4 import parse_signature
from mailcrate.services.s3 import checksums
from mailcrate.services.s3.checksums import BadDigest, ContentSHA256Mismatch, InvalidRequest

if TYPE_CHECKING:
    from mailcrate.services.s3.store import Store

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
STREAM_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAM_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAM_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
UNSIGNED = "UNSIGNED-PAYLOAD"
READ_SIZE = 1 << 20
_MAX_LINE = 8192


class IncompleteBody(ServiceError):
    code = "IncompleteBody"


class EntityTooLarge(ServiceError):
    code = "EntityTooLarge"


class Payload:
    """The body of one S3 request. Iterate :meth:`chunks` once; then read the results."""

    def __init__(self, request: HttpRequest, *, body_checksums: bool = True) -> None:
        """``body_checksums=False``: the request's ``x-amz-checksum-*`` headers name the checksum
        of an object, not of this body (CompleteMultipartUpload's composite one)."""
        self.request = request
        headers = request.headers
        self.content_sha256 = headers.get("x-amz-content-sha256")
        # aws-chunked framing is declared by a STREAMING-* payload hash, or by Content-Encoding
        # aws-chunked with the decoded length it requires; Content-Encoding alone is just
        # metadata (S3 stores "gzip, aws-chunked" as "gzip" for a plain body).
        self.chunked = (self.content_sha256 or "").startswith("STREAMING-") or (
            "aws-chunked" in (headers.get("content-encoding") or "")
            and headers.get("x-amz-decoded-content-length") is not None
        )
        self.signed_chunks = self.content_sha256 in (STREAM_SIGNED, STREAM_SIGNED_TRAILER)
        if (
            self.content_sha256
            and self.content_sha256.startswith("STREAMING-")
            and self.content_sha256
            not in (
                STREAM_SIGNED,
                STREAM_SIGNED_TRAILER,
                STREAM_UNSIGNED_TRAILER,
            )
        ):
            raise ServiceError(f"{self.content_sha256} is not supported", code="NotImplemented", status=501)
        if (
            self.content_sha256
            and not self.content_sha256.startswith("STREAMING-")
            and self.content_sha256 != UNSIGNED
            and (len(self.content_sha256) != 64 or not _is_hex(self.content_sha256))
        ):
            raise ServiceError(
                "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-... or a hex SHA-256.",
                code="InvalidArgument",
            )
        decoded = headers.get("x-amz-decoded-content-length")
        length = decoded if self.chunked else headers.get("content-length")
        try:
            self.declared_length = int(length) if length is not None else None
        except ValueError:
            raise ServiceError("Content length is not a number.", code="InvalidArgument") from None
        # x-amz-decoded-content-length is the client's word alone (HTTP checks Content-Length):
        # a negative or >64-bit value would break len() of the payload, hence every check.
        if self.declared_length is not None and not 0 <= self.declared_length < 2**63:
            raise ServiceError("Content length is out of range.", code="InvalidArgument")
        self.content_md5 = checksums.check_content_md5(headers.get("content-md5"))
        self.trailer_names = {
            name.strip().lower() for name in (headers.get("x-amz-trailer") or "").split(",") if name.strip()
        }
        self.expected: dict[str, str] = {}
        for algorithm, header in checksums.HEADER_FOR.items():
            value = headers.get(header)
            if value is not None and body_checksums:
                self.expected[algorithm] = value
        sdk_algorithm = (headers.get("x-amz-sdk-checksum-algorithm") or "").upper() if body_checksums else ""
        wanted = set(self.expected)
        wanted |= {a for a, h in checksums.HEADER_FOR.items() if h in self.trailer_names}
        if sdk_algorithm in checksums.ALGORITHMS:
            wanted.add(sdk_algorithm)
        if len(wanted) > 1:
            raise InvalidRequest(
                "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
            )
        self.algorithm = next(iter(wanted), None)
        self._hasher = checksums.new_hasher(self.algorithm) if self.algorithm else None
        self._md5 = hashlib.md5()
        self._sha256 = hashlib.sha256() if self._verify_sha256 else None
        self.size = 0
        self.md5_digest = b""
        self.checksum: str | None = None  # base64 value of self.algorithm, once verified
        self.signing_secret: str | None = None  # needed for signed chunks: set by the handler
        self._consumed = False

    @property
    def _verify_sha256(self) -> bool:
        return bool(self.content_sha256) and not self.chunked and self.content_sha256 != UNSIGNED

    def __len__(self) -> int:  # the model validator measures blobs
        return self.declared_length or 0

    # -- reading --------------------------------------------------------------------------
    def _raw(self) -> Iterator[bytes]:
        if self.request.read_chunk is None:
            if self.request.body:
                yield self.request.body
            return
        while True:
            piece = self.request.read_chunk()
            if not piece:
                return
            yield piece

    def chunks(self, size: int = READ_SIZE, limit: int | None = None) -> Iterator[bytes]:
        """Decoded, verified body bytes in pieces of about ``size``; raises at the end if bad."""
        if self._consumed:
            raise RuntimeError("payload already read")
        self._consumed = True
        source = self._dechunk(self._raw()) if self.chunked else self._raw()
        pending = bytearray()
        for piece in source:
            pending += piece
            if len(pending) >= size:
                data = bytes(pending)
                pending.clear()
                self._account(data, limit)
                yield data
        if pending:
            data = bytes(pending)
            self._account(data, limit)
            yield data
        self._finish()

    def read_all(self, limit: int) -> bytes:
        return b"".join(self.chunks(limit=limit))

    def write_into(self, store: Store, data_key: bytes, limit: int) -> tuple[str, int]:
        """Store this body as a new encrypted file: ``(file_id, size)``.

        Each kind of body knows how it is best written, so a handler need not ask which it has.
        A received HTTP body is verified while it is read, and receiving it is work, so the
        encryption runs in a writer thread beside it.
        """
        return store.write_file(data_key, self.chunks(limit=limit))

    def _account(self, data: bytes, limit: int | None) -> None:
        self.size += len(data)
        if limit is not None and self.size > limit:
            raise EntityTooLarge("Your proposed upload exceeds the maximum allowed size.")
        if self.declared_length is not None and self.size > self.declared_length:
            raise _length_mismatch()  # known now: reading on would only cost memory and disk
        self._md5.update(data)
        if self._hasher is not None:
            self._hasher.update(data)
        if self._sha256 is not None:
            self._sha256.update(data)

    def _finish(self) -> None:
        if self.declared_length is not None and self.size != self.declared_length:
            raise _length_mismatch()
        if self._sha256 is not None and not hmac.compare_digest(
            self._sha256.hexdigest(), self.content_sha256 or ""
        ):
            raise ContentSHA256Mismatch(
                "The provided 'x-amz-content-sha256' header does not match what was computed."
            )
        self.md5_digest = self._md5.digest()
        if self.content_md5 is not None and self.content_md5 != self.md5_digest:
            raise BadDigest("The Content-MD5 you specified did not match what we received.")
        if self.algorithm is not None and self._hasher is not None:
            computed = checksums.b64(self._hasher.digest())
            expected = self.expected.get(self.algorithm)
            if expected is not None and expected != computed:
                raise BadDigest(f"The {self.algorithm} you specified did not match the calculated checksum.")
            self.checksum = computed

    # -- aws-chunked ----------------------------------------------------------------------
    def _dechunk(self, raw: Iterator[bytes]) -> Iterator[bytes]:
        buf = bytearray()
        verify = self._chunk_verifier() if self.signed_chunks else None

        def fill() -> None:
            piece = next(raw, b"")
            if not piece:
                raise IncompleteBody("The request body ended before the aws-chunked encoding did.")
            buf.extend(piece)

        def line() -> bytes:
            while True:
                end = buf.find(b"\r\n")
                if end >= 0:
                    out = bytes(buf[:end])
                    del buf[: end + 2]
                    return out
                if len(buf) > _MAX_LINE:
                    raise IncompleteBody("Malformed aws-chunked encoding.")
                fill()

        while True:
            header = line()
            size_text, _, extension = header.partition(b";")
            try:
                size = int(size_text.strip(), 16)
            except ValueError:
                raise IncompleteBody("Malformed aws-chunked encoding.") from None
            if size < 0:
                raise IncompleteBody("Malformed aws-chunked encoding.")
            # The chunk streams on as it arrives: its size line is the client's word alone, and
            # buffering a chunk whole let one request claim a huge chunk and fill memory. Its
            # signature is checked on its last byte (a failure discards the body, as any other).
            digest = hashlib.sha256() if verify is not None else None
            remaining = size
            while remaining:
                if not buf:
                    fill()
                piece = bytes(buf[:remaining])
                del buf[: len(piece)]
                remaining -= len(piece)
                if digest is not None:
                    digest.update(piece)
                yield piece
            if size:
                while len(buf) < 2:
                    fill()
                if buf[:2] != b"\r\n":
                    raise IncompleteBody("Malformed aws-chunked encoding.")
                del buf[:2]
            if verify is not None and digest is not None:
                verify(digest.hexdigest(), _extension_value(extension, b"chunk-signature"))
            if not size:
                break
        trailers: list[tuple[str, str]] = []
        while True:
            text = line()
            if not text:
                break
            if len(trailers) > len(self.trailer_names):  # the declared ones and their signature
                raise InvalidRequest("The request carries more trailers than x-amz-trailer declared.")
            name, _, value = text.decode("latin-1").partition(":")
            trailers.append((name.strip().lower(), value.strip()))
        self._apply_trailers(trailers)

    def _apply_trailers(self, trailers: list[tuple[str, str]]) -> None:
        signature = None
        signed_lines = []
        for name, value in trailers:
            if name == "x-amz-trailer-signature":
                signature = value
                continue
            signed_lines.append(f"{name}:{value}\n")
            if name not in self.trailer_names:
                raise InvalidRequest(f"The trailer {name} was not declared in x-amz-trailer.")
            for algorithm, header in checksums.HEADER_FOR.items():
                if header == name:
                    self.expected[algorithm] = value
        if self.content_sha256 == STREAM_SIGNED_TRAILER:
            check = self._trailer_verifier()
            check("".join(signed_lines).encode(), signature)

    def _signing(self) -> tuple[bytes, str, str, str]:
        info = parse_signature(self.request)
        if info is None or self.signing_secret is None or info.presigned:
            raise AuthError("signature", "Signed aws-chunked bodies need a header-signed request.")
        key = ("AWS4" + self.signing_secret).encode()
        for part in (info.scope_date, info.region, info.service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        scope = f"{info.scope_date}/{info.region}/{info.service}/aws4_request"
        return key, info.amz_date, scope, info.signature

    def _chunk_verifier(self) -> Callable[[bytes, str | None], None]:
        key, amz_date, scope, seed = self._signing()
        state = {"previous": seed}

        def verify(data_sha256: str, signature: str | None) -> None:
            to_sign = "\n".join(
                (
                    "AWS4-HMAC-SHA256-PAYLOAD",
                    amz_date,
                    scope,
                    state["previous"],
                    EMPTY_SHA256,
                    data_sha256,
                )
            )
            expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
            if signature is None or not hmac.compare_digest(expected, signature):
                raise _chunk_signature_error()
            state["previous"] = expected

        self._previous_state = state
        return verify

    def _trailer_verifier(self) -> Callable[[bytes, str | None], None]:
        key, amz_date, scope, _ = self._signing()
        previous = self._previous_state["previous"]

        def verify(trailer: bytes, signature: str | None) -> None:
            to_sign = "\n".join(
                ("AWS4-HMAC-SHA256-TRAILER", amz_date, scope, previous, hashlib.sha256(trailer).hexdigest())
            )
            expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
            if signature is None or not hmac.compare_digest(expected, signature):
                raise _chunk_signature_error()

        return verify


def _length_mismatch() -> IncompleteBody:
    return IncompleteBody(
        "You did not provide the number of bytes specified by the Content-Length HTTP header."
    )


def _chunk_signature_error() -> AuthError:
    return AuthError(
        "signature",
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
    )


class BufferPayload(Payload):
    """A body handed over in-process (the export worker writing into the embedded S3): the
    bytes are already in memory and no signature covers them, so nothing is verified.

    :meth:`chunks` yields ``memoryview`` slices of the caller's buffer, ``READ_SIZE`` bytes each
    (what :class:`~mailcrate.services.s3.blobstore.BlobStore` seals without a copy); the caller
    must not change the buffer until the handler returns.

    ``md5=False`` gives an opaque ETag (random 16 bytes) instead of the MD5 of the data. For
    SSE-KMS objects that is what AWS documents ("objects encrypted by SSE-KMS have ETags that are
    not an MD5 digest of their object data"), and it saves one pass over every byte (MD5 runs at
    ~770 MB/s here, slower than the AES that stores the data). The HTTP path keeps MD5: clients
    send Content-MD5 there and it is checked.
    """

    def __init__(self, data: bytes | bytearray | memoryview, *, md5: bool = True) -> None:
        self.request = None  # type: ignore[assignment]
        self._view = memoryview(data).cast("B")
        self.content_sha256 = None
        self.chunked = self.signed_chunks = False
        self.declared_length = self._view.nbytes
        self.content_md5 = None
        self.trailer_names = set()
        self.expected = {}
        self.algorithm = None
        self._hasher = None
        self._md5 = hashlib.md5() if md5 else None  # type: ignore[assignment]
        self._sha256 = None
        self.size = 0
        self.md5_digest = b""
        self.checksum = None
        self.signing_secret = None
        self._consumed = False

    def chunks(self, size: int = READ_SIZE, limit: int | None = None) -> Iterator[bytes]:
        if self._consumed:
            raise RuntimeError("payload already read")
        self._consumed = True
        total = self._view.nbytes
        if limit is not None and total > limit:
            raise EntityTooLarge("Your proposed upload exceeds the maximum allowed size.")
        for start in range(0, total, size):
            piece = self._view[start : start + size]
            if self._md5 is not None:
                self._md5.update(piece)
            self.size += piece.nbytes
            yield piece  # type: ignore[misc]
        self.md5_digest = self._md5.digest() if self._md5 is not None else secrets.token_bytes(16)

    def write_into(self, store: Store, data_key: bytes, limit: int) -> tuple[str, int]:
        """Already in memory, nothing to receive or verify: written here, no writer thread."""
        return store.write_file(data_key, self.chunks(limit=limit), pipelined=False)


class StreamPayload(BufferPayload):
    """A body still being produced in-process: the export worker's part, handed over when the
    part starts and filled while the handler writes it. ``frames`` yields ``(chunk, last)``:
    views of the caller's buffer, every one but the last exactly ``READ_SIZE`` bytes, each as
    soon as it is final (it blocks until then, and raises if the producer gives up, which
    leaves no file). The ETag is opaque, as for ``BufferPayload(md5=False)``.
    """

    def __init__(self, frames: Iterable[tuple[memoryview, bool]]) -> None:
        super().__init__(b"", md5=False)
        self.declared_length = None
        self._frames = frames
        # Drawn now, not after the last frame: the writer stops asking for frames once it has
        # the last one, so code after the loop never ran and every streamed part (and so every
        # export zip) got the ETag of no bytes, "d41d8cd98f00b204e9800998ecf8427e-N".
        self.md5_digest = secrets.token_bytes(16)

    def framed(self, limit: int | None = None) -> Iterator[tuple[memoryview, bool]]:
        """The ``(chunk, last)`` pairs, counted into :attr:`size` (``EntityTooLarge`` past ``limit``)."""
        if self._consumed:
            raise RuntimeError("payload already read")
        self._consumed = True
        for chunk, last in self._frames:
            self.size += len(chunk)
            if limit is not None and self.size > limit:
                raise EntityTooLarge("Your proposed upload exceeds the maximum allowed size.")
            yield chunk, last
            if last:
                break

    def chunks(self, size: int = READ_SIZE, limit: int | None = None) -> Iterator[bytes]:
        for chunk, _ in self.framed(limit):
            yield chunk  # type: ignore[misc]

    def write_into(self, store: Store, data_key: bytes, limit: int) -> tuple[str, int]:
        """Sealed chunk by chunk while the caller fills it."""
        return store.write_file(data_key, self.framed(limit=limit), framed=True)


def _extension_value(extension: bytes, name: bytes) -> str | None:
    for item in extension.split(b";"):
        key, _, value = item.partition(b"=")
        if key.strip() == name:
            return value.strip().decode("ascii", "replace")
    return None


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True
