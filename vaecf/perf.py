"""Measuring: the GEMM ceiling, model FLOP utilisation, peak memory and the machine.

The ceiling is measured, not looked up: the FLOP rate TensorFlow reaches on this machine, in
this process, for the three GEMMs of the output layer (forward, weight gradient, input
gradient) at the batch size being trained. MFU = model FLOPs per user x users/s / that rate.
Scoring (evaluation, serving) has its own ceiling: the forward GEMM alone at the block size.
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tensorflow as tf

from vaecf.flops import forward_gemm_flops, output_gemm_flops
from vaecf.model import compute_dtype, use_tf32
from vaecf.provenance import header, package_version
from vaecf.tfenv import TF32, cpu_allocator, gpu_memory_growth

GemmFlavour = Literal["step", "forward"]
"""``step``: the training step's three output GEMMs; ``forward``: scoring's one."""


def gemm_rate(batch: int, hidden: int, n_items: int, precision: str = "float32",
              repeats: int = 5, flavour: GemmFlavour = "step", xla: bool = False) -> float:
    """FLOP/s of the output layer's GEMMs at this shape (best of ``repeats``, after warm-up);
    ``xla``: compiled by XLA, as an XLA step's are (on a CPU, XLA's own GEMMs, not oneDNN's)."""
    dtype = compute_dtype(precision)  # type: ignore[arg-type]
    use_tf32(precision)  # type: ignore[arg-type]  # the ceiling under the step's own TF32 setting
    rng = tf.random.Generator.from_seed(0)
    h = tf.cast(rng.normal([batch, hidden]), dtype)
    w = tf.cast(rng.normal([hidden, n_items]), dtype)
    if flavour == "forward":
        forward = tf.function(lambda: tf.reduce_sum(tf.matmul(h, w)[:1, :1]), jit_compile=xla)
        return forward_gemm_flops(batch, hidden, n_items) / best_time(forward, repeats)
    g = tf.cast(rng.normal([batch, n_items]), dtype)

    @tf.function(jit_compile=xla)
    def three() -> tf.Tensor:
        out = tf.matmul(h, w)  # forward
        dw = tf.matmul(h, g, transpose_a=True)  # weight gradient
        dh = tf.matmul(g, w, transpose_b=True)  # input gradient
        return tf.reduce_sum(out[:1, :1]) + tf.reduce_sum(dw[:1, :1]) + tf.reduce_sum(dh[:1, :1])

    return output_gemm_flops(batch, hidden, n_items) / best_time(three, repeats)


def best_time(fn: Callable[[], Any], repeats: int) -> float:
    """Fastest of ``repeats`` calls of ``fn`` after one warm-up call, each waited for to the end."""
    def run() -> None:
        tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, fn())

    run()  # traces a tf.function and touches its memory
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return float(best)


def peak_rss_bytes(children: bool = False) -> int:
    """Peak resident memory of this process (or of its finished children) so far."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    kib = resource.getrusage(who).ru_maxrss
    return int(kib * (1 if sys.platform == "darwin" else 1024))


def reset_peak_memory() -> None:
    """Start a new peak for ``window_peak_bytes``: Linux's resident high-water mark, and the GPU's."""
    with suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    reset_device_peak()


def reset_device_peak() -> None:
    """Start a new peak for ``device_peak_bytes`` (nothing to do without a GPU)."""
    if tf.config.list_physical_devices("GPU"):
        tf.config.experimental.reset_memory_stats("GPU:0")


def window_peak_bytes() -> dict[str, int | None]:
    """Peak RSS (Linux VmHWM) and GPU memory since ``reset_peak_memory`` (None where not measurable)."""
    rss = None
    with suppress(OSError, AttributeError):
        rss = int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024  # type: ignore[union-attr]
    return {"peak_rss_bytes": rss, "device_peak_bytes": device_peak_bytes()}


def device_peak_bytes() -> int | None:
    """Peak GPU memory in use by TensorFlow on the first GPU, or None without one."""
    if not tf.config.list_physical_devices("GPU"):
        return None
    return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])


def gpus() -> list[str]:
    names = []
    for dev in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(dev)
        names.append(str(details.get("device_name", dev.name)))
    return names


NA = "n/a"
"""A GPU figure on a machine without a GPU (or a build without CUDA)."""


def _nvidia_smi(fields: str) -> list[str] | None:
    """``nvidia-smi --query-gpu=FIELDS`` one line per GPU (no TensorFlow, no device context), or None."""
    with suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20, check=True)
        return out.stdout.strip().splitlines()
    return None


def gpu_info() -> dict[str, Any]:
    """The GPUs TensorFlow sees and the software under them; ``n/a`` for each figure where there is none."""
    names = gpus()
    build = tf.sysconfig.get_build_info()
    smi = _nvidia_smi("driver_version,memory.total") if names else None
    return {
        "gpus": names,
        "gpu_count": len(names),
        "gpu_driver": smi[0].split(",")[0].strip() if smi else NA,
        "gpu_memory_total_bytes": [int(line.split(",")[1]) * 2**20 for line in smi] if smi else NA,
        "cuda": build.get("cuda_version") or NA,
        "cudnn": build.get("cudnn_version") or NA,
        "nccl": package_version("nvidia-nccl-cu12") or NA,
        "gpu_memory_growth": gpu_memory_growth(),
        "tf32": TF32,
    }


def horovod_build() -> dict[str, Any] | None:
    """Which collectives this Horovod was built with (None where it is not installed).

    Records need it: without NCCL, GPU tensors are all-reduced through the host (Gloo), and a
    "horovod, 2 GPUs" figure would not say so.
    """
    if package_version("horovod") is None:
        return None
    try:
        import horovod.tensorflow as hvd
    except Exception as e:  # ImportError, or its ops failing to load against this TensorFlow
        return {"error": f"{type(e).__name__}: {e}"[:300]}
    return {"nccl": bool(hvd.nccl_built()), "gloo": bool(hvd.gloo_built()), "mpi": bool(hvd.mpi_built())}


def machine_info(command: Sequence[str] | None = None) -> dict[str, Any]:
    """The provenance header (``provenance.header``) with what only TensorFlow knows: GPUs, CUDA, allocator."""
    info = header(command)
    info["versions"]["tensorflow"] = tf.__version__  # the one imported, whatever its package is called
    return {**info, **gpu_info(), "tf_cpu_allocator": cpu_allocator(), "horovod_build": horovod_build()}
