"""What else the machine did while we measured: other processes' CPU share, steal, load and clock.

A timing window is only as good as the machine was quiet during it, and two machines of one
kind can differ 2x. ``sample(root)`` reads the kernel's counters (Linux ``/proc``; no
TensorFlow): every CPU's busy, idle and steal ticks from ``/proc/stat``, and the CPU ticks of
the process tree rooted at ``root`` from each ``/proc/<pid>/stat`` (utime + stime of every live
process in the tree, plus cutime + cstime: the children each has waited for). ``between(a, b)``
turns two samples into shares of the machine's CPU time over the interval: ``ours`` (the tree),
``others`` (everything else that ran: busy minus ours), ``steal`` (taken by the hypervisor),
with the 1-minute load average and the CPU clock at the end. Where ``/proc`` cannot be read
(not Linux), the shares are None: unknown, never zero.
"""

from __future__ import annotations

import os
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROC = Path("/proc")
CPUFREQ = Path("/sys/devices/system/cpu")


@dataclass(frozen=True)
class CpuTicks:
    """The ``cpu`` line of /proc/stat, all CPUs together, in clock ticks."""

    busy: int
    """user + nice + system + irq + softirq (guest time is already inside user and nice)."""
    idle: int
    """idle + iowait."""
    steal: int
    """Time the hypervisor ran something else while this VM wanted a CPU."""

    @property
    def total(self) -> int:
        return self.busy + self.idle + self.steal


@dataclass(frozen=True)
class Sample:
    seconds: float
    """``time.monotonic()`` when taken."""
    cpu: CpuTicks | None
    ours: int | None
    """CPU ticks of the process tree (None where /proc cannot be read)."""


def parse_cpu(stat_text: str) -> CpuTicks:
    """The aggregate ``cpu`` line of a /proc/stat text."""
    for line in stat_text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            values = [int(v) for v in fields[1:9]]  # steal is missing before Linux 2.6.11
            user, nice, system, idle, iowait, irq, softirq, steal = values + [0] * (8 - len(values))
            return CpuTicks(busy=user + nice + system + irq + softirq, idle=idle + iowait, steal=steal)
    raise ValueError("no aggregate 'cpu' line in /proc/stat")


def parse_pid_stat(text: str) -> tuple[int, int]:
    """(parent pid, utime + stime + cutime + cstime) from a /proc/<pid>/stat text.

    The command name (field 2) is in parentheses and may itself hold spaces and parentheses:
    the fields after it are counted from the last ``)``.
    """
    rest = text[text.rindex(")") + 2:].split()
    ppid = int(rest[1])
    utime, stime, cutime, cstime = (int(v) for v in rest[11:15])
    return ppid, utime + stime + cutime + cstime


def tree_ticks(root: int, proc: Path = PROC) -> int | None:
    """CPU ticks of ``root`` and every live descendant (None if ``root`` is gone or /proc is absent)."""
    stats: dict[int, tuple[int, int]] = {}
    with suppress(OSError):
        for entry in proc.iterdir():
            if entry.name.isdigit():
                with suppress(OSError, ValueError, IndexError):  # a process may exit while we read
                    stats[int(entry.name)] = parse_pid_stat((entry / "stat").read_text())
    if root not in stats:
        return None
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += stats[pid][1]
        todo.extend(children.get(pid, []))
    return total


def load_average(proc: Path = PROC) -> float | None:
    """The 1-minute load average (runnable and uninterruptible tasks, all processes)."""
    with suppress(OSError, ValueError, IndexError):
        return float((proc / "loadavg").read_text().split()[0])
    return None


def cpu_mhz(cpufreq: Path = CPUFREQ, proc: Path = PROC) -> float | None:
    """The CPUs' mean current clock: cpufreq's ``scaling_cur_freq`` where the kernel exposes it,
    else /proc/cpuinfo's ``cpu MHz`` (on many VMs the nominal clock, constant), else None."""
    with suppress(OSError, ValueError):
        khz = [int(p.read_text()) for p in sorted(cpufreq.glob("cpu[0-9]*/cpufreq/scaling_cur_freq"))]
        if khz:
            return sum(khz) / len(khz) / 1000
    with suppress(OSError, ValueError):
        mhz = [float(line.split(":", 1)[1]) for line in (proc / "cpuinfo").read_text().splitlines()
               if line.startswith("cpu MHz")]
        if mhz:
            return sum(mhz) / len(mhz)
    return None


def sample(root: int | None = None, proc: Path = PROC) -> Sample:
    """The counters now, ``root``'s tree (default: this process) counted as ours."""
    cpu = None
    with suppress(OSError, ValueError):
        cpu = parse_cpu((proc / "stat").read_text())
    return Sample(time.monotonic(), cpu, tree_ticks(os.getpid() if root is None else root, proc))


def between(a: Sample, b: Sample, proc: Path = PROC, cpufreq: Path = CPUFREQ) -> dict[str, Any]:
    """The machine's state from ``a`` to ``b``: shares of all CPUs' time, load and clock at ``b``."""
    state: dict[str, Any] = {"seconds": b.seconds - a.seconds, "others_share": None, "ours_share": None,
                             "steal_share": None, "load1": load_average(proc), "cpu_mhz": cpu_mhz(cpufreq, proc)}
    if a.cpu is None or b.cpu is None or b.cpu.total <= a.cpu.total:
        return state
    total = b.cpu.total - a.cpu.total
    busy = b.cpu.busy - a.cpu.busy
    state["steal_share"] = (b.cpu.steal - a.cpu.steal) / total
    if a.ours is not None and b.ours is not None:
        # The two files are sampled a moment apart and rounded to ticks: ours may exceed busy by a tick.
        ours = min(max(b.ours - a.ours, 0), busy)
        state["ours_share"] = ours / total
        state["others_share"] = (busy - ours) / total
    return state
