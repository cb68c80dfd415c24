"""``python -m benchmarks vector-state``: what clearing the vector state between isal and a
SHA-256 in one thread is worth (``mailcrate.export.deflate.clear_vector_state``).

The sequence is the one restore's item reader runs per item (isal inflate, isal CRC-32, then
the SHA-256 of ``export.verify.content_problem``, all in one reader thread). Each round
does it once without and once with the clear, interleaved in this process; the figure is the
thread's CPU time per GiB of items. The items: the vendored corpus of real messages plus
48 KiB base64 CRLF bodies like the benchmarks' bulk mail.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import random
import statistics
import time
from pathlib import Path

from isal.isal_zlib import decompress

from mailcrate.export import deflate

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "corpus"


def _items(total: int, seed: int) -> list[bytes]:
    real = [p.read_bytes() for p in sorted(CORPUS.rglob("*.eml"))]
    rng = random.Random(seed)
    bulk = [base64.encodebytes(rng.randbytes(48 * 1024)).replace(b"\n", b"\r\n") for _ in range(256)]
    one = real + bulk
    return one * max(1, total // max(1, sum(map(len, one))))


def _read_round(entries: list[tuple[bytes, int, int]], clear: bool) -> float:
    """Restore's per-item read: inflate, check the CRC, hash; thread CPU seconds."""
    start = time.thread_time()
    for blob, size, crc in entries:
        data = decompress(blob, -15, max(size, 1))  # restore's inflater
        if deflate.crc32(data) != crc:
            raise AssertionError("CRC mismatch")
        if clear:
            deflate.clear_vector_state()
        hashlib.sha256(data).digest()
    return time.thread_time() - start


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks vector-state")
    parser.add_argument("--size-mib", type=int, default=64, help="items per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    items = _items(args.size_mib << 20, args.seed)
    entries = []
    for data in items:
        comp = deflate.compressobj()  # the export's settings
        entries.append((comp.compress(data) + comp.flush(), len(data), deflate.crc32(data)))
    gib = sum(size for _, size, _ in entries) / (1 << 30)
    without, with_clear = [], []
    for _ in range(args.rounds):
        without.append(_read_round(entries, False) / gib)
        with_clear.append(_read_round(entries, True) / gib)
    a, b = statistics.median(without), statistics.median(with_clear)
    print(f"{len(entries)} items, {gib * 1024:.0f} MiB a round, {args.rounds} rounds interleaved")
    print(f"{'read (inflate, CRC, SHA-256)':<32} {'CPU-s/GiB':>10}  rounds")
    print(f"{'  without the clear':<32} {a:>10.3f}  {' '.join(f'{x:.3f}' for x in without)}")
    print(f"{'  with the clear':<32} {b:>10.3f}  {' '.join(f'{x:.3f}' for x in with_clear)}")
    print(f"ratio {b / a:.3f}")
    print(json.dumps({"without": a, "with_clear": b, "ratio": b / a, "rounds": args.rounds}))
    return 0
