"""A fault-injecting HTTP/1.1 proxy for tests: it stands between an S3 client (mailcrate's
exporter) and an S3 endpoint (moto's server) and, request by request, forwards, resets the
connection, stalls, answers 503, or holds a request until the test releases it (a request that
reaches S3 late, after its sender crashed or lost its job).

Each request is read whole (head and Content-Length body) before a rule decides, so a held
request is exactly the bytes the client sent, delivered later. Every answer closes the client's
connection (``Connection: close``): botocore opens a new one per request, which keeps the
proxy simple and changes nothing an exporter may rely on.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

__all__ = ["FORWARD", "Action", "FaultProxy", "Request"]


@dataclass(frozen=True)
class Request:
    """One request as the client sent it."""

    method: str
    target: str
    headers: dict[str, str]  # lower-case names
    raw: bytes  # head and body, as received

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)

    @property
    def operation(self) -> str:
        """The S3 operation, for the few an exporter sends."""
        q = self.query
        if self.method == "PUT" and "partNumber" in q:
            return "UploadPart"
        if self.method == "POST" and "uploads" in q:
            return "CreateMultipartUpload"
        if self.method == "POST" and "uploadId" in q:
            return "CompleteMultipartUpload"
        if self.method == "DELETE" and "uploadId" in q:
            return "AbortMultipartUpload"
        if self.method == "PUT":
            return "PutObject"
        if self.method == "DELETE":
            return "DeleteObject"
        return f"{self.method} {self.path}"


@dataclass
class Action:
    """What the proxy does with one request: ``forward`` (optionally after ``hold`` is set),
    ``reset`` (close the client's connection with RST, nothing forwarded), ``stall`` (read it,
    never answer, forward nothing), ``status`` (answer this status, forward nothing), or
    ``cut`` (forward it, send only the first ``keep`` bytes of the answer, then close: a body
    cut short)."""

    kind: str = "forward"
    hold: threading.Event | None = None
    status: int = 0
    keep: int = 0


FORWARD = Action()


@dataclass
class FaultProxy:
    """``rule(request) -> Action`` decides each request; :attr:`seen` lists every request's
    operation and what was done with it."""

    upstream: tuple[str, int]
    rule: Callable[[Request], Action] = lambda request: FORWARD
    seen: list[tuple[str, str, str]] = field(default_factory=list)  # (operation, path, action)

    def __post_init__(self) -> None:
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._lock = threading.Lock()
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def count(self, operation: str, action: str | None = None) -> int:
        with self._lock:
            return sum(1 for op, _, act in self.seen if op == operation and (action is None or act == action))

    def _note(self, request: Request, action: str) -> None:
        with self._lock:
            self.seen.append((request.operation, request.path, action))

    def _serve(self, client: socket.socket) -> None:
        request = _read_request(client)
        if request is None:
            return
        action = self.rule(request)
        if action.kind == "reset":
            self._note(request, "reset")
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            client.close()
            return
        if action.kind == "stall":
            self._note(request, "stall")
            with contextlib.suppress(OSError):
                client.settimeout(600)
                while client.recv(65536):  # until the client gives up and closes
                    pass
            return
        if action.kind == "status":
            self._note(request, f"status {action.status}")
            body = b"<Error><Code>ServiceUnavailable</Code><Message>injected</Message></Error>"
            head = (
                f"HTTP/1.1 {action.status} Injected\r\nContent-Type: application/xml\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            with contextlib.suppress(OSError):
                client.sendall(head.encode() + body)
            return
        if action.hold is not None:
            self._note(request, "held")
            action.hold.wait()
        self._note(request, "cut" if action.kind == "cut" else "forwarded")
        answer = _forward(self.upstream, request)
        with contextlib.suppress(OSError):
            client.sendall(answer[: action.keep] if action.kind == "cut" else answer)


def _read_request(client: socket.socket) -> Request | None:
    client.settimeout(60)
    data = b""
    with contextlib.suppress(OSError):
        while b"\r\n\r\n" not in data:
            chunk = client.recv(65536)
            if not chunk:
                return None
            data += chunk
    if b"\r\n\r\n" not in data:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    if headers.get("expect", "").lower() == "100-continue" and len(body) < length:
        client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    while len(body) < length:
        chunk = client.recv(min(1 << 20, length - len(body)))
        if not chunk:
            return None
        body += chunk
    raw_head = "\r\n".join(
        [lines[0]] + [line for line in lines[1:] if not line.lower().startswith(("connection:", "expect:"))]
    )
    return Request(
        method, target, headers, raw_head.encode("latin-1") + b"\r\nConnection: close\r\n\r\n" + body
    )


def _forward(upstream: tuple[str, int], request: Request) -> bytes:
    """Send the request upstream and return its whole answer, marked ``Connection: close``."""
    with socket.create_connection(upstream, timeout=120) as conn:
        conn.sendall(request.raw)
        answer = b""
        while chunk := conn.recv(1 << 20):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
    return b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n" + body


def window(seconds: float) -> Callable[[], bool]:
    """True for ``seconds`` from the first call on: a fault window."""
    start: list[float] = []

    def inside() -> bool:
        if not start:
            start.append(time.monotonic())
        return time.monotonic() - start[0] < seconds

    return inside
