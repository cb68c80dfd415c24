"""A small vendored corpus of real messages and calendars (public test suites, MIT/Apache-2.0).

``MANIFEST.json`` names every file's repository, path, commit, licence and SHA-256; the licence
texts are under ``licenses/``. ``.gitattributes`` keeps the bytes exact (bare LF, NUL, 0 bytes).

:func:`mailbox` lays the messages out as a mailbox with the cases a lossless round trip must
keep: the same bytes twice in one folder with their own flags and dates, keywords, pairs of
different messages that share Message-ID, Date and size, a 0-byte message, an empty folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).parent


def manifest() -> list[dict[str, object]]:
    return list(json.loads((ROOT / "MANIFEST.json").read_text(encoding="utf-8"))["files"])


def read(name: str) -> bytes:
    """A corpus file by its short name (``mailgun--messages-enclosed.eml``)."""
    kind = "calendar" if name.endswith(".ics") else "mail"
    return (ROOT / kind / name).read_bytes()


def calendar_path(name: str) -> Path:
    return ROOT / "calendar" / name


def messages() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((ROOT / "mail").iterdir())}


@dataclass(frozen=True)
class Placed:
    """One message of :func:`mailbox`: where it goes, with what flags and internal date."""

    folder: tuple[str, ...]
    name: str
    flags: tuple[str, ...]
    internal_date: datetime

    @property
    def data(self) -> bytes:
        return read(self.name)


EMPTY_FOLDER = ("Archive", "Empty 2019")
ZERO_BYTES = "mailgun--dkim-email.01.eml"
SAME_KEY_PAIRS = (
    ("mailgun--messages-enclosed.eml", "mailgun--messages-enclosed-global.eml"),
    ("mailgun--messages-missing-final-boundary.eml", "mailgun--messages-missing-boundaries.eml"),
)
DUPLICATE = "mikel--plain_emails-raw_email_simple.eml"


def mailbox(*, zero_bytes: bool = False) -> list[Placed]:
    """Every corpus message once (the 0-byte one only with ``zero_bytes``: IMAP servers refuse
    it), spread over folders, plus the duplicate twice more in Inbox with other flags/dates."""
    folders = [("Inbox",), ("Projects", "Ärger & Co"), ("Sent Items",)]
    out: list[Placed] = []
    names = [n for n in messages() if zero_bytes or n != ZERO_BYTES]
    paired = {n for pair in SAME_KEY_PAIRS for n in pair}
    for i, name in enumerate(names):
        flags: tuple[str, ...] = (("\\Seen",), ("\\Seen", "\\Flagged"), (), ("\\Answered", "$Label1"))[i % 4]
        day = datetime(2021, 1 + i % 12, 1 + i, 8, i, tzinfo=UTC)
        folder = ("Inbox",) if name in paired else folders[i % len(folders)]  # same key, same folder
        out.append(Placed(folder, name, flags, day))
    out.append(
        Placed(("Inbox",), DUPLICATE, ("\\Flagged", "Important"), datetime(2022, 2, 2, 2, 2, tzinfo=UTC))
    )
    out.append(Placed(("Inbox",), DUPLICATE, (), datetime(2023, 3, 3, 3, 3, tzinfo=UTC)))
    return out
