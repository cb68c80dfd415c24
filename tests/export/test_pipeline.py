"""The export pipeline in-process: source -> zip -> parts, without servers.

Archives are read back with ``zipfile``, ``unzip -t`` and :func:`verify_export`; zip64 paths are
reached by lowering the writer's limit; the uploader's bounds, ordering, hash, failure and
cancel behaviour are checked with a fake part sink.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import subprocess
import threading
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailcrate.export.manifest import MANIFEST_NAME, ExportLog, Manifest, ManifestHeader
from mailcrate.export.pipeline import Progress, StopExport, write_archive
from mailcrate.export.uploader import PartSink, PartUploader, UploadStopped
from mailcrate.export.verify import verify_export
from mailcrate.mail.base import Folder, Item, SourceBase, SourceError, TransientSourceError
from mailcrate.mail.store import EmbeddedStore, create_mailbox
from tests.jobs.support import add_big_item, add_calendar, fill_maildir

MIB = 1024 * 1024

HEADER = ManifestHeader(
    job_id="job-1", organization_id="m-" + "0" * 32, entity_id="S-1", start_time=datetime.now(UTC)
)


def _archive(source, **kwargs):  # type: ignore[no-untyped-def]
    out = io.BytesIO()
    figures = write_archive(source, out.write, header=HEADER, **kwargs)
    return out.getvalue(), figures


def _log_for(data: bytes, figures) -> bytes:  # type: ignore[no-untyped-def]
    return ExportLog(
        total_messages=figures.total_messages,
        total_folders=figures.total_folders,
        total_bytes=figures.total_bytes,
        total_non_exportable_items=figures.total_non_exportable_items,
        sha384_hash=hashlib.sha384(data).hexdigest(),
        start_time_ms=1,
        end_time_ms=2,
    ).to_json()


def _written_and_checked(tmp_path: Path, data: bytes, figures) -> Path:  # type: ignore[no-untyped-def]
    """The archive and its log on disk, as a download leaves them; verify and ``unzip -t`` pass."""
    zip_path = tmp_path / "e.zip"
    zip_path.write_bytes(data)
    (tmp_path / "e.json").write_bytes(_log_for(data, figures))
    report = verify_export(zip_path, tmp_path / "e.json")
    assert report.ok, report.problems
    assert subprocess.run(["unzip", "-tqq", str(zip_path)]).returncode == 0
    return zip_path


def test_embedded_mailbox_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "mbox"
    create_mailbox(root)
    fill_maildir(root, {"Inbox": 30, ("A/B", "c.d"): 5, "..": 2, "Ünï": 3}, size=7000)
    add_calendar(root, 3, "Team %/ cal")
    with EmbeddedStore(root, owner="alice@example.com") as source:
        progress = Progress()
        data, figures = _archive(source, progress=progress)
    assert figures.total_messages == 43 and figures.total_non_exportable_items == 0
    assert progress.items_done == progress.items_total == 43 and progress.percent() == 99
    _written_and_checked(tmp_path, data, figures)
    with zipfile.ZipFile(tmp_path / "e.zip") as zf:
        names = zf.namelist()
        assert names[-1] == MANIFEST_NAME
        manifest = Manifest.parse(zf.read(MANIFEST_NAME))
        folders = {item.folder for item in manifest.items}
        assert ("A/B", "c.d") in folders and ("..",) in folders and ("Team %/ cal",) in folders
        with EmbeddedStore(root, owner="alice@example.com") as source:
            for folder in source.folders():
                for item in source.items(folder):
                    entry = next(
                        m for m in manifest.items if m.folder == folder.path and m.source_id == item.source_id
                    )
                    assert zf.read(entry.zip_path) == item.read_all()


def test_zip64_by_lowered_limit(tmp_path: Path) -> None:
    root = tmp_path / "mbox"
    create_mailbox(root)
    fill_maildir(root, {"Inbox": 40}, size=20_000)
    add_big_item(root, 3 * 1024 * 1024, random_data=True)
    with EmbeddedStore(root) as source:
        data, figures = _archive(source, zip64_limit=1_000_000)
    _written_and_checked(tmp_path, data, figures)
    assert b"PK\x06\x06" in data[-200:]  # zip64 end of central directory


class _FakeSource(SourceBase):
    """Items whose reading fails in chosen ways."""

    def __init__(self, behaviours: list[str]) -> None:
        self.folder = Folder(("Inbox",), "mail", len(behaviours))
        self.behaviours = behaviours

    def folders(self) -> list[Folder]:
        return [self.folder]

    def items(self, folder: Folder, *, after: str | None = None):  # type: ignore[no-untyped-def]
        for n, how in enumerate(self.behaviours):

            def reader(how: str = how, n: int = n):  # type: ignore[no-untyped-def]
                if how == "vanished":
                    raise SourceError("vanished")
                yield f"Subject: {n}\r\n\r\n".encode()
                if how == "drop":
                    raise TransientSourceError("connection dropped")

            yield Item(self.folder, f"{n:04d}", 20, None, (), "mail", reader)


def test_unreadable_items_are_counted_not_fatal() -> None:
    data, figures = _archive(_FakeSource(["ok", "vanished", "ok"]))
    assert figures.total_messages == 2 and figures.total_non_exportable_items == 1
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        assert len(Manifest.parse(zf.read(MANIFEST_NAME)).items) == 2


def test_transient_error_mid_item_propagates() -> None:
    with pytest.raises(TransientSourceError):
        _archive(_FakeSource(["ok", "drop", "ok"]))


def test_stop_is_checked_between_items() -> None:
    calls = 0

    def should_stop() -> None:
        nonlocal calls
        calls += 1
        if calls > 3:
            raise StopExport()

    with pytest.raises(StopExport):
        _archive(_FakeSource(["ok"] * 10), should_stop=should_stop)


# --------------------------------------------------------------------------- uploader


def test_part_sink_cuts_exact_parts() -> None:
    parts: list[bytes] = []
    sink = PartSink(10, parts.append)
    for chunk in (b"abc", b"defghijklmnopqrstuvwxyz" * 2, b"", b"12"):
        sink.write(chunk)
    sink.close()
    assert all(len(p) == 10 for p in parts[:-1]) and 0 < len(parts[-1]) <= 10
    assert b"".join(parts) == b"abc" + b"defghijklmnopqrstuvwxyz" * 2 + b"12"


def test_part_sink_doubles_the_part_size_to_stay_under_10000_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PartSink, "GROW_EVERY", 3)
    parts: list[bytes] = []
    sink = PartSink(4, parts.append)
    data = bytes(range(256)) * 2
    sink.write(data)
    sink.close()
    assert [len(p) for p in parts[:-1]] == [4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64, 128]
    assert b"".join(parts) == data


def test_uploader_bounds_memory_orders_parts_and_hashes() -> None:
    lock = threading.Lock()
    active = peak = 0
    received: dict[int, bytes] = {}

    def upload(number: int, data: bytes) -> str:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.01 * (number % 3))  # out-of-order completion
        received[number] = data
        with lock:
            active -= 1
        return f'"etag{number}"'

    uploader = PartUploader(upload, in_flight=3)
    payload = bytes(range(256)) * 4000
    parts = [payload[i : i + 10_000] for i in range(0, len(payload), 10_000)]
    for part in parts:
        uploader.submit(part)
        assert uploader.parts - len(received) <= 4  # in flight + queued
    etags = uploader.finish()
    assert etags == [f'"etag{n}"' for n in range(1, len(parts) + 1)]
    assert b"".join(received[n] for n in sorted(received)) == payload
    assert uploader.sha384_hex() == hashlib.sha384(payload).hexdigest()
    assert peak <= 3


def test_uploader_failure_stops_producer() -> None:
    def upload(number: int, data: bytes) -> str:
        if number == 2:
            raise RuntimeError("S3 said no")
        time.sleep(0.01)
        return "e"

    uploader = PartUploader(upload, in_flight=2)
    with pytest.raises(RuntimeError, match="S3 said no"):
        for _ in range(100):
            uploader.submit(b"x" * 100)
    uploader.cancel()


def test_uploader_cancel_unblocks_a_waiting_producer() -> None:
    gate = threading.Event()

    def upload(number: int, data: bytes) -> str:
        gate.wait(5)
        return "e"

    uploader = PartUploader(upload, in_flight=1)
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            for _ in range(10):
                uploader.submit(b"x")
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=produce)
    thread.start()
    time.sleep(0.2)
    threading.Timer(0.1, gate.set).start()
    uploader.cancel()
    thread.join(5)
    assert not thread.is_alive() and errors and isinstance(errors[0], UploadStopped)


def test_prepared_and_streamed_items_around_the_thresholds(tmp_path: Path) -> None:
    """Items read whole (<= 1 MiB: deflated and hashed in batches on the deflate pool) and
    streamed ones (> 1 MiB: deflated in blocks on the pool, hashed on the digest lane), text
    and random, interleaved across folders: every entry is byte-equal to its item, its manifest
    SHA-256 is right, and unzip, zipfile and verify_export accept the archive."""
    root = tmp_path / "mbox"
    create_mailbox(root)
    sizes = {"Inbox": 1 << 20, "Whole": (1 << 20) - 1, "Streamed": (1 << 20) + 1, "Big": 5 << 20}
    fill_maildir(root, dict.fromkeys(sizes, 25), size=9000)
    for n, (folder, size) in enumerate(sizes.items()):
        add_big_item(root, size, folder, random_data=n % 2 == 1)
    with EmbeddedStore(root) as source:
        data, figures = _archive(source)
    assert figures.total_messages == 4 * 26
    _written_and_checked(tmp_path, data, figures)
    with zipfile.ZipFile(tmp_path / "e.zip") as zf:
        assert zf.testzip() is None
        manifest = Manifest.parse(zf.read(MANIFEST_NAME))
        big = [m for m in manifest.items if m.size >= (1 << 20) - 1]
        assert sorted(m.size for m in big) == sorted(sizes.values())
        for m in manifest.items:
            content = zf.read(m.zip_path)
            assert len(content) == m.size and hashlib.sha256(content).hexdigest() == m.sha256


class _CountingSource(SourceBase):
    """Random (incompressible: stored, so bytes out ~= bytes in) items: ``small`` of 200 KiB
    read whole and batched, then one streamed item of ``big`` bytes; counts the bytes read."""

    def __init__(self, small: int, big: int) -> None:
        self.sizes = [200 * 1024] * small + [big]
        self.folder = Folder(("Inbox",), "mail", len(self.sizes))
        self.read = 0
        self._block = random.Random(7).randbytes(1024 * 1024)

    def folders(self) -> list[Folder]:
        return [self.folder]

    def items(self, folder: Folder, *, after: str | None = None):  # type: ignore[no-untyped-def]
        for n, size in enumerate(self.sizes):

            def reader(size: int = size, n: int = n):  # type: ignore[no-untyped-def]
                for start in range(0, size, len(self._block)):
                    chunk = bytes([n % 251]) + self._block[1 : min(len(self._block), size - start)]
                    self.read += len(chunk)
                    yield chunk

            yield Item(self.folder, f"{n:04d}", size, None, (), "mail", reader)


def test_read_ahead_is_bounded_by_bytes_whatever_the_mailbox_size() -> None:
    """Against a slow sink, the bytes read from the source but not yet written stay within
    the read-ahead budget (4 MiB) plus an entry or two in hand, for batched small items as
    for a streamed large one: memory does not grow with the mailbox (issue 8, peak RSS)."""
    source = _CountingSource(small=200, big=48 * 1024 * 1024)
    written = 0
    ahead = 0

    def write(data: bytes) -> None:
        nonlocal written, ahead
        written += len(data)
        ahead = max(ahead, source.read - written)
        time.sleep(0.0005)

    figures = write_archive(source, write, header=HEADER)
    assert figures.total_messages == 201
    assert written > source.read == sum(source.sizes)  # stored: the archive holds every byte
    assert ahead <= 9 * 1024 * 1024, ahead


def test_streamed_parts_are_handed_over_chunk_by_chunk_while_filled() -> None:
    """A streaming uploader gets each 1 MiB chunk once the producer has written past it (before
    the part is complete), the last one flagged; parts, their bytes and the hash are in order."""
    received: dict[int, list[tuple[bytes, bool]]] = {}
    seen_before_close = threading.Event()

    def stream_part(number: int, frames: Iterator[tuple[memoryview, bool]]) -> str:
        chunks = received.setdefault(number, [])
        for chunk, last in frames:
            chunks.append((bytes(chunk), last))
            if number == 1 and not last:
                seen_before_close.set()
        return f'"{number}"'

    uploader = PartUploader(lambda n, d: "", in_flight=2, stream_part=stream_part)
    sink = uploader.sink(3 * MIB + 5)
    data = os.urandom(7 * MIB)
    sink.write(data[: MIB + 1])
    assert seen_before_close.wait(5)  # chunk 1 of part 1 went while the part was being filled
    for start in range(MIB + 1, len(data), 65_537):
        sink.write(data[start : start + 65_537])
    sink.close()
    assert uploader.finish() == ['"1"', '"2"', '"3"']
    for chunks in received.values():
        assert [last for _, last in chunks] == [False] * (len(chunks) - 1) + [True]
        assert all(len(c) == MIB for c, _ in chunks[:-1])
    assert [sum(len(c) for c, _ in received[n]) for n in (1, 2, 3)] == [3 * MIB + 5, 3 * MIB + 5, MIB - 10]
    assert b"".join(c for n in (1, 2, 3) for c, _ in received[n]) == data
    assert uploader.sha384_hex() == hashlib.sha384(data).hexdigest()


def test_a_streamed_part_larger_than_its_ring_waits_for_the_handler() -> None:
    """A streamed part is filled through a ring of STREAM_RING bytes: the producer runs at most
    a ring ahead of the chunks the handler has taken, the part's bytes, chunks and the hash come
    out in order, and the buffer the part holds is the ring, not the part's size."""
    from mailcrate.export import uploader as uploader_module

    ring = uploader_module.STREAM_RING
    part = 3 * ring + 2 * MIB + 7  # wraps the ring three times, ends mid-chunk
    taken = 0  # bytes of chunks the handler has finished with
    ahead: list[int] = []  # how far the producer was ahead of them at each write
    buffers: list[int] = []
    received: list[bytes] = []

    def stream_part(number: int, frames: Iterator[tuple[memoryview, bool]]) -> str:
        nonlocal taken
        for chunk, last in frames:
            received.append(bytes(chunk))
            time.sleep(0.002)  # a slow disk: the producer catches up and waits
            taken += len(chunk)
            if last:
                break
        return f'"{number}"'

    uploader = PartUploader(lambda n, d: "", stream_part=stream_part)
    real_open = uploader.open_part

    def open_part(size: int):  # type: ignore[no-untyped-def]
        stream = real_open(size)
        buffers.append(len(stream.buf))
        return stream

    uploader.open_part = open_part  # type: ignore[method-assign]
    sink = uploader.sink(part)
    data = os.urandom(part + MIB)  # a second, short part
    for start in range(0, len(data), 300_007):
        sink.write(data[start : start + 300_007])
        ahead.append(sink.total - taken)
    sink.close()
    assert uploader.finish() == ['"1"', '"2"']
    assert b"".join(received) == data
    assert [len(c) for c in received] == [MIB] * (part // MIB) + [part % MIB, MIB]
    assert uploader.sha384_hex() == hashlib.sha384(data).hexdigest()
    assert buffers == [ring, ring]
    # The producer never got more than a ring (plus the chunk being sealed and one write) ahead.
    assert max(ahead) <= ring + MIB + 300_007
