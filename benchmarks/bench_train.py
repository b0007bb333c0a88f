"""Training: seconds per step, users per second through the input pipeline, peak memory."""

from __future__ import annotations

from .common import REPEAT, ROUNDS, load_split, prepare_data
from .trainers import (
    BATCH,
    BATCH_SIZES,
    INPUTS,
    PIPELINES,
    PRECISIONS,
    first_batch,
    fresh_trainer,
    require_native,
    run_step,
    stepping_trainer,
)


class TrainStep:
    """Seconds per optimisation step on a fixed batch (the pipeline plays no part here)."""

    params = [INPUTS, PRECISIONS, BATCH_SIZES]
    param_names = ["input", "precision", "batch_size"]
    setup_cache = staticmethod(prepare_data)
    rounds, repeat, number = ROUNDS, REPEAT, 1  # enough samples for asv to flag a 10% change (common.REPEAT)
    warmup_time = 0.0  # stepping_trainer has already traced and run the step
    timeout = 300

    def setup(self, data: str, input: str, precision: str, batch_size: int) -> None:
        require_native(precision)
        self.trainer = stepping_trainer(data, input, precision, batch_size)
        self.x = first_batch(data, input, batch_size)

    def time_step(self, data: str, input: str, precision: str, batch_size: int) -> None:
        run_step(self.trainer, self.x)


class TrainThroughput:
    """Training users/s over epoch 0, batches coming through the pipeline (float32, batch 500).

    The median over full steps after the trainer's warm-up steps; higher is better.
    """

    params = [INPUTS, PIPELINES]
    param_names = ["input", "pipeline"]
    setup_cache = staticmethod(prepare_data)
    unit = "users/s"
    timeout = 300

    def setup(self, data: str, input: str, pipeline: str) -> None:
        self.trainer = fresh_trainer(data, input, pipeline, batch_size=BATCH)

    def track_users_per_s(self, data: str, input: str, pipeline: str) -> float:
        self.trainer.train_epoch(load_split(data).train, epoch=0, show_progress=False)
        median = self.trainer.throughput.summary()["median"]
        assert median is not None, "no full batch was timed"  # asv records a failure, not a number
        return median


class TrainMemory:
    """Peak resident memory of a process that builds a trainer and takes a few steps.

    Includes TensorFlow itself and the loaded split: what a training job needs, not a delta.
    """

    params = [INPUTS, BATCH_SIZES]
    param_names = ["input", "batch_size"]
    setup_cache = staticmethod(prepare_data)
    timeout = 300

    def peakmem_train(self, data: str, input: str, batch_size: int) -> None:
        trainer = fresh_trainer(data, input, batch_size=batch_size)
        trainer.train_epoch(load_split(data).train, epoch=0, max_steps=3, show_progress=False)
