"""S3 object throughput with SSE-KMS: one large PutObject and GetObject, mailcrate vs moto.

Both servers run as separate processes on this machine in the same run; the client is boto3
(``put_object`` with a file body, so it signs the payload's SHA-256 and adds a CRC32, as it does
over http; ``get_object`` read in 1 MiB pieces). mailcrate encrypts every chunk with AES-256-GCM
under a KMS-generated data key, verifies SHA-256, CRC32 and computes MD5, and fsyncs before the
object becomes visible.

    python -m benchmarks s3 [--quick] [--size-mib 1024] [--repeat 1] [--baseline-src DIR]

``--baseline-src`` also runs a ``mailcrate serve`` of another checkout's ``src/`` (e.g. main
before a change: ``git archive main src | tar x -C /tmp/base``), interleaved with this tree's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from benchmarks.harness import median, scratch_dir, start_mailcrate, start_moto

KEY, SECRET = "AKIABENCHMARK0000000", "b" * 40
MiB = 1024 * 1024


def _client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        config=Config(retries={"max_attempts": 1}, read_timeout=600),
    )


def _make_source(path: Path, size: int) -> None:
    block = os.urandom(MiB)
    with path.open("wb") as out:
        for i in range(size // MiB):
            out.write(i.to_bytes(8, "big") + block[8:])


def _round_trip(endpoint: str, source: Path, size: int) -> tuple[float, float]:
    kms, s3 = _client("kms", endpoint), _client("s3", endpoint)
    key = kms.create_key()["KeyMetadata"]["Arn"]
    bucket = f"bench-{int(time.time() * 1000)}"
    s3.create_bucket(Bucket=bucket)
    with source.open("rb") as body:
        started = time.perf_counter()
        s3.put_object(
            Bucket=bucket, Key="big.bin", Body=body, ServerSideEncryption="aws:kms", SSEKMSKeyId=key
        )
        put_seconds = time.perf_counter() - started
    started = time.perf_counter()
    stream = s3.get_object(Bucket=bucket, Key="big.bin")["Body"]
    received = 0
    while chunk := stream.read(MiB):
        received += len(chunk)
    get_seconds = time.perf_counter() - started
    if received != size:
        raise RuntimeError(f"{endpoint}: got {received} bytes, expected {size}")
    s3.delete_object(Bucket=bucket, Key="big.bin")
    return size / MiB / put_seconds, size / MiB / get_seconds


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks s3")
    parser.add_argument("--quick", action="store_true", help="128 MiB, one repetition")
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--skip-moto", action="store_true")
    parser.add_argument("--baseline-src", type=Path, help="src/ of another checkout to run side by side")
    args = parser.parse_args(argv)
    if args.quick:
        args.size_mib, args.repeat = 128, 1
    size = args.size_mib * MiB

    work = scratch_dir("s3")
    source = work / "source.bin"
    _make_source(source, size)
    mailcrate = start_mailcrate(work / "data", KEY, SECRET)
    baseline = (
        start_mailcrate(work / "base", KEY, SECRET, src=args.baseline_src) if args.baseline_src else None
    )
    moto = None if args.skip_moto else start_moto()
    results: dict[str, dict[str, list[float]]] = {
        "mailcrate": {"put": [], "get": []},
        "baseline": {"put": [], "get": []},
        "moto": {"put": [], "get": []},
    }
    try:
        for round_ in range(args.repeat):
            servers = [("mailcrate", mailcrate.endpoint)] + (
                [("baseline", baseline.endpoint)] if baseline else []
            )
            if round_ % 2:  # alternate who goes first: neither always meets a cold or busy machine
                servers.reverse()
            servers += [("moto", moto.endpoint)] if moto else []
            for name, endpoint in servers:
                put, get = _round_trip(endpoint, source, size)
                results[name]["put"].append(put)
                results[name]["get"].append(get)
    finally:
        mailcrate.stop()
        if baseline:
            baseline.stop()
        if moto:
            moto.stop()
        shutil.rmtree(work, ignore_errors=True)

    figures: dict[str, Any] = {"size_mib": args.size_mib, "repeat": args.repeat}
    print(
        f"S3 PutObject/GetObject of {args.size_mib} MiB with SSE-KMS (MB/s = MiB/s, median of {args.repeat})"
    )
    print(f"{'server':<10} {'put MiB/s':>10} {'get MiB/s':>10}")
    for name in ("mailcrate", "baseline", "moto"):
        if results[name]["put"]:
            put, get = median(results[name]["put"]), median(results[name]["get"])
            figures[name] = {"put_mib_s": round(put, 1), "get_mib_s": round(get, 1)}
            print(f"{name:<10} {put:>10.1f} {get:>10.1f}")
    if "baseline" in figures:
        for op in ("put", "get"):
            figures[f"ratio_{op}_vs_baseline"] = round(
                figures["mailcrate"][f"{op}_mib_s"] / figures["baseline"][f"{op}_mib_s"], 3
            )
        print(
            f"mailcrate/baseline: put x{figures['ratio_put_vs_baseline']}, get x{figures['ratio_get_vs_baseline']}"
        )
    if "moto" in figures:
        figures["ratio_put"] = round(figures["mailcrate"]["put_mib_s"] / figures["moto"]["put_mib_s"], 2)
        figures["ratio_get"] = round(figures["mailcrate"]["get_mib_s"] / figures["moto"]["get_mib_s"], 2)
        print(f"mailcrate/moto: put x{figures['ratio_put']}, get x{figures['ratio_get']}")
    print(json.dumps({"benchmark": "s3", **figures}))
    return 0
