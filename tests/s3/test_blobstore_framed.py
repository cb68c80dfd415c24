"""The blob store's framed writer (parts streamed in while they are filled): what it stores
reads back byte for byte, chunk boundaries are kept, and a producer that fails mid-file leaves
neither the temporary file nor a file under its final name."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailcrate.services.s3.blobstore import CHUNK, BlobStore, new_file_id


def _frames(data: bytes) -> Iterator[tuple[memoryview, bool]]:
    view = memoryview(data)
    if not data:
        yield view, True
        return
    for start in range(0, len(data), CHUNK):
        yield view[start : start + CHUNK], start + CHUNK >= len(data)


@pytest.mark.parametrize("size", [0, 1, CHUNK, CHUNK + 1, 3 * CHUNK - 7])
@pytest.mark.parametrize("writeback", [False, True])
def test_framed_file_reads_back(tmp_path: Path, size: int, writeback: bool) -> None:
    blobs = BlobStore(tmp_path)
    key, data, file_id = os.urandom(32), os.urandom(size), new_file_id()
    assert blobs.write_framed(file_id, key, _frames(data), writeback=writeback) == size
    assert b"".join(blobs.read(file_id, key, size)) == data
    assert b"".join(blobs.read(file_id, key, size, size // 3, size - 1)) == data[size // 3 : size - 1]
    # the same bytes through the piecewise writer make a file that reads the same
    other = new_file_id()
    blobs.write(other, key, [data[i : i + 70_001] for i in range(0, size, 70_001)])
    assert blobs.path(other).stat().st_size == blobs.path(file_id).stat().st_size
    assert list(blobs.tmp.iterdir()) == []


def test_failure_mid_file_leaves_nothing(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    file_id = new_file_id()

    def failing() -> Iterator[tuple[memoryview, bool]]:
        data = memoryview(os.urandom(2 * CHUNK))
        yield data[:CHUNK], False
        assert len(list(blobs.tmp.iterdir())) == 1  # the first chunk is on disk already
        raise OSError("the producer gave up")

    with pytest.raises(OSError, match="gave up"):
        blobs.write_framed(file_id, os.urandom(32), failing(), writeback=True)
    assert list(blobs.tmp.iterdir()) == []
    assert not blobs.path(file_id).exists()


@pytest.mark.parametrize(
    "frames",
    [
        [(b"x" * 10, False), (b"y", True)],  # a short chunk that is not the last
        [(b"x" * CHUNK, False)],  # no last chunk
    ],
)
def test_malformed_frames_are_refused_and_leave_nothing(tmp_path: Path, frames: list) -> None:
    blobs = BlobStore(tmp_path)
    file_id = new_file_id()
    with pytest.raises(ValueError):
        blobs.write_framed(file_id, os.urandom(32), iter(frames))
    assert list(blobs.tmp.iterdir()) == []
    assert not blobs.path(file_id).exists()
