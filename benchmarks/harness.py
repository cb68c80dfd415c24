"""Shared benchmark plumbing: servers started as separate processes, a replaying HTTP load
generator, interleaved repetitions and the median/ratio report."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    endpoint: str

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(15)
        except subprocess.TimeoutExpired:
            self.popen.kill()


def start_mailcrate(
    data_dir: Path, access_key: str, secret: str, *extra: str, src: Path | None = None
) -> Process:
    """A ``mailcrate serve`` of this tree, or (``src``) of another checkout's ``src/`` directory:
    an A/B against an earlier commit in the same run."""
    cmd = [sys.executable, "-m", "mailcrate.cli.main"]
    env = {**os.environ, "PYTHONPATH": str(src)} if src is not None else None
    subprocess.run(
        [
            *cmd,
            "init",
            "--data-dir",
            str(data_dir),
            "--account-id",
            "111122223333",
            "--access-key-id",
            access_key,
            "--secret-access-key",
            secret,
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    port = free_port()
    # BENCH_SERVE_LOG=FILE keeps serve's log (with BENCH_SERVE_ARGS="--log-level info" for more).
    log_file = os.environ.get("BENCH_SERVE_LOG")
    popen = subprocess.Popen(
        [*cmd, "serve", "--data-dir", str(data_dir), "--port", str(port), "--log-level", "warning", *extra],
        stdout=subprocess.DEVNULL,
        stderr=open(log_file, "a") if log_file else subprocess.DEVNULL,  # noqa: SIM115 - the process's
        env=env,
    )
    endpoint = f"http://127.0.0.1:{port}"
    wait_http(endpoint + "/health")
    return Process(popen, endpoint)


def start_moto() -> Process:
    port = free_port()
    popen = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    wait_http(endpoint + "/moto-api/")
    return Process(popen, endpoint)


def signed_json(
    endpoint: str,
    service: str,
    target: str,
    body: dict[str, Any],
    key: str,
    secret: str,
    region: str = "us-east-1",
) -> bytes:
    """A complete signed HTTP/1.1 request, replayable for the 15 minutes its signature is valid."""
    data = json.dumps(body).encode()
    request = AWSRequest(
        method="POST",
        url=endpoint + "/",
        data=data,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target},
    )
    SigV4Auth(Credentials(key, secret), service, region).add_auth(request)
    host = endpoint.split("://", 1)[1]
    lines = ["POST / HTTP/1.1", f"Host: {host}", f"Content-Length: {len(data)}"]
    lines += [f"{name}: {value}" for name, value in request.headers.items() if name.lower() != "host"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


async def _client(
    host: str, port: int, make_request: Callable[[int], bytes], until: float, result: LoadResult, worker: int
) -> None:
    """Keep-alive HTTP/1.1 client; reconnects when the server closes (moto's server does, every time)."""
    reader, writer = await asyncio.open_connection(host, port)
    n = 0
    try:
        while time.perf_counter() < until:
            payload = make_request(worker * 1_000_000 + n)
            n += 1
            started = time.perf_counter()
            writer.write(payload)
            await writer.drain()
            status_line = await reader.readline()
            length, close = 0, False
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value.strip())
                elif name.lower() == "connection" and value.strip().lower() == "close":
                    close = True
            await reader.readexactly(length)
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            result.requests += 1
            if b" 200 " not in status_line:
                result.errors += 1
            if close or not status_line:
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
    finally:
        writer.close()


def run_load(
    endpoint: str, make_request: Callable[[int], bytes], concurrency: int, seconds: float
) -> LoadResult:
    """``concurrency`` keep-alive clients sending ``make_request(n)`` for ``seconds``."""
    return run_mixed_load(endpoint, {"all": (concurrency, make_request)}, seconds)["all"]


def run_mixed_load(
    endpoint: str, groups: dict[str, tuple[int, Callable[[int], bytes]]], seconds: float
) -> dict[str, LoadResult]:
    """Several kinds of keep-alive clients at once: ``groups`` maps a name to (how many
    clients, their requests); one result per group."""
    host, port = endpoint.split("://", 1)[1].split(":")
    results = {name: LoadResult(0, 0, seconds, []) for name in groups}

    async def main() -> None:
        until = time.perf_counter() + seconds
        clients = []
        for name, (count, make) in groups.items():
            clients += [
                _client(host, int(port), make, until, results[name], len(clients) + i) for i in range(count)
            ]
        await asyncio.gather(*clients)

    asyncio.run(main())
    return results


def settle() -> None:
    """Flush dirty pages before a timed run, so that it does not pay for the writeback of what
    came before it (a generated mailbox, the previous run's archive or Maildir): right after
    generating 100,000 messages (1.2 GB) the first export ran 16.4 s and the next ones 14.0-14.7 s.
    Each contender's own writes stay in its time as before (mailcrate's S3 fsyncs its parts;
    ``zip`` and ``mbsync`` leave theirs to the kernel)."""
    os.sync()


class IdleCores:
    """How many of the machine's cores sat idle (idle + iowait in /proc/stat) while the blocks
    it was entered around ran, summed over them: whether a run was short of CPU, or waited on
    something else with cores to spare. Enter it around the timed span only (not a settle()
    or the clean-up between runs, which idle the cores and are not in the run's time)."""

    def __init__(self) -> None:
        self._idle = self._total = 0

    def __enter__(self) -> IdleCores:
        self._start = self._read()
        return self

    def __exit__(self, *exc: object) -> None:
        delta = [b - a for a, b in zip(self._start, self._read(), strict=True)]
        self._idle += delta[3] + delta[4]
        self._total += sum(delta[:8])

    @property
    def cores(self) -> float:
        return (os.cpu_count() or 1) * self._idle / (self._total or 1)

    @staticmethod
    def _read() -> list[int]:
        with open("/proc/stat") as f:
            return [int(x) for x in f.readline().split()[1:]]


def cpu_seconds(pid: int, children: bool = True) -> float:
    """User + system CPU of a process and (``children``) its live children, in seconds: a cost
    other load on a shared machine does not inflate the way it does wall time."""
    import psutil

    procs = [psutil.Process(pid)]
    if children:
        procs += procs[0].children(recursive=True)
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:  # a child that just ended
            pass
    return total


def median(values: list[float]) -> float:
    return statistics.median(values)


def scratch_dir(name: str) -> Path:
    base = Path(os.environ.get("BENCH_DIR", tempfile.gettempdir()))
    return Path(tempfile.mkdtemp(prefix=f"mailcrate-bench-{name}-", dir=base))
