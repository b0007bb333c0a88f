import numpy as np
import pytest

from vaecf.breakdown import PARTS, breakdown
from vaecf.config import ModelConfig, RunConfig, TrainConfig
from vaecf.pipeline import batches
from vaecf.train import Trainer


@pytest.mark.parametrize("kind", ["sparse", "dense"])
def test_breakdown_times_every_part_on_a_real_batch(tiny_split, kind: str) -> None:
    config = RunConfig(model=ModelConfig(), train=TrainConfig(batch_size=16, input=kind))
    trainer = Trainer(tiny_split.n_items, config)
    before = [v.numpy() for v in trainer.variables]
    x = next(batches(tiny_split.train, np.arange(16), 16, kind, "feed"))
    seconds = breakdown(trainer, x, repeats=2)
    assert list(seconds) == list(PARTS)
    assert all(np.isfinite(s) and s > 0 for s in seconds.values())
    # the step and Adam parts really ran their updates
    assert any(not np.array_equal(b, v.numpy()) for b, v in zip(before, trainer.variables))
