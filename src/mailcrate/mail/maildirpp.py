"""Maildir++ folder naming and file-name flags, shared by the embedded store and the Maildir source.

Folder names on disk follow Dovecot's Maildir++ layout: the Inbox is the Maildir root, every
other folder is a sub-directory ``.A.B`` (components joined by ``.``).  Each component is stored
in IMAP modified UTF-7 (as Dovecot does by default), and then the characters that cannot appear
in a component - ``.`` (the separator), ``/`` (the path separator) and ``\\`` (the escape
character itself) - are written as ``\\`` plus two lower-case hex digits, exactly like Dovecot's
``listescape`` plugin with its default escape character.  So ``a.b/c`` is ``.a\\2eb\\2fc`` and
``..`` is ``.\\2e\\2e``; modified UTF-7 already turns control characters into base64, so every
name is a safe single directory entry.  Decoding reverses both steps, and also accepts raw UTF-8
directory names (Dovecot's ``UTF-8`` option) so foreign Maildirs read correctly.

Flags: the ``:2,`` info suffix holds one letter per flag (Maildir spec); the mapping to IMAP
flags is :data:`LETTER_TO_FLAG`.
"""

from __future__ import annotations

import re

from imapclient import imap_utf7

from mailcrate.mail.base import nfc

INBOX = "Inbox"
_ESCAPE = "\\"
_MUST_ESCAPE = {".", "/", "\\"}
_ESCAPED = re.compile(r"\\([0-9a-fA-F]{2})")

LETTER_TO_FLAG = {
    "D": "\\Draft",
    "F": "\\Flagged",
    "P": "$Forwarded",
    "R": "\\Answered",
    "S": "\\Seen",
    "T": "\\Deleted",
}
FLAG_TO_LETTER = {v.lower(): k for k, v in LETTER_TO_FLAG.items()}


def encode_component(name: str) -> str:
    """One folder-name component as its Maildir++ directory-name piece."""
    if not name:
        raise ValueError("empty folder name component")
    utf7 = imap_utf7.encode(name).decode("ascii")
    return "".join(f"{_ESCAPE}{ord(c):02x}" if c in _MUST_ESCAPE else c for c in utf7)


def decode_component(piece: str) -> str:
    """Inverse of :func:`encode_component`; tolerant of foreign (UTF-8, malformed) names."""
    unescaped = _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), piece)
    if unescaped.isascii():
        try:
            return nfc(imap_utf7.decode(unescaped.encode("ascii")))
        except Exception:  # not valid modified UTF-7: take the name literally
            return unescaped
    # Raw 8-bit name: os.listdir gave surrogate escapes for bytes that are not UTF-8.
    return nfc(unescaped.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))


def dir_name(path: tuple[str, ...]) -> str | None:
    """Directory name under the Maildir root for a folder path; ``None`` for the Inbox itself."""
    if not path:
        raise ValueError("empty folder path")
    parts = list(path)
    if parts[0].lower() == "inbox":
        if len(parts) == 1:
            return None
        parts[0] = "INBOX"
    return "." + ".".join(encode_component(p) for p in parts)


def path_from_dir(name: str) -> tuple[str, ...]:
    """Folder path for a Maildir++ sub-directory name (``.A.B``)."""
    parts = [decode_component(p) for p in name[1:].split(".")]
    if parts and parts[0].lower() == "inbox":
        parts[0] = INBOX
    return tuple(parts)


def split_info(filename: str) -> tuple[str, str]:
    """``unique:2,FS`` -> (``unique``, ``FS``); a name without info has no flags."""
    base, sep, info = filename.partition(":")
    if not sep:
        # Some tools on file systems without ':' use '!' or ';' - accept them too.
        for alt in ("!", ";"):
            base, sep, info = filename.partition(alt)
            if sep:
                break
        else:
            return filename, ""
    return base, info[2:] if info.startswith("2,") else ""


def flags_from_letters(letters: str, keywords: dict[str, str] | None = None) -> tuple[str, ...]:
    """IMAP flags for an info suffix; lower-case letters are keywords from ``dovecot-keywords``."""
    out: list[str] = []
    for ch in letters:
        if ch in LETTER_TO_FLAG:
            out.append(LETTER_TO_FLAG[ch])
        elif keywords and ch in keywords:
            out.append(keywords[ch])
    return tuple(sorted(set(out)))


def letters_from_flags(flags: tuple[str, ...] | list[str]) -> str:
    """Info-suffix letters for IMAP flags (sorted, as the Maildir spec requires); keywords dropped."""
    return "".join(sorted({FLAG_TO_LETTER[f.lower()] for f in flags if f.lower() in FLAG_TO_LETTER}))


def read_dovecot_keywords(maildir: str) -> dict[str, str]:
    """Dovecot's ``dovecot-keywords`` file maps ``0``..``25`` to keywords written as ``a``..``z``."""
    import os

    result: dict[str, str] = {}
    try:
        with open(os.path.join(maildir, "dovecot-keywords"), encoding="utf-8", errors="replace") as f:
            for line in f:
                idx, _, word = line.strip().partition(" ")
                if idx.isdigit() and int(idx) < 26 and word:
                    result[chr(ord("a") + int(idx))] = word
    except OSError:
        pass
    return result
