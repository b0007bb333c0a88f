"""Adaptive repetition: more timing windows and seeds where a verdict between two steps is not firm.

A verdict is firm when its 99% interval says what its 95% one does (``verdicts.Estimate.firm``):
an undecided one, or one decided at 95% but not at 99%, sits where a rerun could say otherwise.
After the budget's windows, each compared pair (each step against the step before and the
first; the first and each other step of a leave-one-out) of different speed configurations
whose speed verdict is not firm gets another round, both steps timed in it (the round pairs
them), until it is firm or the pair has ``Budget.max_windows`` windows. Disturbed windows are set
aside (``disturbance.quiet``), so a pair that lost rounds to a disturbance gets them back here.
After the budget's seeds, each such pair of different computations whose time-to-target verdict
is not firm gets another seed, on the side with fewer (both when equal), until it is firm or has
``Budget.max_quality_seeds`` (not when the speed factor's interval is the wider part of its
time-to-target ratio's: seeds cannot settle that). All of it stops once it has taken
``Budget.repeat_s`` seconds, plus what the windows set aside as disturbed would take to time again
(the disturbance's cost is given back, so that a disturbed run can reach the verdicts a quiet one
does, later; bounded by the speed phase itself): a round or a seed starts only when its expected
time still fits (estimated from the measured speed, or the curve's first seed, then scaled by how
the latest extra one compared with its estimate), which bounds the run's length.

``repeat.json`` (this module's record) lists every extra round and seed with its seconds, and for
each pair that was not firm why repetition stopped: "firm", "cap" (windows or seeds), "time" (the
seconds ran out), or "the speed's interval is the wider".
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
    """(compared, step) for every verdict the report states (``verdicts.comparisons``): each step against the
    one before and the first, or in a leave-one-out the first and each."""
    ran = [s for s in steps if s.skip is None]
    if mode == "leave-one-out":
        return [(ran[0], s) for s in ran[1:]]
    return list(zip(ran, ran[1:])) + [(ran[0], s) for s in ran[2:]]


def _name(a: Step, b: Step) -> str:
    return f"{b.slug} vs {a.slug}"


def more_windows(steps: list[Step], mode: str, record: dict[str, Any], run_dir: Path, budget: Budget, cache: Path,
                 log: Log, policy: disturbance.Policy = disturbance.DEFAULT) -> dict[str, Any]:
    """Extra rounds for the pairs whose speed verdict is not firm; the speed record, with them.

    ``policy``: the run's rules for disturbed windows, which the extra rounds follow too."""
    state = _load(run_dir, budget)
    scale = 1.0  # actual / estimated seconds of the latest extra round
    while not state.get("windows_done"):  # once done, a resumed run keeps the same windows (and so T)
        todo: dict[str, Step] = {}
        for a, b in pairs(steps, mode):
            if a.speed_key == b.speed_key:
                continue
            has = verdicts.factor(record, b.speed_key, a.speed_key)
            rounds = [(set(verdicts.window_rates(record, s.speed_key)), set(record["windows"].get(s.speed_key, {})))
                      for s in (a, b)]
            quiet, n = len(rounds[0][0] & rounds[1][0]), len(rounds[0][1] & rounds[1][1])
            windows = f"{n} windows" + (f" ({quiet} undisturbed)" if quiet < n else "")
            name = _name(a, b)
            if has is not None and has.firm():
                if name in state["speed"]:
                    state["speed"][name] = f"firm after {windows}"
                continue
            if n >= budget.max_windows:
                state["speed"][name] = f"cap: {windows}, {verdicts.speed_verdict(has)}"
                continue
            state["speed"][name] = f"not firm after {windows}"
            todo.update({a.speed_key: a, b.speed_key: b})
        if not todo:
            break
        expected = scale * sum(_window_s(record, s) for s in todo.values())
        state["given_back_s"] = scale * given_back(record, steps)  # estimated as a round is, then scaled alike
        if state["spent_s"] + expected > budget.repeat_s + state["given_back_s"]:
            for name, said in state["speed"].items():
                if said.startswith("not firm"):
                    state["speed"][name] = verdicts.OUT_OF_SECONDS + said
            break
        r = 1 + max(int(k) for windows in record["windows"].values() for k in windows)  # a round of their own
        log(f"speed: {len(todo)} configurations whose verdict against a compared step is not yet firm: round {r + 1}")
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


def given_back(record: dict[str, Any], steps: list[Step]) -> float:
    """Seconds that timing again every window set aside as disturbed would take: added to the repetition's cap."""
    threshold = disturbance.threshold_of(record)
    by_key = {s.speed_key: s for s in steps}
    return sum(_window_s(record, by_key[key]) * (len(windows) - len(disturbance.quiet(windows, threshold)))
               for key, windows in record["windows"].items() if key in by_key)


def _window_s(record: dict[str, Any], step: Step) -> float:
    """Expected seconds of one more window of ``step``: its warm-up and timed steps at its measured rate, and
    the start-up; a data-parallel world costs about five single-process windows (its launcher, N processes)."""
    rate = verdicts.speed_estimate(record, step.speed_key)
    users = record["workload"]["users"]
    return (START_S + (users if rate is None else users / rate.value)) * (WORLD if step.train.workers > 1 else 1)


def more_seeds(steps: list[Step], mode: str, run_dir: Path, budget: Budget, data_dir: Path, log: Log) -> None:
    """Extra seeds for the pairs of different computations whose time-to-target verdict is not firm."""
    from ablations.report import derive, load_run

    state = _load(run_dir, budget)
    scale = 1.0  # actual / estimated seconds of the latest extra seed
    while not state.get("seeds_done"):
        rows = {r["slug"]: r for r in derive(load_run(run_dir))["rows"]}
        curves = {slug: run_dir / "quality" / f"{(r['quality_from'] or slug)}.json" for slug, r in rows.items()
                  if r["status"] == "done"}
        todo: dict[Path, str] = {}
        compared = pairs(steps, mode)
        first = compared[0][0] if compared else None
        for a, b in compared:
            c = rows[b.slug]["vs_first" if a is first else "vs_previous"]
            name = _name(a, b)
            if curves[a.slug] == curves[b.slug] or c is None or c["ttt"] is None:
                continue  # the same curve, or no ratio to settle (no interval, or one side never reaches it)
            seeds = f"{rows[a.slug]['seeds']} and {rows[b.slug]['seeds']} seeds"
            if c["ttt"].firm():
                if name in state["time"]:
                    state["time"][name] = f"firm with {seeds}"
                continue
            if c["needs"].se < c["has"].se:
                state["time"][name] = f"not firm ({c['time']}): the speed's interval is the wider, more seeds " \
                                      "would not settle it"
                continue
            fewer = min(rows[a.slug]["seeds"], rows[b.slug]["seeds"])
            if fewer >= budget.max_quality_seeds:
                state["time"][name] = f"cap: {seeds}, {c['time']}"
                continue
            state["time"][name] = f"not firm with {seeds}"
            todo.update({curves[s.slug]: s.name for s in (a, b) if rows[s.slug]["seeds"] == fewer})
        if not todo:
            break
        path, name = next(iter(todo.items()))
        expected = scale * _curve_s(path)
        if state["spent_s"] + expected > budget.repeat_s + state.get("given_back_s", 0.0):
            for key, said in state["time"].items():
                if said.startswith("not firm with"):
                    state["time"][key] = verdicts.OUT_OF_SECONDS + said
            break
        log(f"quality: {name}, one more seed (its time-to-target verdict against a compared step is not yet firm)")
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
