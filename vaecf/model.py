"""Mult-VAE and Mult-DAE (Liang et al., WWW 2018) as plain ``tf.Module``s.

Plain ``tf.Variable``s rather than Keras layers: the step is a handful of matmuls, the
optimizer is a fused kernel over those variables (``optim.py``), and Horovod's collectives
take the variables as they are (they fail on Keras 3 variables).

Inputs are either a dense batch (users x items) or a ``tf.SparseTensor`` of the same shape.
The sparse path never densifies the input: the first layer is a CSR sparse-dense matmul
(``sparse_matmul``; an embedding-bag under XLA, which cannot compile the CSR kernels), and the output
layer and likelihood are one fused unit that reads the likelihood at the nonzeros only
(``output_nll``). Both paths compute the same function; ``tests/test_model.py`` checks loss
and gradients.

Randomness (dropout, the VAE's reparameterisation noise) is stateless, drawn from
``(seed, step)``: a step is a pure function of its inputs and the dense and sparse paths see
the same noise. On CPU, runs repeat exactly (bit for bit). On a GPU they repeat to float32
rounding only: its segment sums (``unsorted_segment_sum``) add with atomics, in a different
order each time; and were TensorFloat-32 on (it is off: ``vaecf.tfenv.TF32``), float32 matmuls
would round to 10 mantissa bits.
"""

from __future__ import annotations

from typing import NamedTuple, TypeAlias

import numpy as np
import tensorflow as tf

from vaecf.config import ModelConfig, Precision, TrainConfig
from vaecf.kernels import logits, output_nll, sparse_matmul
from vaecf.tfenv import TF32

Batch: TypeAlias = tf.Tensor | tf.SparseTensor


class Loss(NamedTuple):
    total: tf.Tensor
    neg_ll: tf.Tensor
    kl: tf.Tensor


def compute_dtype(precision: Precision) -> tf.DType:
    """Matmul dtype of a precision policy; variables and the loss always stay float32."""
    return {"float32": tf.float32, "mixed_float16": tf.float16, "mixed_bfloat16": tf.bfloat16}[precision]


def use_tf32(precision: Precision) -> None:
    """Apply the precision's TensorFloat-32 setting (``vaecf.tfenv.TF32``): process-wide, before its matmuls."""
    tf.config.experimental.enable_tensor_float_32_execution(TF32[precision])


def _unfused_float16_on_cpu() -> None:
    """float16 on a CPU (a check of the GPU code path): turn off Grappler's remapper for this process.

    It fuses float16 MatMul + BiasAdd into one kernel that on CPU runs about 500x slower than the
    two ops apart (TensorFlow 2.21, 240 x 600 @ 600 x 400 on the Xeon: 5.0 s against 0.01 s; a
    training step at 2,000 items 41.6 s against 0.50 s). Process-wide, so float32 graphs built
    after it in the same process run unfused too; on GPUs the fusion is fast and stays on.
    """
    tf.config.optimizer.set_experimental_options({"remapping": False})


class MultVAE(tf.Module):
    """Mult-VAE ``[I -> 600 -> 200 -> 600 -> I]`` or, with ``kind='dae'``, Mult-DAE ``[I -> 200 -> I]``."""

    def __init__(self, n_items: int, cfg: ModelConfig, seed: int = TrainConfig.seed,
                 precision: Precision = "float32", xla: bool = False) -> None:
        super().__init__(name=f"mult_{cfg.kind}")
        self.cfg = cfg
        self.xla = xla
        self.n_items = n_items
        self.dtype = compute_dtype(precision)
        use_tf32(precision)
        if precision == "mixed_float16" and not tf.config.list_physical_devices("GPU"):
            _unfused_float16_on_cpu()
        self.is_vae = cfg.kind == "vae"
        init = np.random.RandomState(seed)
        self.encoder = [_dense(init, i, o, f"q{k}") for k, (i, o) in enumerate(cfg.encoder_shapes(n_items))]
        self.decoder = [_dense(init, i, o, f"p{k}") for k, (i, o) in enumerate(cfg.decoder_shapes(n_items))]

    @property
    def weights(self) -> list[tf.Variable]:
        return [w for w, _ in self.encoder + self.decoder]

    def forward(self, x: Batch, training: bool, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Logits (float32, users x items) and the per-user KL term (zero for the DAE)."""
        h, kl = self.hidden(x, training, seed)
        return self._logits(h), kl

    def loss(self, x: Batch, anneal: tf.Tensor, training: bool, seed: tf.Tensor) -> Loss:
        """The paper's objective: multinomial NLL + anneal * KL + 2 * lam * L2 (means over users)."""
        h, kl = self.hidden(x, training, seed)
        neg_ll = tf.reduce_mean(self.neg_log_likelihood(h, x))
        kl = tf.reduce_mean(kl)
        total = neg_ll + anneal * kl
        if self.cfg.weight_decay:
            total += 2.0 * self.cfg.weight_decay * tf.add_n([tf.nn.l2_loss(w) for w in self.weights])
        return Loss(total, neg_ll, kl)

    def neg_log_likelihood(self, h: tf.Tensor, x: Batch) -> tf.Tensor:
        """Per-user multinomial NLL of the output layer on ``h``: fused at the nonzeros for sparse ``x``."""
        if isinstance(x, tf.SparseTensor):
            w, b = self.decoder[-1]
            return output_nll(h, self._cast(w), b, x)
        return multinomial_nll(self._logits(h), x)

    def _logits(self, h: tf.Tensor) -> tf.Tensor:
        w, b = self.decoder[-1]
        return logits(h, self._cast(w), b)

    def hidden(self, x: Batch, training: bool, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Everything before the output layer: its input (compute dtype) and the per-user KL."""
        h = self.first_layer(x, training, seed)
        kl = tf.zeros(tf.shape(h)[:1], tf.float32)
        for w, b in self.encoder[1:]:
            h = tf.nn.bias_add(tf.matmul(tf.tanh(h), self._cast(w)), self._cast(b))
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
        for w, b in self.decoder[:-1]:
            h = tf.tanh(tf.nn.bias_add(tf.matmul(h, self._cast(w)), self._cast(b)))
        return h, kl

    def first_layer(self, x: Batch, training: bool, seed: tf.Tensor) -> tf.Tensor:
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
            # float32: nnz x hidden work, small next to the output layer.
            if self.xla:  # XLA cannot compile the CSR kernels; an embedding-bag it can
                h = tf.math.unsorted_segment_sum(tf.gather(w, cols) * values[:, None], rows, n)
            else:
                h = sparse_matmul(tf.SparseTensor(x.indices, values, x.dense_shape), w)
            return tf.cast(tf.nn.bias_add(h, b), self.dtype)
        h = tf.nn.l2_normalize(x, axis=1)
        if training and rate > 0:
            h = tf.nn.experimental.stateless_dropout(h, rate, seed=_subseed(seed, 0))
        return tf.matmul(tf.cast(h, self.dtype), self._cast(w)) + self._cast(b)

    def _cast(self, v: tf.Variable) -> tf.Tensor:
        return tf.cast(v, self.dtype) if self.dtype != tf.float32 else v


def multinomial_nll(logits: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """Per-user ``-sum_i x_i log softmax(logits)_i`` for a dense batch: the paper's expression."""
    return -tf.reduce_sum(tf.nn.log_softmax(logits) * x, axis=1)


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
