"""Restore of an export into Dovecot over IMAP, in messages/s, vs ``mbsync`` pushing the same
messages from a local Maildir.

A realistic mailbox (seed 1, as export-embedded) is exported by a full job; the zip is
downloaded from the embedded S3 (SSE-KMS decrypted by the server).  Each repetition then runs,
interleaved, ``mailcrate export restore ZIP --imap ... --imap-master-user admin`` into a fresh
Dovecot user (verification of the archive included, as the command always does it) and
``mbsync`` pushing the same Maildir (``Sync Push``, ``Create Far``, ``PipelineDepth 50``) into
another fresh user.

    python -m benchmarks restore [--quick] [--size-mib 1024] [--repeat 3]

Target (issue 8): at least 1,000 messages/s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time

from benchmarks.exportlib import ExportServer, RssSampler, mb_s, run_timed, save
from benchmarks.harness import ROOT, median, scratch_dir
from mailcrate.mail.samples import generate, generate_maildir

MBSYNCRC = """FSync no

IMAPAccount bench
Host 127.0.0.1
Port {port}
User {user}*{master}
Pass {password}
SSLType None
AuthMechs LOGIN
PipelineDepth 50

IMAPStore remote
Account bench

MaildirStore local
Inbox {src}
SubFolders Maildir++

Channel push
Far :remote:
Near :local:
Patterns *
Create Far
Sync Push
SyncState {state}/
"""


def _count(dv, user: str) -> int:  # type: ignore[no-untyped-def]
    from imapclient import IMAPClient

    with IMAPClient(dv.host, port=dv.port, ssl=False) as c:
        c.login(f"{user}*{dv.master_user}", dv.master_password)
        return sum(c.folder_status(name, [b"MESSAGES"])[b"MESSAGES"] for _f, _s, name in c.list_folders())


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks restore")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--messages", type=int, help="N small messages (~10 KiB) instead of --size-mib realistic")
    a = p.parse_args(argv)
    if a.quick:
        a.size_mib, a.repeat = min(a.size_mib, 100), 1
    sys.path.insert(0, str(ROOT))
    from tests.servers import start_dovecot

    work = scratch_dir("restore")
    work.chmod(0o755)
    users = {f"r{i}": "pw" for i in range(a.repeat)} | {f"m{i}": "pw" for i in range(a.repeat)}
    (work / "dovecot").mkdir()
    dv = start_dovecot(work / "dovecot", users=users)
    server = ExportServer(work / "mc")
    try:
        user, root = server.new_user("alice")
        size = (
            {"messages": a.messages, "total_bytes": a.messages * 10240}
            if a.messages
            else {"total_bytes": a.size_mib << 20}
        )
        sample = generate(root, **size, seed=a.seed, calendar_items=0)
        run = server.export(user, keep=True)
        zip_path = work / "export.zip"
        body = server.s3.get_object(Bucket=server.bucket, Key=run.describe["S3Path"])["Body"]
        with open(zip_path, "wb") as f:
            for chunk in body.iter_chunks(1 << 20):
                f.write(chunk)
        server.stop()
        src = work / "local" / "Maildir"
        generate_maildir(src, **size, seed=a.seed)  # the same messages, as a Maildir
        (work / "pw").write_text(dv.master_password)
        restore_cmd = shutil.which("mailcrate") or str(ROOT / ".venv" / "bin" / "mailcrate")
        runs: dict[str, list[dict]] = {"mailcrate restore": [], "mbsync push": []}
        out = None
        for rep in range(a.repeat):
            cmd = [
                restore_cmd, "export", "restore", str(zip_path), "--imap", dv.url, "--imap-user", f"r{rep}",
                "--imap-master-user", dv.master_user, "--imap-password-file", str(work / "pw"), "--output", "json",
            ]  # fmt: skip
            started = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            with RssSampler(proc.pid) as rss:
                stdout, stderr = proc.communicate()
            seconds = time.perf_counter() - started
            if proc.returncode != 0:
                raise RuntimeError(f"restore failed: {stderr.decode()[-2000:]}")
            out = stdout.decode()
            got = _count(dv, f"r{rep}")
            runs["mailcrate restore"].append({"seconds": seconds, "peak_rss": rss.peak, "messages": got})
            rc = work / f"mbsyncrc{rep}"
            state = work / f"state{rep}"
            state.mkdir()
            rc.write_text(
                MBSYNCRC.format(
                    port=dv.port,
                    user=f"m{rep}",
                    master=dv.master_user,
                    password=dv.master_password,
                    src=src,
                    state=state,
                )
            )
            t = run_timed(["mbsync", "-q", "-c", str(rc), "push"])
            t["messages"] = _count(dv, f"m{rep}")
            runs["mbsync push"].append(t)
            print(
                f"  rep {rep + 1}: mailcrate restore {seconds:.2f} s ({got} msgs), "
                f"mbsync push {t['seconds']:.2f} s ({t['messages']} msgs)",
                flush=True,
            )
    finally:
        server.stop()
        dv.stop()
        shutil.rmtree(work, ignore_errors=True)

    n = sample.messages
    med = {k: median([x["seconds"] for x in v]) for k, v in runs.items()}
    print(f"\nrestore: {n:,} messages, {sample.bytes / 2**20:,.0f} MiB, into Dovecot over loopback IMAP")
    print(f"{'contender':<18} {'seconds':>9} {'msgs/s':>9} {'MB/s':>8} {'restored':>9}")
    for k, v in runs.items():
        print(
            f"{k:<18} {med[k]:>9.2f} {n / med[k]:>9.0f} {mb_s(sample.bytes, med[k]):>8.1f} {v[-1]['messages']:>9,}"
        )
    rate = n / med["mailcrate restore"]
    print(
        f"\nmailcrate restore: {rate:.0f} messages/s (target >= 1,000: {'met' if rate >= 1000 else 'MISSED'})"
    )
    try:
        report = json.loads(out or "{}")
    except json.JSONDecodeError:
        report = {"raw": (out or "")[-500:]}
    save(
        "restore",
        {
            "quick": a.quick,
            "shape": f"{a.messages} small messages" if a.messages else f"{a.size_mib} MiB realistic",
            "mailbox": {"messages": n, "bytes": sample.bytes},
            "repeat": a.repeat,
            "median_seconds": med,
            "runs": runs,
            "mailcrate_msgs_s": round(rate, 1),
            "mbsync_msgs_s": round(n / med["mbsync push"], 1),
            "ratio_vs_mbsync": round(med["mailcrate restore"] / med["mbsync push"], 3),
            "restore_report": report,
            "targets": {"msgs_s>=1000": rate >= 1000},
        },
    )
    return 0
