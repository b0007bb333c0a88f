from typing import Any

import numpy as np
import pytest

from vaecf import breakdown as breakdown_module
from vaecf.breakdown import PARTS, breakdown
from vaecf.config import InputKind, ModelConfig, RunConfig, TrainConfig
from vaecf.pipeline import batches
from vaecf.train import Trainer


@pytest.mark.parametrize("kind", ["sparse", "dense"])
def test_breakdown_times_every_part_on_a_real_batch(tiny_split, kind: InputKind, monkeypatch) -> None:
    # best_time is perf's (tested there); here each part is run once through it and what it computes checked.
    outputs: dict[int, Any] = {}

    def run_once(fn, repeats: int) -> float:  # noqa: ANN001
        outputs[len(outputs)] = fn()
        return float(len(outputs))

    monkeypatch.setattr(breakdown_module, "best_time", run_once)
    config = RunConfig(model=ModelConfig(), train=TrainConfig(batch_size=16, input=kind))
    trainer = Trainer(tiny_split.n_items, config)
    before = [v.numpy() for v in trainer.variables]
    x = next(batches(tiny_split.train, np.arange(16), 16, kind, "feed"))
    seconds = breakdown(trainer, x, repeats=2)
    assert seconds == {name: float(i + 1) for i, name in enumerate(PARTS)}  # every part, each timed once
    parts = dict(zip(PARTS, outputs.values()))
    assert all(np.isfinite(float(parts[name])) and float(parts[name]) > 0 for name in ("step", "loss_and_grads",
                                                                                        "forward"))
    w_first, (w_out, b_out) = trainer.model.encoder[0][0], trainer.model.decoder[-1]
    assert parts["first_layer"].shape == w_first.shape  # its weight gradient
    h_grad, w_grad, b_grad = parts["output"]  # the output layer's input and weight gradients
    assert (h_grad.shape, w_grad.shape, b_grad.shape) == ((16, w_out.shape[0]), w_out.shape, b_out.shape)
    # the step and Adam parts really ran their updates
    assert any(not np.array_equal(b, v.numpy()) for b, v in zip(before, trainer.variables))
