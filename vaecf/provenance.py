"""Where and with what a record was made: the one provenance header every record carries.

``header`` is the commit (``git_sha``, ``-dirty`` when the tree had changes, and ``clean``),
the machine (its results folder name, host, CPU and its GEMM-deciding flags, cores), the
package versions and the command. Every record-writing command writes it under the key
``machine``: ``vaecf bench`` (all modes), ``vaecf compare``, the ablation runner's run, speed
and calibration records and the scripts in ``benchmarks/``. Without TensorFlow
(``perf.machine_info`` adds what only TensorFlow knows: GPUs, CUDA, the allocator), so that
light commands and the ablation runner's own process can write it too.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_fp16")
"""The instruction sets that decide the GEMM ceiling of each precision on a CPU (AMX: bf16 tensor cores)."""


def cpu_model() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """Which of ``CPU_FLAGS`` this CPU has (Linux /proc/cpuinfo; empty elsewhere)."""
    present = set((_cpuinfo("flags") or "").split())
    return [f for f in CPU_FLAGS if f in present]


def _cpuinfo(field: str) -> str | None:
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    return None


def git_sha(repo: Path | None = None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo or Path(__file__).parent,
                             capture_output=True, text=True, check=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=repo or Path(__file__).parent, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_name() -> str:
    """A short folder name for results: host, or $VAECF_MACHINE when set."""
    return os.environ.get("VAECF_MACHINE") or platform.node() or "unknown"


HOSTS_ENV = "VAECF_HOSTS"
"""Where set, the hosts data-parallel worlds ran on (``vaecf.launch``): the header names them."""
VERSIONED = ("tensorflow", "numpy", "scipy", "pandas", "horovod")
"""The packages whose versions a record names (None where one is not installed)."""


def header(command: Sequence[str] | None = None) -> dict[str, Any]:
    """The provenance header of a record: commit, clean tree, machine, CPU flags, versions, command
    (and ``hosts`` where $VAECF_HOSTS spreads data-parallel worlds over hosts).

    ``command`` defaults to this process's ``sys.argv``.
    """
    sha = git_sha()
    return {"git_sha": sha, "clean": sha is not None and not sha.endswith("-dirty"),
            "machine_name": machine_name(), "hostname": platform.node(), "cpu": cpu_model(),
            "cpu_flags": cpu_flags(), "cores": os.cpu_count(), "python": platform.python_version(),
            "versions": {name: package_version(name) for name in VERSIONED},
            "command": list(sys.argv if command is None else command),
            **({"hosts": os.environ[HOSTS_ENV]} if os.environ.get(HOSTS_ENV) else {})}


def header_of(record: dict[str, Any]) -> dict[str, Any]:
    """A record's provenance header. Older shapes: calibrations made before ``header`` existed keep it
    under ``provenance``; probes (``rates.json``) made before 2026-12-06 keep it there too, with the bare
    machine name under ``machine``, which is given back as the header's ``machine_name``."""
    machine = record.get("machine")
    if isinstance(machine, dict):
        return dict(machine)
    old = dict(record["provenance"])
    if isinstance(machine, str):
        old.setdefault("machine_name", machine)
    return old
