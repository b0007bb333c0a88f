"""Input pipelines: how a batch of training users reaches the step.

``feed``: a Python loop slices the CSR matrix, converts the batch (to a dense array for dense
input, as the paper's code does before ``feed_dict``) and hands it to the step, synchronously.
``tfdata``: the CSR arrays live in TensorFlow; a ``tf.data`` map gathers each batch's rows
in graph ops (no Python, no GIL), runs ahead of the step on its own threads, and keeps
``prefetch`` batches ready.

With XLA on, a sparse batch's nonzeros are padded (with zero values at row 0, column 0) up to
a power of two, so the compiled step sees a handful of shapes instead of one per batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
import tensorflow as tf

from vaecf.config import InputKind, Pipeline
from vaecf.model import Batch


def epoch_order(n_users: int, seed: int, epoch: int) -> np.ndarray:
    """The users of one epoch in shuffled order: a pure function of (seed, epoch), so runs resume."""
    return np.random.default_rng([seed, epoch]).permutation(n_users)


def to_sparse_tensor(rows: sp.csr_matrix) -> tf.SparseTensor:
    coo = rows.tocoo()
    indices = np.stack([coo.row, coo.col], axis=1).astype(np.int64)
    return tf.SparseTensor(indices, coo.data.astype(np.float32), rows.shape)


def pad_nonzeros(x: tf.SparseTensor) -> tf.SparseTensor:
    """Pad the nonzeros to the next power of two with explicit zeros at (0, 0)."""
    nnz = tf.shape(x.values, out_type=tf.int64)[0]
    bits = tf.math.ceil(tf.math.log(tf.cast(tf.maximum(nnz, 1), tf.float64)) / np.log(2.0))
    pad = tf.bitwise.left_shift(tf.constant(1, tf.int64), tf.cast(bits, tf.int64)) - nnz
    indices = tf.concat([x.indices, tf.zeros([pad, 2], tf.int64)], axis=0)
    values = tf.concat([x.values, tf.zeros([pad], x.values.dtype)], axis=0)
    return tf.SparseTensor(indices, values, x.dense_shape)


def batch_spec(n_items: int, kind: InputKind) -> tf.TypeSpec:
    if kind == "dense":
        return tf.TensorSpec([None, n_items], tf.float32)
    return tf.SparseTensorSpec([None, n_items], tf.float32)


def batches(matrix: sp.csr_matrix, order: np.ndarray, batch_size: int, kind: InputKind,
            pipeline: Pipeline, prefetch: int = 2, pad: bool = False) -> Iterator[Batch]:
    """Yield the batches of one epoch (users in ``order``) in the configured form."""
    if pipeline == "feed":
        return _feed(matrix, order, batch_size, kind, pad)
    return iter(_dataset(matrix, order, batch_size, kind, prefetch, pad))


def _feed(matrix: sp.csr_matrix, order: np.ndarray, batch_size: int, kind: InputKind,
          pad: bool) -> Iterator[Batch]:
    for start in range(0, len(order), batch_size):
        rows = matrix[order[start:start + batch_size]]
        if kind == "dense":
            yield tf.constant(rows.toarray(), tf.float32)
        else:
            x = to_sparse_tensor(rows)
            yield pad_nonzeros(x) if pad else x


class _CsrTensors:
    """A CSR matrix held as TensorFlow constants, cached per matrix so each epoch reuses them."""

    _cache: dict[int, _CsrTensors] = {}

    def __init__(self, matrix: sp.csr_matrix) -> None:
        self.indptr = tf.constant(matrix.indptr.astype(np.int64))
        self.indices = tf.constant(matrix.indices.astype(np.int64))
        self.data = tf.constant(matrix.data.astype(np.float32))
        self.n_items = matrix.shape[1]

    @classmethod
    def of(cls, matrix: sp.csr_matrix) -> _CsrTensors:
        key = id(matrix)
        if key not in cls._cache:
            cls._cache.clear()  # one training matrix at a time; do not pin old ones in memory
            cls._cache[key] = cls(matrix)
        return cls._cache[key]


def _dataset(matrix: sp.csr_matrix, order: np.ndarray, batch_size: int, kind: InputKind,
             prefetch: int, pad: bool) -> tf.data.Dataset:
    csr = _CsrTensors.of(matrix)

    def gather_rows(users: tf.Tensor) -> Batch:
        starts = tf.gather(csr.indptr, users)
        positions = tf.ragged.range(starts, tf.gather(csr.indptr, users + 1))
        rows = positions.value_rowids()
        flat = positions.flat_values
        indices = tf.stack([rows, tf.gather(csr.indices, flat)], axis=1)
        shape = tf.stack([tf.shape(users, out_type=tf.int64)[0], tf.constant(csr.n_items, tf.int64)])
        values = tf.gather(csr.data, flat)
        if kind == "dense":
            return tf.scatter_nd(indices, values, shape)
        x = tf.SparseTensor(indices, values, shape)
        return pad_nonzeros(x) if pad else x

    ds = tf.data.Dataset.from_tensor_slices(order.astype(np.int64)).batch(batch_size)
    ds = ds.map(gather_rows, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(prefetch)
