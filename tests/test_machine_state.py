"""The machine's state from /proc: parsed from fixtures, and a CPU hog seen as another process's share."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from vaecf import machine_state as ms

STAT = """cpu  100 20 30 400 50 6 4 10 7 0
cpu0 50 10 15 200 25 3 2 5 7 0
intr 1 2 3
"""
HOG = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


def _pid_stat(pid: int, comm: str, ppid: int, utime: int, stime: int, cutime: int = 0, cstime: int = 0) -> str:
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime ...
    return f"{pid} ({comm}) S {ppid} 1 1 0 -1 0 0 0 0 0 {utime} {stime} {cutime} {cstime} 20 0 1 0\n"


def test_the_cpu_line_counts_guest_time_once_and_steal_apart() -> None:
    ticks = ms.parse_cpu(STAT)
    assert ticks == ms.CpuTicks(busy=100 + 20 + 30 + 6 + 4, idle=400 + 50, steal=10)
    assert ticks.total == 160 + 450 + 10
    with pytest.raises(ValueError, match="cpu"):
        ms.parse_cpu("intr 1 2 3\n")


def test_a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields() -> None:
    assert ms.parse_pid_stat(_pid_stat(7, "a) (b c", 3, 11, 5, 2, 1)) == (3, 11 + 5 + 2 + 1)


def test_the_tree_is_the_root_and_its_descendants_only(tmp_path: Path) -> None:
    procs = {10: (1, 100, 0, 40), 11: (10, 5, 5, 0), 12: (11, 1, 1, 0), 20: (1, 999, 0, 0), 21: (20, 7, 0, 0)}
    for pid, (ppid, utime, stime, cutime) in procs.items():
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(_pid_stat(pid, "python", ppid, utime, stime, cutime))
    (tmp_path / "self").mkdir()  # not a pid
    assert ms.tree_ticks(10, tmp_path) == 140 + 10 + 2
    assert ms.tree_ticks(20, tmp_path) == 1006
    assert ms.tree_ticks(99, tmp_path) is None


def test_clock_from_cpufreq_else_cpuinfo_and_load_average(tmp_path: Path) -> None:
    sysfs, proc = tmp_path / "sys", tmp_path / "proc"
    proc.mkdir()
    (proc / "cpuinfo").write_text("processor : 0\ncpu MHz\t\t: 2600.000\nprocessor : 1\ncpu MHz\t\t: 2400.000\n")
    (proc / "loadavg").write_text("1.95 1.38 1.29 3/102 12704\n")
    assert ms.cpu_mhz(sysfs, proc) == 2500.0
    for cpu, khz in (("cpu0", 3_000_000), ("cpu1", 1_000_000)):
        (sysfs / cpu / "cpufreq").mkdir(parents=True)
        (sysfs / cpu / "cpufreq" / "scaling_cur_freq").write_text(f"{khz}\n")
    assert ms.cpu_mhz(sysfs, proc) == 2000.0
    assert ms.load_average(proc) == 1.95
    assert ms.load_average(tmp_path / "nowhere") is None


def test_shares_are_busy_minus_ours_over_all_cpus_time() -> None:
    a = ms.Sample(0.0, ms.CpuTicks(busy=1000, idle=1000, steal=0), ours=300)
    b = ms.Sample(2.0, ms.CpuTicks(busy=1300, idle=1080, steal=20), ours=400)
    state = ms.between(a, b, Path("/nonexistent"), Path("/nonexistent"))
    assert state["seconds"] == 2.0
    assert state["ours_share"] == pytest.approx(100 / 400)
    assert state["others_share"] == pytest.approx(200 / 400)
    assert state["steal_share"] == pytest.approx(20 / 400)
    assert state["load1"] is None and state["cpu_mhz"] is None
    unknown = ms.between(ms.Sample(0.0, None, None), b)
    assert unknown["others_share"] is None and unknown["steal_share"] is None


@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="Linux /proc")
def test_a_cpu_hog_outside_our_tree_is_the_others_share_and_inside_it_is_ours() -> None:
    bystander = subprocess.Popen(["sleep", "30"])  # a tree the hog is not part of
    try:
        before, ours_before = ms.sample(bystander.pid), ms.tree_ticks(os.getpid())
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        hog = subprocess.Popen([sys.executable, "-c", HOG.format(seconds=1.5)])
        hog.wait()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        ours_after = ms.tree_ticks(os.getpid())
        theirs = ms.between(before, ms.sample(bystander.pid))
    finally:
        bystander.kill()
        bystander.wait()
    # The hog kept a core busy for 1.5 s: on 2 cores half of all CPU time (or others did, on a busier machine).
    assert theirs["others_share"] > 0.3
    assert theirs["ours_share"] < 0.05
    # Seen from this process, the hog (waited for) is ours: its CPU time, within the ticks' rounding.
    hog_s = (children.ru_utime + children.ru_stime) - (children_before.ru_utime + children_before.ru_stime)
    assert ours_before is not None and ours_after is not None and hog_s > 0.1
    assert (ours_after - ours_before) / os.sysconf("SC_CLK_TCK") == pytest.approx(hog_s, abs=0.15)
