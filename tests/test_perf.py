"""The GEMM ceiling's timer and rate."""

import tensorflow as tf

from vaecf import perf
from vaecf.flops import output_gemm_flops


def test_best_time_warms_up_once_then_keeps_the_fastest_call(monkeypatch) -> None:
    # a scripted clock: the warm-up call is not timed; the calls then take 3, 1 and 2 seconds
    ticks = iter([0.0, 3.0, 10.0, 11.0, 20.0, 22.0])
    monkeypatch.setattr(perf.time, "perf_counter", lambda: next(ticks))
    calls: list[int] = []

    def call() -> tf.Tensor:
        calls.append(1)
        return tf.constant(1.0)

    assert perf.best_time(call, repeats=3) == 1.0
    assert len(calls) == 4


def test_gemm_rate_divides_the_three_gemms_flops_by_the_best_time(monkeypatch) -> None:
    monkeypatch.setattr(perf, "best_time", lambda fn, repeats: 0.5)
    assert perf.gemm_rate(8, 16, 32, repeats=2) == output_gemm_flops(8, 16, 32) / 0.5


def test_gpu_figures_from_a_faked_gpu_and_n_a_without_one(monkeypatch) -> None:
    monkeypatch.setattr(perf, "gpus", lambda: ["NVIDIA A100-SXM4-40GB", "NVIDIA A100-SXM4-40GB"])
    monkeypatch.setattr(perf, "_nvidia_smi", lambda fields: ["535.104.05, 40960", "535.104.05, 40960"])
    monkeypatch.setattr(tf.sysconfig, "get_build_info", lambda: {"cuda_version": "12.5.1", "cudnn_version": "9"})
    info = perf.gpu_info()
    assert info["gpu_count"] == 2 and info["gpu_driver"] == "535.104.05" and info["cuda"] == "12.5.1"
    assert info["gpu_memory_total_bytes"] == [40 * 2**30] * 2 and info["tf32"]["float32"] is False

    monkeypatch.setattr(perf, "gpus", lambda: [])
    monkeypatch.setattr(tf.sysconfig, "get_build_info", lambda: {})
    info = perf.gpu_info()
    assert {k: info[k] for k in ("gpu_driver", "gpu_memory_total_bytes", "cuda", "cudnn")} == dict.fromkeys(
        ("gpu_driver", "gpu_memory_total_bytes", "cuda", "cudnn"), perf.NA)


def test_device_peak_reads_the_gpus_peak_and_none_without_a_gpu(monkeypatch) -> None:
    assert perf.device_peak_bytes() is None or tf.config.list_physical_devices("GPU")
    reset: list[str] = []
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"] if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "get_memory_info", lambda d: {"current": 5, "peak": 1234})
    monkeypatch.setattr(tf.config.experimental, "reset_memory_stats", reset.append)
    perf.reset_device_peak()
    assert reset == ["GPU:0"] and perf.device_peak_bytes() == 1234


def test_horovod_build_is_none_where_horovod_is_not_installed(monkeypatch) -> None:
    monkeypatch.setattr(perf, "package_version", lambda name: None)
    assert perf.horovod_build() is None
