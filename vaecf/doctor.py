"""``vaecf doctor``: what TensorFlow sees here, and what a ladder would run here, before a long run.

TensorFlow is probed in a child process (``probe``) that logs at TensorFlow's default level,
so the loader's own words about missing CUDA libraries are kept; the ablation runner probes
the machine with the same function and refuses a GPU ladder with the same reason
(``no_gpu_reason``). With ``--ladder``, the steps come from the runner's own ``resolve``
(``ablations.ladder``), so what the doctor says is what the runner will do. ``ablations/`` is
part of the repository, not of the installed package: ``--ladder`` needs a checkout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vaecf import children
from vaecf.errors import VaecfError
from vaecf.launch import horovod_installed
from vaecf.provenance import CPU_FLAGS

Say = Callable[[str], None]

_CPU_FLAG_NAMES = {"avx512f": "AVX-512", "avx512_bf16": "AVX512_BF16", "avx512_fp16": "AVX512_FP16",
                   "amx_tile": "AMX tiles", "amx_bf16": "AMX bfloat16", "amx_fp16": "AMX float16",
                   "avx2": "AVX2", "fma": "FMA"}


def probe() -> dict[str, Any]:
    """This machine as TensorFlow sees it (``vaecf.perf.machine_info``), from a child process.

    The child logs at TensorFlow's default level whatever this process's setting: its loader
    warnings (a CUDA library not found, no driver) are kept, as ``gpu_loader``, to say why no
    GPU is seen. This process never imports TensorFlow.
    """
    code = "import json; from vaecf.perf import machine_info; print('PROBE ' + json.dumps(machine_info()))"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         preexec_fn=children.die_with_parent)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("PROBE ")), None)
    if out.returncode != 0 or line is None:
        raise VaecfError(f"could not start TensorFlow to probe this machine: {out.stderr.strip()[-500:]}")
    return {**json.loads(line[len("PROBE "):]), "gpu_loader": loader_lines(out.stderr)}


_LOG_PREFIX = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ ")
"""absl's prefix (severity, date, time, thread) before ``file.cc:line] message``."""


def loader_lines(stderr: str, most: int = 6) -> list[str]:
    """TensorFlow's start-up lines about GPUs and CUDA libraries (what it could not load, and why), once each."""
    words = ("cuda", "gpu", "dlopen", "dynamic library", "libcu", "libnv", "driver")
    lines = [_LOG_PREFIX.sub("", ln.strip()) for ln in stderr.splitlines() if any(w in ln.lower() for w in words)]
    return list(dict.fromkeys(lines))[:most]


def no_gpu_reason(ladder: str, machine: dict[str, Any]) -> str:
    """Why a GPU ladder cannot run here, with what TensorFlow said and what to do (one line)."""
    said = "; ".join(machine.get("gpu_loader") or []) or "nothing"
    tf_version = machine["versions"]["tensorflow"]
    build = (f"TensorFlow {tf_version} was built with CUDA {machine['cuda']} but finds no usable GPU"
             if machine["cuda"] not in (None, "n/a") else f"TensorFlow {tf_version} has no CUDA support")
    return (f"ladder {ladder!r} needs a GPU and TensorFlow sees none: {build} (TensorFlow said: {said}); "
            "install TensorFlow with its CUDA libraries (pip install -e '.[gpu]', docs/gpu.md), "
            "check with 'vaecf doctor', or run another ladder")


def horovod_check_build() -> str | None:
    """``horovodrun --check-build`` (frameworks, controllers, tensor operations), where Horovod is installed."""
    if not horovod_installed():
        return None
    script = shutil.which("horovodrun")
    command = [script] if script else [sys.executable, "-m", "horovod.runner.launch"]
    try:
        out = subprocess.run([*command, "--check-build"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as e:
        return f"horovodrun --check-build failed: {e}"
    return (out.stdout + out.stderr).strip()


def report(machine: dict[str, Any], say: Say) -> None:
    """The machine's part of the doctor's output."""
    v = machine["versions"]
    say(f"TensorFlow {v['tensorflow']}: CUDA {machine['cuda']}, cuDNN {machine['cudnn']}, NCCL (pip) {machine['nccl']}")
    if machine["gpus"]:
        memory = machine["gpu_memory_total_bytes"]
        for i, name in enumerate(machine["gpus"]):
            size = f", {memory[i] / 2**30:.1f} GiB" if isinstance(memory, list) and i < len(memory) else ""
            say(f"  GPU:{i} {name}{size}")
        say(f"  driver {machine['gpu_driver']}; memory growth "
            f"{'on' if machine['gpu_memory_growth'] else 'off (TF_FORCE_GPU_ALLOW_GROWTH)'}")
    else:
        say("  GPUs: none seen by TensorFlow")
        for line in machine.get("gpu_loader") or []:
            say(f"    TensorFlow said: {line}")
    tf32 = ", ".join(f"{p} {'on' if on else 'off'}" for p, on in machine["tf32"].items())
    say(f"TF32 (vaecf.tfenv.TF32; matters on Ampere and newer GPUs): {tf32}")
    build = machine.get("horovod_build")
    if v.get("horovod") is None:
        say("Horovod: not installed (data parallel runs on tf.distribute)")
    else:
        say(f"Horovod {v['horovod']}: {build}")
        for line in (horovod_check_build() or "").splitlines():
            say(f"    {line}")
    flags = set(machine["cpu_flags"])
    present = [_CPU_FLAG_NAMES[f] for f in CPU_FLAGS if f in flags]
    missing = [_CPU_FLAG_NAMES[f] for f in CPU_FLAGS if f not in flags]
    say(f"CPU: {machine['cpu']}, {machine['cores']} cores; has {', '.join(present) or 'none of ours'}"
        + (f"; lacks {', '.join(missing)}" if missing else ""))
    if "amx_bf16" in flags:
        say("  AMX: bfloat16 matmuls run on the CPU's tile units (mixed_bfloat16)")
    say(f"CPU allocator: {machine['tf_cpu_allocator']} (vaecf.tfenv)")


def load_ladder(name: str, budget_name: str) -> tuple[Any, Any]:
    """The ladder and budget, checked before anything slow (a bad name is one line)."""
    try:
        from ablations.ladder import BUDGETS, Ladder
    except ImportError as e:
        raise VaecfError(f"--ladder needs the repository's ablations/ package (run from a checkout): {e}") from e
    if budget_name not in BUDGETS:
        raise VaecfError(f"--budget {budget_name!r}: not a budget; allowed: {', '.join(sorted(BUDGETS))}")
    return Ladder.load(name), BUDGETS[budget_name]


def ladder_report(ladder: Any, budget: Any, machine: dict[str, Any], say: Say,
                  data_cache: Path = Path(".cache/data")) -> None:
    """Which steps of ``ladder`` run as written here, which are substituted and which skipped, by the
    runner's own rules (``ablations.ladder.resolve`` on the budget's prepared data, as the runner does).

    Raises with the reason when the ladder needs a GPU and TensorFlow sees none.
    """
    from ablations.ladder import Hardware, prepare_quality, resolve

    hardware = Hardware(gpus=machine["gpu_count"], cores=os.cpu_count() or 1,
                        horovod=machine["versions"]["horovod"] is not None)
    say(f"ladder {ladder.name} ({budget.name} budget) on {hardware.describe()}:")
    if ladder.mode != "ladder":
        say("  a leave-one-out ladder: its steps come from a search at run time, by the same rules")
    else:
        split, _ = prepare_quality(budget, None, data_cache)
        for step in resolve(ladder, hardware, budget, split.train.shape[0]):
            how = f"skipped: {step.skip}" if step.skip else ("; ".join(step.notes) if step.notes else "as written")
            say(f"  {step.index:2d} {step.name}: {how}")
    if ladder.needs_gpu and not hardware.gpus:
        raise VaecfError(no_gpu_reason(ladder.name, machine))


def doctor(ladder: str | None, budget: str, say: Say = print) -> None:
    """The whole report; raises (one line) when ``ladder`` is unknown or cannot run here."""
    chosen = load_ladder(ladder, budget) if ladder is not None else None
    machine = probe()
    report(machine, say)
    if chosen is not None:
        ladder_report(*chosen, machine, say)
