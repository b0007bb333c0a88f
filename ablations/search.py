"""Leave-one-out from the fastest configuration measured here, not from "every switch on".

A switch is one field of the ladder with an off value (``baseline``) and an on value (``full``);
the larger batch always comes with its recipe (``TrainConfig.rescaled``) and data parallelism is
a switch wherever more than one worker fits. Starting from every switch on but data parallelism
(one flip away from every configuration, so that each round starts one data-parallel world, not
one per neighbour), each round times the current configuration and every configuration one
switch away from it (``ablations.speed``, one timing window each) and moves to the fastest; it
stops when the current one is the fastest of its neighbourhood. From there each switch is
flipped on its own: a switch that is on is reverted ("without X"); a switch that is off because
it slows this machine down is turned on ("with X"), so its cost is measured and reported.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ablations import speed
from ablations.disturbance import DEFAULT, Policy
from ablations.ladder import SWITCH_NAMES, Budget, Hardware, Ladder, Step, cap_batch, fit_to, large_batch_recipe
from vaecf.config import TrainConfig


def switches(ladder: Ladder, hardware: Hardware) -> dict[str, tuple[Any, Any]]:
    """field -> (off, on) for every switch that can be tried on this hardware."""
    out = {k: (ladder.baseline[k], v) for k, v in ladder.full.items() if ladder.baseline.get(k, v) != v}
    if "workers" in out:
        workers = min(int(out["workers"][1]), hardware.gpus or hardware.cores)
        if workers > 1:
            out["workers"] = (1, workers)
        else:
            del out["workers"]
    return out


def configuration(ladder: Ladder, on: frozenset[str], flips: dict[str, tuple[Any, Any]], budget: Budget,
                  hardware: Hardware, train_users: int) -> TrainConfig:
    """The configuration with the switches ``on`` set to their on values, the others off."""
    base = TrainConfig().with_overrides(**ladder.baseline)
    train = base.with_overrides(**{k: v[1] for k, v in flips.items() if k in on}, batch_scope="global")
    train, _ = cap_batch(train, budget, train_users)
    if train.global_batch != base.global_batch:  # the larger batch always with its recipe
        train = large_batch_recipe(train, base)
    return fit_to(Step(0, "", "", train), hardware, ladder.cpu).train


def search(ladder: Ladder, hardware: Hardware, budget: Budget, train_users: int, run_dir: Path, cache: Path,
           log: Callable[[str], None], policy: Policy = DEFAULT) -> tuple[list[Step], dict[str, Any]]:
    """The fastest configuration measured here and each switch flipped from it: (steps, the search's record)."""
    flips = switches(ladder, hardware)
    measured: dict[frozenset[str], Step] = {}

    def step(on: frozenset[str], name: str = "", change: str = "") -> Step:
        return Step(len(measured), name, change, configuration(ladder, on, flips, budget, hardware, train_users))

    # Every switch on but data parallelism, which is one flip away from the start and from every
    # configuration after it: one data-parallel world per round rather than one per neighbour, where
    # each costs a launcher and N processes. Where more workers are faster (GPUs), the search moves there.
    current = frozenset(flips) - {"workers"}
    rounds = []
    while True:
        around = [current, *(current ^ {k} for k in flips)]
        for on in around:
            measured.setdefault(on, step(on, name="+".join(sorted(on)) or "all off"))
        # One window per candidate to choose: the configurations reported get all of theirs later.
        record = speed.time_windows(list(measured.values()), run_dir, budget, cache, log, windows=1, policy=policy)
        rate = {on: speed.speed_summary(record, measured[on])["users_per_s"] for on in around}
        fastest = max(around, key=lambda on: rate[on])
        rounds.append({"from": sorted(current), "fastest": sorted(fastest),
                       "users_per_s": {"+".join(sorted(on)) or "all off": rate[on] for on in around}})
        if fastest == current:
            break
        log(f"leave-one-out: {_switches(measured[current].train, flips)} is not the fastest here; "
            f"moving to {_switches(measured[fastest].train, flips)}")
        current = fastest
    steps = [Step(0, "fastest configuration here", _switches(measured[current].train, flips), measured[current].train)]
    start = measured[current].train
    for k in flips:
        name, flipped = SWITCH_NAMES.get(k, k), measured[current ^ {k}].train
        label = f"without {name}" if k in current else f"with {name} (off in the fastest)"
        steps.append(Step(len(steps), label, f"{k}: {getattr(start, k)} -> {getattr(flipped, k)}", flipped))
    return steps, {"switches": {k: list(v) for k, v in flips.items()}, "start": sorted(current), "rounds": rounds}


def _switches(train: TrainConfig, flips: dict[str, tuple[Any, Any]]) -> str:
    """The switches' values in ``train`` as resolved here (after substitutions and caps)."""
    return ", ".join(f"{k}={getattr(train, k)}" for k in flips)
