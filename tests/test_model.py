import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf

from tests.factories import assert_repeats, rtol
from vaecf.config import ModelConfig, ModelKind
from vaecf.model import MultVAE
from vaecf.pipeline import to_sparse_tensor

ITEMS = 50


def batch(seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    m = (rng.random((8, ITEMS)) < 0.2).astype(np.float32)
    m[:, 0] = 1.0  # no empty rows
    return sp.csr_matrix(m)


@pytest.mark.parametrize("kind", ["vae", "dae"])
def test_sparse_and_dense_paths_give_same_loss_and_gradients(kind: ModelKind) -> None:
    # Dropout off (keep=1.0); the VAE's noise is stateless from the same seed on both paths.
    cfg = ModelConfig.for_kind(kind)
    cfg = ModelConfig(kind=cfg.kind, hidden=cfg.hidden, latent=cfg.latent, dropout_keep=1.0,
                      weight_decay=cfg.weight_decay)
    model = MultVAE(ITEMS, cfg, seed=1)
    x = batch()
    seed = tf.constant([3, 4], tf.int64)
    results = []
    for inp in (tf.constant(x.toarray()), to_sparse_tensor(x)):
        with tf.GradientTape() as tape:
            loss = model.loss(inp, tf.constant(0.2), training=True, seed=seed)
        grads = tape.gradient(loss.total, model.weights)
        results.append((loss, [tf.convert_to_tensor(g).numpy() for g in grads]))
    (dense_loss, dense_grads), (sparse_loss, sparse_grads) = results
    assert sparse_loss.total.numpy() == pytest.approx(dense_loss.total.numpy(), rel=rtol(1e-5))
    assert sparse_loss.kl.numpy() == pytest.approx(dense_loss.kl.numpy(), rel=rtol(1e-5))
    for d, s in zip(dense_grads, sparse_grads):
        np.testing.assert_allclose(s, d, rtol=rtol(1e-4), atol=1e-6)


def test_architectures_have_the_papers_shapes() -> None:
    vae = MultVAE(1000, ModelConfig())
    assert [tuple(w.shape) for w in vae.weights] == [(1000, 600), (600, 400), (200, 600), (600, 1000)]
    dae = MultVAE(1000, ModelConfig.for_kind("dae"))
    assert [tuple(w.shape) for w in dae.weights] == [(1000, 200), (200, 1000)]


def test_dropout_and_noise_only_in_training() -> None:
    model = MultVAE(ITEMS, ModelConfig(), seed=1)
    x = to_sparse_tensor(batch())
    a, _ = model.forward(x, False, tf.constant([1, 1], tf.int64))
    b, _ = model.forward(x, False, tf.constant([2, 2], tf.int64))
    assert_repeats(a.numpy(), b.numpy())
    c, _ = model.forward(x, True, tf.constant([1, 1], tf.int64))
    d, _ = model.forward(x, True, tf.constant([2, 2], tf.int64))
    assert not np.allclose(c.numpy(), d.numpy())


def test_bfloat16_policy_keeps_float32_variables_and_is_close() -> None:
    x = to_sparse_tensor(batch())
    seed = tf.constant([0, 0], tf.int64)
    f32 = MultVAE(ITEMS, ModelConfig(), seed=1)
    bf16 = MultVAE(ITEMS, ModelConfig(), seed=1, precision="mixed_bfloat16")
    assert all(w.dtype == tf.float32 for w in bf16.weights)
    lf, lb = f32.loss(x, 0.0, False, seed), bf16.loss(x, 0.0, False, seed)
    assert lb.total.dtype == tf.float32
    assert lb.total.numpy() == pytest.approx(lf.total.numpy(), rel=2e-2)


def test_float16_on_a_cpu_turns_off_the_remappers_slow_fused_float16_matmul() -> None:
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("on a GPU the fused float16 kernels are fast and stay on")
    MultVAE(ITEMS, ModelConfig(), precision="mixed_float16")
    assert tf.config.optimizer.get_experimental_options().get("remapping") is False
