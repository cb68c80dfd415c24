"""Start under load (issue 18, item 8): StartMailboxExportJob latency while 50 clients keep the
server busy with Describe and List, on SQLite, against the same data directory as ``api-jobs``.

50 keep-alive clients at once: 40 readers (Describe of a random job and List of the first page,
20 each), 5 clients starting jobs that are created, and 5 whose Starts fail validation (a
required member missing: refused before the handler, so they never touch the database). Export
workers are off (``--export-workers 0``), so the jobs stay RUNNING and the limits are lifted for
the run (``--export-max-running-per-org``, ``--export-mailbox-interval-seconds 0``). With
``--base-src DIR`` the same load runs against another checkout's ``src/`` too, interleaved per
repetition: the A/B in one run. Server CPU per request is of the whole run (all kinds mixed).

    python -m benchmarks api-jobs --start-load [--base-src /work/base19/src] [--seconds 5] [--repeat 3]

Target (issue 18): Start p99 < 100 ms with 50 concurrent clients.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from benchmarks.exportlib import ACCOUNT, save
from benchmarks.harness import (
    LoadResult,
    cpu_seconds,
    median,
    run_mixed_load,
    scratch_dir,
    signed_json,
    start_mailcrate,
)

#: serve flags of the run: no workers (jobs stay RUNNING), no per-org or per-mailbox limit.
SERVE_FLAGS = ("--export-workers", "0", "--export-max-running-per-org", "1000000")
SERVE_FLAGS += ("--export-mailbox-interval-seconds", "0")
READERS, STARTERS, FAILING = 40, 5, 5
TARGET_P99_MS = 100.0
#: Distinct signed Starts per run (each with its own ClientToken), more than a run sends; a
#: token used again would be answered from the first job without creating one.
STARTS = 3000


def _requests(endpoint: str, key: str, secret: str, org: str, user: str, ids: list[str]) -> dict[str, Any]:
    rng = random.Random(3)
    start = {
        "OrganizationId": org,
        "EntityId": user,
        "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/WorkmailExportRole",
        "KmsKeyArn": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/00000000-0000-4000-8000-000000000001",
        "S3BucketName": "exports",
        "S3Prefix": "load",
    }
    # ClientToken is required (the SDKs fill it in): a fresh one per created job. The failing
    # Starts lack S3Prefix: a ValidationException from the model, before the handler runs.
    bad = {k: v for k, v in start.items() if k != "S3Prefix"} | {"ClientToken": "load-invalid"}

    def sign(target: str, body: dict[str, Any]) -> bytes:
        return signed_json(endpoint, "workmail", f"WorkMailService.{target}", body, key, secret)

    describe = [
        sign("DescribeMailboxExportJob", {"OrganizationId": org, "JobId": rng.choice(ids)})
        for _ in range(500)
    ]
    listing = sign("ListMailboxExportJobs", {"OrganizationId": org, "MaxResults": 25})
    starts = [sign("StartMailboxExportJob", start | {"ClientToken": uuid.uuid4().hex}) for _ in range(STARTS)]
    taken = itertools.count()
    return {
        "Describe": (READERS // 2, lambda n: describe[n % len(describe)]),
        "List": (READERS - READERS // 2, lambda _n: listing),
        "Start (created)": (STARTERS, lambda _n: starts[next(taken) % STARTS]),
        "Start (invalid)": (FAILING, lambda _n, r=sign("StartMailboxExportJob", bad): r),
    }


def _fill_with(src: Path, work: Path, org: str, user: str, jobs: int) -> list[str]:
    """api-jobs' fill run by another checkout's code: its data directory stays at that
    checkout's schema (this tree's would migrate it to ours, and its server would refuse it)."""
    code = (
        "import json, sys; from pathlib import Path; from benchmarks.api_jobs import _fill; "
        "print(json.dumps(_fill(Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]))))"
    )
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{Path(__file__).resolve().parents[1]}"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(work / "data"), org, user, str(jobs)],
        env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return json.loads(out.splitlines()[-1])


def run(a: argparse.Namespace, key: str, secret: str, organization: Any, fill: Any) -> int:
    """``organization`` and ``fill`` are api-jobs' own (the same data in both modes)."""
    contenders: dict[str, Path | None] = {"head": None}
    if a.base_src:
        contenders["base"] = Path(a.base_src)
    dirs: dict[str, tuple[Path, str, str, list[str]]] = {}
    for name, src in contenders.items():
        work = scratch_dir(f"api-jobs-start-{name}")
        mc = start_mailcrate(work / "data", key, secret, src=src)
        try:
            wm, org, user = organization(mc.endpoint)
            domain = wm.describe_organization(OrganizationId=org)["DefaultMailDomain"]
            wm.register_to_work_mail(OrganizationId=org, EntityId=user, Email=f"alice@{domain}")
        finally:
            mc.stop()
        ids = (
            fill(work / "data", org, user, a.jobs)
            if src is None
            else _fill_with(src, work, org, user, a.jobs)
        )
        dirs[name] = (work, org, user, ids)
    results: dict[str, dict[str, list[LoadResult]]] = {n: {} for n in contenders}
    cpu: dict[str, list[float]] = {n: [] for n in contenders}
    try:
        for rep in range(a.repeat):
            order = list(contenders) if rep % 2 == 0 else list(contenders)[::-1]
            for name in order:
                work, org, user, ids = dirs[name]
                mc = start_mailcrate(work / "data", key, secret, *SERVE_FLAGS, src=contenders[name])
                try:
                    groups = _requests(mc.endpoint, key, secret, org, user, ids)
                    before = cpu_seconds(mc.popen.pid, children=False)
                    run_ = run_mixed_load(mc.endpoint, groups, a.seconds)
                    spent = cpu_seconds(mc.popen.pid, children=False) - before
                    cpu[name].append(spent * 1e6 / max(1, sum(r.requests for r in run_.values())))
                    for kind, r in run_.items():
                        results[name].setdefault(kind, []).append(r)
                finally:
                    mc.stop()
    finally:
        for work, *_ in dirs.values():
            shutil.rmtree(work, ignore_errors=True)

    clients = READERS + STARTERS + FAILING
    print(f"\nStart under load: {a.jobs:,} jobs, {clients} clients, {a.seconds:g} s x {a.repeat}")
    print(
        f"{'server':<6} {'call':<16} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'non-200':>8}"
    )
    summary: dict[str, Any] = {}
    for name, kinds in results.items():
        summary[name] = {"server_cpu_us_per_request": round(median(cpu[name]), 1)}
        for kind, runs in kinds.items():
            lat = sorted(x for r in runs for x in r.latencies_ms)
            row = {
                "clients": {"Describe": READERS // 2, "List": READERS - READERS // 2}.get(
                    kind, STARTERS if "created" in kind else FAILING
                ),
                "rps": round(median([r.rps for r in runs]), 1),
                "p50_ms": round(lat[len(lat) // 2], 2) if lat else None,
                "p95_ms": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 2) if lat else None,
                "p99_ms": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 2) if lat else None,
                "non_200": sum(r.errors for r in runs),
                "runs_p99_ms": [round(r.percentile(99), 2) for r in runs if r.latencies_ms],
            }
            summary[name][kind] = row
            print(f"{name:<6} {kind:<16} {row['clients']:>7} {row['rps']:>8.0f} {row['p50_ms']:>8.2f} "
                  f"{row['p95_ms']:>8.2f} {row['p99_ms']:>8.2f} {row['non_200']:>8}   per run p99 {row['runs_p99_ms']}")  # fmt: skip
        print(
            f"{name:<6} server CPU per request (all kinds): {summary[name]['server_cpu_us_per_request']:.0f} us"
        )
    head = summary["head"]
    met = all(
        head[k]["p99_ms"] is not None and head[k]["p99_ms"] < TARGET_P99_MS for k in head if "Start" in k
    )
    print(f"\nhead Start p99 < {TARGET_P99_MS:g} ms (created and invalid): {'met' if met else 'MISSED'}")
    save("api-jobs-start-load", {"jobs": a.jobs, "seconds": a.seconds, "repeat": a.repeat, "clients": clients,
                                 "results": summary, "target_met": met})  # fmt: skip
    return 0
