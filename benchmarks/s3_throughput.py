"""S3 object throughput with SSE-KMS: one large PutObject and GetObject, mailcrate vs moto.

Both servers run as separate processes on this machine in the same run; the client is boto3
(``put_object`` with a file body, so it signs the payload's SHA-256 and adds a CRC32, as it does
over http; ``get_object`` read in 1 MiB pieces). mailcrate encrypts every chunk with AES-256-GCM
under a KMS-generated data key, verifies SHA-256, CRC32 and computes MD5, and fsyncs before the
object becomes visible.

    python -m benchmarks s3 [--quick] [--size-mib 1024] [--repeat 1] [--baseline-src DIR]

``--baseline-src`` also runs a ``mailcrate serve`` of another checkout's ``src/`` (e.g. main
before a change: ``git worktree add --detach /tmp/base <commit>``), interleaved with this tree's
(who goes first alternates by round). Besides MiB/s it reports each server process's CPU
seconds per GiB moved, which a busy shared machine disturbs far less than wall-clock rates.
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
import psutil
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


def _cpu(server: psutil.Process | None) -> float:
    """The server process's CPU seconds so far (user + system, all its threads)."""
    return sum(server.cpu_times()[:2]) if server is not None else 0.0


def _round_trip(
    endpoint: str, source: Path, size: int, server: psutil.Process | None = None
) -> tuple[float, float, float, float]:
    """MiB/s of one PutObject and one GetObject, and the server's CPU seconds per GiB for each
    (on a shared machine the CPU cost moves far less than the wall-clock rate)."""
    kms, s3 = _client("kms", endpoint), _client("s3", endpoint)
    key = kms.create_key()["KeyMetadata"]["Arn"]
    bucket = f"bench-{int(time.time() * 1000)}"
    s3.create_bucket(Bucket=bucket)
    with source.open("rb") as body:
        cpu, started = _cpu(server), time.perf_counter()
        s3.put_object(
            Bucket=bucket, Key="big.bin", Body=body, ServerSideEncryption="aws:kms", SSEKMSKeyId=key
        )
        put_seconds, put_cpu = time.perf_counter() - started, _cpu(server) - cpu
    cpu, started = _cpu(server), time.perf_counter()
    stream = s3.get_object(Bucket=bucket, Key="big.bin")["Body"]
    received = 0
    while chunk := stream.read(MiB):
        received += len(chunk)
    get_seconds, get_cpu = time.perf_counter() - started, _cpu(server) - cpu
    if received != size:
        raise RuntimeError(f"{endpoint}: got {received} bytes, expected {size}")
    s3.delete_object(Bucket=bucket, Key="big.bin")
    gib = size / (1024 * MiB)
    return size / MiB / put_seconds, size / MiB / get_seconds, put_cpu / gib, get_cpu / gib


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
        name: {"put": [], "get": [], "put_cpu": [], "get_cpu": []}
        for name in ("mailcrate", "baseline", "moto")
    }
    processes = {
        name: psutil.Process(server.popen.pid)
        for name, server in (("mailcrate", mailcrate), ("baseline", baseline), ("moto", moto))
        if server is not None
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
                figures_ = _round_trip(endpoint, source, size, processes.get(name))
                for field, value in zip(("put", "get", "put_cpu", "get_cpu"), figures_, strict=True):
                    results[name][field].append(value)
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
    print(f"{'server':<10} {'put MiB/s':>10} {'get MiB/s':>10} {'put CPU s/GiB':>14} {'get CPU s/GiB':>14}")
    for name in ("mailcrate", "baseline", "moto"):
        if results[name]["put"]:
            put, get = median(results[name]["put"]), median(results[name]["get"])
            put_cpu, get_cpu = median(results[name]["put_cpu"]), median(results[name]["get_cpu"])
            figures[name] = {
                "put_mib_s": round(put, 1),
                "get_mib_s": round(get, 1),
                "put_cpu_s_per_gib": round(put_cpu, 2),
                "get_cpu_s_per_gib": round(get_cpu, 2),
                # each round's figures, in round order: the spread on a shared machine
                **{f"{field}_rounds": [round(v, 2) for v in results[name][field]] for field in results[name]},
            }
            print(f"{name:<10} {put:>10.1f} {get:>10.1f} {put_cpu:>14.2f} {get_cpu:>14.2f}")
    if "baseline" in figures:
        for op in ("put", "get"):
            figures[f"ratio_{op}_vs_baseline"] = round(
                figures["mailcrate"][f"{op}_mib_s"] / figures["baseline"][f"{op}_mib_s"], 3
            )
        for op in ("put", "get"):  # CPU per GiB: above 1 means mailcrate spends more
            figures[f"ratio_{op}_cpu_vs_baseline"] = round(
                figures["mailcrate"][f"{op}_cpu_s_per_gib"] / figures["baseline"][f"{op}_cpu_s_per_gib"], 3
            )
        print(
            f"mailcrate/baseline: put x{figures['ratio_put_vs_baseline']}, get x{figures['ratio_get_vs_baseline']}"
            f"; server CPU per GiB: put x{figures['ratio_put_cpu_vs_baseline']},"
            f" get x{figures['ratio_get_cpu_vs_baseline']}"
        )
    if "moto" in figures:
        figures["ratio_put"] = round(figures["mailcrate"]["put_mib_s"] / figures["moto"]["put_mib_s"], 2)
        figures["ratio_get"] = round(figures["mailcrate"]["get_mib_s"] / figures["moto"]["get_mib_s"], 2)
        print(f"mailcrate/moto: put x{figures['ratio_put']}, get x{figures['ratio_get']}")
    print(json.dumps({"benchmark": "s3", **figures}))
    return 0
