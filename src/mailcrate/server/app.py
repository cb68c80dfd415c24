"""The ASGI application: turns ASGI messages into :class:`HttpRequest` values and back.

Handlers are synchronous (SQLAlchemy, file I/O, crypto), so most requests run in a worker thread;
the few bounded read-only calls of :data:`dispatch.INLINE_TARGETS` run on the event loop itself
when the database is SQLite (see :meth:`MailcrateApp._inline`). S3 bodies stream through that thread chunk by chunk (``read_chunk`` pulls from the event loop),
and streamed responses are pumped back the same way, so no object is held whole in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread

from mailcrate.protocol.errors import ServiceError
from mailcrate.protocol.http import Headers, HttpRequest, HttpResponse
from mailcrate.server import dispatch, health
from mailcrate.server.frontdoor import FrontDoor, RequestTooLarge
from mailcrate.server.runtime import Runtime
from mailcrate.server.turns import LoopShare

log = logging.getLogger("mailcrate.server")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class RequestTimeout(ServiceError):
    code = "RequestTimeout"
    status = 400


class ClientDisconnected(ServiceError):
    """The client went away mid-body: its doing, not an internal error to log with a traceback
    (nothing is stored: the body is verified only once its last byte has arrived)."""

    code = "IncompleteBody"
    status = 400


def _streams_body(headers: Headers) -> bool:
    """S3 calls carry object bodies of any size: stream them instead of reading them whole."""
    if headers.get("x-amz-target") or (headers.get("content-type") or "").startswith(
        "application/x-www-form-urlencoded"
    ):
        return False
    auth = headers.get("authorization") or ""
    return "/s3/aws4_request" in auth or not auth


class MailcrateApp:
    def __init__(
        self,
        runtime: Runtime,
        on_startup: Iterable[Callable[[], None]] = (),
        on_shutdown: Iterable[Callable[[], None]] = (),
    ) -> None:
        self.runtime = runtime
        self.on_startup = list(on_startup)
        self.on_shutdown = list(on_shutdown)
        # API calls are short and CPU-bound: few threads keep them from queueing on the GIL (the
        # figures are in BENCHMARKS.md, api). Streamed S3 bodies wait on the network, so they get
        # a pool of their own and never starve API calls.
        # /ready and /metrics take the anyio limiter; API calls the loop share's own threads.
        self.api_limiter = anyio.CapacityLimiter(4)
        db = getattr(getattr(runtime, "data_dir", None), "db", None)
        # How API calls share the loop and their threads (server/turns.py).
        self.share = LoopShare(4, writing=getattr(db, "writing", lambda: False))
        self.stream_limiter = anyio.CapacityLimiter(32)
        self.front = FrontDoor(runtime, self.share)  # admission before bodies and threads
        # Handing a sub-millisecond call to a thread and back costs as much CPU as the call itself
        # (BENCHMARKS.md, api-jobs), so bounded reads run on the loop. Only with SQLite: its reads are a
        # local B-tree walk that never waits for a writer (WAL); a PostgreSQL read waits on the
        # network, which would stall every other connection, so there every call takes a thread.
        self.inline_targets = dispatch.INLINE_TARGETS if getattr(db, "is_sqlite", False) else frozenset()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                for hook in self.on_startup:
                    await anyio.to_thread.run_sync(hook)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for hook in self.on_shutdown:
                    await anyio.to_thread.run_sync(hook)
                self.share.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"])
        client = scope.get("client") or ("127.0.0.1", 0)
        request = HttpRequest(
            method=scope["method"],
            raw_path=scope.get("raw_path", scope["path"].encode()).decode("latin-1").split("?", 1)[0],
            query_string=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            client_ip=client[0],
            scheme=scope.get("scheme", "http"),
        )
        unsigned_get = request.method == "GET" and "authorization" not in headers
        if unsigned_get and request.raw_path == "/health":  # on the loop: answers while threads are busy
            response = health.health()
        elif unsigned_get and request.raw_path == "/ready":
            response = await health.ready(self.runtime, self.api_limiter)
        elif self.runtime.metrics is not None and _is_scrape(request):
            response = await anyio.to_thread.run_sync(_scrape, self.runtime, limiter=self.api_limiter)
        elif _streams_body(headers):
            response = await self._streamed(request, receive)
        else:
            response = await self._buffered(request, receive, headers)
        await _send_response(send, response, head=request.method == "HEAD")

    async def _streamed(self, request: HttpRequest, receive: Receive) -> HttpResponse:
        """An S3 call: admitted, then run in one of its account's share of the stream threads."""
        refusal, account = await self.front.admit(request, streamed=True)
        if refusal is not None:
            return refusal
        settings = self.runtime.settings
        reader = _BodyReader(receive, settings.request_idle_seconds, settings.upload_min_bytes_per_second)
        request.read_chunk = reader.read_chunk
        try:
            async with self.front.stream_share(account, request):
                response = await anyio.to_thread.run_sync(
                    dispatch.handle, self.runtime, request, limiter=self.stream_limiter
                )
        finally:
            reader.close()
        # The rest of its body would keep the connection busy (given up on, or held back
        # behind Expect: 100-continue and never read): close it.
        if reader.gave_up or reader.withheld(request.headers):
            response.headers.append(("Connection", "close"))
        return response

    async def _buffered(self, request: HttpRequest, receive: Receive, headers: Headers) -> HttpResponse:
        """Any other call: admitted before its body is read, the body read within the limits."""
        refusal, _account = await self.front.admit(request, streamed=False)
        if refusal is not None:
            return refusal
        with self.front.buffered(request) as busy:
            if busy is not None:
                return busy
            body = await _read_body(receive, self.runtime.settings.max_request_bytes)
            if body is None:
                return await self.share.in_thread(self._too_large, request)
            request.body = body
        if self._inline(headers):
            return await self.share.inline(dispatch.handle, self.runtime, request)
        return await self.share.in_thread(dispatch.handle, self.runtime, request)

    def _inline(self, headers: Headers) -> bool:
        """Whether this call may run on the event loop (see ``inline_targets``)."""
        target = headers.get("x-amz-target")
        return target is not None and target in self.inline_targets

    def _too_large(self, request: HttpRequest) -> HttpResponse:
        info = None
        with contextlib.suppress(ServiceError):
            info = dispatch.parse_signature(request)
        spec = dispatch.route(self.runtime, request, info)
        limit = self.runtime.settings.max_request_bytes
        return dispatch._render_error(RequestTooLarge(f"Request body exceeds {limit} bytes"), spec, "-")


def _is_scrape(request: HttpRequest) -> bool:
    """``GET /metrics`` without a signature (a signed one is S3 ListObjects of bucket "metrics")."""
    return (
        request.method == "GET" and request.raw_path == "/metrics" and "authorization" not in request.headers
    )


def _scrape(runtime: Runtime) -> HttpResponse:
    from mailcrate.server.metrics import CONTENT_TYPE

    try:
        body = runtime.metrics.exposition()
    except Exception:  # the database is unavailable: say so, as any other dependency failure
        log.warning("metrics scrape failed", exc_info=True)
        return HttpResponse(503, [("Content-Type", "text/plain"), ("Retry-After", "5")], b"unavailable\n")
    return HttpResponse(200, [("Content-Type", CONTENT_TYPE)], body)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None once it exceeds ``limit`` (the rest is drained, not kept)."""
    parts: list[bytes] = []
    size = 0
    too_large = False
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            too_large = True
            parts.clear()
        elif chunk:
            parts.append(chunk)
        if not message.get("more_body", False):
            break
    return None if too_large else b"".join(parts)


class _BodyReader:
    """A blocking reader for worker threads: each :meth:`read_chunk` fetches the next chunk from
    the loop.

    A client that stops sending is given up after ``idle_seconds``: the reading thread is one of
    a bounded pool, and 32 uploads that sent their headers and then nothing held every S3
    thread until their clients went away (all S3 calls waited behind them). One timer per
    request watches the wait instead of a deadline per chunk: a cancel scope around each
    ``receive()`` cost ~10 us a chunk, 4-5 % of a 512 MiB PutObject's throughput. Everything
    here but ``read_chunk`` runs on the event loop."""

    def __init__(self, receive: Receive, idle_seconds: float, min_rate: int = 0) -> None:
        self._receive = receive
        self._idle = idle_seconds
        # A trickle (a byte every few seconds) never trips the idle timeout: after the first
        # ``idle_seconds`` the upload must average ``min_rate`` bytes/s (checked per chunk).
        self._min_rate = min_rate
        self._began: float | None = None
        self._received = 0
        self.gave_up = False  # answered RequestTimeout: too slow or idle
        self._finished = False
        self._closed = False
        self._timed_out = False
        self._waiting: asyncio.Task[Any] | None = None  # the task awaiting receive(), if any
        self._since = 0.0  # when that wait began (loop time)
        self._timer: asyncio.TimerHandle | None = None
        self._started = False  # receive() called: for Expect: 100-continue, the 100 was sent

    def withheld(self, headers: Headers) -> bool:
        """Whether the client still holds its body back: it asked ``Expect: 100-continue`` and
        was answered before anything was read (so no ``100 Continue`` went out). Such a client
        sends no body (RFC 9110 section 10.1.1), but the server would read the next request on
        the connection as that body: the connection must close after this answer."""
        if self._started or self._finished:
            return False
        if (headers.get("expect") or "").lower() != "100-continue":
            return False
        length = headers.get("content-length")
        return headers.get("transfer-encoding") is not None or (length is not None and length.strip() != "0")

    def read_chunk(self) -> bytes:
        return anyio.from_thread.run(self._next)

    def close(self) -> None:
        """The request is answered: stop watching."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _watch(self) -> None:
        """Timer callback: time out a wait that has lasted ``idle_seconds``, else look again
        when it would have."""
        loop = asyncio.get_running_loop()
        self._timer = None
        if self._closed or self._finished:
            return
        waited = loop.time() - self._since if self._waiting is not None else 0.0
        if waited >= self._idle and self._waiting is not None:
            self._timed_out = True
            self._waiting.cancel()
            return
        self._timer = loop.call_later(self._idle - waited, self._watch)

    async def _next(self) -> bytes:
        loop = asyncio.get_running_loop()
        self._started = True
        if self._timer is None and not self._closed:
            self._timer = loop.call_later(self._idle, self._watch)
        while not self._finished:
            self._since = loop.time()
            self._waiting = asyncio.current_task()
            try:
                message = await self._receive()
            except asyncio.CancelledError:
                if not self._timed_out:
                    raise
                self._finished = True
                self.gave_up = True
                raise RequestTimeout(
                    "Your socket connection to the server was not read from or written to within "
                    "the timeout period. Idle connections will be closed."
                ) from None
            finally:
                self._waiting = None
            if message["type"] == "http.disconnect":
                self._finished = True
                raise ClientDisconnected("The client disconnected before the request body ended.")
            if not message.get("more_body", False):
                self._finished = True
            chunk = message.get("body", b"")
            if chunk:
                self._check_rate(loop.time(), len(chunk))
                return chunk
        return b""

    def _check_rate(self, now: float, size: int) -> None:
        if self._began is None:
            self._began = now
        self._received += size
        elapsed = now - self._began
        if self._min_rate and elapsed > self._idle and self._received < self._min_rate * elapsed:
            self._finished = True
            self.gave_up = True
            raise RequestTimeout(
                f"Your upload averaged {self._received / elapsed:.0f} bytes/s, below the server's minimum "
                f"of {self._min_rate} bytes/s; the connection was closed."
            )


async def _send_response(send: Send, response: HttpResponse, *, head: bool) -> None:
    headers = [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in response.headers]
    body = response.body
    if isinstance(body, (bytes, bytearray)):
        if not any(k == b"content-length" for k, _ in headers):
            headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else bytes(body)})
        return
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    if head:
        _close(body)
        await send({"type": "http.response.body", "body": b""})
        return
    iterator: Iterator[bytes] = iter(body)
    sentinel = b""
    try:
        while True:
            chunk = await anyio.to_thread.run_sync(next, iterator, sentinel)
            if not chunk:
                break
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    finally:
        _close(iterator)
    await send({"type": "http.response.body", "body": b""})


def _close(body: object) -> None:
    close = getattr(body, "close", None)
    if callable(close):
        close()
