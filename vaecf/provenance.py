"""Where and with what a record was made: machine, CPU features, code version, packages.

Without TensorFlow (``perf.machine_info`` adds what only TensorFlow knows: GPUs, CUDA), so that
light commands and the ablation runner's own process can name the machine and the commit.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
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


def provenance() -> dict[str, Any]:
    """The commit, packages and CPU a record was made with (what is knowable without TensorFlow)."""
    return {"git_sha": git_sha(), "cpu": cpu_model(), "cpu_flags": cpu_flags(), "cores": os.cpu_count(),
            "python": platform.python_version(),
            "versions": {name: package_version(name) for name in ("tensorflow", "numpy", "scipy", "pandas")}}
