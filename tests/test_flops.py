"""Model FLOPs follow the paper's layer shapes; the output layer is almost all of them."""

from vaecf.config import ModelConfig
from vaecf.flops import flops_per_user, output_gemm_flops


def test_flops_count_every_layer_three_times_and_the_first_at_its_nonzeros_only() -> None:
    cfg = ModelConfig()
    per_user = flops_per_user(20_108, cfg, nnz_per_user=0)
    # encoder 600 -> 2 x 200 (mean, log-variance), decoder 200 -> 600 -> 20,108: forward + 2 gradients
    assert per_user == 3 * 2 * (600 * 400 + 200 * 600 + 600 * 20_108)
    assert flops_per_user(20_108, cfg, nnz_per_user=10) - per_user == 2 * 2 * 10 * 600


def test_dae_has_one_hidden_layer() -> None:
    dae = ModelConfig.for_kind("dae")
    assert flops_per_user(1_000, dae, nnz_per_user=0) == 3 * 2 * 200 * 1_000


def test_output_gemms_are_the_bulk_of_the_models_flops() -> None:
    share = output_gemm_flops(1, 600, 20_108) / flops_per_user(20_108, ModelConfig(), nnz_per_user=73)
    assert 0.9 < share < 1.0
