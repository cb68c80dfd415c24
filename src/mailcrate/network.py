"""Which hosts are this machine only: where plaintext is acceptable and where it is not."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = ["is_loopback", "url_host"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or name as given on the command line) is this machine only.

    Names other than ``localhost`` are not resolved: what they point at can change, so they
    count as remote."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def url_host(url: str) -> str:
    """The host part of a URL (empty when it has none)."""
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""
