"""IMAP pipelined fetching: the raw FETCH parser, bounded prefetch, large messages in pieces,
several folders over parallel connections, and dropped connections inside all of that."""

from __future__ import annotations

import io
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from mailcrate.mail.base import ImapSpec, SourceError
from mailcrate.mail.imap import ImapSource
from mailcrate.mail.imap_fetch import PIECE, RawImap, parse_internaldate, parse_tokens, uid_set

from .corpus import big_message, message, sha

# --------------------------------------------------------------------------- raw protocol units


class _FakeImap:
    """Answers the next command with canned lines (``{tag}`` is replaced by the command's tag)."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.sent: list[bytes] = []
        self._buf = io.BytesIO()
        self.file = self

    def send(self, data: bytes) -> None:
        self.sent.append(data)
        tag = data.split(b" ", 1)[0]
        self._buf = io.BytesIO(self.answer.replace(b"{tag}", tag))

    def readline(self, limit: int = -1) -> bytes:
        return self._buf.readline(limit)

    def read(self, n: int) -> bytes:
        return self._buf.read(n)


def test_uid_set_and_internaldate_and_tokens() -> None:
    assert uid_set([1, 2, 3, 7, 9, 10]) == b"1:3,7,9:10"
    assert uid_set([5]) == b"5" and uid_set([]) == b""
    d = parse_internaldate(b" 7-Jul-1996 02:44:25 -0730")
    assert d == datetime(1996, 7, 7, 2, 44, 25, tzinfo=timezone(-timedelta(hours=7, minutes=30)))
    assert parse_internaldate(b"garbage") is None and parse_internaldate(None) is None
    assert parse_tokens([b'* 1 FETCH (FLAGS (\\Seen $X) X "a\\"b" Y NIL)\r\n']) == [
        b"*",
        b"1",
        b"FETCH",
        [b"FLAGS", [b"\\Seen", b"$X"], b"X", b'a"b', b"Y", None],
    ]


def test_raw_fetch_literals_nil_split_responses_and_noise() -> None:
    body = b"Subject: x\r\n\r\n) {5}\r\nNIL\r\n"  # looks like syntax, is content
    answer = (
        b"* 3 EXISTS\r\n"
        b"* 1 FETCH (UID 10 RFC822.SIZE %d BODY[] {%d}\r\n" % (len(body), len(body)) + body + b")\r\n"
        b"* 2 FETCH (UID 11 BODY[] NIL)\r\n"
        b'* 3 FETCH (UID 12 BODY[] "quoted \\"body\\"")\r\n'
        b'* 3 FETCH (UID 12 INTERNALDATE "01-Jan-2026 00:00:00 +0000" FLAGS ())\r\n'
        b"* 4 FETCH (FLAGS (\\Seen))\r\n"  # unsolicited, no UID: ignored
        b"* 5 FETCH (UID 14 BODY[]<0> {0}\r\n)\r\n"
        b"{tag} OK done\r\n"
    )
    fake = _FakeImap(answer)
    got = RawImap(fake).fetch([10, 11, 12, 14], b"(UID BODY.PEEK[])")  # type: ignore[arg-type]
    assert fake.sent[0].endswith(b" UID FETCH 10:12,14 (UID BODY.PEEK[])\r\n")
    assert got[10][b"BODY[]"] == body and got[10][b"RFC822.SIZE"] == b"%d" % len(body)
    assert got[11][b"BODY[]"] is None
    assert got[12][b"BODY[]"] == b'quoted "body"' and got[12][b"FLAGS"] == []
    assert got[14][b"BODY[]<0>"] == b""
    assert sorted(got) == [10, 11, 12, 14]


def test_raw_errors_abort_or_refuse() -> None:
    import imaplib

    with pytest.raises(imaplib.IMAP4.abort):  # connection closed inside a literal
        RawImap(_FakeImap(b"* 1 FETCH (UID 1 BODY[] {100}\r\nshort")).fetch([1], b"(BODY[])")  # type: ignore[arg-type]
    with pytest.raises(imaplib.IMAP4.abort):
        RawImap(_FakeImap(b"* BYE shutting down\r\n")).fetch([1], b"(BODY[])")  # type: ignore[arg-type]
    with pytest.raises(imaplib.IMAP4.error):
        RawImap(_FakeImap(b"{tag} BAD syntax\r\n")).fetch([1], b"(BODY[])")  # type: ignore[arg-type]
    # NO: what arrived is returned (the rest was expunged)
    fake = _FakeImap(b"* 1 FETCH (UID 1 BODY[] {1}\r\nx)\r\n{tag} NO some expunged\r\n")
    assert RawImap(fake).fetch([1, 2], b"(BODY[])") == {1: {b"UID": b"1", b"BODY[]": b"x"}}  # type: ignore[arg-type]
    fake = _FakeImap(b"* SEARCH 3 9 4\r\n* SEARCH\r\n{tag} OK\r\n")
    assert list(RawImap(fake).search_after(3)) == [4, 9]  # type: ignore[arg-type]


# --------------------------------------------------------------------------- against Dovecot


def _spec(server) -> ImapSpec:  # type: ignore[no-untyped-def]
    return ImapSpec(server.url, "alice", server.master_password, master_user=server.master_user)


class _Small(ImapSource):
    """Tiny bounds, so a test-sized mailbox exercises runs, pieces and the budget."""

    batch_uids = 50
    batch_bytes = 64 * 1024
    whole_limit = 256 * 1024
    partial_size = 100 * 1024
    prefetch_bytes = 300 * 1024


def _read_all(src: ImapSource) -> dict[tuple[str, ...], list[tuple[str, bytes]]]:
    out: dict[tuple[str, ...], list[tuple[str, bytes]]] = {}
    for f in src.folders():
        out[f.path] = [(i.source_id, i.read_all()) for i in src.items(f)]
    return out


def _uids(ids: list[str]) -> list[int]:
    return [int(s.split(":")[1]) for s in ids]


def test_pieces_budget_and_kills_inside_streamed_messages(fresh_dovecot) -> None:  # type: ignore[no-untyped-def]
    msgs = [message(i, size=3000) for i in range(300)]
    for k in (5, 6, 120, 299):
        msgs[k] = big_message(1_000_000 + k)  # 10 pieces each, over the budget
    msgs[40] = big_message(200 * 1024)  # whole, alone in its run
    fresh_dovecot.put_messages("alice", ("Archive",), [(m, "") for m in msgs])
    got: list[tuple[str, bytes]] = []
    kills = 0
    peak_used = 0
    with _Small(_spec(fresh_dovecot), retry_delay=0.05) as src:
        folder = next(f for f in src.folders() if f.path == ("Archive",))
        for n, item in enumerate(src.items(folder)):
            job = src._active[folder.path]
            peak_used = max(peak_used, job.used)
            chunks = item.chunks()
            if n in (5, 120):  # killed while the worker streams the pieces of this item
                first = next(chunks)
                kills += fresh_dovecot.kill_sessions("alice")
                data = first + b"".join(chunks)
            elif n == 6:  # moved on after one chunk: the rest is dropped, read again on demand
                next(chunks)
                data = item.read_all()
            else:
                data = b"".join(chunks)
            if n in (30, 200):
                kills += fresh_dovecot.kill_sessions("alice")
            got.append((item.source_id, data))
    assert kills >= 4
    ids = [sid for sid, _ in got]
    assert len(set(ids)) == len(ids) == 300
    assert _uids(ids) == sorted(_uids(ids))
    assert [sha(d) for _, d in got] == [sha(m) for m in msgs]
    assert peak_used <= _Small.prefetch_bytes + _Small.partial_size


class _PieceAsBigAsTheBudget(_Small):
    partial_size = _Small.prefetch_bytes


def test_pieces_as_big_as_the_budget_do_not_stall(fresh_dovecot) -> None:  # type: ignore[no-untyped-def]
    """A streamed message's first piece is held until the item is done; with pieces the size of
    the whole budget the second one waited for it forever (the consumer waiting for the second):
    pieces are at most half the budget."""
    msgs = [big_message(1_000_000), message(1), big_message(900_000 + 7)]
    fresh_dovecot.put_messages("alice", ("Huge",), [(m, "") for m in msgs])
    done = threading.Event()
    got: list[bytes] = []

    def read() -> None:
        with _PieceAsBigAsTheBudget(_spec(fresh_dovecot), retry_delay=0.05) as src:
            folder = next(f for f in src.folders() if f.path == ("Huge",))
            got.extend(i.read_all() for i in src.items(folder))
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(60), "the streamed pieces stalled"
    assert [sha(d) for d in got] == [sha(m) for m in msgs]


def test_streamed_item_read_after_moving_on_and_twice(fresh_dovecot) -> None:  # type: ignore[no-untyped-def]
    msgs = [big_message(700_000), message(1), big_message(650_000)]
    fresh_dovecot.put_messages("alice", ("Big",), [(m, "") for m in msgs])
    with _Small(_spec(fresh_dovecot)) as src:
        folder = next(f for f in src.folders() if f.path == ("Big",))
        items = list(src.items(folder))  # all moved past before any is read
        assert [sha(i.read_all()) for i in items] == [sha(m) for m in msgs]
        (first, *_) = src.items(folder)
        assert first.read_all() == msgs[0] and first.read_all() == msgs[0]  # chunks() starts over


def test_parallel_folders_in_order_bounded_and_resumed(fresh_dovecot) -> None:  # type: ignore[no-untyped-def]
    expected: dict[tuple[str, ...], list[bytes]] = {}
    for f in range(6):
        path = ("Inbox",) if f == 0 else (f"F{f}",)
        expected[path] = [message(1000 * f + i, size=2000) for i in range(80 + 10 * f)]
        if f % 2:
            expected[path][7] = big_message(400_000 + f)
        fresh_dovecot.put_messages("alice", path, [(m, "") for m in expected[path]])
    fresh_dovecot.add_folder("alice", ("Empty",))
    sessions = 0
    got: dict[tuple[str, ...], list[tuple[str, bytes]]] = {}
    with _Small(_spec(fresh_dovecot), retry_delay=0.05) as src:
        folders = src.folders()
        for fi, f in enumerate(folders):
            got[f.path] = []
            for n, item in enumerate(src.items(f)):
                if n == 3:
                    time.sleep(0.05)  # let the prefetches fill up
                    sessions = max(sessions, len(fresh_dovecot.imap_processes("alice")))
                    assert len(src._ahead) <= src.connections - 1
                if n == 20 and fi in (1, 3):
                    fresh_dovecot.kill_sessions("alice")  # kills prefetching connections too
                got[f.path].append((item.source_id, item.read_all()))
    assert 2 <= sessions <= 1 + _Small.connections  # the main connection + the fetchers
    assert got[("Empty",)] == []
    for path, msgs in expected.items():
        ids = [sid for sid, _ in got[path]]
        assert _uids(ids) == sorted(set(_uids(ids))), path
        assert [sha(d) for _, d in got[path]] == [sha(m) for m in msgs], path


def test_any_folder_order_and_interleaved_generators_do_not_deadlock(fresh_dovecot) -> None:  # type: ignore[no-untyped-def]
    for f in range(5):
        fresh_dovecot.put_messages(
            "alice", (f"G{f}",), [(message(100 * f + i, size=20_000), "") for i in range(60)]
        )

    class Two(_Small):
        connections = 2

    result: list[object] = []

    def body() -> None:
        with Two(_spec(fresh_dovecot)) as src:
            fs = [f for f in src.folders() if f.path[0].startswith("G")]
            # reverse order: every prefetch is wrong and must be dropped
            rev = {f.path: [i.read_all() for i in src.items(f)] for f in reversed(fs)}
            # more live generators than connections, read round-robin
            gens = [src.items(f) for f in fs]
            inter: dict[int, list[bytes]] = {k: [] for k in range(len(fs))}
            live = set(range(len(fs)))
            while live:
                for k in sorted(live):
                    it = next(gens[k], None)
                    if it is None:
                        live.discard(k)
                    else:
                        inter[k].append(it.read_all())
            result.append((rev, {fs[k].path: v for k, v in inter.items()}))

    t = threading.Thread(target=body, daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "deadlock"
    (rev, inter) = result[0]  # type: ignore[misc]
    for f in range(5):
        want = [sha(message(100 * f + i, size=20_000)) for i in range(60)]
        assert [sha(b) for b in rev[(f"G{f}",)]] == want
        assert [sha(b) for b in inter[(f"G{f}",)]] == want


def test_close_with_prefetches_waiting_is_prompt_and_uidvalidity_still_checked(fresh_dovecot) -> None:  # type: ignore[no-untyped-def]
    for f in range(4):
        fresh_dovecot.put_messages("alice", (f"H{f}",), [(message(i, size=50_000), "") for i in range(40)])
    before = threading.active_count()
    src = _Small(_spec(fresh_dovecot))
    fs = [f for f in src.folders() if f.path[0].startswith("H")]
    it = src.items(fs[0])
    next(it)
    time.sleep(0.2)  # workers now wait for budget
    t0 = time.monotonic()
    src.close()
    assert time.monotonic() - t0 < 3
    time.sleep(0.1)
    assert threading.active_count() <= before
    with pytest.raises(SourceError):
        next(src.items(fs[1]))
    with _Small(_spec(fresh_dovecot)) as src:
        f = next(x for x in src.folders() if x.path == ("H1",))
        sid = next(iter(src.items(f))).source_id
        v = int(sid.split(":")[0])
        with pytest.raises(SourceError, match="UIDVALIDITY"):
            next(src.items(f, after=f"{v + 1}:1"))


def test_pipelined_reads_over_implicit_tls_and_starttls(dovecot) -> None:  # type: ignore[no-untyped-def]
    msgs = [message(5000 + i, size=3000) for i in range(40)]
    msgs[3] = big_message(600_000)  # pieces over TLS, too
    dovecot.put_messages("bob", ("TlsRead",), [(m, "") for m in msgs])
    ca = str(dovecot.ca_file)
    for spec in (
        ImapSpec(dovecot.imaps_url.replace("127.0.0.1", "localhost"), "bob", "bobpw", ca_file=ca),
        ImapSpec(dovecot.url, "bob", "bobpw", starttls=True, ca_file=ca),
    ):
        with _Small(spec) as src:
            folder = next(f for f in src.folders() if f.path == ("TlsRead",))
            assert [sha(i.read_all()) for i in src.items(folder)] == [sha(m) for m in msgs]


def _base64_message(size: int, seed: int) -> bytes:
    """A message of ``size`` bytes whose body is base64 of random bytes in CRLF lines of 76
    characters, as mail clients send attachments (deflate gets only ~0.75 out of it)."""
    import base64
    import random

    head = b"Subject: attachment\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    raw = base64.b64encode(random.Random(seed).randbytes(size))
    lines = b"\r\n".join(raw[i : i + 76] for i in range(0, len(raw), 76))
    return (head + lines)[: size - 2] + b"\r\n"


class _Mid(ImapSource):
    """Whole FETCHes up to 3 MiB, larger messages in partial fetches of 1.5 MiB: both above the
    1 MiB literal piece."""

    whole_limit = 3 * PIECE
    partial_size = PIECE + PIECE // 2


def test_large_bodies_come_in_pieces_and_zip_byte_equal(fresh_dovecot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Literals above 1 MiB are read in pieces of at most 1 MiB (whole FETCHes and partial ones),
    which join to the message as Dovecot serves it; the export's zip of them holds each message
    byte for byte and passes zipfile and ``unzip -t``."""
    import io
    import subprocess
    import zipfile
    from datetime import UTC

    from mailcrate.export.manifest import MANIFEST_NAME, Manifest, ManifestHeader
    from mailcrate.export.pipeline import write_archive

    msgs = [
        big_message(PIECE),  # one literal of exactly 1 MiB: not cut
        big_message(PIECE + 1),
        _base64_message(5 * PIECE // 2, 1),  # whole FETCH, 3 pieces
        message(1),
        _base64_message(5 * PIECE + 7, 2),  # partial fetches of 1.5 MiB, each 2 pieces
        big_message(4 * PIECE),  # partial fetches, text
    ]
    fresh_dovecot.put_messages("alice", ("Large",), [(m, "") for m in msgs])
    with _Mid(_spec(fresh_dovecot)) as src:
        folder = next(f for f in src.folders() if f.path == ("Large",))
        pieces = [list(item.pieces()) for item in src.items(folder)]
    assert [b"".join(p) for p in pieces] == msgs
    assert all(len(p) <= PIECE for ps in pieces for p in ps)
    assert [len(p) for p in pieces[:3]] == [1, 2, 3]
    assert len(pieces[4]) == 7  # 3 partial fetches of 1.5 MiB (2 pieces each), then 0.5 MiB

    header = ManifestHeader(
        job_id="j", organization_id="m-" + "0" * 32, entity_id="S-1", start_time=datetime.now(UTC)
    )
    out = io.BytesIO()
    with _Mid(_spec(fresh_dovecot)) as src:
        folder = next(f for f in src.folders() if f.path == ("Large",))
        write_archive(src, out.write, header=header, folders=[folder])
    path = tmp_path / "large.zip"
    path.write_bytes(out.getvalue())
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        items = Manifest.parse(zf.read(MANIFEST_NAME)).items
        assert [zf.read(m.zip_path) for m in items] == msgs
        assert [m.sha256 for m in items] == [sha(m) for m in msgs]
    assert subprocess.run(["unzip", "-tqq", str(path)]).returncode == 0


def test_a_source_opened_beside_another_takes_the_shared_bounds(fresh_dovecot) -> None:  # type: ignore[no-untyped-def]
    """Several exports in one worker process: while two sources are open, both fetch with the
    smaller shared bounds (and read the same mail); alone, the full ones."""
    msgs = [message(i, size=3000) for i in range(20)] + [big_message(600_000)]
    fresh_dovecot.put_messages("alice", ("Shared",), [(m, "") for m in msgs])
    full = {name: getattr(ImapSource, name) for name in ImapSource.shared_bounds}
    with ImapSource(_spec(fresh_dovecot)) as first:
        assert {n: getattr(first, n) for n in full} == full
        with ImapSource(_spec(fresh_dovecot)) as second:
            assert {n: getattr(second, n) for n in full} == ImapSource.shared_bounds
            assert ImapSource.shared_bounds["prefetch_bytes"] < full["prefetch_bytes"]
            got = [sha(d) for _, d in _read_all(second)[("Shared",)]]
            # the first shrinks too while the second is open: its next folder jobs take them
            assert {n: first._bound(n) for n in full} == ImapSource.shared_bounds
            got_first = [sha(d) for _, d in _read_all(first)[("Shared",)]]
        assert got == got_first == [sha(m) for m in msgs]
        assert {n: first._bound(n) for n in full} == full
    with ImapSource(_spec(fresh_dovecot)) as alone:
        assert {n: getattr(alone, n) for n in full} == full
