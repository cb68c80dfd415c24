"""The front door: what a request must get past before it costs the server a thread or memory.

The attacks this bounds (issue 19, each measured before): half-sent requests held connections
open without limit; unauthenticated 10 MB JSON bodies were buffered whole (87 -> 373 MiB with 30
of them); 40 signed uploads trickling a byte every 5 s held all 32 S3 threads, so S3 calls and
``/health`` timed out for every account. So:

* :func:`guarded_protocol` — uvicorn's httptools protocol with a deadline for each request's
  headers (``--header-timeout-seconds``: 408 and close) and a cap on open connections
  (``--max-connections``: the newest is closed at once, before it holds anything);
* :meth:`FrontDoor.admit` — before any body is read or any thread taken: a signature must be
  there and well-formed, scoped to the service that handles it, within the clock skew, and
  name an access key that exists (the body's own hash is part of SigV4 outside S3, so the
  signature itself is verified once the body has arrived; what can be checked before it is
  checked here), and a declared Content-Length must be within ``--max-request-bytes``.
  Refusals are answered at once with ``Connection: close``: the body is never read.
* :meth:`FrontDoor.buffered` — one budget for all buffered (non-S3) bodies together, so many
  admitted ones at once cannot exhaust memory (503 SlowDown beyond it);
* :meth:`FrontDoor.stream_share` — each account's uploads get at most ``--s3-streams-per-account``
  of the S3 stream threads, so one account's slow uploads cannot starve the others;
* uploads must keep up ``--upload-min-bytes-per-second`` on average after their first
  ``--request-idle-seconds`` (checked per chunk by the body reader in :mod:`.app`).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import anyio

from mailcrate.protocol.errors import AuthError, ServiceError
from mailcrate.protocol.http import HttpRequest, HttpResponse
from mailcrate.protocol.sigv4 import check_time, parse_signature
from mailcrate.server import anonymous, dispatch
from mailcrate.server.runtime import Runtime
from mailcrate.server.turns import LoopShare

_ACCOUNT_CACHE_SECONDS = 5.0


class RequestTooLarge(ServiceError):
    code = "RequestEntityTooLarge"
    status = 413


class SlowDown(ServiceError):
    code = "SlowDown"
    status = 503


def guarded_protocol(header_timeout: float, max_connections: int) -> type:
    """uvicorn's httptools protocol with a header deadline per request and a connection cap."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class GuardedProtocol(HttpToolsProtocol):  # type: ignore[misc]
        _header_timer: Any = None

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                transport.abort()  # refused before it holds a request, a thread or a buffer
                return
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._header_timer is None:
                self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            # The next request on this keep-alive connection gets its own deadline once it
            # begins; until then uvicorn's keep-alive timeout applies.

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._header_timer = self.loop.call_later(header_timeout, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self.transport.is_closing():
                return
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
            self.transport.close()

    return GuardedProtocol


class FrontDoor:
    """Per-server admission state (lives on the ASGI app; everything here runs on the loop)."""

    def __init__(self, runtime: Runtime, share: LoopShare) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.share = share
        self._accounts: dict[str, tuple[float, str | None]] = {}
        self._shares: dict[str, anyio.CapacityLimiter] = {}
        self._buffered = 0

    async def admit(self, request: HttpRequest, *, streamed: bool) -> tuple[HttpResponse | None, str]:
        """``(refusal, account)``: the answer for a request refused before its body is read, or
        None and the account the request is signed for."""
        info = None
        spec = None
        try:
            try:
                info = parse_signature(request)
            finally:
                spec = dispatch.route(self.runtime, request, info)
            if not streamed:
                declared = request.headers.get("content-length")
                if (
                    declared is not None
                    and declared.isdigit()
                    and int(declared) > self.settings.max_request_bytes
                ):
                    raise RequestTooLarge(f"Request body exceeds {self.settings.max_request_bytes} bytes")
            if info is None:
                anonymous.principal_for(spec, request)  # S3 reads only; raises otherwise
                return None, anonymous.ACCOUNT
            if spec is not None and info.service != spec.name:
                raise AuthError(
                    "signature", f"Credential should be scoped to correct service: '{spec.name}'."
                )
            account = await self._account_of(info.access_key_id)  # in dispatch's order of checks
            if account is None:
                raise AuthError("unknown-key", "The security token included in the request is invalid.")
            check_time(info, datetime.now(UTC), self.settings.clock_skew_seconds)
            return None, account
        except ServiceError as error:
            response = dispatch._render_error(error, spec or self._form_protocol(request), str(uuid.uuid4()))
            response.headers.append(("Connection", "close"))  # its body is never read
            if self.runtime.metrics is not None:
                self.runtime.metrics.request(spec.name if spec else "-", "-", response.status, 0.0)
            return response, ""

    def _form_protocol(self, request: HttpRequest) -> Any:
        """A Query-protocol service for a form body whose Action (in the unread body) would have
        named it: IAM's and STS's errors have the same XML shape, so the client reads either."""
        if request.content_type != "application/x-www-form-urlencoded":
            return None
        return next((s for s in self.runtime.services.values() if s.protocol.name == "query"), None)

    async def _account_of(self, access_key_id: str) -> str | None:
        now = time.monotonic()
        cached = self._accounts.get(access_key_id)
        if cached is not None and now - cached[0] < _ACCOUNT_CACHE_SECONDS:
            return cached[1]
        # A database read: never on the loop (with PostgreSQL it waits on the network).
        principal = await self.share.in_thread(self.runtime.principal_for, access_key_id)
        if len(self._accounts) > 10_000:
            self._accounts.clear()
        account = principal.account_id if principal is not None else None
        self._accounts[access_key_id] = (now, account)
        return account

    @contextlib.contextmanager
    def buffered(self, request: HttpRequest) -> Any:
        """Reserve the body's size (declared, else the limit) in the budget of all buffered
        bodies; yields a refusal when the budget is spent."""
        declared = request.headers.get("content-length")
        size = int(declared) if declared and declared.isdigit() else self.settings.max_request_bytes
        if self._buffered + size > self.settings.max_buffered_bytes and size > 0:
            error = SlowDown("Too many large requests at once; retry shortly.")
            response = dispatch._render_error(
                error, dispatch.route(self.runtime, request, None), str(uuid.uuid4())
            )
            response.headers += [("Retry-After", "1"), ("Connection", "close")]
            yield response
            return
        self._buffered += size
        try:
            yield None
        finally:
            self._buffered -= size

    @contextlib.asynccontextmanager
    async def stream_share(self, account: str, request: HttpRequest) -> AsyncIterator[None]:
        """Hold one of the account's S3 upload slots while the request runs. Only calls that
        send a body (PUT, POST) take one: they are the ones a slow client can stretch, and the
        account's reads and listings must not queue behind its own stalled uploads."""
        if request.method not in ("PUT", "POST"):
            yield
            return
        share = self._shares.get(account)
        if share is None:
            share = self._shares[account] = anyio.CapacityLimiter(self.settings.s3_streams_per_account)
        async with share:
            yield
