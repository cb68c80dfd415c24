"""``mailcrate migrate`` of a whole organization vs ``mbsync`` IMAP -> IMAP, in one run.

Twenty-five mailboxes (realistic mail, :func:`mailcrate.mail.samples.generate_maildir`, one
seed per user) live on a source Dovecot; each is a WorkMail user of ``mailcrate serve`` bound to
it (master-user login). Contenders, each into users of their own on a second Dovecot:

* ``mailcrate migrate run`` through serve: export jobs (reading the source over IMAP, zip,
  SSE-KMS into the embedded S3), download, verification (SHA-384 and every item), restore
  (master-user logins), the state file;
* ``mbsync`` pushing every mailbox straight from the source to the target IMAP server
  (``Create Far``, ``Sync Push``, ``PipelineDepth 50``), as many processes at once as migrate
  works on users (``--parallel``).

Every migrate run gets an organization of its own in serve (bound to the same source
mailboxes: migrate reuses an export of the last 24 hours) and target users of its own; the
source is read once before the first round (Dovecot builds its index and cache then, which
would otherwise fall on the first contender).

Figures per run: wall time, the ratio of the medians (target <= 1.5x mbsync's), peak RSS of
the migrate process and of serve (with its worker children: their peaks are added even if
they fall at different times, an upper bound; target: the sum < 400 MB), CPU seconds of each
process (migrate, serve, its export workers, the source and target Dovecots; mbsync), the
per-user phases summed, and the messages each target user holds afterwards (every contender
must hold every source message).

    python -m benchmarks migrate [--size-mib 2048] [--users 25] [--parallel 4] [--rounds 3]
                                 [--base-src OTHER/src] [--also LABEL=ARGS]

``--rounds``: interleaved rounds (the order rotates each round), medians reported;
``--base-src``: also migrate with another checkout's code, through a serve of that checkout
(an A/B of both sides in one run); ``--also``:
also migrate with extra options, ``ENV:NAME=VALUE`` settings or ``SERVE:FLAG`` flags of a
serve of its own. The shared 2-core machine is
slow: ``--size-mib 256`` for quick ratios, the default 2048 (the issue's >= 2 GiB) for figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from benchmarks.exportlib import (
    KEY,
    PREFIX,
    REGION,
    RESULTS,
    SECRET,
    CpuMeter,
    ExportServer,
    PySpy,
    RssSampler,
    mb_s,
    run_timed,
    save,
)
from benchmarks.harness import ROOT, scratch_dir, settle
from benchmarks.restore import _count
from mailcrate.mail.samples import generate_maildir

ACCOUNT = """IMAPAccount {name}
Host 127.0.0.1
Port {port}
User {user}*{master}
Pass {password}
SSLType None
AuthMechs LOGIN
PipelineDepth 50

IMAPStore {name}
Account {name}

"""
CHANNEL = """Channel {name}
Far :dst{name}:
Near :src{name}:
Patterns *
Create Far
Sync Push
SyncState {state}/

"""


def _mbsyncrc(work: Path, src, dst, users: list[str], tag: str) -> Path:  # type: ignore[no-untyped-def]
    parts = ["FSync no\n\n"]
    for u in users:
        for side, dv, login in (("src", src, u), ("dst", dst, tag + u[1:])):
            parts.append(
                ACCOUNT.format(
                    name=f"{side}{u}",
                    port=dv.port,
                    user=login,
                    master=dv.master_user,
                    password=dv.master_password,
                )
            )
        state = work / "mbsync-state" / u
        state.mkdir(parents=True)
        parts.append(CHANNEL.format(name=u, state=state))
    rc = work / "mbsyncrc"
    work.mkdir(exist_ok=True)
    rc.write_text("".join(parts))
    return rc


def _warm(dv, users: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Dovecot builds a folder's index and cache the first time it is read: one FETCH of every
    message's size, date and flags per folder, so that the first contender does not pay for
    the second (an unwarmed source cost migrate's export 4.8 CPU-s of Dovecot against
    mbsync's 1.3, run after it, at 256 MiB)."""
    from imapclient import IMAPClient

    for u in users:
        with IMAPClient(dv.host, port=dv.port, ssl=False) as c:
            c.login(f"{u}*{dv.master_user}", dv.master_password)
            for _f, _s, name in c.list_folders():
                if c.select_folder(name, readonly=True)[b"EXISTS"]:
                    c.fetch(c.search(), ["UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE"])


def _new_org(server: ExportServer, sources: list[str], src) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A fresh organization in ``server`` whose users are bound to the source mailboxes (each
    migrate run needs its own: migrate reuses a COMPLETED export of the last 24 hours); the
    address -> user-name map."""
    server.org = server.wm.create_organization(Alias="bench" + uuid.uuid4().hex[:10])["OrganizationId"]
    server.domain = server.wm.describe_organization(OrganizationId=server.org)["DefaultMailDomain"]
    for u in sources:
        user_id, _ = server.new_user(u)
        server.bind_source(
            user_id,
            {
                "imap": {
                    "url": src.url,
                    "user": u,
                    "password": src.master_password,
                    "master_user": src.master_user,
                },
                "owner": f"{u}@{server.domain}",
            },
        )
    return {f"{u}@{server.domain}": u for u in sources}


def _migrate(
    server: ExportServer, src, dst, sources, work: Path, tag: str, a, pythonpath: str | None, extra: list[str]
):  # type: ignore[no-untyped-def]
    """One ``migrate run`` into the target users ``<tag><n>``: seconds, peak RSS, CPU, report."""
    addresses = _new_org(server, sources, src)
    run_dir = work / f"run-{tag}"
    run_dir.mkdir()
    (run_dir / "map.csv").write_text("".join(f"{addr},{tag}{u[1:]}\n" for addr, u in addresses.items()))
    env = dict(
        os.environ,
        AWS_ACCESS_KEY_ID=KEY,
        AWS_SECRET_ACCESS_KEY=SECRET,
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
    )
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    env.update(x[4:].split("=", 1) for x in extra if x.startswith("ENV:"))
    extra = [x for x in extra if not x.startswith("ENV:")]
    cmd = [
        sys.executable, "-m", "mailcrate.cli.main", "migrate", "run", "--organization-id", server.org,
        "--endpoint-url", server.proc.endpoint, "--bucket", server.bucket, "--prefix", PREFIX,
        "--kms-key", server.key_arn, "--role", server.role_arn, "--login-map", str(run_dir / "map.csv"),
        "--imap", dst.url, "--imap-master-user", dst.master_user, "--imap-password-file", str(work / "master"),
        "--state", str(run_dir / "state.sqlite"), "--work-dir", str(run_dir / "downloads"),
        "--parallel", str(a.parallel), "--output", "json", *extra,
    ]  # fmt: skip
    settle()
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    spies: list = (
        [
            PySpy(proc.pid, RESULTS / f"profile-migrate-{tag}.txt"),
            PySpy(server.pid, RESULTS / f"profile-migrate-serve-{tag}.txt"),
        ]
        if a.py_spy
        else []
    )
    for spy in spies:  # only the threads holding the GIL: where the interpreter's CPU goes
        spy.cmd.append("--gil")
    if a.perf:
        spies.append(Perf(proc.pid, RESULTS / f"perf-migrate-{tag}.data"))
    with (
        RssSampler(proc.pid) as rss,
        RssSampler(server.pid, children=True) as serve_rss,
        CpuMeter(server.pid) as serve_cpu,
        CpuMeter(src.process.pid) as src_cpu,
        CpuMeter(dst.process.pid) as dst_cpu,
        ExitStack() as stack,
    ):
        for spy in spies:
            stack.enter_context(spy)
        out, err, usage = _communicate(proc)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"migrate failed: {err.decode()[-3000:]}")
    report = json.loads(out or b"{}")
    phases: dict[str, float] = {}
    for row in report.get("users", []):
        for phase, sec in (row.get("seconds") or {}).items():
            phases[phase] = phases.get(phase, 0.0) + sec
    return {
        "seconds": seconds,
        "peak_rss": rss.peak + serve_rss.peak,
        "rss": {"migrate": rss.peak, "serve": serve_rss.peak, "serve_parts": serve_rss.peaks},
        "cpu": {
            "migrate": usage.ru_utime + usage.ru_stime,
            "serve": serve_cpu.own_seconds,
            "worker": serve_cpu.children_seconds,
            "dovecot-src": src_cpu.children_seconds + src_cpu.own_seconds,
            "dovecot-dst": dst_cpu.children_seconds + dst_cpu.own_seconds,
        },
        "messages": sum(_count(dst, f"{tag}{u[1:]}") for u in sources),
        "phases": phases,
        "totals": report.get("totals"),
    }


def _communicate(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes, resource.struct_rusage]:
    """The process's output and its own rusage (``wait4``: not that of the profilers the run
    started beside it, which RUSAGE_CHILDREN would add)."""
    chunks: dict[str, bytes] = {}

    def drain(name: str, stream: Any) -> None:
        chunks[name] = stream.read()

    readers = [
        threading.Thread(target=drain, args=(n, s)) for n, s in (("out", proc.stdout), ("err", proc.stderr))
    ]
    for t in readers:
        t.start()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    for t in readers:
        t.join()
    return chunks["out"], chunks["err"], usage


class Perf:
    """``perf record -g`` on a pid while the context is open (native stacks: libraries, kernel)."""

    def __init__(self, pid: int, out: Path) -> None:
        self.cmd = ["perf", "record", "-F", "499", "-g", "-p", str(pid), "-o", str(out)]
        self.out = out
        self.popen: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Perf:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.popen = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.popen is not None:
            self.popen.send_signal(2)
            try:
                self.popen.wait(60)
            except subprocess.TimeoutExpired:
                self.popen.kill()


def _mbsync(src, dst, sources, work: Path, tag: str, a):  # type: ignore[no-untyped-def]
    """``mbsync`` pushing every source mailbox into the target users ``<tag><n>``."""
    rc = _mbsyncrc(work / f"run-{tag}", src, dst, sources, tag)
    groups = [sources[i :: a.parallel] for i in range(a.parallel)]
    script = " ".join(f"mbsync -q -c {rc} {' '.join(g)} &" for g in groups if g) + " wait"
    with CpuMeter(src.process.pid) as src_cpu, CpuMeter(dst.process.pid) as dst_cpu:
        run = run_timed(script, shell=True)
    return {
        "seconds": run["seconds"],
        "peak_rss": run["peak_rss"],
        "cpu": {
            "mbsync": run["cpu_seconds"],
            "dovecot-src": src_cpu.children_seconds + src_cpu.own_seconds,
            "dovecot-dst": dst_cpu.children_seconds + dst_cpu.own_seconds,
        },
        "messages": sum(_count(dst, f"{tag}{u[1:]}") for u in sources),
    }


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks migrate")
    p.add_argument("--quick", action="store_true", help="--size-mib 64 --users 5")
    p.add_argument("--size-mib", type=int, default=2048, help="all mailboxes together")
    p.add_argument("--users", type=int, default=25)
    p.add_argument("--parallel", type=int, default=4, help="users at once (both contenders)")
    p.add_argument("--rounds", type=int, default=1, help="interleaved rounds (medians reported)")
    p.add_argument(
        "--base-src", help="also run migrate (and its serve) from another checkout's src/, interleaved"
    )
    p.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="LABEL=ARGS",
        help="also run migrate with these extra options, ENV:NAME=VALUE environment settings and "
        "SERVE:FLAG serve flags (a serve of its own), interleaved (e.g. 'e4=--exports 4', "
        "'arenas8=ENV:MALLOC_ARENA_MAX=8', 'p1=SERVE:--export-processes SERVE:1')",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--py-spy", action="store_true", help="py-spy stacks of migrate and serve -> results/")
    p.add_argument("--perf", action="store_true", help="perf record -g of the migrate process -> results/")
    a = p.parse_args(argv)
    if a.quick:
        a.size_mib, a.users = min(a.size_mib, 64), min(a.users, 5)
    sys.path.insert(0, str(ROOT))
    from tests.servers import start_dovecot

    variants = {"migrate": [], **({"base": []} if a.base_src else {})}
    variants.update((k, v.split()) for k, _, v in (x.partition("=") for x in a.also))
    contenders = [*variants, "mbsync"]
    work = scratch_dir("migrate")
    work.chmod(0o755)
    sources = [f"s{i:02d}" for i in range(a.users)]
    tags = [f"c{i}r{r}x" for r in range(a.rounds) for i in range(len(contenders))]
    (work / "src").mkdir()
    (work / "dst").mkdir()
    src = start_dovecot(work / "src", users={u: "pw" for u in sources})
    dst = start_dovecot(work / "dst", users={f"{t}{i:02d}": "pw" for i in range(a.users) for t in tags})
    server = ExportServer(work / "mc")
    # the base's migrate goes through a serve (and export workers) of the base tree as well, so
    # that the A/B covers both sides of the RSS target
    servers = {"base": ExportServer(work / "mc-base", src=Path(a.base_src))} if a.base_src else {}
    for label, args in variants.items():  # SERVE:FLAG: a serve of this tree with these flags
        flags = [x[6:] for x in args if x.startswith("SERVE:")]
        if flags:
            servers[label] = ExportServer(work / f"mc-{label}", *flags)
            variants[label] = [x for x in args if not x.startswith("SERVE:")]
    runs: dict[str, list[dict]] = {c: [] for c in contenders}
    try:
        messages = nbytes = 0
        for i, u in enumerate(sources):
            sample = generate_maildir(
                src.maildir(u),
                total_bytes=(a.size_mib << 20) // a.users,
                seed=a.seed + i,
                owner=(src._uid, src._gid),
            )
            messages += sample.messages
            nbytes += sample.bytes
        print(
            f"  {a.users} mailboxes, {messages:,} messages, {nbytes / 2**20:,.0f} MiB on the source",
            flush=True,
        )
        (work / "master").write_text(dst.master_password)
        _warm(src, sources)
        for r in range(a.rounds):
            order = contenders[r % len(contenders) :] + contenders[: r % len(contenders)]
            for c in order:
                tag = f"c{contenders.index(c)}r{r}x"
                if c == "mbsync":
                    res = _mbsync(src, dst, sources, work, tag, a)
                else:
                    res = _migrate(
                        servers.get(c, server),
                        src,
                        dst,
                        sources,
                        work,
                        tag,
                        a,
                        a.base_src if c == "base" else None,
                        variants[c],
                    )
                runs[c].append(res)
                cpu = ", ".join(f"{k} {v:.1f}" for k, v in res["cpu"].items())
                print(
                    f"  round {r + 1} {c:<8} {res['seconds']:6.1f} s, {res['messages']:,} messages, "
                    f"peak RSS {res['peak_rss'] / 2**20:.0f} MiB, CPU-s: {cpu}",
                    flush=True,
                )
                if c != "mbsync":
                    print(
                        "    per-user phases summed: "
                        + ", ".join(f"{k} {v:.1f} s" for k, v in res["phases"].items())
                    )
    finally:
        server.stop()
        for other in servers.values():
            other.stop()
        src.stop()
        dst.stop()
        shutil.rmtree(work, ignore_errors=True)

    med = {c: statistics.median(x["seconds"] for x in runs[c]) for c in contenders}
    rss = {c: statistics.median(x["peak_rss"] for x in runs[c]) for c in contenders}
    print(f"\nmigrate: {a.users} mailboxes, {messages:,} messages, {nbytes / 2**20:,.0f} MiB, --parallel {a.parallel}, "
          f"medians of {a.rounds} round(s)")  # fmt: skip
    print(f"{'contender':<10} {'seconds':>9} {'MB/s':>8} {'vs mbsync':>10} {'peak RSS':>10} {'CPU-s':>8}")
    for c in contenders:
        cpu = statistics.median(sum(x["cpu"].values()) for x in runs[c])
        print(
            f"{c:<10} {med[c]:>9.1f} {mb_s(nbytes, med[c]):>8.1f} {med[c] / med['mbsync']:>9.2f}x "
            f"{rss[c] / 2**20:>8.0f} MiB {cpu:>8.1f}"
        )
    for c in contenders:
        if not all(x["messages"] == messages for x in runs[c]):
            raise RuntimeError(
                f"{c}: not every message arrived: {[x['messages'] for x in runs[c]]} of {messages}"
            )
    ratio = med["migrate"] / med["mbsync"]
    peak = max(x["peak_rss"] for x in runs["migrate"])
    print(f"\nratio migrate/mbsync {ratio:.2f} (target <= 1.5: {'met' if ratio <= 1.5 else 'MISSED'}); "
          f"highest peak RSS migrate + serve {peak / 2**20:.0f} MiB (target < 400 MB: {'met' if peak < 400e6 else 'MISSED'})")  # fmt: skip
    save(
        "migrate",
        {
            "users": a.users,
            "parallel": a.parallel,
            "rounds": a.rounds,
            "mailboxes": {"messages": messages, "bytes": nbytes},
            "median_seconds": {c: round(v, 2) for c, v in med.items()},
            "ratio_vs_mbsync": round(ratio, 3),
            "targets": {"ratio<=1.5": ratio <= 1.5, "rss<400MB": peak < 400e6},
            "runs": runs,
        },
    )
    return 0
