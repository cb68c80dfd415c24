"""Reading Maildir messages: byte-exact at every size around the chunk size, and through the file's
real end when it changed size after it was listed (the first read asks for the listed size + 1)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mailcrate.mail.base import CHUNK_SIZE
from mailcrate.mail.maildir import MaildirSource


def _maildir(root: Path, bodies: dict[str, bytes]) -> Path:
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for unique, body in bodies.items():
        (root / "cur" / f"{unique}:2,S").write_bytes(body)
    return root


def _body(size: int) -> bytes:
    line = b"Subject: x\r\n\r\n" + bytes(range(33, 127)) * 2 + b"\r\n"
    return (line * (size // len(line) + 1))[:size]


SIZES = [0, 1, 100, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 5]


def test_every_size_reads_byte_exact_in_chunks_of_at_most_chunk_size(tmp_path: Path) -> None:
    bodies = {f"{1000 + n}.M{n}P1.host": _body(size) for n, size in enumerate(SIZES)}
    with MaildirSource(_maildir(tmp_path / "Maildir", bodies)) as src:
        (inbox,) = src.folders()
        got = {}
        for item in src.items(inbox):
            chunks = list(item.chunks())
            assert all(0 < len(c) <= CHUNK_SIZE for c in chunks)
            got[item.source_id] = b"".join(chunks)
            assert item.size == len(got[item.source_id])
    assert got == bodies


@pytest.mark.parametrize("change", [b"appended after listing\r\n" * 3, b""])
def test_a_message_that_changed_size_after_listing_reads_to_its_real_end(
    tmp_path: Path, change: bytes
) -> None:
    for size in (100, CHUNK_SIZE, 2 * CHUNK_SIZE + 7):
        root = tmp_path / f"Maildir-{size}-{len(change)}"
        unique = "1700000000.M1P1.host"
        body = _body(size)
        _maildir(root, {unique: body})
        path = root / "cur" / f"{unique}:2,S"
        with MaildirSource(root) as src:
            (inbox,) = src.folders()
            items = src.items(inbox)
            item = next(items)  # its descriptor is open while the iterator rests on it
            if change:
                with open(path, "ab") as f:
                    f.write(change)
                expected = body + change
            else:
                os.truncate(path, size // 2)
                expected = body[: size // 2]
            assert b"".join(item.chunks()) == expected
            assert next(items, None) is None  # moved on: read again, it opens the file anew
            assert b"".join(item.chunks()) == expected


def test_an_interrupted_read_closes_no_descriptor_it_does_not_own(tmp_path: Path) -> None:
    """An export that stops mid-message closes the items iterator (which closes the message's
    descriptor) before the suspended read is finalized. The read closed that number again:
    ``OSError: [Errno 9] Bad file descriptor`` in the log, or, once another thread had opened a
    file or socket under the same number, that file closed under its owner."""
    bodies = {"1000.M1P1.host": _body(3 * CHUNK_SIZE), "1001.M2P1.host": _body(10)}
    with MaildirSource(_maildir(tmp_path / "Maildir", bodies)) as src:
        (inbox,) = src.folders()
        items = src.items(inbox)
        first = next(items)
        reading = first.chunks()
        assert len(next(reading)) == CHUNK_SIZE  # suspended mid-message
        items.close()  # the export stops: the message's descriptor is closed
        bystander = os.open(tmp_path / "Maildir" / "cur" / "1001.M2P1.host:2,S", os.O_RDONLY)
        try:
            reading.close()  # finalizing the read must not close the bystander's number
            assert os.pread(bystander, 7, 0) == b"Subject"
        finally:
            os.close(bystander)
