"""Where a training step's time goes: the step cut into the parts an optimisation would target.

Each part runs as its own graph on one real batch and is timed best-of-``repeats`` after a
warm-up call, so the parts can be set against each other and against the output layer's three
GEMMs (``perf.gemm_rate`` at the same shape). ``output - gemms`` is what the softmax and the
elementwise passes over users x items cost; ``first_layer`` is the input side's whole cost.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from vaecf.model import Batch
from vaecf.perf import best_time
from vaecf.train import Trainer

PARTS = {
    "step": "the whole step: loss, gradients and the Adam update",
    "loss_and_grads": "loss and gradients (the step without Adam)",
    "forward": "the loss alone",
    "first_layer": "input normalisation, dropout and the first layer, forward and weight gradient",
    "output": "output layer and likelihood, forward and backward, from a fixed input",
    "adam": "the Adam update of every variable",
}


def breakdown(trainer: Trainer, x: Batch, repeats: int = 3) -> dict[str, float]:
    """Seconds per call of each of ``PARTS`` on the batch ``x`` (this updates the trainer's weights)."""
    model = trainer.model
    seed = tf.constant([0, 0], tf.int64)
    anneal = tf.constant(trainer.config.train.anneal_cap)
    w_first = model.encoder[0][0]
    h = model.hidden(x, True, seed)[0]
    grads = trainer.loss_and_grads(x)[1]

    @tf.function
    def first_layer() -> tf.Tensor:
        with tf.GradientTape() as tape:
            out = model.first_layer(x, True, seed)
        return tape.gradient(out, w_first, output_gradients=tf.ones_like(out))

    @tf.function
    def output() -> list[tf.Tensor]:
        with tf.GradientTape() as tape:
            tape.watch(h)
            nll = tf.reduce_mean(model.neg_log_likelihood(h, x))
        return tape.gradient(nll, [h, *model.decoder[-1]])

    parts: dict[str, Callable[[], object]] = {
        "step": lambda: trainer.step(x).total,
        "loss_and_grads": lambda: trainer.loss_and_grads(x)[0].total,
        "forward": tf.function(lambda: model.loss(x, anneal, True, seed).total),
        "first_layer": first_layer,
        "output": output,
        "adam": tf.function(lambda: trainer.optimizer.apply(grads)),
    }
    return {name: best_time(fn, repeats) for name, fn in parts.items()}

