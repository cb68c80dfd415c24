"""Multipart part uploads with several parts in flight, bounded memory and an in-order hash.

The producer (zip writer) hands finished parts to :meth:`PartUploader.submit`, which blocks
while ``in_flight`` parts are uploading and ``in_flight`` more are queued, so memory stays at
about part size x (2 x in_flight + 1) (the +1 being the part the producer is filling) whatever
the mailbox size. Uploads run on their own threads (HTTP, and in embedded mode the server's
encryption and disk writes), in parallel with the producer's reading and deflating.

The SHA-384 of the whole object (the export log's ``sha384Hash``) is computed by the upload
threads in part order before each part is sent, keeping it off the producer.

Any failed part (after botocore's own retries) stops the upload: later submits raise the
error, and the caller aborts the multipart upload. :meth:`PartUploader.cancel` stops it too.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

log = logging.getLogger("mailcrate.export")

UploadPart = Callable[[int, bytes], str]  # (part number, data) -> ETag


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
    ) -> None:
        if in_flight < 1:
            raise ValueError("in_flight must be at least 1")
        self._upload_part = upload_part
        self._on_uploaded = on_uploaded
        self._pool = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix=f"{name}-upload")
        self._slots = threading.BoundedSemaphore(2 * in_flight)
        self._futures: list[Future[str]] = []
        self._error: BaseException | None = None
        self._stopped = threading.Event()
        self._hash = hashlib.sha384()
        self._hashed = 0  # parts hashed so far (they are hashed strictly in order)
        self._hash_turn = threading.Condition()
        self.bytes_submitted = 0
        self.bytes_uploaded = 0
        self._lock = threading.Lock()

    @property
    def parts(self) -> int:
        return len(self._futures)

    def _raise_if_stopped(self) -> None:
        if self._error is not None:
            raise self._error
        if self._stopped.is_set():
            raise UploadStopped("upload cancelled")

    def submit(self, data: bytes) -> None:
        """Queue the next part (numbered from 1); blocks while the queue is full."""
        self._raise_if_stopped()
        while not self._slots.acquire(timeout=0.2):
            self._raise_if_stopped()
        try:
            self._raise_if_stopped()
            number = len(self._futures) + 1
            self.bytes_submitted += len(data)
            self._futures.append(self._pool.submit(self._run, number, data))
        except BaseException:
            self._slots.release()
            raise

    def _run(self, number: int, data: bytes) -> str:
        try:
            with self._hash_turn:
                while self._hashed != number - 1:
                    if self._stopped.is_set():
                        raise UploadStopped("upload cancelled")
                    self._hash_turn.wait(0.2)
                self._hash.update(data)
                self._hashed = number
                self._hash_turn.notify_all()
            if self._stopped.is_set() or self._error is not None:
                raise UploadStopped("upload cancelled")
            etag = self._upload_part(number, data)
            with self._lock:
                self.bytes_uploaded += len(data)
            if self._on_uploaded is not None:
                self._on_uploaded(len(data))
            return etag
        except BaseException as exc:
            with self._lock:
                if self._error is None and not isinstance(exc, UploadStopped):
                    self._error = exc
            self._stopped.set()
            raise
        finally:
            self._slots.release()

    def finish(self) -> list[str]:
        """Wait for every part; the ETags in part order. Raises the first failure."""
        etags: list[str] = []
        try:
            for future in self._futures:
                try:
                    etags.append(future.result())
                except UploadStopped:
                    self._raise_if_stopped()
                    raise
        finally:
            self._pool.shutdown(wait=True)
        self._raise_if_stopped()
        return etags

    def sha384_hex(self) -> str:
        """The whole object's SHA-384; valid after :meth:`finish`."""
        return self._hash.hexdigest()

    def cancel(self) -> None:
        """Stop: queued parts are dropped, running uploads finish or fail; returns when idle."""
        self._stopped.set()
        for future in self._futures:
            future.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)


class PartSink:
    """The zip writer's ``write``: fills parts of exactly ``part_size`` bytes (the last may be
    shorter) and hands each full one to ``submit``."""

    def __init__(self, part_size: int, submit: Callable[[bytes], None]) -> None:
        self.part_size = part_size
        self._submit = submit
        self._buf = bytearray()
        self.total = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.total += len(data)
        self._buf += data
        if len(self._buf) >= self.part_size:
            view = memoryview(self._buf)
            start = 0
            while len(self._buf) - start >= self.part_size:
                self._submit(bytes(view[start : start + self.part_size]))
                start += self.part_size
            view.release()
            del self._buf[:start]

    def close(self) -> None:
        """Submit the last, possibly short, part (a zip is never empty, so there is one)."""
        if self._buf or self.total == 0:
            self._submit(bytes(self._buf))
            self._buf = bytearray()
