"""Restore of an export into Dovecot over IMAP, in messages/s, vs ``mbsync`` pushing the same
messages from a local Maildir.

A realistic mailbox (seed 1, as export-embedded) is exported by a full job; the zip is
downloaded from the embedded S3 (SSE-KMS decrypted by the server).  Each repetition then runs,
interleaved, ``mailcrate export restore ZIP --imap ... --imap-master-user admin`` into a fresh
Dovecot user (verification of the archive included, as the command always does it) and
``mbsync`` pushing the same Maildir (``Sync Push``, ``Create Far``, ``PipelineDepth 50``) into
another fresh user.

    python -m benchmarks restore [--quick] [--size-mib 1024] [--repeat 3] [--messages N]
                                 [--baseline-src DIR] [--no-log] [--fresh]

The export zip, its export log and the Maildir are cached per shape and seed under
``$BENCH_DIR`` (default: the temp dir) as ``mailcrate-restore-cache-<shape>-seed<N>``, so only
the first run pays for generating and exporting them (``--fresh`` rebuilds). The log is saved
beside the zip as ``export download`` does, so the restore checks the zip's SHA-384 against it
(``--no-log``: without). ``--baseline-src DIR`` adds a contender running the same command with
``PYTHONPATH=DIR`` (e.g. ``git archive HEAD src | tar -x -C /tmp/before``), for an A/B in the same
run.

Target (issue 8): at least 1,000 messages/s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.exportlib import ExportServer, RssSampler, mb_s, run_timed, save
from benchmarks.harness import ROOT, median, scratch_dir, settle
from mailcrate.admin.download import log_key_for
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


def _cached_inputs(a: argparse.Namespace, base: Path, shape: str) -> Path:
    """The export zip + log of a generated mailbox and the same messages as a Maildir, built once
    per shape and seed (a 1 GiB mailbox takes minutes to generate and export)."""
    cache = base / f"mailcrate-restore-cache-{shape}-seed{a.seed}"
    if (cache / "sample.json").is_file() and not a.fresh:
        print(f"  using cached export and Maildir in {cache}", flush=True)
        return cache
    shutil.rmtree(cache, ignore_errors=True)
    build = scratch_dir("restore-build")
    server = ExportServer(build / "mc")
    try:
        user, root = server.new_user("alice")
        size = (
            {"messages": a.messages, "total_bytes": a.messages * 10240}
            if a.messages
            else {"total_bytes": a.size_mib << 20}
        )
        sample = generate(root, **size, seed=a.seed, calendar_items=0)
        run = server.export(user, keep=True)
        tmp = build / "cache"
        tmp.mkdir()
        key = run.describe["S3Path"]
        key = key.split("/", 3)[-1] if key.startswith("s3://") else key
        body = server.s3.get_object(Bucket=server.bucket, Key=key)["Body"]
        with open(tmp / "export.zip", "wb") as f:
            for chunk in body.iter_chunks(1 << 20):
                f.write(chunk)
        log = server.s3.get_object(Bucket=server.bucket, Key=log_key_for(key))["Body"].read()
        (tmp / "export.json").write_bytes(log)
        server.stop()
        generate_maildir(tmp / "Maildir", **size, seed=a.seed)  # the same messages, as a Maildir
        (tmp / "sample.json").write_text(json.dumps({"messages": sample.messages, "bytes": sample.bytes}))
        tmp.chmod(0o755)
        tmp.rename(cache)
    finally:
        server.stop()
        shutil.rmtree(build, ignore_errors=True)
    return cache


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks restore")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--messages", type=int, help="N small messages (~10 KiB) instead of --size-mib realistic")
    p.add_argument("--baseline-src", type=Path, help="also run the restore with PYTHONPATH=DIR (A/B)")
    p.add_argument("--no-log", action="store_true", help="restore without the export log beside the zip")
    p.add_argument("--fresh", action="store_true", help="rebuild the cached export zip and Maildir")
    a = p.parse_args(argv)
    if a.quick:
        a.size_mib, a.repeat = min(a.size_mib, 100), 1
    sys.path.insert(0, str(ROOT))
    from tests.servers import start_dovecot

    work = scratch_dir("restore")
    work.chmod(0o755)
    users = {f"r{i}": "pw" for i in range(a.repeat)} | {f"m{i}": "pw" for i in range(a.repeat)}
    users |= {f"b{i}": "pw" for i in range(a.repeat)}
    (work / "dovecot").mkdir()
    dv = start_dovecot(work / "dovecot", users=users)
    try:
        shape = f"{a.messages}msgs" if a.messages else f"{a.size_mib}mib"
        cache = _cached_inputs(a, Path(os.environ.get("BENCH_DIR", tempfile.gettempdir())), shape)
        n, nbytes = json.loads((cache / "sample.json").read_text()).values()
        zip_path = work / "export.zip"
        os.link(cache / "export.zip", zip_path)
        if not a.no_log:
            os.link(cache / "export.json", work / "export.json")  # found beside the zip, as downloaded
        src = work / "Maildir"  # hard links: mbsync renames files (UIDs), never the cached tree
        subprocess.run(["cp", "-al", str(cache / "Maildir"), str(src)], check=True)
        (work / "pw").write_text(dv.master_password)
        restore_cmd = shutil.which("mailcrate") or str(ROOT / ".venv" / "bin" / "mailcrate")
        contenders = {"mailcrate restore": ("r", None)}
        if a.baseline_src:
            contenders["baseline restore"] = ("b", str(a.baseline_src))
        runs: dict[str, list[dict]] = {name: [] for name in contenders} | {"mbsync push": []}
        out = None
        for rep in range(a.repeat):
            line = []
            for name, (prefix, pythonpath) in contenders.items():
                cmd = [
                    restore_cmd, "export", "restore", str(zip_path), "--imap", dv.url, "--imap-user",
                    f"{prefix}{rep}", "--imap-master-user", dv.master_user, "--imap-password-file",
                    str(work / "pw"), "--output", "json",
                ]  # fmt: skip
                env = dict(os.environ, PYTHONPATH=pythonpath) if pythonpath else None
                settle()  # as run_timed does for mbsync: not paying for the last run's writeback
                started = time.perf_counter()
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
                with RssSampler(proc.pid) as rss:
                    stdout, stderr = proc.communicate()
                seconds = time.perf_counter() - started
                if proc.returncode != 0:
                    raise RuntimeError(f"{name} failed: {stderr.decode()[-2000:]}")
                if pythonpath is None:
                    out = stdout.decode()
                got = _count(dv, f"{prefix}{rep}")
                runs[name].append({"seconds": seconds, "peak_rss": rss.peak, "messages": got})
                line.append(f"{name} {seconds:.2f} s ({got} msgs)")
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
            line.append(f"mbsync push {t['seconds']:.2f} s ({t['messages']} msgs)")
            print(f"  rep {rep + 1}: " + ", ".join(line), flush=True)
    finally:
        dv.stop()
        shutil.rmtree(work, ignore_errors=True)

    med = {k: median([x["seconds"] for x in v]) for k, v in runs.items()}
    log = "without" if a.no_log else "with"
    print(f"\nrestore: {n:,} messages, {nbytes / 2**20:,.0f} MiB, {log} the export log, into Dovecot")
    print(f"{'contender':<18} {'seconds':>9} {'msgs/s':>9} {'MB/s':>8} {'restored':>9}")
    for k, v in runs.items():
        print(
            f"{k:<18} {med[k]:>9.2f} {n / med[k]:>9.0f} {mb_s(nbytes, med[k]):>8.1f} {v[-1]['messages']:>9,}"
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
            "mailbox": {"messages": n, "bytes": nbytes},
            "export_log": not a.no_log,
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
