"""Adaptive repetition: more timing windows and seeds where a verdict between two steps is undecided.

After the budget's windows, each pair of compared steps (adjacent steps of a ladder; the first
and each other step of a leave-one-out) of different speed configurations whose speed verdict is
"not distinguishable" (``ablations.verdicts``) gets another round, both steps timed in it (the
round pairs them), until the pair separates or has ``Budget.max_windows`` windows. After the
budget's seeds, each such pair of different computations whose time-to-target verdict is not
distinguishable gets another seed, on the side with fewer (both when equal), until it separates
or has ``Budget.max_quality_seeds`` (not when the speed factor's interval is the wider part of its
time-to-target ratio's: seeds cannot separate that). All of it stops once it has taken ``Budget.repeat_s``
seconds: a round or a seed starts only when its expected time still fits (estimated from the
measured speed, or the curve's first seed, then scaled by how the latest extra one compared with
its estimate), which bounds the run's length.

``repeat.json`` (this module's record) lists every extra round and seed with its seconds, and for
each pair that was undecided why repetition stopped: "separated", "cap" (windows or seeds),
"time" (the seconds ran out), or "one measurement" (steps the budget cannot repeat).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ablations import disturbance, quality, speed, verdicts
from ablations.jobs import REDO
from ablations.ladder import Budget, Step
from vaecf.integrity import read_record, write_record

Log = Callable[[str], None]
START_S = 10.0
"""Estimated seconds a timing window costs beyond its steps (process start, graph tracing), and a quality
curve beyond its training and validation: what the first extra round or seed is expected to take."""
WORLD = 5
"""A data-parallel window's cost in single-process windows (measured on 2 cores: ``ablations.speed``'s ETA)."""


def _load(run_dir: Path, budget: Budget) -> dict[str, Any]:
    path = run_dir / "repeat.json"
    if path.is_file():
        return read_record(path, REDO)
    return {"cap_s": budget.repeat_s, "max_windows": budget.max_windows, "max_seeds": budget.max_quality_seeds,
            "spent_s": 0.0, "rounds": [], "seeds": [], "speed": {}, "time": {}}


def pairs(steps: list[Step], mode: str) -> list[tuple[Step, Step]]:
    """(compared, step) for every verdict the report states first: adjacent steps, or the first and each."""
    ran = [s for s in steps if s.skip is None]
    if mode == "leave-one-out":
        return [(ran[0], s) for s in ran[1:]]
    return list(zip(ran, ran[1:]))


def _name(a: Step, b: Step) -> str:
    return f"{b.slug} vs {a.slug}"


def more_windows(steps: list[Step], mode: str, record: dict[str, Any], run_dir: Path, budget: Budget, cache: Path,
                 log: Log, policy: disturbance.Policy = disturbance.DEFAULT) -> dict[str, Any]:
    """Extra rounds for the pairs whose speed is not distinguishable; the speed record, with them.

    ``policy``: the run's rules for disturbed windows, which the extra rounds follow too."""
    state = _load(run_dir, budget)
    scale = 1.0  # actual / estimated seconds of the latest extra round
    while not state.get("windows_done"):  # once done, a resumed run keeps the same windows (and so T)
        todo: dict[str, Step] = {}
        for a, b in pairs(steps, mode):
            if a.speed_key == b.speed_key:
                continue
            decided = not verdicts.speed_verdict(verdicts.factor(record, b.speed_key, a.speed_key)).startswith(
                verdicts.UNDECIDED)
            n = len(set(verdicts.window_rates(record, a.speed_key)) & set(verdicts.window_rates(record, b.speed_key)))
            name = _name(a, b)
            if decided:
                if name in state["speed"]:
                    state["speed"][name] = f"separated after {n} windows"
                continue
            if n >= budget.max_windows:
                state["speed"][name] = f"cap: {n} windows"
                continue
            state["speed"][name] = f"undecided after {n} windows"
            todo.update({a.speed_key: a, b.speed_key: b})
        if not todo:
            break
        expected = scale * sum(_window_s(record, s) for s in todo.values())
        if state["spent_s"] + expected > budget.repeat_s:
            for name, said in state["speed"].items():
                if said.startswith("undecided"):
                    state["speed"][name] = said.replace("undecided", "time: undecided")
            break
        r = 1 + max(int(k) for windows in record["windows"].values() for k in windows)  # a round of their own
        log(f"speed: {len(todo)} configurations not yet distinguishable from their neighbour: round {r + 1}")
        start = time.monotonic()
        record = speed.time_windows(list(todo.values()), run_dir, budget, cache, log, windows=r + 1,
                                     policy=policy)
        took = time.monotonic() - start
        scale = took / (expected / scale)
        state["spent_s"] += took
        state["rounds"].append({"round": r, "configurations": sorted(todo), "seconds": took})
        write_record(run_dir / "repeat.json", state)
    state["windows_done"] = True
    write_record(run_dir / "repeat.json", state)
    return record


def _window_s(record: dict[str, Any], step: Step) -> float:
    """Expected seconds of one more window of ``step``: its warm-up and timed steps at its measured rate, and
    the start-up; a data-parallel world costs about five single-process windows (its launcher, N processes)."""
    rate = verdicts.speed_estimate(record, step.speed_key)
    users = record["workload"]["users"]
    return (START_S + (users if rate is None else users / rate.value)) * (WORLD if step.train.workers > 1 else 1)


def more_seeds(steps: list[Step], mode: str, run_dir: Path, budget: Budget, data_dir: Path, log: Log) -> None:
    """Extra seeds for the pairs of different computations whose time to target is not distinguishable."""
    from ablations.report import derive, load_run

    state = _load(run_dir, budget)
    scale = 1.0  # actual / estimated seconds of the latest extra seed
    while not state.get("seeds_done"):
        rows = {r["slug"]: r for r in derive(load_run(run_dir))["rows"]}
        curves = {slug: run_dir / "quality" / f"{(r['quality_from'] or slug)}.json" for slug, r in rows.items()
                  if r["status"] == "done"}
        todo: dict[Path, str] = {}
        for a, b in pairs(steps, mode):
            c = rows[b.slug]["vs_first" if mode == "leave-one-out" else "vs_previous"]
            name = _name(a, b)
            if curves[a.slug] == curves[b.slug] or c is None:
                continue
            if not c["time"].startswith(verdicts.UNDECIDED):
                if name in state["time"]:
                    state["time"][name] = f"separated with {rows[a.slug]['seeds']} and {rows[b.slug]['seeds']} seeds"
                continue
            if c["ttt"] is not None and c["needs"].se < c["has"].se:
                state["time"][name] = "undecided: the speed's interval is the wider, more seeds would not separate it"
                continue
            fewer = min(rows[a.slug]["seeds"], rows[b.slug]["seeds"])
            if fewer >= budget.max_quality_seeds:
                state["time"][name] = f"cap: {rows[a.slug]['seeds']} and {rows[b.slug]['seeds']} seeds"
                continue
            state["time"][name] = f"undecided with {rows[a.slug]['seeds']} and {rows[b.slug]['seeds']} seeds"
            todo.update({curves[s.slug]: s.name for s in (a, b) if rows[s.slug]["seeds"] == fewer})
        if not todo:
            break
        path, name = next(iter(todo.items()))
        expected = scale * _curve_s(path)
        if state["spent_s"] + expected > budget.repeat_s:
            for key, said in state["time"].items():
                if said.startswith("undecided"):
                    state["time"][key] = said.replace("undecided", "time: undecided")
            break
        log(f"quality: {name}, one more seed (its time to target is not yet distinguishable from a neighbour's)")
        took = quality.add_seed(path, data_dir)
        scale = took / (expected / scale)
        state["spent_s"] += took
        state["seeds"].append({"curve": path.stem, "seconds": took})
        write_record(run_dir / "repeat.json", state)
    state["seeds_done"] = True
    write_record(run_dir / "repeat.json", state)


def _curve_s(path: Path) -> float:
    """Expected seconds of one more seed of a curve: its first seed's training and validation time."""
    last = read_record(path, REDO)["curve"][-1]
    return START_S + last["train_s"] + last["eval_s"]
