"""Zip path names of export items (DESIGN.md "Zip layout").

Why: folder and calendar names are arbitrary Unicode chosen by mail users, but every zip path
must be safe to unpack anywhere (no ``/`` smuggled inside a component, no ``..``, no control
characters) *and* decode back to the exact original name for restore. So each path component
is percent-encoded, minimally, so that ordinary names stay readable:

* the name is first normalised to NFC;
* ``%``, ``/``, ``\\``, every control character (Unicode category Cc: C0, DEL and C1) and any
  lone surrogate are written as ``%XX`` per UTF-8 byte (uppercase hex; surrogates use their
  "surrogatepass" 3-byte form so they too round-trip);
* a combining mark directly after an escape is escaped too, so the encoded name is itself
  NFC-stable (an escape ends in a hex digit, and ``E`` + U+0301 would compose to ``É``);
* a component that is exactly ``.`` or ``..`` becomes ``%2E`` / ``%2E%2E``
  (``.foo`` or ``...`` stay as they are: they are ordinary names on every unpacker);
* the empty name becomes a single ``%``. The encoder never emits ``%`` except as the start of
  a ``%XX`` escape, so a lone ``%`` cannot be confused with any non-empty name.

Layout: ``mail/<folder components...>/<seq:06d>.eml`` and
``calendar/<calendar name>/<seq:06d>.eml``; sequence numbers start at 1 and simply grow past
six digits beyond 999999.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Literal

__all__ = [
    "CALENDAR_PREFIX",
    "EMPTY_COMPONENT",
    "MAIL_PREFIX",
    "ItemKind",
    "item_path",
    "parse_item_path",
    "safe_component",
    "unsafe_component",
]

ItemKind = Literal["mail", "calendar"]

MAIL_PREFIX = "mail"
CALENDAR_PREFIX = "calendar"
#: Encoding of the empty component (see module docstring).
EMPTY_COMPONENT = "%"

_SPECIAL = frozenset("%/\\")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_ITEM_FILE = re.compile(r"(\d{6,})\.eml")


def _needs_escape(char: str) -> bool:
    if char in _SPECIAL:
        return True
    code = ord(char)
    if code < 0x20 or 0x7F <= code <= 0x9F:  # Unicode category Cc
        return True
    return 0xD800 <= code <= 0xDFFF  # lone surrogate: not encodable as UTF-8


def safe_component(name: str) -> str:
    """Encode one folder/calendar name as a single safe zip path component."""
    name = unicodedata.normalize("NFC", name)
    if name == "":
        return EMPTY_COMPONENT
    if name == ".":
        return "%2E"
    if name == "..":
        return "%2E%2E"
    out: list[str] = []
    escaped = False
    for char in name:
        # A combining mark right after an escape would compose with its last hex digit
        # ("%0E" + U+0301 -> "%0É") if anything re-normalised the path: escape it too.
        escaped = _needs_escape(char) or (escaped and unicodedata.combining(char) != 0)
        if escaped:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
        else:
            out.append(char)
    return "".join(out)


def unsafe_component(component: str) -> str:
    """Decode a component produced by :func:`safe_component` back to the (NFC) original.

    Escapes of any character are accepted (``%41`` decodes to ``A``), so hand-edited
    archives still restore; a ``%`` not followed by two hex digits (other than the lone
    ``%`` for the empty name) or escapes that are not valid UTF-8 raise ``ValueError``.
    """
    if component == EMPTY_COMPONENT:
        return ""
    if "%" not in component:
        return component
    out = bytearray()
    pos = 0
    for match in _ESCAPE.finditer(component):
        literal = component[pos : match.start()]
        if "%" in literal:
            raise ValueError(f"malformed percent escape in {component!r}")
        out += literal.encode("utf-8", "surrogatepass")
        out.append(int(match.group(1), 16))
        pos = match.end()
    tail = component[pos:]
    if "%" in tail:
        raise ValueError(f"malformed percent escape in {component!r}")
    out += tail.encode("utf-8", "surrogatepass")
    try:
        return out.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError as exc:
        raise ValueError(f"percent escapes in {component!r} are not UTF-8") from exc


def item_path(kind: ItemKind, folder_components: tuple[str, ...] | list[str], seq: int) -> str:
    """Zip path of the ``seq``-th item (1-based) of a folder or calendar.

    ``folder_components`` are the original (decoded) names, outermost first; mail needs at
    least one (``("INBOX",)``), a calendar exactly one (its display name).
    """
    if seq < 1:
        raise ValueError(f"seq must be >= 1, got {seq}")
    return f"{_folder_dir(kind, tuple(folder_components))}{seq:06d}.eml"


@functools.lru_cache(maxsize=1024)
def _folder_dir(kind: ItemKind, components: tuple[str, ...]) -> str:
    """``mail/<encoded folder>/`` (or the calendar's): the same for every item of a folder, so
    encoded once per folder, not per item (an export names ~6,600 items per GiB)."""
    if kind == "mail":
        if not components:
            raise ValueError("a mail item needs at least one folder component")
        prefix = MAIL_PREFIX
    elif kind == "calendar":
        if len(components) != 1:
            raise ValueError(f"a calendar item needs exactly one calendar name, got {components!r}")
        prefix = CALENDAR_PREFIX
    else:
        raise ValueError(f"unknown item kind {kind!r}")
    encoded = "/".join(safe_component(c) for c in components)
    return f"{prefix}/{encoded}/"


def parse_item_path(path: str) -> tuple[ItemKind, tuple[str, ...], int]:
    """Inverse of :func:`item_path`: ``(kind, original folder components, seq)``.

    Raises ``ValueError`` for paths outside the layout (e.g. ``manifest.jsonl``).
    """
    parts = path.split("/")
    if len(parts) < 3:
        raise ValueError(f"not an item path: {path!r}")
    prefix, *folder, leaf = parts
    match = _ITEM_FILE.fullmatch(leaf)
    if match is None:
        raise ValueError(f"not an item file name: {path!r}")
    kind: ItemKind
    if prefix == MAIL_PREFIX:
        kind = "mail"
    elif prefix == CALENDAR_PREFIX and len(folder) == 1:
        kind = "calendar"
    else:
        raise ValueError(f"not an item path: {path!r}")
    return kind, tuple(unsafe_component(c) for c in folder), int(match.group(1))
