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

Figures: wall time of each, the ratio (target <= 1.5x mbsync's), peak RSS of the migrate
process and of serve (with its worker children) while migrate runs (target: the sum < 400 MB;
the two peaks are added even if they fall at different times, so the figure is an upper bound),
and the messages each target user holds afterwards (both must hold every source message).

    python -m benchmarks migrate [--size-mib 2048] [--users 25] [--parallel 4] [--seed 1]

The shared 2-core machine is slow: run ``--size-mib 256`` for a ratio, ``--size-mib 2048`` (the
issue's >= 2 GiB) on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from benchmarks.exportlib import (
    KEY,
    PREFIX,
    REGION,
    RESULTS,
    SECRET,
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


def _mbsyncrc(work: Path, src, dst, users: list[str]) -> Path:  # type: ignore[no-untyped-def]
    parts = ["FSync no\n\n"]
    for u in users:
        for side, dv, login in (("src", src, u), ("dst", dst, "m" + u[1:])):
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
    rc.write_text("".join(parts))
    return rc


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks migrate")
    p.add_argument("--quick", action="store_true", help="--size-mib 64 --users 5")
    p.add_argument("--size-mib", type=int, default=2048, help="all mailboxes together")
    p.add_argument("--users", type=int, default=25)
    p.add_argument("--parallel", type=int, default=4, help="users at once (both contenders)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--py-spy", action="store_true", help="py-spy stacks of migrate and serve -> results/")
    a = p.parse_args(argv)
    if a.quick:
        a.size_mib, a.users = min(a.size_mib, 64), min(a.users, 5)
    sys.path.insert(0, str(ROOT))
    from tests.servers import start_dovecot

    work = scratch_dir("migrate")
    work.chmod(0o755)
    sources = [f"s{i:02d}" for i in range(a.users)]
    (work / "src").mkdir()
    (work / "dst").mkdir()
    src = start_dovecot(work / "src", users={u: "pw" for u in sources})
    dst = start_dovecot(work / "dst", users={f"{c}{i:02d}": "pw" for i in range(a.users) for c in "tm"})
    server = ExportServer(work / "mc")
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
        print(
            f"  {a.users} mailboxes, {messages:,} messages, {nbytes / 2**20:,.0f} MiB on the source",
            flush=True,
        )
        (work / "map.csv").write_text("".join(f"{u}@{server.domain},t{u[1:]}\n" for u in sources))
        (work / "master").write_text(dst.master_password)
        env = dict(
            os.environ,
            AWS_ACCESS_KEY_ID=KEY,
            AWS_SECRET_ACCESS_KEY=SECRET,
            AWS_DEFAULT_REGION=REGION,
            AWS_CONFIG_FILE="/dev/null",
            AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        )
        cmd = [
            sys.executable, "-m", "mailcrate.cli.main", "migrate", "run", "--organization-id", server.org,
            "--endpoint-url", server.proc.endpoint, "--bucket", server.bucket, "--prefix", PREFIX,
            "--kms-key", server.key_arn, "--role", server.role_arn, "--login-map", str(work / "map.csv"),
            "--imap", dst.url, "--imap-master-user", dst.master_user, "--imap-password-file", str(work / "master"),
            "--state", str(work / "state.sqlite"), "--work-dir", str(work / "downloads"),
            "--parallel", str(a.parallel), "--output", "json",
        ]  # fmt: skip
        settle()
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        spies = (
            [
                PySpy(proc.pid, RESULTS / "profile-migrate.txt"),
                PySpy(server.pid, RESULTS / "profile-migrate-serve.txt"),
            ]
            if a.py_spy
            else []
        )
        with (
            RssSampler(proc.pid) as rss,
            RssSampler(server.pid, children=True) as serve_rss,
            ExitStack() as stack,
        ):
            for spy in spies:
                stack.enter_context(spy)
            out, err = proc.communicate()
        migrate_s = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"migrate failed: {err.decode()[-3000:]}")
        got_migrate = sum(_count(dst, f"t{u[1:]}") for u in sources)
        print(f"  migrate {migrate_s:.1f} s, {got_migrate:,} messages", flush=True)

        rc = _mbsyncrc(work, src, dst, sources)
        groups = [sources[i :: a.parallel] for i in range(a.parallel)]
        script = " ".join(f"mbsync -q -c {rc} {' '.join(g)} &" for g in groups if g) + " wait"
        mbsync = run_timed(script, shell=True)
        got_mbsync = sum(_count(dst, f"m{u[1:]}") for u in sources)
        print(f"  mbsync {mbsync['seconds']:.1f} s, {got_mbsync:,} messages", flush=True)
    finally:
        server.stop()
        src.stop()
        dst.stop()
        shutil.rmtree(work, ignore_errors=True)

    ratio = migrate_s / mbsync["seconds"]
    report = json.loads(out or b"{}")
    phases: dict[str, float] = {}
    for row in report.get("users", []):
        for phase, sec in (row.get("seconds") or {}).items():
            phases[phase] = phases.get(phase, 0.0) + sec
    print("  per-user phases, summed over users: " + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items()))
    peak = rss.peak + serve_rss.peak
    print(
        f"\nmigrate: {a.users} mailboxes, {messages:,} messages, {nbytes / 2**20:,.0f} MiB, --parallel {a.parallel}"
    )
    print(f"{'contender':<10} {'seconds':>9} {'MB/s':>8} {'messages':>10} {'peak RSS':>10}")
    print(
        f"{'migrate':<10} {migrate_s:>9.1f} {mb_s(nbytes, migrate_s):>8.1f} {got_migrate:>10,} {peak / 2**20:>8.0f} MiB"
    )
    print(
        f"{'mbsync':<10} {mbsync['seconds']:>9.1f} {mb_s(nbytes, mbsync['seconds']):>8.1f} {got_mbsync:>10,} "
        f"{mbsync['peak_rss'] / 2**20:>8.0f} MiB"
    )
    print(f"\nratio migrate/mbsync {ratio:.2f} (target <= 1.5: {'met' if ratio <= 1.5 else 'MISSED'}); "
          f"peak RSS migrate {rss.peak / 2**20:.0f} + serve {serve_rss.peak / 2**20:.0f} MiB "
          f"(target < 400 MB: {'met' if peak < 400e6 else 'MISSED'})")  # fmt: skip
    save(
        "migrate",
        {
            "users": a.users,
            "parallel": a.parallel,
            "mailboxes": {"messages": messages, "bytes": nbytes},
            "seconds": {"migrate": round(migrate_s, 2), "mbsync": round(mbsync["seconds"], 2)},
            "ratio_vs_mbsync": round(ratio, 3),
            "peak_rss": {
                "migrate": rss.peak,
                "serve": serve_rss.peak,
                "sum": peak,
                "mbsync": mbsync["peak_rss"],
            },
            "arrived": {"migrate": got_migrate, "mbsync": got_mbsync, "source": messages},
            "targets": {"ratio<=1.5": ratio <= 1.5, "rss<400MB": peak < 400e6},
            "report_totals": report.get("totals"),
            "phase_seconds_summed": {k: round(v, 2) for k, v in phases.items()},
        },
    )
    return 0
