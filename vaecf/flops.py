"""Model FLOPs: the work a training step must do, the numerator of model FLOP utilisation (MFU).

Plain arithmetic on the configuration's shapes, without TensorFlow, so that records and reports
can be derived anywhere.
"""

from __future__ import annotations

from vaecf.config import ModelConfig


def forward_gemm_flops(batch: int, hidden: int, n_items: int) -> float:
    """FLOPs of the output layer's forward GEMM (``batch x hidden`` times ``hidden x n_items``)."""
    return 2.0 * batch * hidden * n_items


def output_gemm_flops(batch: int, hidden: int, n_items: int) -> float:
    """FLOPs of the output layer's three GEMMs (forward, weight and input gradients) for one batch."""
    return 3 * forward_gemm_flops(batch, hidden, n_items)


def flops_per_user(n_items: int, cfg: ModelConfig, nnz_per_user: float) -> float:
    """Training FLOPs per user (forward + backward) of the matmuls, the work that must be done.

    The first layer counts only its nonzero inputs (a dense-input implementation does more
    work, which shows up as a lower utilisation); its input gradient is never needed.
    Elementwise work (tanh, softmax, Adam) is not counted: it is overhead against this ceiling.
    """
    layers = cfg.encoder_shapes(n_items) + cfg.decoder_shapes(n_items)
    first = 2 * 2 * nnz_per_user * layers[0][1]  # forward + weight gradient
    rest = sum(3 * 2 * i * o for i, o in layers[1:])  # forward + weight grad + input grad
    return float(first + rest)


def mfu(flops_per_user: float, users_per_s: float, gemm_flops: float, devices: int = 1) -> float:
    """Model FLOP utilisation: the model's FLOPs per second over ``devices`` x the measured GEMM ceiling.

    The one definition used by ``vaecf bench`` and the ablation runner (``ablations.speed``).
    """
    return flops_per_user * users_per_s / (devices * gemm_flops)
