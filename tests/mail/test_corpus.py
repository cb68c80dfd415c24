"""The vendored corpus is what its manifest says, and covers what the round-trip tests rely on."""

from __future__ import annotations

import hashlib
import re

from tests import corpus


def test_every_file_matches_its_manifest_entry_and_licence() -> None:
    entries = corpus.manifest()
    on_disk = {
        p.relative_to(corpus.ROOT).as_posix()
        for k in ("mail", "calendar")
        for p in (corpus.ROOT / k).iterdir()
    }
    assert {e["file"] for e in entries} == on_disk
    for e in entries:
        data = (corpus.ROOT / str(e["file"])).read_bytes()
        assert hashlib.sha256(data).hexdigest() == e["sha256"], e["file"]
        assert e["license"] in ("MIT", "Apache-2.0")
        assert re.fullmatch(r"[0-9a-f]{40}", str(e["commit"]))
        owner, repo = str(e["repository"]).rsplit("/", 2)[1:]
        assert (corpus.ROOT / "licenses" / owner / f"{repo}.txt").stat().st_size > 500


def _crlf_size(data: bytes) -> int:
    return len(data) + data.count(b"\n") - data.count(b"\r\n")


def _key(data: bytes) -> tuple[bytes, ...]:
    return tuple(sorted(re.findall(rb"(?im)^(?:message-id|date):\s*(.*?)\s*$", data)))


def test_corpus_covers_the_hard_cases() -> None:
    msgs = corpus.messages()
    assert msgs[corpus.ZERO_BYTES] == b""
    assert any(b"\0" in d for d in msgs.values())
    assert any(b"\n" in d and b"\r\n" not in d for d in msgs.values())
    assert any(max(map(len, d.split(b"\n"))) > 998 for d in msgs.values())
    assert any(any(b > 127 for b in re.split(rb"\r?\n\r?\n", d, maxsplit=1)[0]) for d in msgs.values())
    for a, b in corpus.SAME_KEY_PAIRS:
        da, db = msgs[a], msgs[b]
        assert da != db and _key(da) == _key(db) and _crlf_size(da) == _crlf_size(db)
    placed = [p for p in corpus.mailbox() if p.name == corpus.DUPLICATE and p.folder == ("Inbox",)]
    assert len(placed) == 2 and placed[0].flags != placed[1].flags
    cals = b"".join(p.read_bytes() for p in (corpus.ROOT / "calendar").iterdir())
    for comp in (b"VTODO", b"VJOURNAL", b"VFREEBUSY", b"VAVAILABILITY"):
        assert b"BEGIN:" + comp in cals
    for method in (b"REQUEST", b"REPLY", b"PUBLISH"):
        assert b"METHOD:" + method in cals
