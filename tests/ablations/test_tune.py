"""The tune's grid and its search of the speed switches per shape, on invented speeds."""

from __future__ import annotations

import pytest

from ablations import speed, tune
from ablations.ladder import BUDGETS, Hardware, Ladder, LadderError, resolve

CPU2 = Hardware(gpus=0, cores=2, horovod=False)
QUICK = BUDGETS["quick"]
TRAIN_USERS = 10_000  # the quick budget's data: the large batch is capped at 2,100


def test_the_grid_covers_batch_scaling_precision_and_workers() -> None:
    ladder = Ladder.load("tune")
    assert tune.batches(ladder, QUICK, TRAIN_USERS) == [500, 1000, 2100]
    points = tune.grid(ladder, QUICK, CPU2, TRAIN_USERS)
    assert len(points) == 2 + 4 + 4 + 2
    assert {p.scaling for p in points if p.batch == 500} == {"paper"}
    assert [p for p in points if p.workers_on] == [tune.Point(2100, "sqrt", False, True),
                                                   tune.Point(2100, "sqrt", True, True)]
    assert not any(p.workers_on for p in tune.grid(ladder, QUICK, Hardware(0, 1, False), TRAIN_USERS))


def test_the_recipes_scale_the_learning_rate_by_sqrt_or_linearly_and_the_annealing_alike() -> None:
    ladder = Ladder.load("tune")
    on = frozenset({"input"})
    sqrt = tune.configuration(ladder, tune.Point(2000, "sqrt", True, False), on, CPU2)
    linear = tune.configuration(ladder, tune.Point(2000, "linear", True, False), on, CPU2)
    assert sqrt.lr == pytest.approx(1e-3 * 2) and linear.lr == pytest.approx(1e-3 * 4)
    assert sqrt.total_anneal_steps == linear.total_anneal_steps == 200_000 // 4
    assert sqrt.precision == "mixed_bfloat16" and sqrt.input == "sparse" and sqrt.pipeline == "feed"
    two = tune.configuration(ladder, tune.Point(2000, "sqrt", False, True), on, CPU2)
    assert (two.workers, two.global_batch, two.engine) == (2, 2000, "tf-distribute")


def test_a_tune_ladder_is_not_resolved_as_a_plain_ladder() -> None:
    with pytest.raises(LadderError, match="tune ladder"):
        resolve(Ladder.load("tune"), CPU2, QUICK, TRAIN_USERS)


def test_each_shape_gets_its_fastest_switches_and_every_grid_point_is_a_step(monkeypatch, tmp_path) -> None:
    # Invented speeds: sparse input helps everywhere; tf.data helps only at batches above 1,000 and XLA
    # only in bfloat16: the switches found at the paper's shape must be revised at the others.
    def users_per_s(train) -> float:
        rate = 1000.0 * (3.0 if train.input == "sparse" else 1.0)
        rate *= (1.2 if train.global_batch > 1000 else 0.9) if train.pipeline == "tfdata" else 1.0
        rate *= (1.1 if train.precision == "mixed_bfloat16" else 0.5) if train.xla else 1.0
        return rate * (2.0 if train.precision == "mixed_bfloat16" else 1.0) * (0.5 if train.workers > 1 else 1.0)

    timed: list[int] = []

    def time_windows(steps: list, *args: object, **kwargs: object) -> dict:
        timed.append(len(steps))
        return {}

    monkeypatch.setattr(speed, "time_windows", time_windows)
    monkeypatch.setattr(speed, "speed_summary", lambda record, step: {"users_per_s": users_per_s(step.train)})
    steps, record = tune.search(Ladder.load("tune"), CPU2, QUICK, TRAIN_USERS, tmp_path, tmp_path, lambda _: None)

    paper = steps[0].train
    assert (paper.input, paper.pipeline, paper.xla, paper.batch_size, paper.precision) == \
        ("dense", "feed", False, 500, "float32")
    assert len(steps) == 1 + 12
    by_name = {s.name: s.train for s in steps[1:]}
    b500 = by_name["batch 500, float32"]
    assert (b500.input, b500.pipeline, b500.xla) == ("sparse", "feed", False)
    big = by_name["batch 2,100, sqrt lr 0.0020, float32"]
    assert (big.input, big.pipeline, big.xla) == ("sparse", "tfdata", False)
    bf16 = by_name["batch 1,000, linear lr 0.0020, mixed_bfloat16"]
    assert (bf16.input, bf16.pipeline, bf16.xla) == ("sparse", "feed", True)
    dp = by_name["batch 2,100, sqrt lr 0.0020, mixed_bfloat16, 2 workers"]
    assert (dp.input, dp.pipeline, dp.xla, dp.workers) == ("sparse", "tfdata", True, 2)  # its 1-worker shape's
    assert record["rounds"][0] == {"shape": [500, False, False], "from": [], "users_per_s": {
        "none": 1000.0, "input": 3000.0, "pipeline": 900.0, "xla": 500.0}}
    # Two rounds at the paper's shape; then all the others together until the last one stops moving
    # (batch 2,100 in bfloat16: input, then tf.data, then XLA, then no flip faster).
    assert len(timed) == 2 + 3


def test_on_data_too_small_for_the_paper_batch_the_grid_is_the_capped_paper_batch() -> None:
    ladder = Ladder.load("tune")
    smoke = BUDGETS["smoke"]  # batches capped at half of 480 training users
    assert tune.batches(ladder, smoke, 480) == [240]
    points = tune.grid(ladder, smoke, CPU2, 480)
    assert {(p.batch, p.scaling, p.workers_on) for p in points} == {(240, "paper", False)}
    train = tune.configuration(ladder, points[0], frozenset(), CPU2)
    assert (train.batch_size, train.lr, train.total_anneal_steps) == (240, 1e-3, 200_000)  # no recipe
