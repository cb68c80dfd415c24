"""``python -m benchmarks audit-path``: the CPU an audited KMS Encrypt's audit event and metrics
cost a ``serve`` process, without HTTP, clients or the rest of the request around it.

Each round runs one child process per contender (this tree's ``src/``, and ``--base-src``'s):
it calls :func:`mailcrate.server.observe.finished` the way the dispatcher does after an Encrypt
(the real KMS operation model, a signed-in IAM user's principal, the parameters and output the
handler saw), with a real audit trail over a fresh migrated SQLite data directory and real
request metrics, in bursts (``--burst`` calls, then a pause of ``--pause`` s: the writer then
commits batches of about the size it commits in the api-jobs benchmark's Encrypt load). The
figures are per call: the calling thread's CPU (the API thread's share) and the whole
process's CPU (callers plus the audit writer thread), minus the same loop with audit and
metrics off. Rounds alternate the contenders' order.

    python -m benchmarks audit-path [--events 4000] [--rounds 5] [--base-src DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace


def _child(events: int, burst: int, pause: float) -> dict[str, float]:
    """Measure in this process (run with the contender's ``src/`` on the path)."""
    from mailcrate.accounts import Principal
    from mailcrate.audit.trail import AuditTrail
    from mailcrate.datadir import DataDir
    from mailcrate.protocol.http import Headers, HttpRequest
    from mailcrate.server import metrics as server_metrics
    from mailcrate.server.observe import finished
    from mailcrate.services.kms.handlers import spec as kms_spec

    work = Path(tempfile.mkdtemp(prefix="audit-path-"))
    dd = DataDir.open(work / "d", create=True)
    server_metrics.enable(work)
    spec = kms_spec()
    account = "111122223333"
    key_id = "1234abcd-12ab-34cd-56ef-1234567890ab"
    principal = Principal(
        account_id=account,
        arn=f"arn:aws:iam::{account}:user/bench",
        kind="user",
        principal_id="AIDABENCH",
        access_key_id="AKIABENCHAUDITPATH00",
        secret_access_key="s" * 40,
    )
    request = HttpRequest(
        "POST",
        "/",
        "",
        Headers([("user-agent", "Boto3/1.35.0 md/Botocore#1.35.0 ua/2.0 os/linux lang/python#3.12")]),
        client_ip="127.0.0.1",
    )
    params = {"KeyId": key_id, "Plaintext": b"hello"}
    output = {
        "CiphertextBlob": b"\x01" * 180,
        "KeyId": f"arn:aws:kms:us-east-1:{account}:key/{key_id}",
        "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }

    def loop(runtime: SimpleNamespace) -> tuple[float, float]:
        thread0, process0 = time.thread_time(), time.process_time()
        caller = 0.0
        for start in range(0, events, burst):
            t = time.thread_time()
            for n in range(start, min(events, start + burst)):
                finished(runtime, request, f"req-{n:08d}", spec, "Encrypt", principal, "us-east-1",
                         params, output, None, 200, 0.0009)  # fmt: skip
            caller += time.thread_time() - t
            time.sleep(pause)
        runtime.audit is not None and runtime.audit.stop()
        del thread0
        return caller / events * 1e6, (time.process_time() - process0) / events * 1e6

    trail = AuditTrail(dd.db, retention_days=0)
    metrics = server_metrics.Metrics(work, dd.db, lambda: 0)
    off_caller, off_total = loop(SimpleNamespace(audit=None, metrics=None, context=None))
    on_caller, on_total = loop(SimpleNamespace(audit=trail, metrics=metrics, context=None))
    with dd.db.read() as conn:
        from sqlalchemy import func, select

        from mailcrate.storage.tables_audit import audit_events

        stored = conn.execute(select(func.count()).select_from(audit_events)).scalar_one()
    dd.close()
    server_metrics.disable(work)
    assert stored == events, (stored, events)
    # The pauses' own wake-ups are in both loops alike: subtract "off" from "on".
    return {"caller_us": on_caller - off_caller, "process_us": on_total - off_total}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks audit-path")
    p.add_argument("--events", type=int, default=4000)
    p.add_argument("--burst", type=int, default=64, help="calls between pauses")
    p.add_argument("--pause", type=float, default=0.05, help="seconds between bursts")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--base-src", help="another checkout's src/, run interleaved")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(_child(a.events, a.burst, a.pause)))
        return 0
    here = Path(__file__).resolve().parent.parent / "src"
    contenders = {"head": here} | ({"base": Path(a.base_src)} if a.base_src else {})
    results: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    for rnd in range(a.rounds):
        order = list(contenders) if rnd % 2 == 0 else list(contenders)[::-1]
        for name in order:
            env = {**os.environ, "PYTHONPATH": str(contenders[name])}
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks", "audit-path", "--child", "--events", str(a.events),
                 "--burst", str(a.burst), "--pause", str(a.pause)],
                check=True, capture_output=True, text=True, env=env,
                cwd=Path(__file__).resolve().parent.parent,
            ).stdout  # fmt: skip
            figures = json.loads(out.strip().splitlines()[-1])
            results[name].append(figures)
            print(f"round {rnd + 1} {name}: caller {figures['caller_us']:.1f} us, "
                  f"process {figures['process_us']:.1f} us per audited Encrypt", flush=True)  # fmt: skip
    summary = {
        name: {key: round(statistics.median(r[key] for r in runs), 1) for key in ("caller_us", "process_us")}
        for name, runs in results.items()
    }
    print(f"\naudit-path: {a.events} audited Encrypts a round, bursts of {a.burst}, {a.rounds} rounds")
    print(f"{'':<6} {'caller us':>10} {'process us':>11}  rounds (process)")
    for name, runs in results.items():
        print(f"{name:<6} {summary[name]['caller_us']:>10.1f} {summary[name]['process_us']:>11.1f}  "
              f"{[round(r['process_us'], 1) for r in runs]}")  # fmt: skip
    print(json.dumps({"events": a.events, "burst": a.burst, "rounds": a.rounds, "results": summary}))
    return 0
