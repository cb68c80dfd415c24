"""``mailcrate export restore --imap`` verifies the archive while it restores it: a damaged
entry (flipped byte, or a manifest hash that does not match) stops the restore with an error
naming the entry, and no message after it reaches the server (a real Dovecot)."""

from __future__ import annotations

import hashlib
import os
import struct
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from imapclient import IMAPClient

from mailcrate.export.manifest import (
    MANIFEST_NAME,
    ExportLog,
    ManifestHeader,
    ManifestItem,
    epoch_ms,
    manifest_lines,
)
from mailcrate.export.names import item_path
from mailcrate.export.zipstream import ZipStreamWriter
from tests.cli.support import module_dovecot, run
from tests.servers import DovecotServer

USERS = {f"v{i}": f"pw{i}" for i in range(8)}
START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
FOLDERS = (("INBOX",), ("Archive",))
PER_FOLDER = 30
BAD = 19  # the 20th message of INBOX: 19 before it, 10 after it in INBOX and 30 in Archive


dovecot = module_dovecot(USERS)


def _message(folder: str, i: int) -> bytes:
    head = (
        f"From: a{i}@example.com\r\nTo: b@example.com\r\nSubject: {folder} {i}\r\n"
        f"Message-ID: <{folder.lower()}-{i}@example.com>\r\nDate: Fri, 02 Jan 2026 03:04:05 +0000\r\n\r\n"
    ).encode()
    return head + f"a compressible line {i} of {folder}\r\n".encode() * 200


def _build(
    path: Path, *, forge_sha: str | None = None, log_sha384: str | None = None
) -> tuple[Path, dict[str, bytes]]:
    """An export zip (as the job writes it: items, manifest last) and its log beside it.
    ``forge_sha``: the manifest's SHA-256 of that entry; ``log_sha384``: a wrong log hash."""
    items: list[ManifestItem] = []
    contents: dict[str, bytes] = {}
    with path.open("wb") as fh:
        writer = ZipStreamWriter(fh.write)
        for folder in FOLDERS:
            for i in range(PER_FOLDER):
                name = item_path("mail", folder, i + 1)
                data = _message(folder[0], i)
                sha = hashlib.sha256(data).hexdigest()
                when = START + timedelta(minutes=i)
                items.append(
                    ManifestItem(
                        name,
                        "mail",
                        folder,
                        str(i),
                        len(data),
                        (forge_sha or sha) if name == _bad() else sha,
                        when,
                    )
                )
                writer.add(name, [data], date_time=when)
                contents[name] = data
        writer.add(
            MANIFEST_NAME, manifest_lines(ManifestHeader("j", "o", "e", START), items), date_time=START
        )
        writer.close()
    log = ExportLog(
        total_messages=len(items),
        total_folders=len(FOLDERS),
        total_bytes=sum(i.size for i in items),
        total_non_exportable_items=0,
        sha384_hash=log_sha384 or hashlib.sha384(path.read_bytes()).hexdigest(),
        start_time_ms=epoch_ms(START),
        end_time_ms=epoch_ms(START) + 1000,
    )
    path.with_suffix(".json").write_bytes(log.to_json())
    return path, contents


def _bad() -> str:
    return item_path("mail", FOLDERS[0], BAD + 1)


def _flip_byte_inside(path: Path, name: str) -> None:
    """XOR one byte in the middle of the entry's compressed data (not its headers)."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    assert info.compress_type == zipfile.ZIP_DEFLATED
    raw = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])
    raw[info.header_offset + 30 + name_len + extra_len + info.compress_size // 2] ^= 0x20
    path.write_bytes(bytes(raw))


def _restore(dv: DovecotServer, user: str, zip_path: Path) -> tuple[int, str]:
    result = run(
        "export", "restore", str(zip_path), "--imap", dv.url, "--imap-user", user,
        env={**os.environ, "MAILCRATE_IMAP_PASSWORD": dv.users[user]},
    )  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stderr


def _on_server(dv: DovecotServer, user: str) -> dict[str, list[bytes]]:
    """Each folder's messages (bytes), in the server's order."""
    client = IMAPClient(dv.host, dv.port, ssl=False)
    client.login(user, dv.users[user])
    found: dict[str, list[bytes]] = {}
    try:
        for _flags, _delim, name in client.list_folders():
            client.select_folder(name, readonly=True)
            ids = client.search(["ALL"])
            data = client.fetch(ids, ["BODY.PEEK[]"]) if ids else {}
            found[name] = [data[i][b"BODY[]"] for i in sorted(data)]
            client.close_folder()
    finally:
        client.logout()
    return found


def _expected_before_bad(contents: dict[str, bytes]) -> list[bytes]:
    return [contents[item_path("mail", FOLDERS[0], i + 1)] for i in range(BAD)]


@pytest.mark.parametrize("with_log", [False, True], ids=["zip-only", "with-log"])
def test_flipped_byte_stops_the_restore_at_that_entry(
    dovecot: DovecotServer, tmp_path: Path, with_log: bool
) -> None:
    zip_path, contents = _build(tmp_path / "export.zip")
    _flip_byte_inside(zip_path, _bad())
    if not with_log:
        zip_path.with_suffix(".json").unlink()
    user = "v1" if with_log else "v0"
    code, err = _restore(dovecot, user, zip_path)
    assert code == 1
    assert f"is damaged: {_bad()}: " in err, err
    # the zip no longer matches its log either; what the user needs is which entry is damaged
    assert f"mailcrate export verify {zip_path}" in " ".join(err.split())
    got = _on_server(dovecot, user)
    after = {contents[n] for n in contents if n >= _bad()} | set(
        contents[item_path("mail", FOLDERS[1], i + 1)] for i in range(PER_FOLDER)
    )
    assert not after & {m for msgs in got.values() for m in msgs}, "a message after the damaged entry"
    assert not got.get("Archive")
    if not with_log:  # the entries before it were checked, and are restored (in order)
        assert got["INBOX"] == _expected_before_bad(contents)
    else:  # the SHA-384 mismatch may stop it earlier, never later
        assert got["INBOX"] == _expected_before_bad(contents)[: len(got["INBOX"])]


def test_manifest_hash_that_does_not_match_stops_the_restore(dovecot: DovecotServer, tmp_path: Path) -> None:
    """The manifest's SHA-256 of one entry is wrong (the log matches the zip as it is): the
    restore stops at that entry with verify's wording, the messages before it restored."""
    zip_path, contents = _build(tmp_path / "export.zip", forge_sha="f" * 64)
    code, err = _restore(dovecot, "v2", zip_path)
    assert code == 1
    real = hashlib.sha256(contents[_bad()]).hexdigest()
    assert f"is damaged: {_bad()}: SHA-256 is {real}, manifest says {'f' * 64}" in " ".join(err.split()), err
    assert "19 restored before it" in " ".join(err.split())
    got = _on_server(dovecot, "v2")
    assert got["INBOX"] == _expected_before_bad(contents)
    assert not got.get("Archive")
    # `export verify` names the same entry the same way
    verify = run("export", "verify", str(zip_path), env={**os.environ})
    assert verify.returncode == 1 and f"SHA-256 is {real}, manifest says {'f' * 64}" in verify.stderr


def test_zip_that_is_not_its_logs_is_not_restored_to_the_end(dovecot: DovecotServer, tmp_path: Path) -> None:
    """Entries all intact but the log's SHA-384 is another zip's: an error, and the last batch
    (here: the Archive folder) is never sent."""
    zip_path, _ = _build(tmp_path / "export.zip", log_sha384="0" * 96)
    code, err = _restore(dovecot, "v3", zip_path)
    assert code == 1
    assert "sha384Hash" in err and "does not match the zip" in " ".join(err.split()), err
    assert not _on_server(dovecot, "v3").get("Archive")


def test_intact_archive_with_log_restores_everything_in_order(dovecot: DovecotServer, tmp_path: Path) -> None:
    zip_path, contents = _build(tmp_path / "export.zip")
    code, err = _restore(dovecot, "v4", zip_path)
    assert code == 0, err
    got = _on_server(dovecot, "v4")
    for folder in FOLDERS:
        assert got[folder[0]] == [contents[item_path("mail", folder, i + 1)] for i in range(PER_FOLDER)]
    code, err = _restore(dovecot, "v4", zip_path)  # a re-run: everything already there
    assert code == 0, err
    assert sum(len(v) for v in _on_server(dovecot, "v4").values()) == 2 * PER_FOLDER
