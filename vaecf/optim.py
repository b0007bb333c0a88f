"""Adam as one fused kernel per variable, and dynamic loss scaling for float16.

The model has ~24M parameters at 20k items. An unfused Adam reads and writes them in several
elementwise passes per step; ``ResourceApplyAdam`` does the whole update in one pass (and has
CPU, GPU and XLA kernels). It is TF1's ``AdamOptimizer`` update, the optimizer the paper used:
``lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t); w -= lr_t * m / (sqrt(v) + eps)``.
"""

from __future__ import annotations

import tensorflow as tf


class Adam(tf.Module):
    """Fused Adam over a fixed list of float32 variables."""

    def __init__(self, variables: list[tf.Variable], lr: float, beta1: float, beta2: float,
                 epsilon: float) -> None:
        super().__init__(name="adam")
        self.variables_ = variables
        self.lr, self.beta1, self.beta2, self.epsilon = lr, beta1, beta2, epsilon
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False, name=f"m_{i}") for i, v in enumerate(variables)]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False, name=f"v_{i}") for i, v in enumerate(variables)]
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")

    def apply(self, grads: list[tf.Tensor]) -> tf.Operation:
        t = tf.cast(self.iterations + 1, tf.float32)
        b1_power, b2_power = tf.pow(self.beta1, t), tf.pow(self.beta2, t)
        for var, m, v, g in zip(self.variables_, self.m, self.v, grads):
            tf.raw_ops.ResourceApplyAdam(
                var=var.handle, m=m.handle, v=v.handle, beta1_power=b1_power, beta2_power=b2_power,
                lr=tf.constant(self.lr, tf.float32), beta1=tf.constant(self.beta1, tf.float32),
                beta2=tf.constant(self.beta2, tf.float32), epsilon=tf.constant(self.epsilon, tf.float32),
                grad=tf.convert_to_tensor(g), use_locking=False)
        return self.iterations.assign_add(1)


class LossScale(tf.Module):
    """Dynamic loss scaling: keeps float16 gradients out of the underflow range.

    Scale the loss up before differentiating and the gradients down after; a step whose
    gradients are not finite is skipped and halves the scale, down to ``floor``; every
    ``period`` finite steps double it. Gradients that stay non-finite would otherwise halve the
    scale to 0 without a word: at the floor a skipped step is an error (``Trainer`` raises). A
    disabled scale (float32, bfloat16) is the identity and always applies.
    """

    def __init__(self, enabled: bool, initial: float = 2.0 ** 15, period: int = 2000, floor: float = 1.0) -> None:
        super().__init__(name="loss_scale")
        self.enabled = enabled
        self.period = period
        self.floor = floor
        self.scale = tf.Variable(initial if enabled else 1.0, trainable=False, name="scale")
        self.good_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="good_steps")

    def unscale(self, grads: list[tf.Tensor]) -> tuple[list[tf.Tensor], tf.Tensor]:
        """Gradients divided by the scale, and whether they are all finite."""
        if not self.enabled:
            return grads, tf.constant(True)
        grads = [tf.convert_to_tensor(g) / self.scale for g in grads]
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
        return grads, finite

    def update(self, finite: tf.Tensor) -> None:
        if not self.enabled:
            return
        grow = tf.logical_and(finite, self.good_steps + 1 >= self.period)
        shrunk = tf.maximum(self.scale / 2.0, self.floor)
        self.scale.assign(tf.where(grow, self.scale * 2.0, tf.where(finite, self.scale, shrunk)))
        self.good_steps.assign(tf.where(finite & ~grow, self.good_steps + 1, tf.constant(0, tf.int64)))

    def at_floor(self) -> bool:
        """Whether the scale can shrink no further (read after a step)."""
        return self.enabled and float(self.scale.numpy()) <= self.floor
