import json
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from tests.factories import assert_repeats
from vaecf.config import ModelConfig, RunConfig, TrainConfig
from vaecf.data.split import Split
from vaecf.errors import TrainingError
from vaecf.log import EpochLog
from vaecf.train import Trainer


def config(**train: Any) -> RunConfig:
    base = dict(epochs=3, batch_size=50, total_anneal_steps=20, eval_every=1)
    return RunConfig(train=TrainConfig(**{**base, **train}))


def losses(history: list[dict]) -> list[float]:
    return [h["loss"] for h in history]


def test_training_beats_the_untrained_model(tiny_split: Split) -> None:
    trainer = Trainer(tiny_split.n_items, config(epochs=15, lr=3e-3))
    before = trainer.evaluate(tiny_split).metrics["ndcg@100"]
    result = trainer.fit(tiny_split, log=EpochLog(None))
    assert result.best["ndcg@100"] > before + 0.05
    # fit() leaves the best epoch's weights in the model.
    assert trainer.evaluate(tiny_split).metrics["ndcg@100"] == pytest.approx(result.best["ndcg@100"])


def test_runs_repeat_exactly_and_pipelines_agree(tiny_split: Split) -> None:
    a = Trainer(tiny_split.n_items, config()).fit(tiny_split, log=EpochLog(None))
    b = Trainer(tiny_split.n_items, config()).fit(tiny_split, log=EpochLog(None))
    c = Trainer(tiny_split.n_items, config(pipeline="feed")).fit(tiny_split, log=EpochLog(None))
    assert_repeats(losses(a.history), losses(b.history))
    assert_repeats(losses(a.history), losses(c.history))


def test_killed_run_resumes_after_its_last_finished_epoch(tiny_split: Split, tmp_path, monkeypatch) -> None:
    cfg = config(epochs=4)
    reference = Trainer(tiny_split.n_items, cfg).fit(tiny_split, log=EpochLog(None))

    killed = Trainer(tiny_split.n_items, cfg)
    original = Trainer.train_epoch

    def dies_in_epoch_2(self, train, epoch, **kw):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, train, epoch, **kw)

    monkeypatch.setattr(Trainer, "train_epoch", dies_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        killed.fit(tiny_split, out=tmp_path, log=EpochLog(None))
    monkeypatch.setattr(Trainer, "train_epoch", original)
    assert [h["epoch"] for h in json.loads((tmp_path / "history.json").read_text())] == [0, 1]

    ran: list[int] = []

    def recorded_epoch(self: Trainer, train: Any, epoch: int, **kw: Any) -> Any:
        ran.append(epoch)
        return original(self, train, epoch, **kw)

    monkeypatch.setattr(Trainer, "train_epoch", recorded_epoch)
    resumed = Trainer(tiny_split.n_items, cfg).fit(tiny_split, out=tmp_path, log=EpochLog(None))
    assert ran == [2, 3]
    assert losses(resumed.history) == pytest.approx(losses(reference.history), rel=1e-6)
    assert resumed.best_epoch == reference.best_epoch
    assert len(list((tmp_path / "ckpt").glob("state-*.index"))) == 1


def test_a_run_made_from_python_keeps_its_result_and_comes_back_with_from_run(tiny_split: Split, tmp_path) -> None:
    trainer = Trainer(tiny_split.n_items, config(epochs=2))
    result = trainer.fit(tiny_split, out=tmp_path, log=EpochLog(None))
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["best_epoch"] == result.best_epoch and saved["validation"] == result.best
    again = Trainer.from_run(tmp_path)  # the best epoch's weights, which fit() leaves in its model
    foldin = tiny_split.validation_foldin
    np.testing.assert_array_equal(again.scores(foldin), trainer.scores(foldin))


def test_resuming_with_another_configuration_is_refused(tiny_split: Split, tmp_path) -> None:
    Trainer(tiny_split.n_items, config(epochs=1)).fit(tiny_split, out=tmp_path, log=EpochLog(None))
    with pytest.raises(TrainingError, match="another configuration"):
        Trainer(tiny_split.n_items, config(epochs=1, lr=0.5)).fit(tiny_split, out=tmp_path, log=EpochLog(None))


def test_nan_loss_is_a_clear_error(tiny_split: Split) -> None:
    train = tiny_split.train.copy()
    train.data[:3] = np.nan
    trainer = Trainer(tiny_split.n_items, config())
    with pytest.raises(TrainingError, match="non-finite loss .* epoch 0"):
        trainer.train_epoch(train, 0)


def test_one_parseable_line_per_epoch(tiny_split: Split, tmp_path) -> None:
    path = tmp_path / "log.txt"
    with open(path, "w") as stream:
        Trainer(tiny_split.n_items, config()).fit(tiny_split, log=EpochLog(stream))
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    records = [{k: float(v) for k, _, v in (part.partition("=") for part in line.split())} for line in lines]
    assert [r["epoch"] for r in records] == [0, 1, 2]
    assert all(0 <= r["val_ndcg@100"] <= 1 and r["users_per_s"] > 0 for r in records)


@pytest.mark.slow
@pytest.mark.parametrize("switches", [dict(xla=True), dict(xla=True, input="dense"),
                                      dict(precision="mixed_bfloat16"), dict(precision="mixed_float16")])
def test_performance_switches_train_to_finite_comparable_losses(tiny_split: Split, switches: dict) -> None:
    base = Trainer(tiny_split.n_items, config(epochs=2)).fit(tiny_split, log=EpochLog(None))
    other = Trainer(tiny_split.n_items, config(epochs=2, **switches)).fit(tiny_split, log=EpochLog(None))
    assert np.isfinite(losses(other.history)).all()
    # Dropout masks differ between paths (and XLA draws its own), so only closeness is expected here.
    assert losses(other.history)[0] == pytest.approx(losses(base.history)[0], rel=3e-2)


def test_xla_step_computes_the_same_function_without_randomness(tiny_split: Split) -> None:
    model = ModelConfig(kind="dae", hidden=(), dropout_keep=1.0)
    runs = [Trainer(tiny_split.n_items, RunConfig(model=model, train=config(epochs=2).train.with_overrides(xla=xla)))
            .fit(tiny_split, log=EpochLog(None)) for xla in (False, True)]
    assert losses(runs[1].history) == pytest.approx(losses(runs[0].history), rel=1e-4)


def test_throughput_excludes_warmup_and_partial_batches(tiny_split: Split) -> None:
    trainer = Trainer(tiny_split.n_items, config(batch_size=40))
    trainer.train_epoch(tiny_split.train, 0)
    full_batches = tiny_split.train.shape[0] // 40
    assert trainer.throughput.summary()["steps"] == full_batches - 3


def test_validation_schedule_counts_updates_and_keeps_its_time_out_of_training(tiny_split: Split,
                                                                               monkeypatch) -> None:
    # A scripted clock that moves only inside a step (1 s) and a validation (100 s): the curve's
    # seconds are then exact counts of each, whatever the machine's real speed.
    from vaecf import train as train_module

    clock = [0.0]
    monkeypatch.setattr(train_module.time, "perf_counter", lambda: clock[0])
    trainer = Trainer(tiny_split.n_items, config(batch_size=40))
    step, evaluate = trainer.step, trainer.evaluate

    def timed(fn: Any, seconds: float) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            out = fn(*args, **kwargs)
            clock[0] += seconds
            return out
        return run

    monkeypatch.setattr(trainer, "step", timed(step, 1.0))
    monkeypatch.setattr(trainer, "evaluate", timed(evaluate, 100.0))
    curve = trainer.train_updates(tiny_split, updates=25, eval_every=10)  # 6 updates per epoch: crosses epochs
    assert [p["updates"] for p in curve] == [10, 20, 25]
    assert [p["users"] for p in curve] == [400, 800, 1000]
    assert [p["train_s"] for p in curve] == [10.0, 20.0, 25.0]  # the validations are not training time
    assert [p["eval_s"] for p in curve] == [100.0, 200.0, 300.0]
    assert trainer.optimizer.iterations.numpy() == 25


def test_no_annealing_steps_means_the_cap_from_the_start_not_nan(tiny_split: Split) -> None:
    trainer = Trainer(tiny_split.n_items, config(total_anneal_steps=0, epochs=1))
    stats = trainer.train_epoch(tiny_split.train, 0)
    assert np.isfinite(stats["loss"])


def test_float16_overflow_skips_the_step_drops_the_scale_and_is_not_counted_as_an_update(tiny_split: Split) -> None:
    """An absurd loss scale (2^40) makes every float16 gradient overflow until the scale has halved
    enough: those steps change no weight and are not counted among the curve's updates."""
    trainer = Trainer(tiny_split.n_items, config(precision="mixed_float16", batch_size=20))
    trainer.loss_scale.scale.assign(2.0 ** 40)
    weights = [v.numpy() for v in trainer.variables]
    trainer.train_epoch(tiny_split.train, 0, max_steps=1)
    assert trainer.skipped_steps == 1 and int(trainer.optimizer.iterations.numpy()) == 0
    assert float(trainer.loss_scale.scale.numpy()) == 2.0 ** 39
    assert all(np.array_equal(v.numpy(), w) for v, w in zip(trainer.variables, weights))

    curve = trainer.train_updates(tiny_split, updates=6, eval_every=3)
    assert [p["updates"] for p in curve] == [3, 6]
    assert int(trainer.optimizer.iterations.numpy()) == 6 and trainer.skipped_steps > 1
    assert float(trainer.loss_scale.scale.numpy()) < 2.0 ** 39


def test_gradients_that_never_get_finite_stop_training_at_the_scale_floor(tiny_split: Split) -> None:
    trainer = Trainer(tiny_split.n_items, config(precision="mixed_float16", batch_size=20))
    trainer.loss_scale.unscale = lambda grads: (grads, tf.constant(False))  # type: ignore[method-assign]  # every step overflows
    trainer.loss_scale.scale.assign(4.0)
    with pytest.raises(TrainingError, match="loss scale at its floor"):
        trainer.train_epoch(tiny_split.train, 0)
    assert trainer.skipped_steps == 3 and int(trainer.optimizer.iterations.numpy()) == 0
