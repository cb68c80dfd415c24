"""Ports for loopback test servers."""

from __future__ import annotations

import socket
import time


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the kernel picks it, so never a default port)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_port(host: str, port: int, timeout: float = 10.0, *, closed: bool = False) -> None:
    """Wait until the port accepts connections (or, with ``closed``, until it no longer does)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port) != closed:
            return
        time.sleep(0.02)
    raise TimeoutError(f"{host}:{port} did not {'close' if closed else 'open'} within {timeout}s")
