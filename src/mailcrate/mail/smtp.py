"""SMTP intake (``mailcrate serve --smtp-port N``): deliver mail for registered addresses.

Built on aiosmtpd, run in its own thread.  A recipient is accepted only when
``resolve_recipient(address)`` returns a mailbox root (else ``550``); a message larger than
``max_message_size`` gets ``552`` (aiosmtpd enforces the limit, including a too-large ``SIZE=``
on ``MAIL FROM``).  The message is written to each recipient's Inbox and fsynced before ``250``
is sent; if delivery fails the client gets ``451`` and retries later, so mail is never lost
silently.  The bytes are stored exactly as received (after SMTP dot-unstuffing).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

from mailcrate.mail.store import deliver

log = logging.getLogger(__name__)

ResolveRecipient = Callable[[str], Path | None]


class _Handler:
    def __init__(self, resolve: ResolveRecipient) -> None:
        self.resolve = resolve

    async def handle_RCPT(
        self, server: SMTPServer, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        loop = asyncio.get_running_loop()
        try:
            root = await loop.run_in_executor(None, self.resolve, address)
        except Exception as exc:  # e.g. the mailbox lives in another node's data directory
            log.warning("SMTP recipient %s not deliverable here: %s", address, exc)
            return "451 4.3.0 Recipient mailbox not available on this server; try again later"
        if root is None:
            return "550 5.1.1 Recipient address rejected: user unknown"
        roots: dict[str, Path] = envelope.__dict__.setdefault("mailcrate_roots", {})
        roots[address] = Path(root)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content if envelope.original_content is not None else envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        roots = list(dict.fromkeys(envelope.__dict__.get("mailcrate_roots", {}).values()))
        loop = asyncio.get_running_loop()
        try:
            for root in roots:  # one copy per distinct mailbox, each durable before we answer
                await loop.run_in_executor(None, deliver, root, "Inbox", data)
        except Exception:
            log.exception("SMTP delivery failed")
            return "451 4.3.0 Delivery failed; try again later"
        return "250 2.0.0 Message accepted for delivery"


class SMTPIntake:
    """A running SMTP listener; ``stop()`` shuts it down."""

    def __init__(self, controller: Controller, host: str, port: int) -> None:
        self._controller = controller
        self.host = host
        self.port = port

    def stop(self) -> None:
        self._controller.stop()


def start_smtp(
    host: str,
    port: int,
    resolve_recipient: ResolveRecipient,
    max_message_size: int = 25 * 1024 * 1024,
    *,
    tls_context: ssl.SSLContext | None = None,
) -> SMTPIntake:
    """Listen on ``host:port`` (a real port number, not 0) in a background thread.

    With ``tls_context`` the server offers STARTTLS (RFC 3207) with that certificate; it does
    not require it, since a sending MTA that cannot upgrade would otherwise bounce the mail."""
    kwargs: dict[str, Any] = {"data_size_limit": max_message_size, "decode_data": False}
    if tls_context is not None:
        kwargs["tls_context"] = tls_context
    controller = Controller(_Handler(resolve_recipient), hostname=host, port=port, **kwargs)
    controller.start()
    return SMTPIntake(controller, host, port)
