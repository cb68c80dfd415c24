"""The embedded store keeps what the source had (issue 17): keywords (through Dovecot's
``dovecot-keywords``), identical messages as distinct items, empty folders; on real messages
from public test suites (tests/corpus)."""

from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from mailcrate.mail.intake import import_paths
from mailcrate.mail.maildir import MaildirSource
from mailcrate.mail.maildirpp import FLAG_TO_LETTER, dir_name
from mailcrate.mail.store import EmbeddedStore, deliver_message
from tests import corpus

Key = tuple[tuple[str, ...], bytes, frozenset[str], datetime]


def dovecot_maildir(base: Path, placed: list[corpus.Placed], empty: list[tuple[str, ...]]) -> Path:
    """A Maildir++ tree as Dovecot writes it: keywords as letters a..z through each folder's
    dovecot-keywords file, the internal date as the file's mtime."""
    root = base / "Maildir"
    keywords: dict[Path, list[str]] = {}
    for n, p in enumerate(placed):
        d = root if dir_name(p.folder) is None else root / str(dir_name(p.folder))
        for sub in ("cur", "new", "tmp"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        words = keywords.setdefault(d, [])
        letters = []
        for f in p.flags:
            if f.lower() in FLAG_TO_LETTER:
                letters.append(FLAG_TO_LETTER[f.lower()])
            else:
                if f not in words:
                    words.append(f)
                letters.append(chr(ord("a") + words.index(f)))
        path = d / "cur" / f"1700000000.M{n}P1.source:2,{''.join(sorted(letters))}"
        path.write_bytes(p.data)
        os.utime(path, (p.internal_date.timestamp(), p.internal_date.timestamp()))
    for d, words in keywords.items():
        (d / "dovecot-keywords").write_text("".join(f"{i} {w}\n" for i, w in enumerate(words)))
    for folder in empty:
        for sub in ("cur", "new", "tmp"):
            (root / str(dir_name(folder)) / sub).mkdir(parents=True)
    return root


def store_view(root: Path) -> tuple[Counter[Key], list[tuple[str, ...]]]:
    seen: Counter[Key] = Counter()
    with EmbeddedStore(root) as store:
        folders = [f for f in store.folders() if f.kind == "mail"]
        for f in folders:
            for item in store.items(f):
                assert item.internal_date is not None
                seen[
                    (f.path, item.read_all(), frozenset(item.flags), item.internal_date.astimezone(UTC))
                ] += 1
    return seen, [f.path for f in folders]


def test_maildir_import_keeps_keywords_duplicates_and_empty_folders(tmp_path: Path) -> None:
    placed = corpus.mailbox(zero_bytes=True)
    source = dovecot_maildir(tmp_path / "src", placed, [corpus.EMPTY_FOLDER])
    root = tmp_path / "mb"
    report = import_paths(root, [source])
    assert not report.errors and report.complete
    per_folder = Counter(p.folder for p in placed)
    assert {k: (t.archive, t.done, t.already) for k, t in report.mail.items() if t.archive} == {
        k: (n, n, 0) for k, n in per_folder.items()
    }
    assert report.mail[corpus.EMPTY_FOLDER].archive == 0

    want = Counter((p.folder, p.data, frozenset(p.flags), p.internal_date) for p in placed)
    got, folders = store_view(root)
    assert got == want  # keywords ($Label1, Important), both duplicates, the 0-byte message
    assert corpus.EMPTY_FOLDER in folders
    # Dovecot reading the store's Maildir sees the same keywords (its own mapping file)
    inbox = root / "Maildir"
    assert "Important" in (inbox / "dovecot-keywords").read_text()
    with MaildirSource(inbox) as md:
        flags = {fl for f in md.folders() if f.path == ("Inbox",) for it in md.items(f) for fl in it.flags}
    assert {"Important", "$Label1", "\\Flagged"} <= flags

    again = import_paths(root, [source])
    assert again.done == 0 and again.skipped == len(placed) and again.complete
    assert store_view(root)[0] == want


def test_more_keywords_than_dovecot_letters_are_all_kept(tmp_path: Path) -> None:
    root = tmp_path / "mb"
    words = tuple(f"kw{i:02d}" for i in range(30))
    deliver_message(root, ("Inbox",), corpus.read(corpus.DUPLICATE), ("\\Seen", *words))
    got, _ = store_view(root)
    ((key, n),) = got.items()
    assert n == 1 and key[2] == frozenset({"\\Seen", *words})
    assert len((root / "Maildir" / "dovecot-keywords").read_text().splitlines()) == 26
