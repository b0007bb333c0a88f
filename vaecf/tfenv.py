"""Process-wide TensorFlow settings that must be in place before TensorFlow allocates memory, and its quiet import.

``import vaecf`` applies them (``configure``), so every entry point (the CLI, the ablation
runner's children, asv, tests, a user's script) trains under the same settings; a user's own
value of each variable wins.

The allocator: TensorFlow's default CPU allocator hands large requests to ``malloc``, which
maps fresh pages for every tensor above 32 MiB and unmaps them when it is freed. The step's
users x items tensors (330 MB at batch 4,096 and 20,108 items) are then page-faulted in anew
on every step. TensorFlow's own best-fit pool (BFC) keeps the pages once touched. Side by side
on the 2-core EPYC (``python -m benchmarks.allocator``, record
results/cpu2-epyc-avx2/bench-allocator.json) the output layer's time outside its GEMMs fell
from 873 to 324 ms at batch 4,096 (float32) and steps got 1.26-1.50x faster. Where oneDNN's ops
are on (TensorFlow's default on CPUs with AVX512_BF16 or AMX, such as the AMX Xeon) they bring a
pooling allocator of their own, and the CPU memory is pooled whatever ``TF_CPU_ALLOCATOR_USE_BFC``
says (``tests/test_tfenv.py``).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

ALLOCATOR_ENV = "TF_CPU_ALLOCATOR_USE_BFC"
LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"

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


def load_tensorflow(verbose: bool = False) -> None:
    """Import TensorFlow, keeping its C++ start-up logging off stderr unless ``verbose``.

    TF_CPP_MIN_LOG_LEVEL=3 hides what TensorFlow logs through its own logger (oneDNN notes, the
    failed cuInit on a machine without a GPU); a user's own setting of it wins. The "Could not
    find cuda drivers" lines come from absl before its logging is initialised, which no variable
    controls, so the import itself runs with file descriptor 2 on /dev/null when the level is 3.
    Called by the command line and the asv suites (``benchmarks/__init__.py``).
    """
    if not verbose:
        os.environ.setdefault(LOG_LEVEL, "3")
    if verbose or os.environ[LOG_LEVEL] != "3" or "tensorflow" in sys.modules:
        return
    with _stderr_to_devnull():
        import tensorflow  # noqa: F401


@contextlib.contextmanager
def _stderr_to_devnull() -> Iterator[None]:
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)
