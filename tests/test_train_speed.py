"""One configuration's training speed: timed steps after the warm-up ones, FLOPs per user, the step's parts."""

from __future__ import annotations

import pytest

from vaecf.config import TrainConfig
from vaecf.errors import VaecfError
from vaecf.train_speed import train_speed


@pytest.mark.slow
def test_timed_steps_come_after_the_warmup_and_the_parts_are_timed(tiny_split) -> None:
    row = train_speed(tiny_split, TrainConfig(batch_size=20), warmup=2, steps=4, parts=True)
    assert row["users_per_s"]["steps"] >= 4 and row["users_per_s"]["median"] > 0
    assert row["breakdown_s"]["step"] > 0 and row["breakdown_s"]["first_layer"] > 0
    assert row["flops_per_user"] > 0


def test_no_full_timed_batch_is_an_error_naming_the_batch(tiny_split) -> None:
    batch = tiny_split.train.shape[0] + 1  # every step a partial batch: none is timed
    with pytest.raises(VaecfError, match=f"batch {batch}: no full batch was timed"):
        train_speed(tiny_split, TrainConfig(batch_size=batch), warmup=0, steps=1)
