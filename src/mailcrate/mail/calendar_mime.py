"""Calendar items as MIME messages (DESIGN.md, "Calendar items as MIME"), and back.

An export carries calendar items in the same zip as mail, so each one becomes an RFC 5322
message any mail client can open: ``From`` the mailbox owner, ``Subject`` the SUMMARY, ``Date``
from DTSTAMP (else LAST-MODIFIED), a ``Message-ID`` derived from the UID (so the same event gets
the same id in every export), and ``multipart/alternative`` of a short text/plain summary and the
original iCalendar object, base64, byte-exact, its ``method`` parameter the object's own METHOD
(none when it has none).  The output is deterministic: the same object
always gives the same bytes, which keeps export checksums stable.
"""

from __future__ import annotations

import base64
import hashlib
from email import message_from_bytes
from email.header import Header
from email.policy import compat32
from email.utils import format_datetime

from mailcrate.mail.ics import EventSummary, method, summarize

CRLF = b"\r\n"


def _header(name: str, value: str) -> bytes:
    if value.isascii() and all(c >= " " for c in value):
        folded = value
    else:
        folded = Header(value.replace("\r", " ").replace("\n", " "), "utf-8", header_name=name).encode(
            linesep="\r\n"
        )
    return f"{name}: {folded}".encode("ascii") + CRLF


def message_id_for(uid: str, ics: bytes) -> str:
    """Stable Message-ID for a calendar item: from its UID (content hash when it has none)."""
    key = uid.encode("utf-8") if uid else ics
    return f"<{hashlib.sha256(key).hexdigest()[:40]}@calendar.mailcrate.invalid>"


def _summary_text(info: EventSummary) -> str:
    lines = [info.summary or "(no title)", ""]
    when = info.start + (f" - {info.end}" if info.end else "")
    for label, value in (("When", when), ("Where", info.location), ("Organizer", info.organizer)):
        if value:
            lines.append(f"{label}: {value}")
    if info.recurring:
        lines.append("Repeats" + (f" ({info.overrides} changed occurrence(s))" if info.overrides else ""))
    return "\r\n".join(lines) + "\r\n"


def _b64_lines(data: bytes) -> bytes:
    enc = base64.b64encode(data)
    return b"".join(enc[i : i + 76] + CRLF for i in range(0, len(enc), 76))


def calendar_to_mime(ics: bytes, owner: str) -> bytes:
    """The MIME message for one calendar item (all components of one UID + their VTIMEZONEs)."""
    info = summarize(ics)
    boundary = "=_mailcrate_" + hashlib.sha256(ics).hexdigest()[:24]
    head = _header("From", owner or "calendar@mailcrate.invalid")
    head += _header("Subject", info.summary)
    if info.stamp is not None:
        head += _header("Date", format_datetime(info.stamp, usegmt=True))
    head += _header("Message-ID", message_id_for(info.uid, ics))
    head += b"MIME-Version: 1.0" + CRLF
    head += f'Content-Type: multipart/alternative; boundary="{boundary}"'.encode() + CRLF + CRLF
    text = _summary_text(info).encode("utf-8")
    b = boundary.encode()
    body = b"--" + b + CRLF
    if text.isascii():
        body += b"Content-Type: text/plain; charset=UTF-8" + CRLF
        body += b"Content-Transfer-Encoding: 7bit" + CRLF + CRLF + text
    else:
        body += b"Content-Type: text/plain; charset=UTF-8" + CRLF
        body += b"Content-Transfer-Encoding: base64" + CRLF + CRLF + _b64_lines(text)
    body += b"--" + b + CRLF
    # the object's own iTIP method (RFC 6047 2.4: the parameter matches the METHOD property);
    # none when the object has none
    itip = method(ics)
    params = f"; method={itip}" if itip and itip.replace("-", "").isalnum() else ""
    body += f"Content-Type: text/calendar{params}; charset=UTF-8".encode() + CRLF
    body += b"Content-Transfer-Encoding: base64" + CRLF + CRLF + _b64_lines(ics)
    body += b"--" + b + b"--" + CRLF
    return head + body


def ics_from_calendar_mime(message: bytes) -> bytes:
    """The original iCalendar bytes of a message made by :func:`calendar_to_mime` (for restore)."""
    msg = message_from_bytes(message, policy=compat32)
    for part in msg.walk():
        if part.get_content_type() == "text/calendar":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload
    raise ValueError("message has no text/calendar part")
