"""Trainers and batches built from the ladder's switches, memoised per benchmark process.

asv re-runs ``setup`` before every timed sample; memoising keeps that cheap and keeps
tracing and warm-up out of the samples.
"""

from __future__ import annotations

import functools

from .common import import_tensorflow_quietly, load_split

import_tensorflow_quietly()  # before anything below imports TensorFlow

import tensorflow as tf  # noqa: E402

from vaecf.config import WARMUP_STEPS, RunConfig, TrainConfig  # noqa: E402
from vaecf.model import Batch  # noqa: E402
from vaecf.pipeline import batches, epoch_order  # noqa: E402
from vaecf.train import Trainer  # noqa: E402

INPUTS = ["dense", "sparse"]
PIPELINES = ["feed", "tfdata"]
PRECISIONS = ["float32", "mixed_bfloat16", "mixed_float16"]
"""All three run on CPU, bfloat16 through oneDNN, float16 through Eigen's fallback (1.3-1.8x
float32's step on AVX-512); see ``require_native``."""
BATCH_SIZES = [500, 2000]
"""The paper's batch, and a larger one where GEMMs outweigh per-step overhead."""
BATCH = TrainConfig().batch_size
"""Batch size of the suites that do not vary it (the paper's)."""


def fresh_trainer(folder: str, input: str = "sparse", pipeline: str = "tfdata",
                  precision: str = "float32", batch_size: int = BATCH) -> Trainer:
    """A new, untrained Mult-VAE trainer with the paper's settings and the given switches."""
    train = TrainConfig().with_overrides(input=input, pipeline=pipeline, precision=precision,
                                         batch_size=batch_size)
    return Trainer(load_split(folder).n_items, RunConfig(train=train))


@functools.cache
def first_batch(folder: str, input: str, batch_size: int) -> Batch:
    """The first training batch of epoch 0, in the form the step takes for ``input``."""
    train = load_split(folder).train
    order = epoch_order(train.shape[0], TrainConfig().seed, epoch=0)
    return next(batches(train, order, batch_size, input, "feed"))  # type: ignore[arg-type]


def run_step(trainer: Trainer, x: Batch) -> None:
    """One optimisation step, waited for (reading the loss syncs an asynchronous device)."""
    trainer.step(x).total.numpy()


@functools.cache
def stepping_trainer(folder: str, input: str, precision: str, batch_size: int) -> Trainer:
    """A trainer whose step is traced and warmed up on ``first_batch``."""
    trainer = fresh_trainer(folder, input, precision=precision, batch_size=batch_size)
    x = first_batch(folder, input, batch_size)
    for _ in range(WARMUP_STEPS):
        run_step(trainer, x)
    return trainer


@functools.cache
def scoring_trainer(folder: str, precision: str) -> Trainer:
    """An untrained trainer whose scoring function is traced (scoring cost ignores the weights)."""
    trainer = fresh_trainer(folder, precision=precision)
    trainer.scores(load_split(folder).validation_foldin[:1])
    return trainer


def require_native(precision: str) -> None:
    """Skip float16 without a GPU (asv reports a NotImplementedError in setup as skipped).

    On CPU float16 matmuls run through Eigen's generic fallback: a figure would measure that
    fallback, not vaecf, and its slower steps would not fit the 15-minute budget. Its code path
    (casts, the loss scale) is covered by tests/test_train.py.
    """
    if precision == "mixed_float16" and not tf.config.list_physical_devices("GPU"):
        raise NotImplementedError("mixed_float16 is emulated on CPU; benchmarked on a GPU only")
