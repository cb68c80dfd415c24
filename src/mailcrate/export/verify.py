"""Verify an export zip (and optionally its export log) on disk.

Why: an export is evidence (legal hold, off-boarding); its consumer must be able to prove that
the archive is complete and intact without trusting the producer. This re-reads everything
with the stdlib ``zipfile`` (an implementation independent of our writer), re-hashes every item
against the manifest and the whole file against the log's SHA-384, streaming 1 MiB at a time
(single items can exceed 2 GiB). Every problem is *reported*, naming the zip entry concerned;
a damaged archive never surfaces as a traceback.

``verify_export(..., content=False)`` does only the checks that need no pass over the entries'
bytes (central directory, manifest, layout, sizes, log totals): the IMAP restore runs those up
front and checks every entry's SHA-256 (:func:`content_problem`) and the zip's SHA-384
(:class:`ZipDigest`) while it reads, so the archive is read once instead of twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import threading
import unicodedata
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mailcrate.export import deflate
from mailcrate.export.manifest import (
    MANIFEST_NAME,
    ExportLog,
    ManifestError,
    ManifestHeader,
    ManifestItem,
    iter_manifest,
)
from mailcrate.export.names import parse_item_path

__all__ = [
    "Problem",
    "VerifyReport",
    "ZipDigest",
    "content_problem",
    "log_hash_problem",
    "verify_export",
    "verify_without_manifest",
]

_CHUNK = 1024 * 1024
#: What reading a damaged zip can raise (zipfile lets zlib, struct and EOF errors through).
_READ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    struct.error,
    NotImplementedError,
    RuntimeError,
)


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding. ``entry`` is the zip entry at fault, or None for the archive/log as a whole."""

    entry: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.entry}: {self.message}" if self.entry is not None else self.message


@dataclass(slots=True)
class VerifyReport:
    """Result of :func:`verify_export`; ``ok`` is True when no problem was found."""

    zip_path: Path
    log_path: Path | None = None
    zip_size: int = 0
    sha384_hex: str = ""
    entries: int = 0
    items_checked: int = 0
    total_bytes: int = 0
    header: ManifestHeader | None = None
    problems: list[Problem] = field(default_factory=list)
    #: without a manifest: what could be checked, and what could not (said, not assumed)
    checked: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, entry: str | None, message: str) -> None:
        self.problems.append(Problem(entry, message))


def _file_sha384(path: Path) -> tuple[str, int]:
    digest = hashlib.sha384()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class ZipDigest:
    """The zip's SHA-384, computed by one sequential read in a thread of its own (hashlib
    releases the GIL), so that it overlaps with whatever the caller does meanwhile;
    :meth:`close` stops it early (the caller failed for another reason)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.hexdigest = ""
        self.error: OSError | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zip-sha384", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        digest = hashlib.sha384()
        buf = bytearray(_CHUNK)
        view = memoryview(buf)
        try:
            with self.path.open("rb", buffering=0) as fh:
                while (n := fh.readinto(buf)) and not self._stop.is_set():
                    digest.update(view[:n])
        except OSError as exc:
            self.error = exc
            return
        self.hexdigest = digest.hexdigest()

    def done(self) -> bool:
        return not self._thread.is_alive()

    def result(self) -> str:
        """The hex digest (waits for it); raises the OSError the read met, if any."""
        self._thread.join()
        if self.error is not None:
            raise self.error
        if self._stop.is_set():
            raise RuntimeError("ZipDigest closed before the end")
        return self.hexdigest

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def log_hash_problem(log_path: Path, sha384_hex: str) -> Problem | None:
    """The problem :func:`verify_export` reports when the zip's SHA-384 is not the log's."""
    label = f"export log {log_path.name}"
    try:
        log = ExportLog.parse(log_path.read_bytes())
    except (OSError, ManifestError) as exc:
        return Problem(None, f"{label}: unreadable: {exc}")
    if log.sha384_hash != sha384_hex:
        return Problem(None, f"{label}: sha384Hash {log.sha384_hash} does not match the zip ({sha384_hex})")
    return None


def content_problem(item: ManifestItem, data: bytes) -> Problem | None:
    """An entry's content (already read whole) against its manifest line, with the wording of
    :func:`verify_export`; None when the size and SHA-256 match."""
    if len(data) != item.size:
        return Problem(item.zip_path, f"content is {len(data)} bytes, manifest says {item.size}")
    # The callers inflate and CRC the item with isal in this thread just before: without this,
    # its SHA-256 runs slower (see there). Restore's read of an item, 48 KiB base64 mail:
    # 2.26 instead of 2.45 CPU-s/GiB (BENCHMARKS.md, ninth session).
    deflate.clear_vector_state()
    digest = hashlib.sha256(data).hexdigest()
    if digest != item.sha256:
        return Problem(item.zip_path, f"SHA-256 is {digest}, manifest says {item.sha256}")
    return None


def _check_item(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, item: ManifestItem, report: VerifyReport, content: bool
) -> None:
    """Compare one listed entry with its manifest line, re-hashing its content (``content``)."""
    name = item.zip_path
    try:
        kind, folder, _seq = parse_item_path(name)
    except ValueError as exc:
        report.add(name, f"zip path does not follow the layout: {exc}")
    else:
        nfc = tuple(unicodedata.normalize("NFC", c) for c in item.folder)
        if kind != item.kind or folder != nfc:
            report.add(
                name, f"path encodes {kind} {list(folder)}, manifest says {item.kind} {list(item.folder)}"
            )
    if info.file_size != item.size:
        report.add(name, f"size in zip directory is {info.file_size}, manifest says {item.size}")
    if not content:
        return
    digest = hashlib.sha256()
    size = 0
    try:
        with zf.open(info) as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except _READ_ERRORS as exc:
        report.add(name, f"unreadable content: {type(exc).__name__}: {exc}")
        return
    if size != item.size:
        report.add(name, f"content is {size} bytes, manifest says {item.size}")
    if digest.hexdigest() != item.sha256:
        report.add(name, f"SHA-256 is {digest.hexdigest()}, manifest says {item.sha256}")


def _manifest_lines(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Iterator[bytes]:
    with zf.open(info) as fh:
        yield from fh  # ZipExtFile iterates by line, reading in bounded pieces


def _check_manifest(
    zf: zipfile.ZipFile,
    infos: dict[str, zipfile.ZipInfo],
    report: VerifyReport,
    content: bool,
    keep: list[ManifestItem] | None = None,
) -> tuple[set[str], set[tuple[str, tuple[str, ...]]]] | None:
    """Check every manifest item (appended to ``keep``); return (listed names, folders seen),
    or None if unreadable."""
    info = infos.get(MANIFEST_NAME)
    if info is None:
        report.add(MANIFEST_NAME, "missing: the archive has no manifest")
        return None
    listed: set[str] = set()
    folders: set[tuple[str, tuple[str, ...]]] = set()
    try:
        header, items = iter_manifest(_manifest_lines(zf, info))
        report.header = header
        for item in items:
            if keep is not None:
                keep.append(item)
            if item.zip_path in listed:
                report.add(item.zip_path, "listed twice in the manifest")
                continue
            listed.add(item.zip_path)
            folders.add((item.kind, item.folder))
            report.items_checked += 1
            report.total_bytes += item.size
            entry = infos.get(item.zip_path)
            if entry is None:
                report.add(item.zip_path, "listed in the manifest but missing from the zip")
                continue
            _check_item(zf, entry, item, report, content)
    except ManifestError as exc:
        report.add(MANIFEST_NAME, f"malformed: {exc}")
        return None
    except _READ_ERRORS as exc:
        report.add(MANIFEST_NAME, f"unreadable: {type(exc).__name__}: {exc}")
        return None
    return listed, folders


def _check_log(
    log_path: Path,
    report: VerifyReport,
    folders: set[tuple[str, tuple[str, ...]]] | None,
) -> None:
    label = f"export log {log_path.name}"
    try:
        log = ExportLog.parse(log_path.read_bytes())
    except (OSError, ManifestError) as exc:
        report.add(None, f"{label}: unreadable: {exc}")
        return
    if report.sha384_hex and log.sha384_hash != report.sha384_hex:
        report.add(
            None, f"{label}: sha384Hash {log.sha384_hash} does not match the zip ({report.sha384_hex})"
        )
    if folders is None:
        return  # no manifest to compare totals with; already reported
    if log.total_messages != report.items_checked:
        report.add(
            None, f"{label}: totalMessages {log.total_messages}, manifest lists {report.items_checked}"
        )
    if log.total_bytes != report.total_bytes:
        report.add(None, f"{label}: totalBytes {log.total_bytes}, manifest items sum to {report.total_bytes}")
    if log.total_folders < len(folders):
        # Folders without exportable items are not in the manifest, so only a lower bound holds.
        report.add(
            None, f"{label}: totalFolders {log.total_folders} < {len(folders)} folders in the manifest"
        )
    if log.end_time_ms < log.start_time_ms:
        report.add(None, f"{label}: endTime {log.end_time_ms} is before startTime {log.start_time_ms}")


def verify_export(
    zip_path: str | Path,
    log_path: str | Path | None = None,
    *,
    content: bool = True,
    zip_file: zipfile.ZipFile | None = None,
    items: list[ManifestItem] | None = None,
) -> VerifyReport:
    """Check an export zip (and its log, if given); return a report listing every problem.

    With ``content=False`` neither the entries' bytes nor the whole file are read: no SHA-256
    per item, no SHA-384 (``sha384_hex`` stays empty); everything else is checked.

    For a caller that goes on to read the archive (the restores, through
    :func:`mailcrate.admin.archive.open_verified`): ``zip_file`` is the zip it opened (its
    central directory read; it stays open), and ``items`` a list that receives the manifest's
    items as they are checked, so that neither is read a second time."""
    zip_path = Path(zip_path)
    report = VerifyReport(zip_path, Path(log_path) if log_path is not None else None)
    try:
        if content:
            report.sha384_hex, report.zip_size = _file_sha384(zip_path)
        else:
            report.zip_size = os.stat(zip_path).st_size
    except OSError as exc:
        report.add(None, f"cannot read {zip_path}: {exc}")
        return report
    folders = None
    try:
        zf = zip_file or zipfile.ZipFile(zip_path)
    except Exception as exc:  # any failure here means "not a readable zip"
        report.add(None, f"zip structure unreadable (truncated or corrupt?): {type(exc).__name__}: {exc}")
    else:
        with zf if zip_file is None else contextlib.nullcontext(zf):
            infolist = zf.infolist()
            report.entries = len(infolist)
            for name, count in Counter(i.filename for i in infolist).items():
                if count > 1:
                    report.add(name, f"appears {count} times in the central directory")
            infos = {i.filename: i for i in infolist}
            if infolist and infolist[-1].filename != MANIFEST_NAME and MANIFEST_NAME in infos:
                report.add(MANIFEST_NAME, "is not the last entry of the archive")
            checked = _check_manifest(zf, infos, report, content, items)
            if checked is not None:
                listed, folders = checked
                for name in infos:
                    if name != MANIFEST_NAME and name not in listed:
                        report.add(name, "in the zip but not listed in the manifest")
    if report.log_path is not None:
        _check_log(report.log_path, report, folders)
    return report


def verify_without_manifest(zip_path: str | Path, log_path: str | Path | None = None) -> VerifyReport:
    """Verify a zip that has no manifest (another exporter's, real WorkMail's) as far as it
    can be: every entry read back against the zip's own CRC-32 and size, the whole file's
    SHA-384 (against the log when one is given). What a manifest would have allowed is listed
    in ``unchecked``: the report never claims more than was checked."""
    zip_path = Path(zip_path)
    report = VerifyReport(zip_path, Path(log_path) if log_path is not None else None)
    try:
        report.sha384_hex, report.zip_size = _file_sha384(zip_path)
        zf = zipfile.ZipFile(zip_path)
    except (OSError, zipfile.BadZipFile) as exc:
        report.add(None, f"zip structure unreadable (truncated or corrupt?): {type(exc).__name__}: {exc}")
        return report
    with zf:
        for info in zf.infolist():
            report.entries += 1
            if info.is_dir():
                continue
            try:
                with zf.open(info) as fh:  # zipfile checks the CRC-32 at the end
                    while fh.read(_CHUNK):
                        pass
            except _READ_ERRORS as exc:
                report.add(info.filename, f"unreadable content: {type(exc).__name__}: {exc}")
                continue
            report.items_checked += 1
            report.total_bytes += info.file_size
    report.checked = [
        "the zip's structure (central directory)",
        f"every entry's CRC-32 and size, as the zip records them ({report.items_checked} files)",
    ]
    if report.log_path is not None:
        problem = log_hash_problem(report.log_path, report.sha384_hex)
        if problem is not None:
            report.problems.append(problem)
        report.checked.append("the zip's SHA-384 against the export log")
    report.unchecked = [
        "no manifest: whether the zip holds every item of the mailbox (nothing lists them)",
        "each item's SHA-256 (the CRC-32 catches damage, not a substitution)",
        "folder names (taken from the paths as found), flags and internal dates (not recorded)",
    ]
    if report.log_path is None:
        report.unchecked.append("the zip's SHA-384 (no export log given)")
    return report
