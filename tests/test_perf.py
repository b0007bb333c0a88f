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
