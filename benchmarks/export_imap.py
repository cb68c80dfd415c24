"""Export from Dovecot over IMAP vs ``mbsync`` pulling the same mailbox to a local Maildir.

A realistic mailbox (:func:`mailcrate.mail.samples.generate_maildir`, same seed as
export-embedded, so the same mail) is written straight into a throw-away Dovecot's Maildir
(tests/servers), and indexed once by a warm-up pass.  mailcrate's user is bound to that
IMAP account (master-user login ``alice*admin``); each repetition runs, interleaved, a full
export job (start -> ``COMPLETED``, zip + SSE-KMS to the embedded S3) and ``mbsync`` pulling all
folders into a fresh local Maildir on the same filesystem (``FSync no``: the fastest setting
for the baseline; isync 1.4 ``Far``/``Near`` syntax, ``PipelineDepth 50``).

    python -m benchmarks export-imap [--quick] [--size-mib 1024] [--repeat 3]

Target (issue 8): mailcrate <= 0.5x the time of mbsync.
"""

from __future__ import annotations

import argparse
import shutil
import sys

from benchmarks.exportlib import RESULTS, ExportServer, fmt_mib, mb_s, run_timed, save, tree_bytes
from benchmarks.harness import ROOT, median, scratch_dir
from mailcrate.mail.samples import generate_maildir

MBSYNCRC = """FSync no

IMAPAccount bench
Host 127.0.0.1
Port {port}
User alice*{master}
Pass {password}
SSLType None
AuthMechs LOGIN
PipelineDepth 50

IMAPStore remote
Account bench

MaildirStore local
Path {dest}/
Inbox {dest}/INBOX
SubFolders Verbatim

Channel alice
Far :remote:
Near :local:
Patterns *
Create Near
Sync Pull
SyncState *
"""


def _warm(dv) -> None:  # type: ignore[no-untyped-def]
    """Let Dovecot build its indexes and caches once (first SELECT + FETCH of every folder)."""
    from imapclient import IMAPClient

    with IMAPClient(dv.host, port=dv.port, ssl=False) as c:
        c.login(f"alice*{dv.master_user}", dv.master_password)
        for _flags, _sep, name in c.list_folders():
            if c.select_folder(name, readonly=True)[b"EXISTS"]:
                c.fetch(c.search("ALL"), ["RFC822.SIZE", "FLAGS", "INTERNALDATE"])


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks export-imap")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--py-spy", action="store_true", help="record py-spy stacks of one export")
    a = p.parse_args(argv)
    if a.quick:
        a.size_mib, a.repeat = min(a.size_mib, 200), 2
    sys.path.insert(0, str(ROOT))
    from tests.servers import start_dovecot

    work = scratch_dir("export-imap")
    work.chmod(0o755)
    (work / "dovecot").mkdir()
    dv = start_dovecot(work / "dovecot")
    server = ExportServer(work / "mc")
    try:
        sample = generate_maildir(
            dv.maildir("alice"), total_bytes=a.size_mib << 20, seed=a.seed, owner=(dv._uid, dv._gid)
        )
        files, nbytes = tree_bytes(dv.maildir("alice"))
        _warm(dv)
        user, _ = server.new_user("alice")
        server.bind_source(
            user,
            {
                "imap": {
                    "url": dv.url,
                    "user": "alice",
                    "password": dv.master_password,
                    "master_user": dv.master_user,
                },
                "owner": "alice@example.com",
            },
        )
        rc = work / "mbsyncrc"
        dest = work / "mbsync-maildir"
        rc.write_text(
            MBSYNCRC.format(port=dv.port, master=dv.master_user, password=dv.master_password, dest=dest)
        )
        runs: dict[str, list[dict]] = {"mailcrate": [], "mbsync": []}
        for rep in range(a.repeat):
            spy = RESULTS / "profile-export-imap.txt" if a.py_spy and rep == 0 else None
            r = server.export(user, profile_to=spy)
            runs["mailcrate"].append(
                {"seconds": r.seconds, "peak_rss": r.peak_rss, "server_seconds": r.server_seconds}
            )
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir()
            runs["mbsync"].append(run_timed(["mbsync", "-q", "-c", str(rc), "alice"]))
            got = sum(1 for _ in dest.rglob("cur/*")) + sum(1 for _ in dest.rglob("new/*"))
            if got != sample.messages:
                raise RuntimeError(f"mbsync pulled {got} of {sample.messages} messages")
            print(
                f"  rep {rep + 1}: mailcrate {r.seconds:.2f} s, mbsync {runs['mbsync'][-1]['seconds']:.2f} s",
                flush=True,
            )
        exported = int(r.describe.get("EstimatedProgress", 0))
    finally:
        server.stop()
        dv.stop()
        shutil.rmtree(work, ignore_errors=True)

    med = {k: median([x["seconds"] for x in v]) for k, v in runs.items()}
    rss = {k: max(x["peak_rss"] for x in v) for k, v in runs.items()}
    ratio = med["mailcrate"] / med["mbsync"]
    print(
        f"\nexport-imap: {sample.messages:,} messages, {len(sample.folders)} folders, {fmt_mib(nbytes)} "
        f"from Dovecot over loopback IMAP; median of {a.repeat}"
    )
    print(f"{'contender':<10} {'seconds':>9} {'MB/s':>8} {'msgs/s':>9} {'peak RSS':>10}")
    for k in runs:
        print(
            f"{k:<10} {med[k]:>9.2f} {mb_s(nbytes, med[k]):>8.1f} {sample.messages / med[k]:>9.0f} "
            f"{rss[k] / 2**20:>6.0f} MiB"
        )
    print(f"\nmailcrate / mbsync = {ratio:.2f} (target <= 0.5: {'met' if ratio <= 0.5 else 'MISSED'})")
    save(
        "export-imap" + ("-profiled" if a.py_spy else ""),
        {
            "quick": a.quick,
            "mailbox": {
                "messages": sample.messages,
                "folders": len(sample.folders),
                "files": files,
                "bytes": nbytes,
            },
            "repeat": a.repeat,
            "median_seconds": med,
            "peak_rss": rss,
            "runs": runs,
            "mailcrate_mb_s": mb_s(nbytes, med["mailcrate"]),
            "mbsync_mb_s": mb_s(nbytes, med["mbsync"]),
            "ratio_vs_mbsync": round(ratio, 3),
            "last_progress": exported,
            "targets": {"ratio_vs_mbsync<=0.5": ratio <= 0.5},
        },
    )
    return 0
