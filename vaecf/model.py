"""Mult-VAE and Mult-DAE (Liang et al., WWW 2018) as plain ``tf.Module``s.

Plain ``tf.Variable``s rather than Keras layers: the step is a handful of matmuls, the
optimizer is a fused kernel over those variables (``optim.py``), and Horovod's collectives
take the variables as they are (they fail on Keras 3 variables).

Inputs are either a dense batch (users x items) or a ``tf.SparseTensor`` of the same shape.
The sparse path never densifies the input: the first layer is an embedding-bag (gather the
rows of W for each nonzero, sum per user), which XLA can compile, unlike
``SparseTensorDenseMatMul``, and the multinomial likelihood reads the logits at the nonzeros
only. Both paths compute the same function; ``tests/test_model.py`` checks loss and gradients.

Randomness (dropout, the VAE's reparameterisation noise) is stateless, drawn from
``(seed, step)``: a step is a pure function of its inputs, so runs repeat exactly and the
dense and sparse paths see the same noise.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import tensorflow as tf

from vaecf.config import ModelConfig, Precision

Batch = tf.Tensor | tf.SparseTensor


class Loss(NamedTuple):
    total: tf.Tensor
    neg_ll: tf.Tensor
    kl: tf.Tensor


def compute_dtype(precision: Precision) -> tf.DType:
    """Matmul dtype of a precision policy; variables and the loss always stay float32."""
    return {"float32": tf.float32, "mixed_float16": tf.float16, "mixed_bfloat16": tf.bfloat16}[precision]


class MultVAE(tf.Module):
    """Mult-VAE ``[I -> 600 -> 200 -> 600 -> I]`` or, with ``kind='dae'``, Mult-DAE ``[I -> 200 -> I]``."""

    def __init__(self, n_items: int, cfg: ModelConfig, seed: int = 98765,
                 precision: Precision = "float32") -> None:
        super().__init__(name=f"mult_{cfg.kind}")
        self.cfg = cfg
        self.n_items = n_items
        self.dtype = compute_dtype(precision)
        self.is_vae = cfg.kind == "vae"
        # Encoder [I, *hidden, latent] (the VAE's last layer emits mean and log-variance);
        # decoder mirrors it back to the items.
        q_dims = [n_items, *cfg.hidden, cfg.latent]
        p_dims = [cfg.latent, *reversed(cfg.hidden), n_items]
        q_out = [*q_dims[1:-1], 2 * cfg.latent if self.is_vae else cfg.latent]
        init = np.random.RandomState(seed)
        self.encoder = [_dense(init, i, o, f"q{k}") for k, (i, o) in enumerate(zip(q_dims[:-1], q_out))]
        self.decoder = [_dense(init, i, o, f"p{k}") for k, (i, o) in enumerate(zip(p_dims[:-1], p_dims[1:]))]

    @property
    def weights(self) -> list[tf.Variable]:
        return [w for w, _ in self.encoder + self.decoder]

    def forward(self, x: Batch, training: bool, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Logits (float32, users x items) and the per-user KL term (zero for the DAE)."""
        h = self._first_layer(x, training, seed)
        kl = tf.zeros(tf.shape(h)[:1], tf.float32)
        for w, b in self.encoder[1:]:
            h = tf.matmul(tf.tanh(h), self._cast(w)) + self._cast(b)
        if self.is_vae:
            mu, logvar = tf.split(tf.cast(h, tf.float32), 2, axis=1)
            kl = tf.reduce_sum(0.5 * (-logvar + tf.exp(logvar) + tf.square(mu) - 1.0), axis=1)
            z = mu
            if training:
                eps = tf.random.stateless_normal(tf.shape(mu), seed=_subseed(seed, 1))
                z = mu + eps * tf.exp(0.5 * logvar)
            h = tf.cast(z, self.dtype)
        else:
            h = tf.tanh(h)
        for k, (w, b) in enumerate(self.decoder):
            if k > 0:
                h = tf.tanh(h)
            h = tf.matmul(h, self._cast(w)) + self._cast(b)
        return tf.cast(h, tf.float32), kl

    def loss(self, x: Batch, anneal: tf.Tensor, training: bool, seed: tf.Tensor) -> Loss:
        """The paper's objective: multinomial NLL + anneal * KL + 2 * lam * L2 (means over users)."""
        logits, kl = self.forward(x, training, seed)
        neg_ll = tf.reduce_mean(multinomial_nll(logits, x))
        kl = tf.reduce_mean(kl)
        total = neg_ll + anneal * kl
        if self.cfg.weight_decay:
            total += 2.0 * self.cfg.weight_decay * tf.add_n([tf.nn.l2_loss(w) for w in self.weights])
        return Loss(total, neg_ll, kl)

    def _first_layer(self, x: Batch, training: bool, seed: tf.Tensor) -> tf.Tensor:
        """L2-normalise each user's row, apply input dropout, multiply by the first weights."""
        w, b = self.encoder[0]
        rate = 1.0 - self.cfg.dropout_keep
        if isinstance(x, tf.SparseTensor):
            rows, cols = x.indices[:, 0], x.indices[:, 1]
            n = tf.cast(x.dense_shape[0], tf.int32)
            norm2 = tf.math.unsorted_segment_sum(tf.square(x.values), rows, n)
            values = x.values * tf.gather(tf.math.rsqrt(tf.maximum(norm2, 1e-12)), rows)
            if training and rate > 0:
                keep = tf.random.stateless_uniform(tf.shape(values), seed=_subseed(seed, 0)) >= rate
                values = tf.where(keep, values / (1.0 - rate), 0.0)
            # Embedding-bag in float32: nnz x hidden work, negligible next to the output layer.
            h = tf.math.unsorted_segment_sum(tf.gather(w, cols) * values[:, None], rows, n) + b
            return tf.cast(h, self.dtype)
        h = tf.nn.l2_normalize(x, axis=1)
        if training and rate > 0:
            h = tf.nn.experimental.stateless_dropout(h, rate, seed=_subseed(seed, 0))
        return tf.matmul(tf.cast(h, self.dtype), self._cast(w)) + self._cast(b)

    def _cast(self, v: tf.Variable) -> tf.Tensor:
        return tf.cast(v, self.dtype) if self.dtype != tf.float32 else v


def multinomial_nll(logits: tf.Tensor, x: Batch) -> tf.Tensor:
    """Per-user ``-sum_i x_i log softmax(logits)_i``.

    Dense: exactly the paper's expression. Sparse: the same quantity written as
    ``sum(x) * logsumexp(logits) - sum_nz x_i logits_i``, with a hand-written gradient.
    """
    if isinstance(x, tf.SparseTensor):
        return _sparse_nll(logits, x.indices, x.values)
    return -tf.reduce_sum(tf.nn.log_softmax(logits) * x, axis=1)


@tf.custom_gradient
def _sparse_nll(logits: tf.Tensor, indices: tf.Tensor, values: tf.Tensor):  # noqa: ANN202 - custom_gradient pair
    """Sparse multinomial NLL whose gradient is ``sum(x) * softmax(logits) - x``, built in place.

    Autodiff of the same expression would materialise a dense zero tensor for the gather's
    gradient and add it to the softmax term: two extra passes over users x items, the largest
    tensor of the step. Here the softmax term is computed once and the nonzeros are subtracted
    from it in place (``tensor_scatter_nd_sub``).
    """
    n = tf.shape(logits)[0]
    rows = indices[:, 0]
    lse = tf.reduce_logsumexp(logits, axis=1)
    mass = tf.math.unsorted_segment_sum(values, rows, n)
    picked = tf.math.unsorted_segment_sum(tf.gather_nd(logits, indices) * values, rows, n)

    def grad(upstream: tf.Tensor) -> tuple[tf.Tensor, None, None]:
        probs = tf.exp(logits - lse[:, None]) * (mass * upstream)[:, None]
        return tf.tensor_scatter_nd_sub(probs, indices, values * tf.gather(upstream, rows)), None, None

    return mass * lse - picked, grad


def _dense(init: np.random.RandomState, fan_in: int, fan_out: int, name: str) -> tuple[tf.Variable, tf.Variable]:
    """Glorot-uniform weights and truncated N(0, 0.001) biases, as the paper's code initialises them."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    w = init.uniform(-limit, limit, size=(fan_in, fan_out)).astype(np.float32)
    b = init.normal(0.0, 0.001, size=fan_out)
    while (far := np.abs(b) > 0.002).any():  # truncated normal: redraw beyond two deviations
        b[far] = init.normal(0.0, 0.001, size=int(far.sum()))
    return tf.Variable(w, name=f"{name}_w"), tf.Variable(b.astype(np.float32), name=f"{name}_b")


def _subseed(seed: tf.Tensor, k: int) -> tf.Tensor:
    """A distinct stateless seed per random draw within one step."""
    return tf.stack([seed[0], seed[1] * 4 + k])


def flops_per_user(n_items: int, cfg: ModelConfig, nnz_per_user: float) -> float:
    """Training FLOPs per user (forward + backward) of the matmuls, the work that must be done.

    The first layer counts only its nonzero inputs (a dense-input implementation does more
    work, which shows up as a lower utilisation); its input gradient is never needed.
    Elementwise work (tanh, softmax, Adam) is not counted: it is overhead against this ceiling.
    """
    q_dims = [n_items, *cfg.hidden, cfg.latent]
    p_dims = [cfg.latent, *reversed(cfg.hidden), n_items]
    q_out = [*q_dims[1:-1], 2 * cfg.latent if cfg.kind == "vae" else cfg.latent]
    layers = list(zip(q_dims[:-1], q_out)) + list(zip(p_dims[:-1], p_dims[1:]))
    first = 2 * 2 * nnz_per_user * layers[0][1]  # forward + weight gradient
    rest = sum(3 * 2 * i * o for i, o in layers[1:])  # forward + weight grad + input grad
    return float(first + rest)
