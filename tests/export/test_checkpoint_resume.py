"""Resuming an export from a checkpoint (issue 18 item 4), in-process: a real mailbox (the
vendored corpus of real messages, generated bulk and a streamed 3 MiB item) archived through
the real :class:`PartUploader` and :class:`Checkpointer` into parts kept in memory; the first
attempt stops after a checkpoint, a second resumes from it.

* The resumed archive is byte for byte the archive an uninterrupted export writes, and the
  resumed hash is its SHA-384: the export log stays right.
* The resumed attempt reads only the items from the checkpoint's position on.
* An item rewritten between the attempts (a different body under the same id) is caught
  (:class:`ResumeMismatch`), not stitched into a corrupt zip; mail added meanwhile is exported.
"""

from __future__ import annotations

import hashlib
import subprocess
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailcrate.export.checkpoint import Checkpointer, ResumeMismatch, ResumePoint, from_rows
from mailcrate.export.manifest import MANIFEST_NAME, ExportLog, Manifest, ManifestHeader
from mailcrate.export.pipeline import StopExport, write_archive
from mailcrate.export.resumable_hash import ResumableHashError, ResumableSha384
from mailcrate.export.uploader import PartUploader, Resume
from mailcrate.export.verify import verify_export
from mailcrate.jobs.checkpoints import StoredCheckpoint
from mailcrate.mail.base import Item
from mailcrate.mail.store import EmbeddedStore, create_mailbox, deliver_message, folder_dir
from tests import corpus
from tests.jobs.support import add_big_item, add_calendar, fill_bulk

PART = 256 * 1024
HEADER = ManifestHeader(
    job_id="job-1",
    organization_id="m-" + "0" * 32,
    entity_id="S-1",
    start_time=datetime(2026, 1, 2, tzinfo=UTC),
)


def _mailbox(root: Path) -> None:
    create_mailbox(root)
    for placed in corpus.mailbox():
        deliver_message(root, placed.folder, placed.data, placed.flags, placed.internal_date)
    fill_bulk(root, 3 << 20, message_size=32 << 10, folder="Archive")
    add_big_item(root, 3 << 20, random_data=True)
    add_calendar(root, 4)


@dataclass
class Attempt:
    parts: dict[int, bytes]
    etags: list[str]
    sha384: str
    saved: list[StoredCheckpoint]
    items_read: int


class _CountingStore(EmbeddedStore):
    """The embedded store, counting the items whose body was read (pieces() called)."""

    read = 0

    def items(self, folder, *, after=None):  # type: ignore[no-untyped-def, override]
        for item in super().items(folder, after=after):
            yield Item(
                item.folder,
                item.source_id,
                item.size,
                item.internal_date,
                item.flags,
                item.kind,
                self._counted(item),
            )

    def _counted(self, item: Item):  # type: ignore[no-untyped-def]
        def reader():  # type: ignore[no-untyped-def]
            type(self).read += 1
            return item.pieces()

        return reader


def _attempt(root: Path, *, resume: ResumePoint | None = None, stop_after: int | None = None) -> Attempt:
    """One attempt: parts into a dict, checkpoints into a list; ``stop_after`` checkpoints stop it."""
    parts: dict[int, bytes] = {}

    def upload_part(number: int, data: object) -> str:
        parts[number] = bytes(data)  # type: ignore[call-overload]
        return hashlib.md5(parts[number]).hexdigest()

    saved: list[StoredCheckpoint] = []

    def save(row: StoredCheckpoint) -> bool:
        saved.append(row)
        return True

    def should_stop() -> None:
        if stop_after is not None and len(saved) >= stop_after:
            raise StopExport()

    _CountingStore.read = 0
    uploader = PartUploader(
        upload_part,
        in_flight=2,
        resume=Resume(resume.parts, resume.etags, resume.hash_state) if resume else None,
    )
    at = (resume.parts, resume.end, resume.position.offset, resume.tail_crc) if resume else None
    sink = uploader.sink(resume.part_size if resume else PART, resume=at)
    with _CountingStore(root, owner="alice@example.com") as source:
        folders = source.folders()
        if resume is not None and not resume.fits(folders):  # as the export job checks it
            raise ResumeMismatch("the folders changed")
        checkpointer = Checkpointer(save, uploader=uploader, filler=sink, folders=folders, start=resume)
        try:
            write_archive(
                source,
                sink.write,
                header=HEADER,
                folders=folders,
                resume=resume,
                checkpointer=checkpointer,
                should_stop=should_stop,
            )
        except StopExport:
            uploader.cancel()
            return Attempt(parts, [], "", saved, _CountingStore.read)
    sink.close()
    etags = uploader.finish()
    return Attempt(parts, etags, uploader.sha384_hex(), saved, _CountingStore.read)


def _archive(first: Attempt, point: ResumePoint, second: Attempt) -> bytes:
    """The object S3 assembles: the first attempt's parts up to the checkpoint, then the second's."""
    numbers = range(1, max(second.parts) + 1)
    return b"".join(first.parts[n] if n <= point.parts else second.parts[n] for n in numbers)


def test_a_resumed_export_is_the_uninterrupted_archive_byte_for_byte(tmp_path: Path) -> None:
    root = tmp_path / "mbox"
    _mailbox(root)
    whole = _attempt(root)
    reference = b"".join(whole.parts[n] for n in sorted(whole.parts))
    assert whole.sha384 == hashlib.sha384(reference).hexdigest()
    # How many depends on how far the producer runs ahead of the upload threads (a checkpoint
    # covers every part made durable since the last one): 5 were seen on a loaded machine.
    assert len(whole.saved) >= 4, "checkpoints are taken as parts are uploaded"

    first = _attempt(root, stop_after=3)
    point = from_rows(first.saved)
    assert point is not None and point.parts >= 3
    second = _attempt(root, resume=point)
    archive = _archive(first, point, second)
    assert archive == reference
    assert second.sha384 == whole.sha384
    assert second.etags[: point.parts] == whole.etags[: point.parts] and second.etags == whole.etags
    # It read only from the checkpoint's item on (the one the part boundary cut, and after).
    assert second.items_read == whole.items_read - point.position.items_done
    assert point.position.items_done > 0

    # Resumed twice: the checkpoints of a resumed attempt chain onto the first attempt's.
    third_from = _attempt(root, resume=point, stop_after=2)
    chained = from_rows(first.saved + third_from.saved)
    assert chained is not None and chained.parts > point.parts
    last = _attempt(root, resume=chained)
    parts = {**{n: b for n, b in first.parts.items() if n <= point.parts}}
    parts.update({n: b for n, b in third_from.parts.items() if n <= chained.parts})
    parts.update({n: b for n, b in last.parts.items() if n > chained.parts})
    assert b"".join(parts[n] for n in sorted(parts)) == reference
    assert last.sha384 == whole.sha384


def _cut_item_file(root: Path, point: ResumePoint) -> Path:
    """The file of the item a part boundary cut at the checkpoint."""
    with EmbeddedStore(root) as source:
        folder = source.folders()[point.position.folder]
        cut = next(iter(source.items(folder, after=point.position.after)))
    return next(p for p in folder_dir(root, folder.path).glob("cur/*") if p.name.startswith(cut.source_id))


def test_an_item_rewritten_since_the_checkpoint_is_caught(tmp_path: Path) -> None:
    root = tmp_path / "mbox"
    _mailbox(root)
    # A checkpoint whose part boundary cut an item well past its local header.
    for stop_after in range(2, 8):
        first = _attempt(root, stop_after=stop_after)
        point = from_rows(first.saved)
        assert point is not None
        if point.end - point.position.offset > 1024:
            break
    else:
        raise AssertionError("no checkpoint cut an item")
    path = _cut_item_file(root, point)
    original = path.read_bytes()
    changed = bytearray(original)
    changed[0] ^= 1  # the same size, the first byte changed: in the part already uploaded
    path.write_bytes(bytes(changed))
    with pytest.raises(ResumeMismatch):
        _attempt(root, resume=point)

    # Changed only past the cut (bytes not uploaded yet): either caught (an item read whole has
    # its CRC-32 in the local header, which is uploaded) or the resumed archive is the whole
    # archive of the mailbox as it is now, exactly. Never a zip of old and new bytes.
    changed = bytearray(original)
    changed[-1] ^= 1
    path.write_bytes(bytes(changed))
    whole = _attempt(root)
    try:
        second = _attempt(root, resume=point)
    except ResumeMismatch:
        return
    assert _archive(first, point, second) == b"".join(whole.parts[n] for n in sorted(whole.parts))


def test_mail_added_since_the_checkpoint_is_exported(tmp_path: Path) -> None:
    root = tmp_path / "mbox"
    _mailbox(root)
    first = _attempt(root, stop_after=3)
    point = from_rows(first.saved)
    assert point is not None
    # In a new folder listed after the checkpoint's (mail delivered into a folder the export
    # has passed is not in it: the export is of the mailbox as it was when each folder was read).
    new = corpus.read("mikel--plain_emails-raw_email_simple.eml")
    deliver_message(root, ("Zz new",), new, ("\\Seen",), datetime(2026, 12, 1, tzinfo=UTC))
    with EmbeddedStore(root) as source:
        listed = [f.path for f in source.folders()]
    assert listed.index(("Zz new",)) > point.position.folder
    second = _attempt(root, resume=point)
    zip_path = tmp_path / "e.zip"
    zip_path.write_bytes(_archive(first, point, second))
    with zipfile.ZipFile(zip_path) as zf:
        manifest = Manifest.parse(zf.read(MANIFEST_NAME))
        count = len(manifest.items)
    log = ExportLog(
        total_messages=count,
        total_folders=len(EmbeddedStore(root).folders()),
        total_bytes=sum(i.size for i in manifest.items),
        total_non_exportable_items=0,
        sha384_hash=second.sha384,
        start_time_ms=1,
        end_time_ms=2,
    )
    (tmp_path / "e.json").write_bytes(log.to_json())
    report = verify_export(zip_path, tmp_path / "e.json")
    assert report.ok, report.problems[:5]
    assert subprocess.run(["unzip", "-tqq", str(zip_path)]).returncode == 0
    assert any(item.folder == ("Zz new",) for item in manifest.items)
    whole = _attempt(root)
    assert whole.sha384 == second.sha384  # the same mailbox now, the same archive


def test_a_hash_state_resumes_exactly_and_a_foreign_state_is_refused() -> None:
    data = bytes(range(256)) * 4099
    for cut in (0, 1, 111, 128, 4096, len(data) - 1):
        head = ResumableSha384()
        head.update(data[:cut])
        rest = ResumableSha384.from_state(head.state())
        rest.update(memoryview(bytearray(data))[cut:])
        assert rest.hexdigest() == hashlib.sha384(data).hexdigest()
    with pytest.raises(ResumableHashError):
        ResumableSha384.from_state(b"\0" * 100)
    with pytest.raises(ResumableHashError):
        ResumableSha384.from_state(hashlib.sha384(b"x").digest() * 4 + b"\0" * 24)
