"""The two custom-gradient kernels behind the sparse path: the first layer and the output unit.

Both compute exactly what the paper's dense expressions compute (``tests/test_model.py`` checks
losses and gradients against them); they exist for speed, measured on CPU at ML-20M's shape.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def sparse_matmul(x: tf.SparseTensor, w: tf.Tensor) -> tf.Tensor:
    """``x @ w`` for a sparse ``x`` by TensorFlow's CSR kernels; differentiable in ``w`` only.

    Why not ``tf.sparse.sparse_dense_matmul``: on CPU its kernel, and the adjoint product its
    gradient takes, ran ~10x slower (batch 24,576 of ML-20M shape, 1.8M nonzeros, 600 columns:
    1.55 s + 1.46 s, against 0.16 s + 0.31 s here), 3.1 s of a 12.9 s step. The weight gradient
    ``x^T g`` transposes the CSR matrix and multiplies: ``SparseMatrixMatMul``'s own
    ``transpose_a`` sums in a different order on every call, the explicit transpose does not.
    The CSR conversion silently misreads nonzeros that are not in row-major order, so a batch
    out of that order (the pipelines never make one) is reordered first.
    """
    return _csr_matmul(x.indices, x.values, x.dense_shape, tf.convert_to_tensor(w))


@tf.custom_gradient
def _csr_matmul(indices: tf.Tensor, values: tf.Tensor, dense_shape: tf.Tensor, w: tf.Tensor):  # noqa: ANN202
    linear = indices[:, 0] * dense_shape[1] + indices[:, 1]
    in_order = tf.reduce_all(linear[1:] > linear[:-1])
    given = tf.SparseTensor(indices, values, dense_shape)
    x = tf.cond(in_order, lambda: given, lambda: tf.sparse.reorder(given))
    a = tf.raw_ops.SparseTensorToCSRSparseMatrix(indices=x.indices, values=x.values, dense_shape=x.dense_shape)

    def grad(upstream: tf.Tensor) -> tuple[None, None, None, tf.Tensor]:
        a_t = tf.raw_ops.SparseMatrixTranspose(input=a, type=values.dtype)
        return None, None, None, tf.raw_ops.SparseMatrixMatMul(a=a_t, b=upstream)

    return tf.raw_ops.SparseMatrixMatMul(a=a, b=w), grad


TINY = np.finfo(np.float32).tiny


def logits(h: tf.Tensor, w: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """The output layer's float32 logits ``h w + b``: the GEMM in ``h``'s dtype, the bias added in float32.

    Why the bias after the cast: TensorFlow's CPU ``BiasAdd`` has no fast bfloat16 kernel. At
    batch 500 x 20,108 items on the AMX Xeon, ``bias_add`` in bfloat16 took ~150 ms next to the
    61 ms of the AMX GEMM itself; cast to float32 first, then add: 13 ms (best of 15, one process,
    alternating, other work on the cores). The float32 addition is also the more exact one.
    """
    return tf.nn.bias_add(tf.cast(tf.matmul(h, w), tf.float32), b)


def output_nll(h: tf.Tensor, w: tf.Tensor, b: tf.Tensor, x: tf.SparseTensor) -> tf.Tensor:
    """Per-user multinomial NLL of the output layer ``softmax(h w + b)`` at the nonzeros of ``x``.

    ``b`` is float32 whatever ``h`` and ``w`` are (see ``logits``).
    """
    return _output_nll(h, tf.convert_to_tensor(w), tf.convert_to_tensor(b), x.indices, x.values)


@tf.custom_gradient
def _output_nll(h: tf.Tensor, w: tf.Tensor, b: tf.Tensor, indices: tf.Tensor, values: tf.Tensor):  # noqa: ANN202
    """The output layer and the sparse likelihood as one differentiable unit.

    The users x items tensors are the largest of the step, and every elementwise pass over them
    costs about as much memory traffic as a GEMM at batch 500. Autodiff of
    ``log_softmax(h w + b)`` read at the nonzeros makes about eight such passes (bias, the
    log-sum-exp, a dense zero tensor for the gather's gradient, its addition, the softmax in
    the backward pass...). Here: the fused softmax kernel once, forward; then, backward, with
    ``s_u = mass_u * upstream_u`` and ``Q = P - X / mass`` (the nonzeros subtracted in place),
    the logits' gradient is ``diag(s) Q``, so the per-user scale goes on the small operands:
    ``dw = (s * h)^T Q``, ``dh = s * (Q w^T)``, ``db = Q^T s``.

    The log-likelihood is read as ``log(max(p, tiny))`` at the nonzeros: it equals the exact
    log-softmax unless an item's probability underflows float32 (a logit ~87 below the top one),
    where the reported loss is clamped; the gradient is exact either way.
    """
    n = tf.shape(h)[0]
    rows = indices[:, 0]
    probs = tf.nn.softmax(logits(h, w, b))
    mass = tf.math.unsorted_segment_sum(values, rows, n)
    picked = tf.math.log(tf.maximum(tf.gather_nd(probs, indices), TINY))
    nll = -tf.math.unsorted_segment_sum(values * picked, rows, n)

    def grad(upstream: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, None, None]:
        safe_mass = tf.where(mass > 0, mass, 1.0)  # rows without nonzeros subtract nothing
        q32 = tf.tensor_scatter_nd_sub(probs, indices, values / tf.gather(safe_mass, rows))
        s32 = mass * upstream
        # The bias gradient before the cast: a sum over the batch of float32 terms, as in the
        # float32 step, whatever the compute dtype of the GEMMs.
        db = tf.linalg.matvec(q32, s32, transpose_a=True)
        if h.dtype == tf.float16:
            # float16 tops out at 65504: under loss scaling s = mass x scale / B alone overflows
            # (scale 2^15, more than 2B items), though every element of the logits' gradient
            # s * Q is far smaller. So, as the unfused path does, form the gradient in float32
            # and cast it (one more users x items pass, float16 only; bfloat16 has float32's range).
            g = tf.cast(s32[:, None] * q32, h.dtype)
            return tf.matmul(g, w, transpose_b=True), tf.matmul(h, g, transpose_a=True), db, None, None
        q, s = tf.cast(q32, h.dtype), tf.cast(s32, h.dtype)
        dw = tf.matmul(h * s[:, None], q, transpose_a=True)
        dh = tf.matmul(q, w, transpose_b=True) * s[:, None]
        return dh, dw, db, None, None

    return nll, grad
