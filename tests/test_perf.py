import tensorflow as tf

from vaecf.config import ModelConfig
from vaecf.flops import flops_per_user, output_gemm_flops
from vaecf.perf import best_time, gemm_rate


def test_best_time_warms_up_once_then_keeps_the_fastest_call() -> None:
    calls = []
    seconds = best_time(lambda: calls.append(1) or tf.constant(1.0), repeats=4)
    assert len(calls) == 5 and 0 < seconds < 1


def test_output_gemms_are_the_bulk_of_the_models_flops() -> None:
    # 600 x 20,108 at three GEMMs per user against everything the model does per user
    per_user = output_gemm_flops(1, 600, 20_108)
    assert per_user == 3 * 2 * 600 * 20_108
    assert 0.9 < per_user / flops_per_user(20_108, ModelConfig(), nnz_per_user=73) < 1.0


def test_gemm_rate_is_a_flop_rate() -> None:
    assert gemm_rate(8, 16, 32, repeats=2) > 0
