"""Manifest and export-log formats, and verify_export on real archives (intact and damaged)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailcrate.export.manifest import (
    MANIFEST_NAME,
    ExportLog,
    Manifest,
    ManifestError,
    ManifestHeader,
    ManifestItem,
    epoch_ms,
    export_log_key,
    export_zip_key,
    manifest_lines,
)
from mailcrate.export.names import item_path
from mailcrate.export.verify import ZipDigest, log_hash_problem, verify_export
from mailcrate.export.zipstream import ZipEntry, ZipStreamWriter

START = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
HEADER = ManifestHeader("job-1", "m-0123456789abcdef0123456789abcdef", "user-1", START)


def build_export(
    tmp_path: Path,
    contents: Iterable[tuple[str, tuple[str, ...], bytes]],
    *,
    skip_in_zip: Iterable[str] = (),
    extra_entries: Iterable[str] = (),
) -> tuple[Path, Path, dict[str, ZipEntry]]:
    """Write ``export.zip`` (items, then manifest last) and ``export.json`` like a job would."""
    items = []
    entries: dict[str, ZipEntry] = {}
    skip = set(skip_in_zip)
    seqs: dict[tuple[str, tuple[str, ...]], int] = {}
    zip_path = tmp_path / "export.zip"
    with zip_path.open("wb") as fh:
        writer = ZipStreamWriter(fh.write)
        for kind, folder, data in contents:
            seq = seqs[kind, folder] = seqs.get((kind, folder), 0) + 1
            path = item_path(kind, folder, seq)  # type: ignore[arg-type]
            sha = hashlib.sha256(data).hexdigest()
            when = datetime(2024, 1, 1, 8, 0, seq % 60, tzinfo=UTC)
            items.append(ManifestItem(path, kind, folder, f"uid-{seq}", len(data), sha, when, ("\\Seen",)))  # type: ignore[arg-type]
            if path not in skip:
                entries[path] = writer.add(path, [data[:70_000], data[70_000:]], date_time=when)
        for name in extra_entries:
            writer.add_bytes(name, b"surprise", date_time=START)
        writer.add(MANIFEST_NAME, manifest_lines(HEADER, items), date_time=START)
        writer.close()
    log = ExportLog(
        total_messages=len(items),
        total_folders=len(seqs),
        total_bytes=sum(i.size for i in items),
        total_non_exportable_items=0,
        sha384_hash=hashlib.sha384(zip_path.read_bytes()).hexdigest(),
        start_time_ms=epoch_ms(START),
        end_time_ms=epoch_ms(START) + 5000,
    )
    log_path = tmp_path / "export.json"
    log_path.write_bytes(log.to_json())
    return zip_path, log_path, entries


def sample(n_large: int = 1) -> list[tuple[str, tuple[str, ...], bytes]]:
    text = b"Subject: hello\r\n\r\n" + b"please review the attached budget report\r\n" * 4000
    out = [
        ("mail", ("INBOX",), b"Subject: a\r\n\r\nbody\r\n"),
        ("mail", ("INBOX",), text),
        ("mail", ("Archive", "2024/Q1"), os.urandom(150_000)),
        ("mail", ("Entwürfe",), b"Subject: \xc3\xa4\r\n\r\nx\r\n"),
        ("calendar", ("Work",), b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"),
    ]
    return out + [("mail", ("Big",), text * 3)] * n_large


def problems_for(report) -> list[tuple[str | None, str]]:  # type: ignore[no-untyped-def]
    return [(p.entry, p.message) for p in report.problems]


def test_manifest_round_trip() -> None:
    items = (
        ManifestItem(
            "mail/INBOX/000001.eml", "mail", ("INBOX",), "1:42", 10, "a" * 64, START, ("\\Seen", "$Label")
        ),
        ManifestItem("calendar/Work/000001.eml", "calendar", ("Work",), "uid@x", 0, "b" * 64, None, ()),
        ManifestItem("mail/%ED%A0%80/000001.eml", "mail", ("\ud800",), "s", 1, "c" * 64, None, ()),
    )
    manifest = Manifest(HEADER, items)
    data = manifest.to_jsonl()
    lines = data.decode("utf-8").splitlines()
    assert json.loads(lines[0]) == {
        "format": "mailcrate-export/1",
        "jobId": "job-1",
        "organizationId": HEADER.organization_id,
        "entityId": "user-1",
        "startTime": "2024-03-01T12:00:00Z",
    }
    assert list(json.loads(lines[1])) == [
        "zipPath", "kind", "folder", "sourceId", "size", "sha256", "internalDate", "flags",
    ]  # fmt: skip
    assert json.loads(lines[2])["internalDate"] is None
    assert Manifest.parse(data) == manifest
    assert Manifest.parse(data.decode()) == manifest
    assert Manifest.parse(iter(data.splitlines(keepends=True))) == manifest


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ('{"format":"other/1"}', "unsupported manifest format"),
        ("not json", "line 1"),
        ('{"format":"mailcrate-export/1","jobId":"j","organizationId":"o","entityId":"e",'
         '"startTime":"2024-03-01T12:00:00Z"}\n{"zipPath":"x","kind":"tasks"}', "line 2"),
    ],
)  # fmt: skip
def test_manifest_errors_name_the_line(text: str, fragment: str) -> None:
    with pytest.raises(ManifestError, match=fragment):
        Manifest.parse(text)


def test_export_log_all_strings_and_round_trip() -> None:
    log = ExportLog(3, 2, 12345, 1, "ab" * 48, 1_700_000_000_000, 1_700_000_005_000)
    obj = json.loads(log.to_json())
    assert obj == {
        "totalMessages": "3",
        "totalFolders": "2",
        "totalBytes": "12345",
        "totalNonExportableItems": "1",
        "sha384Hash": "ab" * 48,
        "startTime": "1700000000000",
        "endTime": "1700000005000",
    }
    assert ExportLog.parse(log.to_json()) == log
    with pytest.raises(ManifestError, match="totalBytes"):
        ExportLog.parse(json.dumps({**obj, "totalBytes": 12345}))


def test_object_keys() -> None:
    assert export_zip_key("exports", "j1") == "exports/j1.zip"
    assert export_zip_key("exports/", "j1") == "exports/j1.zip"
    assert export_log_key("a/b//", "j1") == "a/b/j1.json"


def test_verify_intact_export(tmp_path: Path) -> None:
    zip_path, log_path, _ = build_export(tmp_path, sample())
    report = verify_export(zip_path, log_path)
    assert report.ok, report.problems
    assert report.items_checked == 6
    assert report.header == HEADER
    assert report.sha384_hex == hashlib.sha384(zip_path.read_bytes()).hexdigest()


def test_verify_flipped_byte_names_the_entry(tmp_path: Path) -> None:
    zip_path, log_path, entries = build_export(tmp_path, sample())
    data = bytearray(zip_path.read_bytes())
    for target in ("mail/Archive/2024%2FQ1/000001.eml", "mail/INBOX/000002.eml"):  # stored, deflated
        damaged = bytearray(data)
        entry = entries[target]
        damaged[entry.offset + 30 + len(target.encode()) + 40 + entry.compressed_size // 2] ^= 0x40
        zip_path.write_bytes(damaged)
        report = verify_export(zip_path, log_path)
        named = [p.entry for p in report.problems]
        assert target in named, problems_for(report)
        assert None in named  # the whole-file hash no longer matches the log
        assert all(n in (target, None) for n in named), problems_for(report)


def test_verify_truncated_zip(tmp_path: Path) -> None:
    zip_path, log_path, _ = build_export(tmp_path, sample())
    data = zip_path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 100):
        zip_path.write_bytes(data[:cut])
        report = verify_export(zip_path, log_path)
        assert not report.ok
        assert any("unreadable" in p.message for p in report.problems), problems_for(report)


def test_verify_missing_and_unlisted_entries(tmp_path: Path) -> None:
    missing = "mail/INBOX/000002.eml"
    zip_path, log_path, _ = build_export(
        tmp_path, sample(), skip_in_zip=[missing], extra_entries=["stray.txt"]
    )
    report = verify_export(zip_path, log_path)
    assert (missing, "listed in the manifest but missing from the zip") in problems_for(report)
    assert ("stray.txt", "in the zip but not listed in the manifest") in problems_for(report)
    assert len(report.problems) == 2


def test_verify_wrong_log(tmp_path: Path) -> None:
    zip_path, log_path, _ = build_export(tmp_path, sample())
    log = json.loads(log_path.read_text())
    log_path.write_text(json.dumps({**log, "sha384Hash": "0" * 96, "totalMessages": "99", "totalBytes": "1"}))
    messages = [p.message for p in verify_export(zip_path, log_path).problems]
    assert len(messages) == 3
    assert any("sha384Hash" in m for m in messages)
    assert any("totalMessages 99" in m for m in messages)
    assert any("totalBytes 1" in m for m in messages)
    log_path.write_text("{not json")
    assert "unreadable" in verify_export(zip_path, log_path).problems[0].message


def test_verify_manifest_lies_about_an_item(tmp_path: Path) -> None:
    zip_path, _, _ = build_export(tmp_path, sample(n_large=0))
    # rewrite the archive with a manifest whose sha256/size for one item is wrong
    import zipfile

    with zipfile.ZipFile(zip_path) as zf:
        contents = {i.filename: zf.read(i) for i in zf.infolist()}
    manifest = Manifest.parse(contents.pop(MANIFEST_NAME))
    bad = manifest.items[0]
    forged = (ManifestItem(bad.zip_path, bad.kind, bad.folder, bad.source_id, bad.size + 1, "f" * 64),)
    lines = manifest_lines(manifest.header, forged + manifest.items[1:])
    with zip_path.open("wb") as fh:
        w = ZipStreamWriter(fh.write)
        for name, data in contents.items():
            w.add_bytes(name, data, date_time=START)
        w.add(MANIFEST_NAME, lines, date_time=START)
        w.close()
    report = verify_export(zip_path)
    assert {p.entry for p in report.problems} == {bad.zip_path}
    assert len(report.problems) == 3  # directory size, content size, SHA-256


def test_verify_damaged_manifest_and_not_a_zip(tmp_path: Path) -> None:
    zip_path = tmp_path / "x.zip"
    zip_path.write_bytes(b"hello, not a zip")
    report = verify_export(zip_path)
    assert [p.entry for p in report.problems] == [None]
    assert verify_export(tmp_path / "missing.zip").problems[0].message.startswith("cannot read")

    with zip_path.open("wb") as fh:
        w = ZipStreamWriter(fh.write)
        w.add_bytes(MANIFEST_NAME, b'{"format":"nope"}\n', date_time=START)
        w.close()
    assert [p.entry for p in verify_export(zip_path).problems] == [MANIFEST_NAME]


def test_verify_without_content_checks_everything_but_the_bytes(tmp_path: Path) -> None:
    """``content=False`` (what a restore runs up front; it hashes the entries as it reads them):
    a flipped byte inside an entry and a log of another zip go unnoticed, everything else not."""
    zip_path, log_path, entries = build_export(tmp_path, sample())
    target = "mail/INBOX/000002.eml"
    data = bytearray(zip_path.read_bytes())
    data[entries[target].offset + 30 + len(target.encode()) + 40 + entries[target].compressed_size // 2] ^= (
        0x40
    )
    zip_path.write_bytes(data)
    quick = verify_export(zip_path, log_path, content=False)
    assert quick.ok, problems_for(quick)
    assert (quick.items_checked, quick.sha384_hex) == (6, "")
    assert target in {p.entry for p in verify_export(zip_path, log_path).problems}

    missing = "mail/INBOX/000001.eml"
    zip_path, log_path, _ = build_export(tmp_path, sample(), skip_in_zip=[missing], extra_entries=["x.txt"])
    log = json.loads(log_path.read_text())
    log_path.write_text(json.dumps({**log, "sha384Hash": "0" * 96, "totalMessages": "99"}))
    assert problems_for(verify_export(zip_path, log_path, content=False)) == [
        (missing, "listed in the manifest but missing from the zip"),
        ("x.txt", "in the zip but not listed in the manifest"),
        (None, "export log export.json: totalMessages 99, manifest lists 6"),
    ]


def test_zip_digest_in_a_thread_is_the_files_sha384(tmp_path: Path) -> None:
    zip_path, log_path, _ = build_export(tmp_path, sample(n_large=3))
    digest = ZipDigest(zip_path)
    assert digest.result() == hashlib.sha384(zip_path.read_bytes()).hexdigest()
    assert log_hash_problem(log_path, digest.result()) is None
    wrong = log_hash_problem(log_path, "0" * 96)
    assert wrong is not None and wrong.entry is None and "does not match the zip" in wrong.message
    missing = ZipDigest(tmp_path / "gone.zip")
    with pytest.raises(OSError):
        missing.result()
