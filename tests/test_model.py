import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf

from vaecf.config import ModelConfig
from vaecf.flops import flops_per_user
from vaecf.model import MultVAE, multinomial_nll, output_nll, sparse_matmul
from vaecf.pipeline import to_sparse_tensor

ITEMS = 50


def batch(seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    m = (rng.random((8, ITEMS)) < 0.2).astype(np.float32)
    m[:, 0] = 1.0  # no empty rows
    return sp.csr_matrix(m)


@pytest.mark.parametrize("kind", ["vae", "dae"])
def test_sparse_and_dense_paths_give_same_loss_and_gradients(kind: str) -> None:
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
    assert sparse_loss.total.numpy() == pytest.approx(dense_loss.total.numpy(), rel=1e-5)
    assert sparse_loss.kl.numpy() == pytest.approx(dense_loss.kl.numpy(), rel=1e-5)
    for d, s in zip(dense_grads, sparse_grads):
        np.testing.assert_allclose(s, d, rtol=1e-4, atol=1e-6)


def test_multinomial_nll_matches_numpy() -> None:
    rng = np.random.default_rng(2)
    h = rng.normal(size=(4, 5)).astype(np.float32)
    w = rng.normal(size=(5, 6)).astype(np.float32)
    b = rng.normal(size=6).astype(np.float32)
    x = np.array([[1, 0, 1, 0, 0, 0], [0, 2, 0, 0, 0, 1], [0, 0, 0, 0, 1, 0], [0] * 6], np.float32)
    logits = h @ w + b
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    expected = -(logp * x).sum(1)
    np.testing.assert_allclose(multinomial_nll(tf.constant(logits), tf.constant(x)).numpy(), expected, rtol=1e-5)
    sparse = to_sparse_tensor(sp.csr_matrix(x))
    np.testing.assert_allclose(output_nll(tf.constant(h), tf.constant(w), tf.constant(b), sparse).numpy(),
                               expected, rtol=1e-5, atol=1e-6)


def test_fused_output_gradient_matches_autodiff_including_an_empty_row() -> None:
    rng = np.random.default_rng(3)
    h, w, b = (tf.constant(rng.normal(size=s).astype(np.float32)) for s in ((4, 5), (5, 7), (7,)))
    x = np.zeros((4, 7), np.float32)
    x[0, [1, 3]] = 1.0
    x[1, [0, 6]] = [2.0, 0.5]
    x[3, 2] = 1.0  # row 2 is empty
    weights = tf.constant([0.3, 1.0, 2.0, 0.7])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([h, w, b])
        fused = tf.reduce_sum(weights * output_nll(h, w, b, to_sparse_tensor(sp.csr_matrix(x))))
        reference = tf.reduce_sum(weights * multinomial_nll(tf.matmul(h, w) + b, tf.constant(x)))
    for got, want in zip(tape.gradient(fused, [h, w, b]), tape.gradient(reference, [h, w, b])):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shuffled", [False, True])
def test_sparse_matmul_and_its_weight_gradient_match_dense(shuffled: bool) -> None:
    rng = np.random.default_rng(4)
    x = sp.random(9, 30, density=0.2, format="lil", random_state=5, dtype=np.float32)
    x[3] = 0.0  # an empty row
    x = x.tocsr()
    st = to_sparse_tensor(x)
    if shuffled:  # CSR kernels misread nonzeros out of row-major order unless they are reordered
        perm = rng.permutation(int(st.values.shape[0]))
        st = tf.SparseTensor(tf.gather(st.indices, perm), tf.gather(st.values, perm), st.dense_shape)
    w = tf.Variable(rng.normal(size=(30, 4)).astype(np.float32))
    upstream = rng.normal(size=(9, 4)).astype(np.float32)
    with tf.GradientTape() as tape:
        out = sparse_matmul(st, w)
        objective = tf.reduce_sum(out * upstream)
    np.testing.assert_allclose(out.numpy(), x.toarray() @ w.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tape.gradient(objective, w).numpy(), x.toarray().T @ upstream, rtol=1e-5, atol=1e-5)


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
    np.testing.assert_array_equal(a.numpy(), b.numpy())
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


def test_flops_count_the_output_layer_three_times() -> None:
    cfg = ModelConfig()
    per_user = flops_per_user(20_108, cfg, nnz_per_user=0)
    assert per_user == 3 * 2 * (600 * 400 + 200 * 600 + 600 * 20_108)
    assert flops_per_user(20_108, cfg, nnz_per_user=10) - per_user == 2 * 2 * 10 * 600
