"""The custom-gradient kernels compute what the paper's dense expressions compute."""

import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf

from tests.factories import rtol
from vaecf.kernels import output_nll, sparse_matmul
from vaecf.model import multinomial_nll, use_tf32
from vaecf.pipeline import to_sparse_tensor

use_tf32("float32")  # the kernels are compared in float32 as vaecf trains it: TF32 off (vaecf.tfenv.TF32)


def test_multinomial_nll_matches_numpy() -> None:
    rng = np.random.default_rng(2)
    h = rng.normal(size=(4, 5)).astype(np.float32)
    w = rng.normal(size=(5, 6)).astype(np.float32)
    b = rng.normal(size=6).astype(np.float32)
    x = np.array([[1, 0, 1, 0, 0, 0], [0, 2, 0, 0, 0, 1], [0, 0, 0, 0, 1, 0], [0] * 6], np.float32)
    logits = h @ w + b
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    expected = -(logp * x).sum(1)
    np.testing.assert_allclose(multinomial_nll(tf.constant(logits), tf.constant(x)).numpy(), expected, rtol=rtol(1e-5))
    sparse = to_sparse_tensor(sp.csr_matrix(x))
    np.testing.assert_allclose(output_nll(tf.constant(h), tf.constant(w), tf.constant(b), sparse).numpy(),
                               expected, rtol=rtol(1e-5), atol=1e-6)


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
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=rtol(1e-5), atol=1e-6)


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
    np.testing.assert_allclose(out.numpy(), x.toarray() @ w.numpy(), rtol=rtol(1e-5), atol=1e-6)
    np.testing.assert_allclose(tape.gradient(objective, w).numpy(), x.toarray().T @ upstream, rtol=rtol(1e-5),
                               atol=1e-5)


def test_float16_fused_gradient_does_not_overflow_where_the_unfused_path_does_not() -> None:
    """Loss scale 2^15, batch 4, a user with 3,000 items: mass x scale / B = 2.5e7 > float16's 65504,
    while every element of the logits' gradient (~1e4) is finite: the fused kernel must be too."""
    rng = np.random.default_rng(6)
    items, scale = 4_000, 2.0 ** 15
    h = tf.constant(rng.normal(size=(4, 5)), tf.float16)
    w = tf.constant(rng.normal(scale=0.01, size=(5, items)), tf.float16)
    b = tf.constant(rng.normal(scale=0.01, size=items), tf.float32)  # the bias stays float32 (kernels.logits)
    x = np.zeros((4, items), np.float32)
    x[0, :3_000] = 1.0
    x[1, [5, 9]] = 1.0
    x[3, 7] = 2.0  # row 2 is empty
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([h, w, b])
        fused = tf.reduce_mean(output_nll(h, w, b, to_sparse_tensor(sp.csr_matrix(x)))) * scale
        logits = tf.nn.bias_add(tf.cast(tf.matmul(h, w), tf.float32), b)
        unfused = tf.reduce_mean(multinomial_nll(logits, tf.constant(x))) * scale
    for got, want in zip(tape.gradient(fused, [h, w, b]), tape.gradient(unfused, [h, w, b])):
        want32 = want.numpy().astype(np.float32)
        assert np.isfinite(want32).all()  # the case is one the unfused path handles
        assert got.dtype == want.dtype and np.isfinite(got.numpy()).all()
        np.testing.assert_allclose(got.numpy().astype(np.float32), want32, rtol=2e-2,
                                   atol=2e-2 * np.abs(want32).max())
