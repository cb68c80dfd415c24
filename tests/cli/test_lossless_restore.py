"""A restore over IMAP into a real Dovecot loses nothing silently (issue 17), on real messages
from public test suites (tests/corpus): messages that share Message-ID, Date and size but differ
in bytes are both restored; identical messages with their own flags and dates stay distinct; a
0-byte message the server cannot store is named as such, the rest restored, exit status 1; a
re-run appends nothing twice."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from imapclient import IMAPClient

from mailcrate.admin.imap_target import stored_form
from mailcrate.export.manifest import MANIFEST_NAME, Manifest, ManifestHeader, ManifestItem, manifest_lines
from mailcrate.export.names import item_path
from mailcrate.export.pipeline import write_archive
from mailcrate.export.zipstream import ZipStreamWriter
from mailcrate.mail.base import ImapSpec
from mailcrate.mail.imap import ImapSource
from tests import corpus
from tests.cli.support import module_dovecot, run
from tests.servers import DovecotServer

USERS = {"r1": "pw1", "r2": "pw2", "src": "pw3", "dst": "pw4"}
START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
Key = tuple[str, str, frozenset[str], datetime]


dovecot = module_dovecot(USERS)


def write_export(path: Path, placed: list[corpus.Placed]) -> dict[str, corpus.Placed]:
    """An export zip as the job writes it (items, then the manifest); zip path -> message."""
    items: list[ManifestItem] = []
    by_path: dict[str, corpus.Placed] = {}
    counters: Counter[tuple[str, ...]] = Counter()
    with path.open("wb") as fh:
        writer = ZipStreamWriter(fh.write)
        for p in placed:
            counters[p.folder] += 1
            name = item_path("mail", p.folder, counters[p.folder])
            data = p.data
            writer.add(name, [data], date_time=p.internal_date)
            items.append(
                ManifestItem(
                    name, "mail", p.folder, name, len(data), hashlib.sha256(data).hexdigest(),
                    p.internal_date, p.flags,
                )
            )  # fmt: skip
            by_path[name] = p
        writer.add(
            MANIFEST_NAME, manifest_lines(ManifestHeader("j", "o", "e", START), items), date_time=START
        )
        writer.close()
    return by_path


def server_view(dv: DovecotServer, user: str) -> Counter[Key]:
    """Every message on the server: (folder, SHA-256 of its bytes, flags, INTERNALDATE)."""
    client = IMAPClient(dv.host, dv.port, ssl=False)
    client.normalise_times = False  # INTERNALDATE with its offset
    client.login(user, dv.users[user])
    seen: Counter[Key] = Counter()
    try:
        for flags, delim, name in client.list_folders():
            if {b"\\Noselect", b"\\NonExistent"} & set(flags):
                continue  # a parent that is only a name
            client.select_folder(name, readonly=True)
            ids = client.search(["ALL"])
            for v in (client.fetch(ids, ["BODY.PEEK[]", "FLAGS", "INTERNALDATE"]) if ids else {}).values():
                flags = frozenset(f.decode() for f in v[b"FLAGS"] if f != b"\\Recent")
                folder = "/".join(name.split(delim.decode())) if name != "INBOX" else "Inbox"
                when = v[b"INTERNALDATE"].astimezone(UTC)
                seen[(folder, hashlib.sha256(v[b"BODY[]"]).hexdigest(), flags, when)] += 1
            client.close_folder()
    finally:
        client.logout()
    return seen


def expected_view(placed: list[corpus.Placed]) -> Counter[Key]:
    return Counter(
        (
            "/".join(p.folder),
            hashlib.sha256(stored_form(p.data)).hexdigest(),
            frozenset(p.flags),
            p.internal_date,
        )
        for p in placed
    )


def restore(dv: DovecotServer, user: str, zip_path: Path, *extra: str) -> tuple[int, str, str]:
    result = run(
        "export", "restore", str(zip_path), "--imap", dv.url, "--imap-user", user, *extra,
        env={**os.environ, "MAILCRATE_IMAP_PASSWORD": dv.users[user]},
    )  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout, result.stderr


def test_corpus_restores_every_message_and_names_the_one_refused(
    dovecot: DovecotServer, tmp_path: Path
) -> None:
    placed = corpus.mailbox(zero_bytes=True)
    zip_path = tmp_path / "corpus.zip"
    by_path = write_export(zip_path, placed)
    zero = next(n for n, p in by_path.items() if p.name == corpus.ZERO_BYTES)

    code, out, err = restore(dovecot, "r1", zip_path, "--output", "json")
    assert code == 1, err
    report = json.loads(out)
    assert report["complete"] is False and report["refused"] == 1
    assert report["restored"] == len(placed) - 1 and report["alreadyThere"] == 0
    refused = [r for row in report["mail"] for r in row["refused"]]
    assert [r["item"] for r in refused] == [zero]
    assert refused[0]["reason"].startswith("empty message (0 bytes); the server said: ")
    rows = {"/".join(row["folder"]): row for row in report["mail"]}
    for folder, n in Counter("/".join(p.folder) for p in placed).items():
        row = rows[folder]
        assert row["archive"] == n == row["restored"] + row["alreadyThere"] + len(row["refused"])

    stored = [p for p in placed if p.name != corpus.ZERO_BYTES]
    assert server_view(dovecot, "r1") == expected_view(stored)

    # a re-run: nothing appended twice, the refused one named again, exit 1 again; as a table
    code, out, err = restore(dovecot, "r1", zip_path)
    assert code == 1
    assert f"refused: {zero}: empty message (0 bytes)" in out
    assert "error: 1 item(s) not restored" in err
    total = next(line for line in out.splitlines() if line.startswith("total"))
    assert total.split() == ["total", str(len(placed)), "0", str(len(placed) - 1), "1"]
    assert server_view(dovecot, "r1") == expected_view(stored)


def test_same_bytes_already_there_are_matched_one_copy_each(dovecot: DovecotServer, tmp_path: Path) -> None:
    """The target holds one copy of a message; the archive has three (own flags and dates):
    one is already there, two are restored."""
    dup = [p for p in corpus.mailbox() if p.name == corpus.DUPLICATE]
    assert len(dup) == 3
    first = tmp_path / "one.zip"
    write_export(first, [dup[0]])
    assert restore(dovecot, "r2", first)[0] == 0
    every = tmp_path / "all.zip"
    write_export(every, dup)
    code, out, err = restore(dovecot, "r2", every, "--output", "json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["restored"], report["alreadyThere"]) == (2, 1)
    assert sum(server_view(dovecot, "r2").values()) == 3


def export_imap(dv: DovecotServer, user: str, zip_path: Path) -> Manifest:
    """The export pipeline over IMAP into a zip; its manifest."""
    spec = ImapSpec(url=dv.url, user=user, password=dv.users[user])
    with ImapSource(spec) as source, zip_path.open("wb") as fh:
        write_archive(source, fh.write, header=ManifestHeader(user, "o", "e", START))
    with zipfile.ZipFile(zip_path) as zf:
        return Manifest.parse(zf.read(MANIFEST_NAME))


def test_round_trip_through_dovecot(dovecot: DovecotServer, tmp_path: Path) -> None:
    """Export -> restore -> re-export: the same items (bytes as the server stores them), flags,
    INTERNALDATEs and folders, the empty one included."""
    placed = corpus.mailbox()  # Dovecot cannot store the 0-byte message
    source_zip = tmp_path / "source.zip"
    write_export(source_zip, placed)
    assert restore(dovecot, "src", source_zip)[0] == 0
    dovecot.add_folder("src", corpus.EMPTY_FOLDER)

    first = export_imap(dovecot, "src", tmp_path / "first.zip")
    code, out, err = restore(dovecot, "dst", tmp_path / "first.zip")
    assert code == 0, out + err
    second = export_imap(dovecot, "dst", tmp_path / "second.zip")

    def view(m: Manifest) -> Counter[tuple[tuple[str, ...], str, frozenset[str], datetime | None]]:
        return Counter((i.folder, i.sha256, frozenset(i.flags), i.internal_date) for i in m.items)

    assert view(second) == view(first)
    assert len(first.items) == len(placed)
    assert ("mail", corpus.EMPTY_FOLDER) in first.header.empty_folders
    assert second.header.empty_folders == first.header.empty_folders
    assert server_view(dovecot, "dst") == server_view(dovecot, "src") == expected_view(placed)


def test_embedded_restore_and_unpack_keep_duplicates_keywords_and_empty_folders(tmp_path: Path) -> None:
    """The same export into an embedded mailbox (twice: idempotent) and as mbox files."""
    from mailcrate.admin.restore import restore_embedded
    from mailcrate.admin.unpack import unpack_mbox
    from mailcrate.mail.store import EmbeddedStore

    placed = corpus.mailbox(zero_bytes=True)
    zip_path = tmp_path / "x.zip"
    write_export(zip_path, placed)
    with zipfile.ZipFile(zip_path) as zf:  # add the empty folder to the header, as an export does
        lines = zf.read(MANIFEST_NAME).splitlines(keepends=True)
        entries = [(i, zf.read(i)) for i in zf.namelist() if i != MANIFEST_NAME]
    header = ManifestHeader("j", "o", "e", START, empty_folders=(("mail", corpus.EMPTY_FOLDER),))
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
        zf.writestr(MANIFEST_NAME, header.to_json_line() + b"".join(lines[1:]))

    root = tmp_path / "mb"
    report = restore_embedded(zip_path, root)
    assert report.complete and report.done == len(placed) and report.mail[corpus.EMPTY_FOLDER].archive == 0
    again = restore_embedded(zip_path, root)
    assert again.done == 0 and again.skipped == len(placed)
    with EmbeddedStore(root) as store:
        folders = store.folders()
        got = Counter(
            (f.path, it.read_all(), frozenset(it.flags), it.internal_date)
            for f in folders
            if f.kind == "mail"
            for it in store.items(f)
        )
    assert corpus.EMPTY_FOLDER in [f.path for f in folders]
    assert got == Counter((p.folder, p.data, frozenset(p.flags), p.internal_date) for p in placed)

    unpack_mbox(zip_path, tmp_path / "out")
    assert (tmp_path / "out" / "mbox" / "Archive" / "Empty 2019.mbox").stat().st_size == 0
