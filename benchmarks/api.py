"""API throughput and latency: signed json calls from concurrent clients, mailcrate vs moto.

mailcrate answers a signed WorkMail ``DescribeOrganization``; moto's server, the usual local
stand-in for AWS, answers a comparable signed json call (KMS ``DescribeKey``) in the same run.
Each repetition runs both, interleaved; medians are reported with the ratio.

    python -m benchmarks api [--quick] [--concurrency 16] [--seconds 5] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import shutil

import boto3

from benchmarks.harness import median, run_load, scratch_dir, signed_json, start_mailcrate, start_moto

KEY, SECRET = "AKIABENCHMARK0000000", "b" * 40


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks api")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.repeat = 2.0, 1

    work = scratch_dir("api")
    mailcrate = start_mailcrate(work / "data", KEY, SECRET)
    moto = start_moto()
    try:
        wm = boto3.client(
            "workmail",
            endpoint_url=mailcrate.endpoint,
            region_name="us-east-1",
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
        )
        org_id = wm.create_organization(Alias="benchorg")["OrganizationId"]
        kms = boto3.client(
            "kms",
            endpoint_url=moto.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]

        mc_request = signed_json(
            mailcrate.endpoint,
            "workmail",
            "WorkMailService.DescribeOrganization",
            {"OrganizationId": org_id},
            KEY,
            SECRET,
        )
        moto_request = signed_json(
            moto.endpoint, "kms", "TrentService.DescribeKey", {"KeyId": key_id}, "testing", "testing"
        )
        results: dict[str, list] = {"mailcrate": [], "moto": []}
        for _ in range(args.repeat):
            results["mailcrate"].append(
                run_load(mailcrate.endpoint, lambda _n: mc_request, args.concurrency, args.seconds)
            )
            results["moto"].append(
                run_load(moto.endpoint, lambda _n: moto_request, args.concurrency, args.seconds)
            )
    finally:
        mailcrate.stop()
        moto.stop()
        shutil.rmtree(work, ignore_errors=True)

    summary = {}
    print(
        f"{'server':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}   (concurrency {args.concurrency}, "
        f"{args.seconds:.0f} s x {args.repeat}, median)"
    )
    for name, runs in results.items():
        row = {
            "rps": round(median([r.rps for r in runs]), 1),
            "p50_ms": round(median([r.percentile(50) for r in runs]), 2),
            "p99_ms": round(median([r.percentile(99) for r in runs]), 2),
            "errors": sum(r.errors for r in runs),
        }
        summary[name] = row
        print(f"{name:<10} {row['rps']:>9} {row['p50_ms']:>8} {row['p99_ms']:>8} {row['errors']:>7}")
    ratio = summary["mailcrate"]["rps"] / summary["moto"]["rps"]
    print(f"throughput ratio mailcrate/moto: {ratio:.2f}x")
    print(
        json.dumps(
            {
                "benchmark": "api",
                "concurrency": args.concurrency,
                **summary,
                "ratio_rps_mailcrate_over_moto": round(ratio, 2),
                "targets": {
                    "rps>=1000": summary["mailcrate"]["rps"] >= 1000,
                    "p99<25ms": summary["mailcrate"]["p99_ms"] < 25,
                },
            }
        )
    )
    return 0
