"""Peak RSS while streaming a folder that holds a 50 MB message, from each mail source.

Issue 5's acceptance: "streaming a folder holding a 50 MB message keeps the process's peak RSS
within 3x of that size".  One folder, ``Big``, holds 20 small messages, one 50 MB message, 20
more small ones, a 30 MB message (the largest kind the IMAP source fetches whole, in one FETCH)
and 20 more.  The same files sit in a throw-away Dovecot's Maildir; the embedded store gets the
same messages delivered.  Each source is streamed in a process of its own:

    python -m benchmarks.source_memory --child KIND SPEC_JSON

which opens the source, reports its RSS (interpreter + imports + open source), then reads every
item's ``chunks()`` into SHA-256 and nothing else.  This process samples the child's RSS from the
outside with psutil every 5 ms; the figure is the peak over the child's whole life, against
3 x 50 MB = 150 MB.

    python -m benchmarks source-memory [--quick] [--repeat 2]

``--quick`` runs one repetition.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import random
import shutil
import subprocess
import sys
import time
from typing import Any

from benchmarks.exportlib import RssSampler, save
from benchmarks.harness import ROOT, scratch_dir

MB = 1_000_000
BIG = 50 * MB
WHOLE = 30 * MB
FOLDER = ("Big",)


def _message(size: int, seed: int) -> bytes:
    """A message of exactly ``size`` bytes: headers and a base64 attachment (CRLF lines)."""
    head = (
        f"From: big{seed}@example.test\r\nTo: alice@example.test\r\nSubject: attachment {seed}\r\n"
        f'MIME-Version: 1.0\r\nContent-Type: application/octet-stream; name="a{seed}.bin"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode()
    raw = random.Random(seed).randbytes((size - len(head)) * 3 // 4 + 3)
    b64 = base64.encodebytes(raw).replace(b"\n", b"\r\n")
    return (head + b64)[: size - 2] + b"\r\n"


def _messages() -> list[bytes]:
    small = [_message(20_000 + 997 * i, 100 + i) for i in range(60)]
    return [*small[:20], _message(BIG, 1), *small[20:40], _message(WHOLE, 2), *small[40:]]


# --------------------------------------------------------------------------- child


def child(kind: str, spec_json: str) -> int:
    import psutil

    from mailcrate.mail.base import SourceSpec, open_source

    spec = SourceSpec.from_dict(json.loads(spec_json))
    t0 = time.perf_counter()
    with open_source(spec) as src:
        folder = next(f for f in src.folders() if f.path == FOLDER)
        ready = psutil.Process().memory_info().rss
        digest = hashlib.sha256()
        items = nbytes = biggest_chunk = 0
        for item in src.items(folder):
            for chunk in item.chunks():
                digest.update(chunk)
                nbytes += len(chunk)
                biggest_chunk = max(biggest_chunk, len(chunk))
            items += 1
    print(
        json.dumps(
            {
                "kind": kind,
                "ready_rss": ready,
                "items": items,
                "bytes": nbytes,
                "sha256": digest.hexdigest(),
                "biggest_chunk": biggest_chunk,
                "seconds": time.perf_counter() - t0,
            }
        ),
        flush=True,
    )
    return 0


def _run_child(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.source_memory", "--child", kind, json.dumps(spec)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    with RssSampler(proc.pid, interval=0.005) as rss:
        out, _ = proc.communicate(timeout=600)
    if proc.returncode:
        raise RuntimeError(f"{kind} child failed ({proc.returncode})")
    result = json.loads(out.decode().strip().splitlines()[-1])
    result["peak_rss"] = rss.peak
    return result


# --------------------------------------------------------------------------- parent


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        return child(argv[1], argv[2])
    p = argparse.ArgumentParser(prog="python -m benchmarks source-memory")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeat", type=int, default=2)
    a = p.parse_args(argv)
    if a.quick:
        a.repeat = 1
    sys.path.insert(0, str(ROOT))
    from tests.servers import DovecotUnavailable, start_dovecot

    from mailcrate.mail.store import create_mailbox, deliver

    work = scratch_dir("source-memory")
    work.chmod(0o755)
    msgs = _messages()
    expected = hashlib.sha256(b"".join(msgs)).hexdigest()
    total = sum(map(len, msgs))
    embedded = work / "embedded"
    create_mailbox(embedded)
    for m in msgs:
        deliver(embedded, FOLDER, m)
    specs: dict[str, dict[str, Any]] = {
        "embedded": {"embedded": str(embedded), "owner": "alice@example.test"}
    }
    dv = None
    try:
        (work / "dovecot").mkdir()
        try:
            dv = start_dovecot(work / "dovecot")
        except DovecotUnavailable as e:
            print(f"  Dovecot unavailable, skipping maildir/imap: {e}", flush=True)
        if dv is not None:
            dv.put_messages("alice", FOLDER, [(m, "") for m in msgs])
            specs["maildir"] = {"maildir": str(dv.maildir("alice"))}
            specs["imap"] = {
                "imap": {
                    "url": dv.url,
                    "user": "alice",
                    "password": dv.master_password,
                    "master_user": dv.master_user,
                }
            }
            _run_child("imap", specs["imap"])  # Dovecot indexes the folder once, untimed
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in specs}
        for rep in range(a.repeat):
            for kind, spec in specs.items():
                r = _run_child(kind, spec)
                if r["sha256"] != expected or r["items"] != len(msgs):
                    raise RuntimeError(f"{kind}: got {r['items']} items / other bytes than stored")
                runs[kind].append(r)
                print(
                    f"  rep {rep + 1} {kind}: peak {r['peak_rss'] / 2**20:.0f} MiB "
                    f"(ready {r['ready_rss'] / 2**20:.0f} MiB), {r['seconds']:.2f} s",
                    flush=True,
                )
    finally:
        if dv is not None:
            dv.stop()
        shutil.rmtree(work, ignore_errors=True)

    rows = {}
    print(
        f"\nsource-memory: folder {FOLDER[0]!r} = 60 x 20-79 KB + one 50 MB + one 30 MB message "
        f"({total / MB:.0f} MB), every item's chunks() into SHA-256; max of {a.repeat}"
    )
    print(
        f"{'source':<10} {'ready RSS':>10} {'peak RSS':>10} {'peak / 50 MB':>13} {'max chunk':>10} {'seconds':>8}"
    )
    for kind, rs in runs.items():
        peak = max(r["peak_rss"] for r in rs)
        ready = min(r["ready_rss"] for r in rs)
        secs = min(r["seconds"] for r in rs)
        rows[kind] = {
            "peak_rss": peak,
            "ready_rss": ready,
            "ratio_to_50mb": round(peak / BIG, 3),
            "streaming_overhead_rss": peak - ready,
            "biggest_chunk": max(r["biggest_chunk"] for r in rs),
            "seconds": secs,
        }
        print(
            f"{kind:<10} {ready / 2**20:>6.0f} MiB {peak / 2**20:>6.0f} MiB {peak / BIG:>12.2f}x "
            f"{rows[kind]['biggest_chunk'] / 2**20:>6.0f} MiB {secs:>8.2f}"
        )
    ok = all(r["ratio_to_50mb"] <= 3 for r in rows.values())
    print(f"\npeak RSS within 3 x 50 MB for every source: {'met' if ok else 'MISSED'}")
    save(
        "source-memory",
        {
            "quick": a.quick,
            "repeat": a.repeat,
            "folder_bytes": total,
            "message_bytes": BIG,
            "sources": rows,
            "runs": runs,
            "targets": {"peak_rss<=3x50MB": ok},
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
