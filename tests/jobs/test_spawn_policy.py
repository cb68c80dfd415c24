"""When ``serve`` starts another export worker process (mailcrate.jobs.process): with the
automatic count (``--export-processes 0``) only if a core was idle while jobs waited
(mailcrate.jobs.idle_cpu, read from /proc/stat); with an explicit count whenever jobs wait.
And the worker's heap trimming while busy (mailcrate.malloc.PacedTrim): at most every 10 s,
unless several jobs run and the heap holds more than its bound free."""

from __future__ import annotations

import os
import time
from pathlib import Path
from threading import Event

import pytest

from mailcrate import malloc
from mailcrate.config import Settings
from mailcrate.jobs import process
from mailcrate.jobs.idle_cpu import IdleCpu, read_cpu_times

linux = pytest.mark.skipif(not Path("/proc/stat").exists(), reason="/proc/stat is Linux's")


def _stat(path: Path, idle: int, busy: int) -> None:
    """A /proc/stat first line: user, nice, system, idle, iowait, irq, softirq, steal, guest."""
    path.write_text(f"cpu  {busy} 0 0 {idle - idle // 4} {idle // 4} 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")


@linux
def test_the_machines_cpu_times_are_read() -> None:
    first = read_cpu_times()
    assert first is not None
    deadline = time.monotonic() + 0.05
    while time.monotonic() < deadline:  # some CPU time passes
        pass
    second = read_cpu_times()
    assert second is not None
    assert 0 <= first[0] <= first[1] and second[1] > first[1] and second[0] >= first[0]


def test_no_proc_stat_reads_as_unknown(tmp_path: Path) -> None:
    assert read_cpu_times(str(tmp_path / "missing")) is None
    (tmp_path / "stat").write_text("intr 1 2 3\n")
    assert read_cpu_times(str(tmp_path / "stat")) is None


def test_idle_cores_over_a_window(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    _stat(stat, idle=1000, busy=1000)
    idle = IdleCpu(window=0.05, read=lambda: read_cpu_times(str(stat)))
    assert idle.cores() is None and not idle.running
    assert idle.start()
    assert idle.cores() is None  # the window has not passed yet
    time.sleep(0.06)
    _stat(stat, idle=1000 + 300, busy=1000 + 100)  # 3/4 of the ticks idle
    assert idle.cores() == pytest.approx(0.75 * (os.cpu_count() or 1))


def _workers(tmp_path: Path, processes: int, stat: Path) -> process.WorkerProcess:
    settings = Settings(data_dir=str(tmp_path), export_workers=4, export_processes=processes)
    wp = process.WorkerProcess(settings, Event(), waiting_since=lambda: None)
    if wp.idle_cpu is not None:
        wp.idle_cpu = IdleCpu(window=0.05, read=lambda: read_cpu_times(str(stat)))
    return wp


def test_an_explicit_process_count_starts_processes_whenever_jobs_wait(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    _stat(stat, idle=0, busy=1000)
    wp = _workers(tmp_path, 2, stat)
    assert wp.idle_cpu is None and wp._core_idle()


def test_the_automatic_count_waits_for_an_idle_core(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    cpus = os.cpu_count() or 1
    _stat(stat, idle=1000, busy=1000)
    wp = _workers(tmp_path, 0, stat)
    assert not wp._core_idle()  # jobs just seen waiting: the window opens
    time.sleep(0.06)
    _stat(stat, idle=1000 + 10, busy=1000 + 100 * cpus)  # every core busy meanwhile
    assert not wp._core_idle()  # busy: no process, and a new window opens
    assert wp.idle_cpu is not None and wp.idle_cpu.running
    time.sleep(0.06)
    _stat(stat, idle=1010 + 100 * cpus, busy=1000 + 100 * cpus + 10)  # nearly all idle since
    assert wp._core_idle()
    assert not wp.idle_cpu.running  # the next wait measures afresh


def test_the_automatic_count_without_cpu_times_starts_them_as_before(tmp_path: Path) -> None:
    wp = _workers(tmp_path, 0, tmp_path / "missing")
    assert wp._core_idle()


def test_a_busy_worker_trims_its_heap_once_too_much_is_free() -> None:
    if malloc.heap_free() is None:
        pytest.skip("no mallinfo2 (glibc 2.33+) here")
    trim = malloc.PacedTrim(free_bound=1 << 50)
    assert trim(busy=False)  # idle: every call
    assert not trim(busy=True, jobs=2)  # busy, within the interval, little free
    blocks = [bytearray(64 << 10) for _ in range(400)]  # ~25 MiB on the heap (below the mmap threshold)
    del blocks[::2]
    free = malloc.heap_free()
    assert free is not None and free >= 10 << 20
    trim.free_bound = 8 << 20
    assert not trim(busy=True, jobs=1)  # one job alone: the 10-second pace whatever is free
    before = _rss()
    assert trim(busy=True, jobs=2)  # several jobs, more than the bound free: trimmed at once
    assert before - _rss() >= 4 << 20  # the free pages went back to the system


def _rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
