"""Framework-neutral HTTP request/response values that the protocol layer works on.

The ASGI adapter in :mod:`mailcrate.server.app` builds these; protocols, SigV4 verification and
services never see ASGI or Starlette types, so they can be tested (and reused) on plain values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import parse_qsl, unquote


class Headers:
    """Case-insensitive request headers; repeated headers are joined with commas as HTTP allows."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._values: dict[str, str] = {}
        self._names: dict[str, str] = {}
        for name, value in items:
            key = name.lower()
            if key in self._values:
                self._values[key] = f"{self._values[key]},{value}"
            else:
                self._values[key] = value
                self._names[key] = name

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._values.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def __getitem__(self, name: str) -> str:
        return self._values[name.lower()]

    def items(self) -> Iterator[tuple[str, str]]:
        """(lower-case name, value) pairs."""
        return iter(self._values.items())


@dataclass
class HttpRequest:
    method: str
    raw_path: str  # percent-encoded, exactly as the client sent it
    query_string: str  # raw, without "?"
    headers: Headers
    body: bytes = b""
    client_ip: str = "127.0.0.1"
    scheme: str = "http"
    # For streamed bodies (S3 uploads): returns the next chunk, b"" at the end.
    read_chunk: Callable[[], bytes] | None = None

    @cached_property
    def path(self) -> str:
        return unquote(self.raw_path)

    @cached_property
    def query_params(self) -> list[tuple[str, str]]:
        return parse_qsl(self.query_string, keep_blank_values=True)

    @cached_property
    def query(self) -> dict[str, str]:
        return dict(self.query_params)

    @property
    def host(self) -> str:
        return self.headers.get("host") or ""

    @property
    def content_type(self) -> str:
        return (self.headers.get("content-type") or "").split(";")[0].strip().lower()


@dataclass
class HttpResponse:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | Iterable[bytes] = b""

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None
