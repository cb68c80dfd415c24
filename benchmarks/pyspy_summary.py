"""Summarise a ``py-spy record -f raw --threads`` file: samples per thread, and the functions
with the most self and inclusive samples (overall and per busy thread).

    python -m benchmarks.pyspy_summary benchmarks/results/profile-export-embedded.txt [--top 15]
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _short(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m["file"]
    for marker in ("site-packages/", "src/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m['func']} ({path})"


def summarise(path: str, top: int = 15) -> str:
    threads: collections.Counter[str] = collections.Counter()
    self_: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    per_thread_self: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    total = 0
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1] if frames[0].startswith("thread") else "?"
        thread = re.sub(r"^(Thread-\d+|ThreadPoolExecutor-\d+_\d+)", lambda m: m[0].split("-")[0], thread)
        body = [_short(f) for f in frames[1:] if not f.startswith("process ")] or ["<idle>"]
        total += n
        threads[thread] += n
        self_[body[-1]] += n
        per_thread_self[thread][body[-1]] += n
        for f in set(body):
            incl[f] += n
    out = [f"{total} samples"]
    out.append("\nsamples per thread:")
    out += [f"  {n:>7} {100 * n / total:5.1f}%  {t}" for t, n in threads.most_common(12)]
    out.append(f"\ntop {top} self (where the CPU is):")
    out += [f"  {n:>7} {100 * n / total:5.1f}%  {f}" for f, n in self_.most_common(top)]
    out.append(f"\ntop {top} inclusive:")
    out += [f"  {n:>7} {100 * n / total:5.1f}%  {f}" for f, n in incl.most_common(top)]
    for t, _ in threads.most_common(4):
        out.append(f"\nthread {t}: top self")
        c = per_thread_self[t]
        tn = sum(c.values())
        out += [f"  {n:>7} {100 * n / tn:5.1f}%  {f}" for f, n in c.most_common(8)]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("file")
    p.add_argument("--top", type=int, default=15)
    a = p.parse_args(argv)
    print(summarise(a.file, a.top))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
