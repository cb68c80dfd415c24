"""Export-job API latency and throughput with 100,000 jobs in the database, vs moto.

100,000 finished jobs (one organization, spread over the last 30 days) are inserted straight
into ``export_jobs`` of a fresh data directory; then ``mailcrate serve`` answers signed
``DescribeMailboxExportJob`` (a random job each request) and ``ListMailboxExportJobs`` (first
page, newest first) from concurrent keep-alive clients.  In the same run, interleaved, moto's
server answers a comparable signed json call (KMS ``DescribeKey``; moto has no WorkMail export
jobs).  Median over repetitions of req/s; p50/p99 latency of all requests.

    python -m benchmarks api-jobs [--quick] [--jobs 100000] [--concurrency 16] [--seconds 5] [--repeat 3]
    python -m benchmarks api-jobs --ab [--base-src DIR] [--calls Encrypt] ...  (audit + metrics on vs off)
    python -m benchmarks api-jobs --start-load ...  (Start under 50 clients: benchmarks/start_load.py)

Targets (issue 8): Describe/List p99 < 25 ms; throughput >= 3x moto's.
"""

from __future__ import annotations

import argparse
import random
import shutil
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import psutil

from benchmarks.exportlib import ACCOUNT, save
from benchmarks.harness import median, run_load, scratch_dir, signed_json, start_mailcrate, start_moto

KEY, SECRET = "AKIABENCHAPIJOBS0000", "j" * 40


def _fill(data_dir, org: str, user: str, n: int, *, upgrade: bool = True) -> None:  # type: ignore[no-untyped-def]
    """Insert ``n`` finished jobs. ``upgrade=False``: through a plain engine on the SQLite file,
    leaving the schema at the revision the serve that made it left (an older base's)."""
    from sqlalchemy import insert

    from mailcrate.datadir import DataDir
    from mailcrate.storage.db import Database, utcnow
    from mailcrate.storage.tables_jobs import export_jobs

    if upgrade:
        dd = DataDir.open(data_dir)
        db, close = dd.db, dd.close
    else:
        db = Database(f"sqlite:///{data_dir}/mailcrate.db")
        close = db.dispose
    now = utcnow()
    rng = random.Random(8)
    rows = []
    try:
        with db.begin() as conn:
            for i in range(n):
                job_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                start = now - timedelta(seconds=rng.randint(60, 30 * 86400))
                state = "COMPLETED" if i % 20 else rng.choice(["FAILED", "CANCELLED"])
                rows.append(
                    {
                        "job_id": job_id, "account_id": ACCOUNT, "region": "us-east-1",
                        "organization_id": org, "entity_id": user, "description": f"job {i}",
                        "role_arn": f"arn:aws:iam::{ACCOUNT}:role/WorkmailExportRole",
                        "kms_key_arn": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{uuid.UUID(int=i)}",
                        "s3_bucket_name": "exports", "s3_prefix": "bench", "s3_path": f"bench/{job_id}.zip",
                        "state": state, "estimated_progress": 100 if state == "COMPLETED" else 40,
                        "error_info": "Access denied" if state == "FAILED" else None,
                        "start_time": start, "end_time": start + timedelta(seconds=rng.randint(5, 600)),
                        "client_token": None, "request_digest": "0" * 64, "attempts": 1, "finishing": False,
                        "items_total": 1000, "items_done": 1000, "bytes_done": 10**8,
                    }
                )  # fmt: skip
                if len(rows) == 5000:
                    conn.execute(insert(export_jobs), rows)
                    rows = []
            if rows:
                conn.execute(insert(export_jobs), rows)
        with db.read() as conn:
            from sqlalchemy import select

            ids = [r[0] for r in conn.execute(select(export_jobs.c.job_id).limit(5000))]
    finally:
        close()
    return ids  # type: ignore[return-value]


def _organization(endpoint: str) -> tuple[Any, str, str]:
    """A WorkMail client, a new organization and its user alice."""
    wm = boto3.client("workmail", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id=KEY, aws_secret_access_key=SECRET)  # fmt: skip
    org = wm.create_organization(Alias="apijobs" + uuid.uuid4().hex[:8])["OrganizationId"]
    user = wm.create_user(OrganizationId=org, Name="alice", DisplayName="Alice", Password="Corr3ct-Horse-1")[
        "UserId"
    ]
    return wm, org, user


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks api-jobs")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--jobs", type=int, default=100_000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument(
        "--ab", action="store_true", help="audit trail + metrics on vs off (--audit/--metrics false), no moto"
    )
    p.add_argument(
        "--start-load",
        action="store_true",
        help="Start latency with 50 clients, mostly readers (benchmarks/start_load.py), no moto",
    )
    p.add_argument(
        "--base-src", help="with --start-load or --ab: also run another checkout's src/, interleaved"
    )
    p.add_argument(
        "--calls", nargs="+", choices=("Describe", "List", "Encrypt"), help="with --ab: only these calls"
    )
    a = p.parse_args(argv)
    if a.quick:
        a.seconds, a.repeat = 2.0, 1
    if a.ab:
        return _observability_ab(a)
    if a.start_load:
        from benchmarks import start_load

        return start_load.run(a, KEY, SECRET, _organization, _fill)

    work = scratch_dir("api-jobs")
    mc = start_mailcrate(work / "data", KEY, SECRET)
    moto = start_moto()
    try:
        wm, org, user = _organization(mc.endpoint)
        ids = _fill(work / "data", org, user, a.jobs)
        listed = wm.list_mailbox_export_jobs(OrganizationId=org, MaxResults=25)
        assert len(listed["Jobs"]) == 25 and listed.get("NextToken"), listed
        wm.describe_mailbox_export_job(OrganizationId=org, JobId=ids[0])

        rng = random.Random(3)
        describe = [
            signed_json(mc.endpoint, "workmail", "WorkMailService.DescribeMailboxExportJob",
                        {"OrganizationId": org, "JobId": rng.choice(ids)}, KEY, SECRET)
            for _ in range(2000)
        ]  # fmt: skip
        list_req = signed_json(mc.endpoint, "workmail", "WorkMailService.ListMailboxExportJobs",
                               {"OrganizationId": org, "MaxResults": 25}, KEY, SECRET)  # fmt: skip
        kms = boto3.client("kms", endpoint_url=moto.endpoint, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        moto_req = signed_json(
            moto.endpoint, "kms", "TrentService.DescribeKey", {"KeyId": key_id}, "testing", "testing"
        )

        contenders = {
            "Describe (mailcrate)": (mc.endpoint, lambda n: describe[n % len(describe)]),
            "List (mailcrate)": (mc.endpoint, lambda _n: list_req),
            "DescribeKey (moto)": (moto.endpoint, lambda _n: moto_req),
        }
        results: dict[str, list] = {k: [] for k in contenders}
        for _ in range(a.repeat):
            for name, (endpoint, make) in contenders.items():
                results[name].append(run_load(endpoint, make, a.concurrency, a.seconds))
    finally:
        mc.stop()
        moto.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\napi-jobs: {a.jobs:,} jobs in the DB, concurrency {a.concurrency}, {a.seconds:g} s x {a.repeat}")
    print(f"{'call':<22} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    summary: dict = {}
    for name, runs in results.items():
        lat = sorted(x for r in runs for x in r.latencies_ms)
        rps = median([r.rps for r in runs])
        p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(0.99 * len(lat)))]
        errors = sum(r.errors for r in runs)
        summary[name] = {
            "rps": round(rps, 1),
            "p50_ms": round(p50, 2),
            "p99_ms": round(p99, 2),
            "errors": errors,
        }
        print(f"{name:<22} {rps:>9.0f} {p50:>8.2f} {p99:>8.2f} {errors:>7}")
    moto_rps = summary["DescribeKey (moto)"]["rps"]
    ratios = {k: round(v["rps"] / moto_rps, 2) for k, v in summary.items() if "mailcrate" in k}
    p99_ok = all(summary[k]["p99_ms"] < 25 for k in ratios)
    print(f"\nthroughput vs moto: {ratios} (target >= 3x); p99 < 25 ms: {'met' if p99_ok else 'MISSED'}")
    save(
        "api-jobs",
        {
            "quick": a.quick,
            "jobs": a.jobs,
            "concurrency": a.concurrency,
            "seconds": a.seconds,
            "repeat": a.repeat,
            "results": summary,
            "ratio_vs_moto": ratios,
            "targets": {"p99<25ms": p99_ok, "throughput>=3x_moto": all(r >= 3 for r in ratios.values())},
        },
    )
    return 0


#: serve flags of the A/B: the audit trail's call records and the metrics switched off.
OFF = ("--audit", "false", "--metrics", "false")


def _observability_ab(a: argparse.Namespace) -> int:
    """Describe, List and KMS Encrypt (a call the audit trail records) against the same data
    directory, served with audit + metrics on and off in turn (order alternating per repetition);
    with ``--base-src``, another checkout's serve too, interleaved in the same rounds."""
    contenders: dict[str, Path | None] = {"head": None}
    if a.base_src:
        contenders["base"] = Path(a.base_src)
    work = scratch_dir("api-jobs-ab")
    # The data directory is made by the base's serve when there is one (a base's schema may be
    # older than head's: head's serve upgrades its own copy, the base could not open head's),
    # then copied for each contender.
    mc = start_mailcrate(work / "data", KEY, SECRET, src=contenders.get("base"))
    try:
        _wm, org, user = _organization(mc.endpoint)
        kms = boto3.client("kms", endpoint_url=mc.endpoint, region_name="us-east-1",
                           aws_access_key_id=KEY, aws_secret_access_key=SECRET)  # fmt: skip
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    finally:
        mc.stop()
    ids = _fill(work / "data", org, user, a.jobs, upgrade=False)
    for contender in contenders:
        shutil.copytree(work / "data", work / f"data-{contender}")
    names = [n for n in ("Describe", "List", "Encrypt (audited)") if not a.calls or n.split()[0] in a.calls]
    variants = [(c, mode) for c in contenders for mode in ("on", "off")]
    results: dict[str, list] = {}
    try:
        for rep in range(a.repeat):
            for contender, mode in variants if rep % 2 == 0 else variants[::-1]:
                extra = OFF if mode == "off" else ()
                mc = start_mailcrate(
                    work / f"data-{contender}", KEY, SECRET, *extra, src=contenders[contender]
                )
                try:
                    rng = random.Random(3)
                    calls = {
                        "Describe": [
                            signed_json(mc.endpoint, "workmail", "WorkMailService.DescribeMailboxExportJob",
                                        {"OrganizationId": org, "JobId": rng.choice(ids)}, KEY, SECRET)
                            for _ in range(2000)
                        ],
                        "List": [signed_json(mc.endpoint, "workmail", "WorkMailService.ListMailboxExportJobs",
                                             {"OrganizationId": org, "MaxResults": 25}, KEY, SECRET)],
                        "Encrypt (audited)": [signed_json(mc.endpoint, "kms", "TrentService.Encrypt",
                                                          {"KeyId": key_id, "Plaintext": "aGVsbG8="}, KEY, SECRET)],
                    }  # fmt: skip
                    server = psutil.Process(mc.popen.pid)
                    for name in names:
                        reqs = calls[name]
                        cpu = sum(server.cpu_times()[:2])
                        run = run_load(mc.endpoint, lambda n, r=reqs: r[n % len(r)], a.concurrency, a.seconds)
                        # server CPU per request: what other load on a shared machine does not skew
                        spent = (sum(server.cpu_times()[:2]) - cpu) / max(1, run.requests) * 1e6
                        results.setdefault(_label(name, contender, mode, a.base_src), []).append((run, spent))
                        print(f"round {rep + 1} {_label(name, contender, mode, a.base_src)}: "
                              f"{spent:.0f} us CPU/req, {run.rps:.0f} req/s", flush=True)  # fmt: skip
                finally:
                    mc.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\napi-jobs A/B: {a.jobs:,} jobs, concurrency {a.concurrency}, {a.seconds:g} s x {a.repeat}")
    print(
        f"{'call':<33} {'req/s':>9} {'CPU us/req':>11} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}  all rounds' CPU"
    )
    summary: dict = {}
    for label, measured in results.items():
        runs = [r for r, _ in measured]
        lat = sorted(x for r in runs for x in r.latencies_ms)
        rps = median([r.rps for r in runs])
        summary[label] = {
            "rps": round(rps, 1),
            "server_cpu_us": round(median([spent for _, spent in measured]), 1),
            "server_cpu_us_rounds": [round(spent) for _, spent in measured],
            "p50_ms": round(lat[len(lat) // 2], 2),
            "p99_ms": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 2),
            "errors": sum(r.errors for r in runs),
        }
        row = summary[label]
        print(f"{label:<33} {rps:>9.0f} {row['server_cpu_us']:>11.0f} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} "
              f"{row['errors']:>7}  {row['server_cpu_us_rounds']}")  # fmt: skip
    slower: dict = {}
    cpu: dict = {}
    paired: dict = {}
    for contender in contenders:
        for c in names:
            on, off = (
                summary[_label(c, contender, "on", a.base_src)],
                summary[_label(c, contender, "off", a.base_src)],
            )
            key = c if contender == "head" else f"{c} (base)"
            slower[key] = round(off["rps"] / on["rps"] - 1, 4)
            cpu[key] = round(on["server_cpu_us"] / off["server_cpu_us"] - 1, 4)
            # Each round runs a contender's on and off back to back: their ratio sees the same
            # load from the rest of the machine, which moves whole rounds by +-30 %.
            pairs = zip(on["server_cpu_us_rounds"], off["server_cpu_us_rounds"], strict=True)
            paired[key] = round(median([x / y for x, y in pairs]) - 1, 4)
    print(f"\non vs off, throughput cost: { ({k: f'{v:+.1%}' for k, v in slower.items()}) }")
    print(
        f"on vs off, server CPU per request (target <= +5 %): { ({k: f'{v:+.1%}' for k, v in cpu.items()}) }"
    )
    print(f"the same, median of each round's on/off: { ({k: f'{v:+.1%}' for k, v in paired.items()}) }")
    save("api-jobs-ab", {"quick": a.quick, "jobs": a.jobs, "concurrency": a.concurrency, "seconds": a.seconds,
                         "repeat": a.repeat, "base_src": a.base_src, "results": summary, "throughput_cost": slower,
                         "cpu_cost": cpu, "cpu_cost_paired": paired,
                         "target_met": all(v <= 0.05 for k, v in cpu.items() if "(base)" not in k)})  # fmt: skip
    return 0


def _label(call: str, contender: str, mode: str, base_src: str | None) -> str:
    return f"{call} [{mode}]" if base_src is None else f"{call} [{contender} {mode}]"
