"""Process-wide TensorFlow settings that must be in place before TensorFlow allocates memory.

``import vaecf`` applies them (``configure``), so every entry point (the CLI, the ablation
runner's children, asv, tests, a user's script) trains under the same settings; a user's own
value of each variable wins.

The allocator: TensorFlow's default CPU allocator hands large requests to ``malloc``, which
maps fresh pages for every tensor above 32 MiB and unmaps them when it is freed. The step's
users x items tensors (330 MB at batch 4,096 and 20,108 items) are then page-faulted in anew
on every step. TensorFlow's own best-fit pool (BFC) keeps the pages once touched. Side by side
on the 2-core EPYC (``python -m benchmarks.allocator``, record
results/cpu2-epyc-avx2/bench-allocator.json) the output layer's time outside its GEMMs fell
from 873 to 324 ms at batch 4,096 (float32) and steps got 1.26-1.50x faster.
"""

from __future__ import annotations

import os

ALLOCATOR_ENV = "TF_CPU_ALLOCATOR_USE_BFC"
GPU_GROWTH_ENV = "TF_FORCE_GPU_ALLOW_GROWTH"
"""GPU memory growth: without it TensorFlow reserves nearly all memory of every GPU it sees at its
first GPU op, so a parent that measured on a GPU (``vaecf bench --workers``) or a child that sees
all GPUs leaves the others about 1 GiB. Set in the environment, it holds in every process started
from this one too (workers, the runner's children)."""

TF32 = {"float32": False, "mixed_float16": False, "mixed_bfloat16": False}
"""TensorFloat-32 (10-bit mantissa float32 matmuls on Ampere and newer GPUs; TensorFlow's default
there is on) per precision: off everywhere. "float32" then means IEEE float32 for the baseline, the
GEMM ceiling and the tests' tolerances on every GPU; the mixed precisions do their matmuls in 16 bits,
so TF32 would touch none of them. No effect on CPUs (2.21 checked on AMX). Recorded with each row."""


def configure() -> None:
    """Set the defaults (read by TensorFlow when it creates its allocators, i.e. at its first op)."""
    os.environ.setdefault(ALLOCATOR_ENV, "true")
    os.environ.setdefault(GPU_GROWTH_ENV, "true")


def gpu_memory_growth() -> bool:
    """Whether this process's TensorFlow grows its GPU memory as needed (the setting, read as TF reads it)."""
    return os.environ.get(GPU_GROWTH_ENV, "").lower() == "true"


def cpu_allocator() -> str:
    """The CPU allocator this process's TensorFlow uses, as configured: ``bfc`` or ``malloc``."""
    return "bfc" if os.environ.get(ALLOCATOR_ENV, "").lower() in ("1", "true") else "malloc"
