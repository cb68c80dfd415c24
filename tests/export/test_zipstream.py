"""ZipStreamWriter: every archive is read back with zipfile (testzip + byte-equal content), with
Info-ZIP ``unzip -t``, and walked header by header to check local headers and data descriptors
(which zipfile ignores). zip64 paths are reached by lowering ``zip64_limit``."""

from __future__ import annotations

import hashlib
import io
import os
import random
import shutil
import struct
import subprocess
import zipfile
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from mailcrate.export import zipstream
from mailcrate.export.zipstream import (
    METHOD_DEFLATED,
    METHOD_STORED,
    PROBE_SIZE,
    ZipEntry,
    ZipNameError,
    ZipStreamError,
    ZipStreamPoisoned,
    ZipStreamWriter,
)

WHEN = datetime(2024, 5, 6, 7, 8, 10, tzinfo=UTC)
UNZIP = shutil.which("unzip")


def mail_text(n: int, seed: int = 1) -> bytes:
    """Compressible mail-like bytes."""
    rng = random.Random(seed)
    words = b"meeting invoice project report budget please review attached thanks regards".split()
    lines = [b"Received: from mx.example.com by mail.example.org; " + str(seed).encode()]
    size = 0
    while size < n:
        line = b" ".join(rng.choice(words) for _ in range(12))
        lines.append(line)
        size += len(line) + 2
    return b"\r\n".join(lines)[:n]


SEVEN_ZIP = shutil.which("7z")
BSDTAR = shutil.which("bsdtar")


def other_readers_test(path: Path, expected: dict[str, bytes]) -> None:
    """7-Zip's own test (``7z t``: CRC of every entry) and libarchive's reader (``bsdtar``, which
    streams the local headers and data descriptors, as Java's ZipInputStream does) accept the
    archive, and libarchive extracts every entry byte for byte."""
    if SEVEN_ZIP is None or BSDTAR is None:
        pytest.fail("7z or bsdtar is not installed (scripts/install-test-deps.sh installs them)")
    proc = subprocess.run([SEVEN_ZIP, "t", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0 and "Everything is Ok" in proc.stdout, (
        proc.stdout[-2000:] + proc.stderr[-2000:]
    )
    listed = subprocess.run([BSDTAR, "-tf", str(path)], capture_output=True, check=True).stdout.decode()
    assert listed.splitlines() == list(expected)
    for name, content in expected.items():
        out = subprocess.run([BSDTAR, "-xOf", str(path), name], capture_output=True, check=True).stdout
        assert out == content, name


def unzip_test(path: Path) -> None:
    if UNZIP is None:
        pytest.fail("Info-ZIP unzip is not installed (scripts/install-test-deps.sh installs it)")
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    proc = subprocess.run([UNZIP, "-t", str(path)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "No errors detected" in proc.stdout


def walk_local_headers(data: bytes, infos: list[zipfile.ZipInfo]) -> None:
    """Check each local header and data descriptor against the central directory, in order,
    the way a streaming reader would see them."""
    pos = 0
    for info in infos:
        assert info.header_offset == pos, info.filename
        sig, _ver, flags, method, _t, _d, crc, csize, size, nlen, elen = struct.unpack_from(
            "<IHHHHHIIIHH", data, pos
        )
        assert sig == 0x04034B50
        assert flags == info.flag_bits and flags & 0x800, info.filename
        assert method == info.compress_type
        assert data[pos + 30 : pos + 30 + nlen].decode("utf-8") == info.filename
        extra = data[pos + 30 + nlen : pos + 30 + nlen + elen]
        fields = parse_extra(extra)
        local64 = 0x0001 in fields
        start = pos + 30 + nlen + elen
        end = start + info.compress_size
        if flags & 0x08:
            assert crc == csize == size == 0
            if local64:
                sig, dcrc, dcsize, dsize = struct.unpack_from("<IIQQ", data, end)
                pos = end + 24
            else:
                sig, dcrc, dcsize, dsize = struct.unpack_from("<IIII", data, end)
                pos = end + 16
            assert sig == 0x08074B50
            assert (dcrc, dcsize, dsize) == (info.CRC, info.compress_size, info.file_size), info.filename
        else:
            assert crc == info.CRC
            if local64:
                assert (size, csize) == (0xFFFFFFFF, 0xFFFFFFFF)
                assert struct.unpack("<QQ", fields[0x0001]) == (info.file_size, info.compress_size)
            else:
                assert (size, csize) == (info.file_size, info.compress_size)
            pos = end
    assert data[pos : pos + 4] == b"PK\x01\x02"  # central directory follows the last entry


def parse_extra(extra: bytes) -> dict[int, bytes]:
    fields = {}
    while extra:
        tag, length = struct.unpack_from("<HH", extra)
        fields[tag] = extra[4 : 4 + length]
        extra = extra[4 + length :]
    return fields


def check_archive(path: Path, expected: dict[str, bytes], entries: list[ZipEntry]) -> None:
    """zipfile + unzip -t + header walk; contents byte-equal; ZipEntry fields correct."""
    data = path.read_bytes()
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        infos = zf.infolist()
        assert [i.filename for i in infos] == list(expected)
        for info, entry in zip(infos, entries, strict=True):
            content = zf.read(info)
            assert content == expected[info.filename]
            assert entry.name == info.filename
            assert entry.size == info.file_size == len(content)
            assert entry.compressed_size == info.compress_size
            assert entry.crc32 == info.CRC == zlib.crc32(content)
            assert entry.sha256_hex == hashlib.sha256(content).hexdigest()
            assert entry.offset == info.header_offset
            assert entry.method == info.compress_type
    walk_local_headers(data, infos)
    unzip_test(path)
    other_readers_test(path, expected)


def write_archive(path: Path, items: dict[str, object], **kwargs: object) -> list[ZipEntry]:
    entries = []
    with path.open("wb") as fh:
        writer = ZipStreamWriter(fh.write, **kwargs)  # type: ignore[arg-type]
        for name, content in items.items():
            if isinstance(content, bytes):
                entries.append(writer.add_bytes(name, content, date_time=WHEN))
            else:
                entries.append(writer.add(name, content, date_time=WHEN))  # type: ignore[arg-type]
        total = writer.close()
        assert total == writer.bytes_written == fh.tell()
    return entries


def chunked(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_small_entries_mixed_methods_and_unicode_names(tmp_path: Path) -> None:
    text = mail_text(20_000)
    noise = os.urandom(9_000)
    items = {
        "mail/INBOX/000001.eml": text,
        "mail/Entwürfe/Gelöschte Elemente/000001.eml": noise,
        "mail/受信トレイ/000002.eml": b"",
        "calendar/Календарь/000001.eml": b"x",
        "mail/😀 emoji %25/000003.eml": text[:100],
    }
    path = tmp_path / "small.zip"
    entries = write_archive(path, items)
    check_archive(path, items, entries)
    methods = [e.method for e in entries]
    assert methods == [METHOD_DEFLATED, METHOD_STORED, METHOD_STORED, METHOD_STORED, METHOD_DEFLATED]
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            assert info.flag_bits & 0x800  # UTF-8 names
            # small stored entries carry their sizes in the local header (no descriptor)
            assert bool(info.flag_bits & 0x08) == (info.compress_type == METHOD_DEFLATED)


def test_large_entries_are_streamed_with_descriptors(tmp_path: Path) -> None:
    text = mail_text(3 * 1024 * 1024 + 17)
    noise = os.urandom(2 * 1024 * 1024 + 5)
    items: dict[str, object] = {
        "deflated": chunked(text, 10_000),
        "stored": chunked(noise, 70_001),
        "one-huge-chunk": iter([bytearray(text)]),  # > 1 MiB single chunk, sliced internally
        "memoryviews": (memoryview(c) for c in chunked(noise, 4096)),
    }
    expected = {"deflated": text, "stored": noise, "one-huge-chunk": text, "memoryviews": noise}
    path = tmp_path / "large.zip"
    entries = write_archive(path, items)
    check_archive(path, expected, entries)
    assert [e.method for e in entries] == [METHOD_DEFLATED, METHOD_STORED, METHOD_DEFLATED, METHOD_STORED]
    assert entries[0].compressed_size < len(text) // 2


def test_compress_flag_overrides_the_decision(tmp_path: Path) -> None:
    text = mail_text(200_000)
    noise = os.urandom(200_000)
    path = tmp_path / "forced.zip"
    with path.open("wb") as fh:
        w = ZipStreamWriter(fh.write)
        e = [
            w.add("noise-deflated", chunked(noise, 50_000), date_time=WHEN, compress=True),
            w.add("text-stored", chunked(text, 50_000), date_time=WHEN, compress=False),
            w.add_bytes("small-noise-deflated", noise[:1000], date_time=WHEN, compress=True),
            w.add_bytes("small-text-stored", text[:1000], date_time=WHEN, compress=False),
            w.add_bytes("empty-deflated", b"", date_time=WHEN, compress=True),
        ]
        w.close()
    assert [x.method for x in e] == [8, 0, 8, 0, 8]
    expected = {
        "noise-deflated": noise,
        "text-stored": text,
        "small-noise-deflated": noise[:1000],
        "small-text-stored": text[:1000],
        "empty-deflated": b"",
    }
    check_archive(path, expected, e)


def test_decision_follows_the_first_64k(tmp_path: Path) -> None:
    """The stored-vs-deflated probe looks at the first 64 KiB only (documented behaviour)."""
    noise_then_text = os.urandom(PROBE_SIZE) + mail_text(500_000)
    text_then_noise = mail_text(PROBE_SIZE) + os.urandom(500_000)
    path = tmp_path / "probe.zip"
    items: dict[str, object] = {"a": chunked(noise_then_text, 8192), "b": chunked(text_then_noise, 8192)}
    entries = write_archive(path, items)
    assert [e.method for e in entries] == [METHOD_STORED, METHOD_DEFLATED]
    check_archive(path, {"a": noise_then_text, "b": text_then_noise}, entries)


@pytest.mark.parametrize("size_hint", [None, 10**12])
def test_zip64_reached_by_lowering_the_limit(tmp_path: Path, size_hint: int | None) -> None:
    limit = 100_000
    text = mail_text(400_000)
    noise = os.urandom(300_000)
    expected = {
        "small-under": b"tiny",
        "small-over-stored": noise[: limit - 10] + noise[:20],  # 100,010 bytes, > limit in one chunk
        "large-deflated": text,
        "large-stored": noise,
    }
    path = tmp_path / "zip64.zip"
    entries = []
    with path.open("wb") as fh:
        w = ZipStreamWriter(fh.write, zip64_limit=limit)
        entries.append(w.add_bytes("small-under", expected["small-under"], date_time=WHEN))
        entries.append(w.add("small-over-stored", [expected["small-over-stored"]], date_time=WHEN))
        for name in ("large-deflated", "large-stored"):
            gen = chunked(expected[name], 30_000)
            entries.append(w.add(name, gen, date_time=WHEN, size_hint=size_hint))
        w.close()
    check_archive(path, expected, entries)
    data = path.read_bytes()
    assert b"PK\x06\x06" in data and b"PK\x06\x07" in data  # zip64 end records (cd offset > limit)
    with zipfile.ZipFile(path) as zf:
        infos = {i.filename: i for i in zf.infolist()}
    assert 0x0001 not in parse_extra(infos["small-under"].extra)
    for name in ("small-over-stored", "large-deflated", "large-stored"):
        assert 0x0001 in parse_extra(infos[name].extra), name  # central zip64 sizes/offsets


def test_small_size_hint_that_is_exceeded_poisons(tmp_path: Path) -> None:
    w = ZipStreamWriter(bytearray().extend, zip64_limit=100_000)
    with pytest.raises(ZipStreamError, match="size_hint"):
        w.add("liar", chunked(mail_text(300_000), 10_000), date_time=WHEN, size_hint=10)
    with pytest.raises(ZipStreamPoisoned):
        w.close()


def test_more_than_65535_entries(tmp_path: Path) -> None:
    count = 70_000
    path = tmp_path / "many.zip"
    with path.open("wb") as fh:
        w = ZipStreamWriter(fh.write)
        for i in range(count):
            w.add_bytes(f"mail/INBOX/{i + 1:06d}.eml", b"Subject: %d\r\n\r\nhi\r\n" % i, date_time=None)
        w.close()
    data = path.read_bytes()
    assert b"PK\x06\x06" in data
    eocd = data[-22:]
    assert eocd[:4] == b"PK\x05\x06" and struct.unpack_from("<H", eocd, 10)[0] == 0xFFFF
    with zipfile.ZipFile(path) as zf:
        assert len(zf.infolist()) == count
        assert zf.testzip() is None
        assert zf.read("mail/INBOX/070000.eml") == b"Subject: 69999\r\n\r\nhi\r\n"
    unzip_test(path)


def test_timestamps_dos_and_extended(tmp_path: Path) -> None:
    cases = {
        "aware": datetime(2023, 12, 31, 23, 59, 58, tzinfo=timezone(timedelta(hours=2))),
        "naive-is-utc": datetime(2023, 12, 31, 21, 59, 58),
        "before-1980": datetime(1970, 1, 2, tzinfo=UTC),
        "none": None,
    }
    buf = bytearray()
    w = ZipStreamWriter(buf.extend)
    for name, when in cases.items():
        w.add_bytes(name, b"x", date_time=when)
    w.close()
    path = tmp_path / "times.zip"
    path.write_bytes(buf)
    with zipfile.ZipFile(path) as zf:
        infos = {i.filename: i for i in zf.infolist()}
    assert infos["aware"].date_time == (2023, 12, 31, 21, 59, 58)
    assert infos["naive-is-utc"].date_time == (2023, 12, 31, 21, 59, 58)
    assert infos["before-1980"].date_time == (1980, 1, 1, 0, 0, 0)
    assert infos["none"].date_time == (1980, 1, 1, 0, 0, 0)
    mtime = struct.unpack("<Bi", parse_extra(infos["aware"].extra)[0x5455])
    assert mtime == (1, int(datetime(2023, 12, 31, 21, 59, 58, tzinfo=UTC).timestamp()))
    assert struct.unpack("<Bi", parse_extra(infos["before-1980"].extra)[0x5455])[1] == 86400
    assert 0x5455 not in parse_extra(infos["none"].extra)
    unzip_test(path)


class Boom(RuntimeError):
    pass


def failing(after: int) -> Iterator[bytes]:
    yield from chunked(mail_text(after), 8192)
    raise Boom("source went away")


@pytest.mark.parametrize("after", [100, 200_000])  # inside the probe / while streaming
def test_generator_that_raises_poisons_the_writer(after: int) -> None:
    buf = bytearray()
    w = ZipStreamWriter(buf.extend)
    w.add_bytes("ok", b"fine", date_time=WHEN)
    with pytest.raises(Boom):
        w.add("broken", failing(after), date_time=WHEN)
    with pytest.raises(ZipStreamPoisoned) as info:
        w.add_bytes("later", b"x", date_time=WHEN)
    assert isinstance(info.value.__cause__, Boom)
    with pytest.raises(ZipStreamPoisoned):
        w.close()


def test_sink_failure_poisons() -> None:
    def sink(data: bytes) -> None:
        raise OSError("disk full")

    w = ZipStreamWriter(sink)
    with pytest.raises(OSError, match="disk full"):
        w.add_bytes("a", b"x", date_time=WHEN)
    with pytest.raises(ZipStreamPoisoned):
        w.add_bytes("b", b"x", date_time=WHEN)


def test_str_chunk_is_rejected() -> None:
    w = ZipStreamWriter(bytearray().extend)
    with pytest.raises(TypeError):
        w.add("a", ["text"], date_time=WHEN)  # type: ignore[list-item]
    with pytest.raises(ZipStreamPoisoned):
        w.close()


def test_context_manager_does_not_finish_a_failed_archive() -> None:
    buf = bytearray()
    with pytest.raises(Boom), ZipStreamWriter(buf.extend) as w:
        w.add_bytes("a", b"x", date_time=WHEN)
        raise Boom("caller failed")
    assert b"PK\x05\x06" not in buf
    with pytest.raises(ZipStreamPoisoned):
        w.close()


def test_duplicate_and_unsafe_names_raise_but_keep_the_writer_usable(tmp_path: Path) -> None:
    buf = bytearray()
    w = ZipStreamWriter(buf.extend)
    e = [w.add_bytes("mail/INBOX/000001.eml", b"one", date_time=WHEN)]
    with pytest.raises(ZipNameError, match="duplicate"):
        w.add_bytes("mail/INBOX/000001.eml", b"two", date_time=WHEN)
    for bad in ["", "/abs", "a/../b", "a\\b", "a//b", "dir/", "./a", "nul\x00", "\udc80"]:
        with pytest.raises(ZipNameError):
            w.add_bytes(bad, b"x", date_time=WHEN)
    e.append(w.add_bytes("mail/INBOX/000002.eml", b"two", date_time=WHEN))
    w.close()
    path = tmp_path / "names.zip"
    path.write_bytes(buf)
    check_archive(path, {"mail/INBOX/000001.eml": b"one", "mail/INBOX/000002.eml": b"two"}, e)


def test_duplicate_names_are_caught_among_many_and_past_the_in_memory_spool(tmp_path: Path) -> None:
    """20,000 entries (the name table grows, the central directory spills to disk): every
    name is written once, and a repeat of an early, middle or late name is still refused."""
    buf = bytearray()
    w = ZipStreamWriter(buf.extend)
    names = [f"mail/Folder {i % 7}/{i:06d}.eml" for i in range(20_000)]
    for name in names:
        w.add_bytes(name, name.encode(), date_time=WHEN)
    for name in (names[0], names[9_999], names[-1]):
        with pytest.raises(ZipNameError, match="duplicate"):
            w.add_bytes(name, b"again", date_time=WHEN)
    w.add_bytes("manifest.jsonl", b"{}\n", date_time=WHEN)
    w.close()
    with zipfile.ZipFile(io.BytesIO(bytes(buf))) as z:
        assert z.namelist() == [*names, "manifest.jsonl"]
        assert z.read(names[12_345]) == names[12_345].encode()


def test_names_whose_keys_collide_are_still_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compact name table keeps 64-bit keys: a key seen before must be confirmed against
    the names actually written, so a collision never rejects a new name (forced here)."""
    monkeypatch.setattr(zipstream._NameSet, "key", staticmethod(lambda name: 1))
    buf = bytearray()
    w = ZipStreamWriter(buf.extend)
    w.add_bytes("a.eml", b"a", date_time=None)
    w.add_bytes("b.eml", b"b", date_time=WHEN)  # same key, another name: written
    with pytest.raises(ZipNameError, match="duplicate"):
        w.add_bytes("b.eml", b"b again", date_time=WHEN)
    w.close()
    with zipfile.ZipFile(io.BytesIO(bytes(buf))) as z:
        assert [(i.filename, z.read(i)) for i in z.infolist()] == [("a.eml", b"a"), ("b.eml", b"b")]


def test_use_after_close() -> None:
    buf = bytearray()
    w = ZipStreamWriter(buf.extend)
    w.add_bytes("a", b"x", date_time=WHEN)
    total = w.close()
    assert w.close() == total == len(buf)  # idempotent, writes nothing more
    with pytest.raises(ZipStreamError, match="closed"):
        w.add_bytes("b", b"x", date_time=WHEN)


def test_empty_archive(tmp_path: Path) -> None:
    path = tmp_path / "empty.zip"
    buf = bytearray()
    assert ZipStreamWriter(buf.extend).close() == 22
    path.write_bytes(buf)
    with zipfile.ZipFile(path) as zf:
        assert zf.infolist() == []


def test_output_is_deterministic_and_writes_are_bounded() -> None:
    text = mail_text(3_000_000)
    noise = random.Random(5).randbytes(3_000_000)

    def build() -> tuple[bytes, int]:
        out = bytearray()
        biggest = 0

        def sink(data: bytes) -> None:
            nonlocal biggest
            biggest = max(biggest, len(data))
            out.extend(data)

        w = ZipStreamWriter(sink)
        w.add("text", [text], date_time=WHEN)  # one 3 MB chunk: compressed 1 MiB at a time
        w.add("noise", [noise], date_time=WHEN)  # stored, written 1 MiB at a time
        w.close()
        return bytes(out), biggest

    first, biggest = build()
    assert build()[0] == first
    assert biggest <= 1024 * 1024 + 1024


# -- block-parallel deflate (deflate.BlockDeflater on the deflate pool) -------------------------

MIB = 1024 * 1024


def reused_buffer(data: bytes, size: int) -> Iterator[bytearray]:
    """Chunks in ONE bytearray that is refilled as soon as the next chunk is asked for (as a
    reader with a receive buffer does): blocks still queued on the pool must not see that."""
    buf = bytearray(size)
    for i in range(0, len(data), size):
        piece = data[i : i + size]
        buf[: len(piece)] = piece
        yield buf if len(piece) == size else bytearray(piece)
        buf[:] = b"\xee" * size  # scribble over what was handed out


@pytest.mark.parametrize(
    "size",
    [0, 1, PROBE_SIZE - 1, PROBE_SIZE, MIB - 1, MIB, MIB + 1, MIB + PROBE_SIZE, 3 * MIB + 7],
)
def test_sizes_around_probe_and_block_boundaries(tmp_path: Path, size: int) -> None:
    """Text (deflated on the pool past the probe) and random bytes (stored) at every boundary
    of the probe and the 1 MiB deflate blocks, as one chunk and as odd-sized chunks."""
    text = mail_text(size, seed=size)
    noise = os.urandom(size)
    items: dict[str, object] = {
        "text-one-chunk": iter([text]),
        "text-chunks": chunked(text, 100_003),
        "text-reused-buffer": reused_buffer(text, 65_521),
        "noise": chunked(noise, MIB),
    }
    expected = {"text-one-chunk": text, "text-chunks": text, "text-reused-buffer": text, "noise": noise}
    path = tmp_path / "sizes.zip"
    entries = write_archive(path, items)
    check_archive(path, expected, entries)
    if size >= 200:
        assert [e.method for e in entries] == [METHOD_DEFLATED] * 3 + [METHOD_STORED]
        assert len({e.compressed_size for e in entries[:3]}) == 1  # same stream however it came


@pytest.mark.parametrize("kind", ["text", "random", "base64"])
def test_twenty_mib_items_on_the_parallel_path(tmp_path: Path, kind: str) -> None:
    """20 MiB items (the mailbox's largest attachments): valid, same ratio as one stream."""
    rng = random.Random(20)
    raw = rng.randbytes(15 * MIB)
    data = {
        "text": mail_text(20 * MIB),
        "random": raw + rng.randbytes(5 * MIB),
        "base64": __import__("base64").encodebytes(raw)[: 20 * MIB],
    }[kind]
    path = tmp_path / "twenty.zip"
    entries = write_archive(path, {"item": chunked(data, 8 * MIB)}, compresslevel=1)
    check_archive(path, {"item": data}, entries)
    one_stream = zlib.compress(data, 1)
    if kind == "random":
        assert entries[0].method == METHOD_STORED
    else:
        assert entries[0].method == METHOD_DEFLATED
        assert entries[0].compressed_size <= len(one_stream) * 1.01


def test_block_deflater_concatenation_is_one_stream() -> None:
    """The pieces BlockDeflater returns, after a sync-flushed first part, inflate to the input."""
    from mailcrate.export import deflate

    data = mail_text(5 * MIB + 12_345)
    head = data[:PROBE_SIZE]
    comp = deflate.compressobj()
    out = [comp.compress(head), comp.flush(deflate.Z_SYNC_FLUSH)]
    seen: list[bytes] = []
    blocks = deflate.BlockDeflater(history=head[-deflate.WINDOW :], observe=lambda b: seen.append(bytes(b)))
    for piece in chunked(data[PROBE_SIZE:], 300_000):
        out += blocks.feed(piece)
    out += blocks.finish()
    assert zlib.decompress(b"".join(out), -15) == data
    assert b"".join(seen) == data[PROBE_SIZE:]  # every block observed, in order


def test_block_deflater_cuts_blocks_at_the_entrys_block_offsets() -> None:
    """With ``start`` (the bytes the writer deflated itself), blocks end at the entry's multiples
    of BLOCK_SIZE: the same stream whatever the chunking, and a source that reads in BLOCK_SIZE
    pieces from the entry's start (the IMAP source) has each piece deflated as it is, unjoined."""
    from mailcrate.export import deflate

    bs = deflate.BLOCK_SIZE
    encoded = __import__("base64").b64encode(random.Random(3).randbytes(3 * bs))
    data = b"\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))[: 4 * bs + 777]
    head = data[:PROBE_SIZE]
    rest = data[PROBE_SIZE:]
    aligned = [rest[: bs - PROBE_SIZE]] + [rest[i : i + bs] for i in range(bs - PROBE_SIZE, len(rest), bs)]
    streams = []
    for pieces in (aligned, list(chunked(rest, 300_000)), [rest]):
        seen: list[memoryview] = []
        blocks = deflate.BlockDeflater(history=head[-deflate.WINDOW :], observe=seen.append, start=len(head))
        out = [o for piece in pieces for o in blocks.feed(piece)] + blocks.finish()
        assert [len(b) for b in seen] == [bs - PROBE_SIZE, bs, bs, bs, 777]
        if pieces is aligned:
            assert all(b.obj is p for b, p in zip(seen, aligned, strict=True))  # no joining copy
        comp = deflate.compressobj()
        first = comp.compress(head) + comp.flush(deflate.Z_SYNC_FLUSH)
        assert zlib.decompress(first + b"".join(out), -15) == data
        streams.append(b"".join(out))
    assert streams[0] == streams[1] == streams[2]


def test_stdlib_zlib_fallback_writes_the_same_archive(tmp_path: Path) -> None:
    """Without isal (blocked in a fresh interpreter) the writer uses stdlib zlib, the parallel
    path included; Info-ZIP and zipfile read the result."""
    path = tmp_path / "zlib.zip"
    script = f"""
import sys
sys.modules["isal"] = None  # ImportError on 'from isal import ...'
from mailcrate.export import deflate
from mailcrate.export.zipstream import ZipStreamWriter
assert deflate.BACKEND == "zlib", deflate.BACKEND
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_zipstream import mail_text
text = mail_text(3 * 1024 * 1024 + 5)
with open({str(path)!r}, "wb") as fh:
    w = ZipStreamWriter(fh.write)
    w.add("big.eml", iter([text]), date_time=None)
    w.add_bytes("small.eml", text[:5000], date_time=None)
    w.close()
"""
    proc = subprocess.run([os.sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = mail_text(3 * 1024 * 1024 + 5)
    with zipfile.ZipFile(path) as zf:
        assert zf.read("big.eml") == text
        assert zf.read("small.eml") == text[:5000]
        assert [i.compress_type for i in zf.infolist()] == [METHOD_DEFLATED, METHOD_DEFLATED]
    unzip_test(path)
