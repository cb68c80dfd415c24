"""Odd content and odd folder names never stop an export and come out byte-exact."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailcrate.mail.base import ImapSpec, SourceSpec, open_source
from mailcrate.mail.maildir import MaildirSource
from mailcrate.mail.store import create_mailbox, deliver

from .corpus import big_message, odd_messages, sha

ODD_FOLDERS = [
    ("a/b",),
    ("dot.ted",),
    (".",),
    ("..",),
    ("Ünïcödé ✓",),
    ("ctl\x01\x7f",),
    ("back\\slash", "%25"),
]
FIFTY_MB = 50 * 1024 * 1024


@pytest.fixture(scope="module")
def big() -> bytes:
    return big_message(FIFTY_MB)


@pytest.fixture(scope="module")
def fast_tmp() -> Iterator[Path]:
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(dir=base) as d:
        yield Path(d)


def test_embedded_store_odd_messages_and_folder_names(fast_tmp: Path, big: bytes) -> None:
    root = fast_tmp / "odd"
    create_mailbox(root)
    odd = odd_messages()
    for path in ODD_FOLDERS:
        for raw in odd.values():
            deliver(root, path, raw)
    deliver(root, "Inbox", iter(big[i : i + 4_000_000] for i in range(0, len(big), 4_000_000)))
    with open_source(SourceSpec(embedded=str(root))) as src:
        folders = {f.path: f for f in src.folders()}
        for path in ODD_FOLDERS:
            assert folders[path].count == len(odd)
            assert sorted(sha(i.read_all()) for i in src.items(folders[path])) == sorted(
                map(sha, odd.values())
            )
        assert folders[("Sent Items",)].count == 0 and list(src.items(folders[("Sent Items",)])) == []
        (item,) = list(src.items(folders[("Inbox",)]))
        assert item.size == FIFTY_MB
        sizes = [len(c) for c in item.chunks()]
        assert max(sizes) <= 1024 * 1024 and sum(sizes) == FIFTY_MB
        assert sha(b"".join(item.chunks())) == sha(big)


def test_maildir_skips_vanished_and_follows_renamed(tmp_path: Path) -> None:
    md = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (md / sub).mkdir(parents=True)
    for i in range(5):
        (md / "new" / f"100{i}.x.host").write_bytes(b"Subject: %d\n\n" % i)
    with MaildirSource(md) as src:
        (inbox,) = src.folders()
        it = src.items(inbox)
        first = next(it)
        os.unlink(md / "new" / "1001.x.host")  # expunged while we read
        os.rename(md / "new" / "1002.x.host", md / "cur" / "1002.x.host:2,S")  # flag change
        rest = list(it)
        assert [first.source_id, *(i.source_id for i in rest)] == [
            "1000.x.host",
            "1002.x.host",
            "1003.x.host",
            "1004.x.host",
        ]
        assert rest[0].read_all() == b"Subject: 2\n\n" and rest[0].flags == ("\\Seen",)


def test_imap_odd_messages_and_50mb(fresh_dovecot, big: bytes) -> None:  # type: ignore[no-untyped-def]
    """Byte-exact against what Dovecot itself returns for BODY[] (it turns bare LF into CRLF)."""
    from imapclient import IMAPClient

    odd = odd_messages()
    odd.pop("empty")  # Dovecot does not index zero-byte files as messages
    fresh_dovecot.put_messages("alice", ("Odd",), [(m, "") for m in odd.values()])
    fresh_dovecot.put_messages("alice", ("Big",), [(big, "")])
    fresh_dovecot.add_folder("alice", ("Empty",))
    spec = ImapSpec(fresh_dovecot.url, "alice", "alicepw")
    with IMAPClient(fresh_dovecot.host, fresh_dovecot.port, ssl=False) as c:
        c.login("alice", "alicepw")
        c.select_folder("Odd", readonly=True)
        server = {u: d[b"BODY[]"] for u, d in c.fetch(c.search("ALL"), ["BODY.PEEK[]"]).items()}
    with open_source(SourceSpec(imap=spec)) as src:
        folders = {f.path: f for f in src.folders()}
        assert folders[("Empty",)].count == 0 and list(src.items(folders[("Empty",)])) == []
        got = [i.read_all() for i in src.items(folders[("Odd",)])]
        assert [sha(g) for g in got] == [sha(server[u]) for u in sorted(server)]
        (item,) = list(src.items(folders[("Big",)]))
        digest = __import__("hashlib").sha256()
        peak = 0
        for chunk in item.chunks():
            peak = max(peak, len(chunk))
            digest.update(chunk)
        assert digest.hexdigest() == sha(big) and peak <= 1024 * 1024
