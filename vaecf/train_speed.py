"""Training speed of one configuration on a prepared split: users/s of the timed steps and FLOPs per user.

Shared by ``vaecf bench``'s training rows and its serving figures (validation's share of an
epoch), so both time training the same way: ``warmup`` untimed steps, then ``steps`` timed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vaecf.config import ModelConfig, RunConfig, TrainConfig
from vaecf.data.split import Split
from vaecf.errors import VaecfError
from vaecf.flops import flops_per_user


def train_speed(split: Split, train: TrainConfig, warmup: int, steps: int, parts: bool = False) -> dict[str, Any]:
    """Throughput and FLOPs per user of one configuration (``warmup`` + ``steps`` steps from epoch 0).

    With ``parts``, then the seconds of each part of the step on the epoch's first batch.
    """
    from vaecf.breakdown import breakdown
    from vaecf.pipeline import batches
    from vaecf.train import Trainer

    config = RunConfig(model=ModelConfig(), train=train)
    trainer = Trainer(split.n_items, config, warmup_steps=warmup)
    needed = warmup + steps
    epochs = 0
    while len(trainer.throughput.users_per_s) < steps and epochs < needed:
        trainer.train_epoch(split.train, epochs, max_steps=needed, show_progress=False)
        epochs += 1
    tput = trainer.throughput.summary()
    if tput["median"] is None:  # every step a partial batch or a warm-up: nothing to report
        raise VaecfError(f"batch {train.batch_size}: no full batch was timed ({split.train.shape[0]} training users "
                         f"for {warmup} warm-up and {steps} timed steps); use a smaller batch or more users")
    nnz = split.train.nnz / split.train.shape[0]
    fpu = flops_per_user(split.n_items, config.model, nnz)
    row: dict[str, Any] = {"users_per_s": tput, "flops_per_user": fpu}
    if parts:
        first = next(batches(split.train, np.arange(train.batch_size), train.batch_size, train.input, "feed"))
        row["breakdown_s"] = breakdown(trainer, first)
    return row
