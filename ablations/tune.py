"""The fastest configuration to the target NDCG, searched: the steps of a ``mode = "tune"`` ladder.

A configuration's time to the target is the users it must see (what it computes: batch,
learning-rate schedule, precision, workers; ``Step.maths_key``) over its users per second (what
it costs; ``Step.speed_key``). The search uses that split:

1. **Speed switches** (those that change the cost but not the maths: input, pipeline, XLA) per
   speed shape (batch x precision x workers), one timing window per candidate
   (``ablations.speed``): a one-flip coordinate search, at the paper's shape from the paper's
   switches, then at every other single-worker shape from the switches found there (all those
   shapes timed together, a round at a time, until none moves). A data-parallel shape takes
   the switches of its single-worker shape (workers are one flip from it, as in leave-one-out).
2. **The grid** (``grid``): every maths configuration is a step with its shape's fastest
   switches, after the paper's configuration itself (step 0). The runner times every step in
   the budget's windows and trains one quality curve per maths configuration (steps that
   compute the same share it), ``Budget.quality_seeds`` seeds each, all for the same time T,
   as for any ladder.
3. The result (``ablations.tune_result``): every step's time to target with its 95% interval
   (``ablations.verdicts``: the timing windows and the seeds), the fastest, and how much sooner
   it gets there than the paper's configuration, the users/s-fastest one and the runner-up.

The grid: batch 500 (the paper's), the ladder's large batch (capped by the budget) and their
geometric mean rounded to 100; the larger batches' learning rate scaled by the square root or
linearly with the batch (KL annealing over the same users either way, ``large_batch_recipe``);
float32 and the ladder's mixed precision; 1 worker everywhere and, where 2 fit, 2 workers at
the large batch with the square-root recipe (the one data-parallel point the ladders time).
Left out to fit about 15 minutes on 2 cores (13 min 26 s on the AMX Xeon at 842f24d): data
parallelism at the other batches and with the linear scaling, a separate switch search at
data-parallel shapes, a search from scratch at every shape, and more than one timing window per
search candidate (each curve has the runner's ``Budget.quality_seeds`` seeds, 2 by default, as in
any ladder).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablations import speed
from ablations.disturbance import DEFAULT, Policy
from ablations.ladder import MATHS_FIELDS, Budget, Hardware, Ladder, Step, cap_batch, fit_to, large_batch_recipe
from ablations.search import switches
from vaecf.config import TrainConfig

SCALINGS = ("sqrt", "linear")
"""How a larger batch's learning rate grows with the batch ratio (``TrainConfig.rescaled``: sqrt)."""


@dataclass(frozen=True)
class Point:
    """One maths configuration of the grid."""

    batch: int
    scaling: str
    """``sqrt`` or ``linear``; ``paper`` at the paper's batch (nothing rescaled)."""
    precision_on: bool
    workers_on: bool

    @property
    def shape(self) -> tuple[int, bool, bool]:
        """What decides its cost, besides the speed switches."""
        return self.batch, self.precision_on, self.workers_on


def batches(ladder: Ladder, budget: Budget, train_users: int) -> list[int]:
    """The paper's batch and the ladder's large batch, each capped by the budget, and their geometric mean
    (to 100): the first is the paper's configuration, trained as the paper does."""
    base = TrainConfig().with_overrides(**ladder.baseline)
    small, _ = cap_batch(base, budget, train_users)
    large, _ = cap_batch(base.with_overrides(batch_size=int(ladder.full.get("batch_size", base.batch_size))),
                         budget, train_users)
    middle = round(math.sqrt(small.global_batch * large.global_batch) / 100) * 100
    return sorted({small.global_batch, min(max(middle, small.global_batch), large.global_batch), large.global_batch})


def grid(ladder: Ladder, budget: Budget, hardware: Hardware, train_users: int) -> list[Point]:
    """Every maths configuration the tune trains (see the module's docstring)."""
    flips = switches(ladder, hardware)
    sizes = batches(ladder, budget, train_users)
    precisions = [False, True] if "precision" in flips else [False]
    points = [Point(b, "paper" if b == sizes[0] else s, p, False) for b in sizes
              for s in (("paper",) if b == sizes[0] else SCALINGS) for p in precisions]
    if "workers" in flips and sizes[-1] > sizes[0]:
        points += [Point(sizes[-1], "sqrt", p, True) for p in precisions]
    return points


def configuration(ladder: Ladder, point: Point, speed_on: frozenset[str], hardware: Hardware) -> TrainConfig:
    """``point`` with the speed switches ``speed_on`` on, as it runs on ``hardware``."""
    flips = switches(ladder, hardware)
    base = TrainConfig().with_overrides(**ladder.baseline)
    overrides = {k: flips[k][1] for k in speed_on}
    if point.precision_on:
        overrides["precision"] = flips["precision"][1]
    if point.workers_on:
        overrides["workers"] = flips["workers"][1]
    train = base.with_overrides(**overrides, batch_size=point.batch, batch_scope="global")
    if point.scaling != "paper":
        train = large_batch_recipe(train, base)
        if point.scaling == "linear":
            train = train.with_overrides(lr=base.lr * point.batch / base.global_batch)
    return fit_to(Step(0, "", "", train), hardware, ladder.cpu).train


def name(train: TrainConfig, point: Point) -> str:
    lr = "" if point.scaling == "paper" else f", {point.scaling} lr {train.lr:.4f}"
    workers = f", {train.workers} workers" if train.workers > 1 else ""
    return f"batch {train.global_batch:,}{lr}, {train.precision}{workers}"


def search(ladder: Ladder, hardware: Hardware, budget: Budget, train_users: int, run_dir: Path, cache: Path,
           log: Callable[[str], None], policy: Policy = DEFAULT) -> tuple[list[Step], dict[str, Any]]:
    """The paper's configuration, then every grid point with its shape's fastest speed switches: (steps, record)."""
    flips = switches(ladder, hardware)
    speed_switches = [k for k in flips if k not in MATHS_FIELDS]
    points = grid(ladder, budget, hardware, train_users)
    measured: dict[tuple[tuple[int, bool, bool], frozenset[str]], Step] = {}

    def rates(candidates: list[tuple[tuple[int, bool, bool], frozenset[str]]]) -> dict[Any, float]:
        """users/s of each (shape, switches on), one window each (those measured before are not timed again)."""
        for shape, on in candidates:
            train = configuration(ladder, Point(shape[0], "sqrt", shape[1], shape[2]), on, hardware)
            label = f"batch {train.global_batch:,}, {train.precision}: " + (", ".join(sorted(on)) or "no switch")
            measured.setdefault((shape, on), Step(len(measured), label, "", train))
        record = speed.time_windows(list(measured.values()), run_dir, budget, cache, log, windows=1, policy=policy)
        return {c: speed.speed_summary(record, measured[c])["users_per_s"] for c in candidates}

    def around(on: frozenset[str]) -> list[frozenset[str]]:
        return [on, *(on ^ {k} for k in speed_switches)]

    def coordinate(shapes: list[tuple[int, bool, bool]], start: frozenset[str]) -> list[dict[str, Any]]:
        """From ``start``, each shape moves to its fastest one-flip neighbour until none is faster; the
        shapes still moving are timed together, one round (one child) at a time."""
        current, moving, rounds = dict.fromkeys(shapes, start), list(shapes), []
        while moving:
            rate = rates([(shape, on) for shape in moving for on in around(current[shape])])
            for shape in list(moving):
                fastest = max(around(current[shape]), key=lambda on: rate[(shape, on)])
                rounds.append({"shape": list(shape), "from": sorted(current[shape]),
                               "users_per_s": {_label(on): rate[(shape, on)] for on in around(current[shape])}})
                if fastest == current[shape]:
                    moving.remove(shape)
                current[shape] = fastest
        best.update(current)
        return rounds

    best: dict[tuple[int, bool, bool], frozenset[str]] = {}
    paper = points[0].shape
    rounds = coordinate([paper], frozenset())  # from the paper's switches
    rounds += coordinate(sorted({p.shape for p in points if not p.workers_on} - {paper}), best[paper])
    for p in points:
        if p.workers_on:
            best[p.shape] = best[(p.shape[0], p.shape[1], False)]
    base = configuration(ladder, points[0], frozenset(), hardware)
    steps = [Step(0, "the paper's configuration", "the original code path: " + _switches(base, flips), base)]
    for p in points:
        train = configuration(ladder, p, best[p.shape], hardware)
        steps.append(Step(len(steps), name(train, p), _switches(train, flips), train))
    return steps, {"speed_switches": speed_switches, "grid": [vars(p) for p in points],
                   "rounds": rounds,
                   "fastest_switches": [{"batch": s[0], "precision_on": s[1], "workers_on": s[2],
                                         "on": sorted(on)} for s, on in best.items()]}


def _label(on: frozenset[str]) -> str:
    return "+".join(sorted(on)) or "none"


def _switches(train: TrainConfig, flips: dict[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{k}={getattr(train, k)}" for k in flips if k not in MATHS_FIELDS)
