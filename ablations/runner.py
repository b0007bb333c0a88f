"""Run a ladder: every step timed at ML-20M's shape and trained for quality in the same time.

A run, in order (each part recorded as it finishes, so a killed run resumes where it stopped):

1. The quality data is prepared and the hardware probed (in a child: this process never imports
   TensorFlow). The steps are resolved for this hardware, or, for a leave-one-out ladder,
   searched (``ablations.search``), or, for a tune, a grid with each point's fastest speed
   switches searched (``ablations.tune``; its result: ``ablations.tune_result``).
2. The calibration of the quality data (``ablations.quality``) is read from
   ``results/calibration/`` or made: it fixes the target NDCG@100, the seed noise and the budget.
3. Speed (``ablations.speed``): every distinct configuration in interleaved windows; more rounds for
   neighbours not yet distinguishable (``ablations.repeat``).
4. The time budget T: ``time_factor`` x the time the original code path needs to reach the
   target (its calibrated updates to target x its measured seconds per update). Every step gets
   T: each configuration that computes something different is trained for T / its seconds per
   update, with validations at equal intervals of T; steps that compute the same function share
   one curve, each on its own time axis. Every curve is trained with ``Budget.quality_seeds`` seeds,
   and neighbours whose time to target is not yet distinguishable get more (``ablations.repeat``).
5. The report (``ablations.report``): table and charts, from the records alone.

Folder ``results/<machine>/<ladder>-<budget>/``: ``run.json`` (identity, provenance, steps),
``speed.json``, ``rates.json`` (the cost model's probe, ``ablations.rates``), ``quality/*.json``,
``repeat.json`` (what was repeated and why it stopped), the
calibration it used (its path under RESULTS and its sha256), tables and charts. A run refuses
to resume when the code (git sha) or the library versions changed since it started.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ablations import quality, rates, repeat, speed
from ablations.disturbance import DEFAULT, Policy
from ablations.jobs import REDO
from ablations.ladder import BUDGETS, PAPER_CODE_PATH, Budget, Hardware, Ladder, Step, prepare_quality, resolve
from ablations.report import calibration_ref
from ablations.summary import STAMP
from vaecf import doctor
from vaecf.data.prepare import folder_name
from vaecf.data.split import Split
from vaecf.errors import VaecfError
from vaecf.integrity import read_record, write_record
from vaecf.io import check_apart
from vaecf.progress import Phase
from vaecf.provenance import machine_name

Log = Callable[[str], None]


def say(message: str) -> None:
    """The runner's progress lines, flushed at once (a run's output is often a log file), above any bar."""
    tqdm.write(message, file=sys.stderr)
    sys.stderr.flush()


CALIBRATIONS = "calibration"
"""Calibration records live in RESULTS/calibration/ (``calibration_file``)."""


def run_id(ladder: str, budget: str) -> str:
    """Deterministic, so that running the same command again resumes the same run."""
    return f"{ladder}-{budget}"


def run_ladder(ladder_name: str, budget_name: str = "quick", dataset: str | None = None, source: Path | None = None,
               results: Path = Path("results"), data_cache: Path = Path(".cache/data"), out: Path | None = None,
               hardware: Hardware | None = None, log: Log = say, allow_cpu: bool = False,
               policy: Policy = DEFAULT) -> Path:
    """Run (or resume) every step of a ladder; returns the run folder.

    ``dataset`` replaces the budget's quality data (``source``: a local copy of it). ``allow_cpu``
    runs a GPU ladder (``needs_gpu``) where TensorFlow sees no GPU, float16 steps as written: every
    GPU code path executed on a CPU (CI), not a measurement of GPUs. ``policy``: disturbed timing
    windows and waiting for quiet (``ablations.disturbance``).
    """
    ladder = Ladder.load(ladder_name)
    budget = _budget(budget_name, dataset)
    run_dir = out or results / machine_name() / run_id(ladder.name, budget.name)
    if dataset:
        run_dir = out or run_dir.with_name(f"{run_dir.name}-{folder_name(dataset)}")
    check_apart(run_dir, f"--out {run_dir}", data_cache, f"the data cache {data_cache}")
    run_dir.mkdir(parents=True, exist_ok=True)  # a bad --out fails here, before any work
    split, data_dir = prepare_quality(budget, source, data_cache)
    probe = doctor.probe()
    hardware = hardware or Hardware(gpus=probe["gpu_count"], cores=os.cpu_count() or 1,
                                    horovod=probe["versions"]["horovod"] is not None)
    if ladder.needs_gpu and not hardware.gpus and not allow_cpu:
        raise VaecfError(doctor.no_gpu_reason(ladder.name, probe))
    train_users = split.train.shape[0]
    run = _start_run(run_dir, ladder, budget, split, hardware, probe)
    log(f"ladder {ladder.name} ({budget.name} budget): quality on {budget.quality_dataset}, speed at "
        f"{budget.speed_items:,} items, on {hardware.describe()} -> {run_dir}")
    calibration_path = calibration_file(results, budget)
    calibration = _calibration(split, data_dir, budget, calibration_path, log)
    if ladder.mode == "leave-one-out":
        from ablations.search import search

        steps, run["search"] = search(ladder, hardware, budget, train_users, run_dir, data_cache, log, policy)
    elif ladder.mode == "tune":
        from ablations.tune import search as tune

        steps, run["tune"] = tune(ladder, hardware, budget, train_users, run_dir, data_cache, log, policy)
    else:
        steps = resolve(ladder, hardware, budget, train_users, float16_on_cpu=allow_cpu)
    reference = Step(-1, "the original code path (time budget)", "", PAPER_CODE_PATH)
    speeds = speed.time_windows([*steps, reference], run_dir, budget, data_cache, log, policy=policy)
    speeds = repeat.more_windows(steps, ladder.mode, speeds, run_dir, budget, data_cache, log, policy)
    rates.ensure(run_dir / "rates.json", [s.train for s in steps if s.skip is None], budget.speed_items, log,
                 worlds=not hardware.gpus)  # a CPU's data-parallel steps are predicted from a probed world
    seconds_per_update = {s.speed_key: speed.speed_summary(speeds, s)["seconds_per_update"]
                          for s in [*steps, reference] if s.skip is None}
    target, budget_s = budget_and_target(calibration["summary"], budget.target_fraction, budget.time_factor,
                                         seconds_per_update[reference.speed_key])
    run.update(steps=[_step_record(s) for s in steps], target_ndcg=target, budget_s=budget_s,
               calibration=calibration_ref(calibration_path, results, calibration, run_dir),
               reference_speed_key=reference.speed_key)
    write_record(run_dir / "run.json", run)
    _train_for_quality(steps, seconds_per_update, budget_s, budget, data_dir, run_dir, log)
    repeat.more_seeds(steps, ladder.mode, run_dir, budget, data_dir, log)
    run.setdefault("finished", time.strftime(STAMP))  # its duration, for the run line: once
    write_record(run_dir / "run.json", run)
    from ablations.report import write_report

    write_report(run_dir)
    return run_dir


def _start_run(run_dir: Path, ladder: Ladder, budget: Budget, split: Split, hardware: Hardware,
               probe: dict[str, Any]) -> dict[str, Any]:
    """run.json: a new run, or the existing one after checking it is the same run on the same code."""
    path = run_dir / "run.json"
    identity = {"ladder": dataclasses.asdict(ladder), "budget": dataclasses.asdict(budget),
                "data_key": split.stats["cache_key"], "hardware": dataclasses.asdict(hardware)}
    provenance = {"git_sha": probe["git_sha"], "versions": probe["versions"]}
    if path.is_file():
        run = read_record(path, REDO)
        if {k: run.get(k) for k in identity} != json.loads(json.dumps(identity)):
            raise VaecfError(f"{run_dir} holds another run (ladder, budget, data or hardware differ); "
                             "remove it or choose another --out")
        if {k: run["machine"].get(k) for k in provenance} != provenance:
            raise VaecfError(f"{run_dir} was started with code {run['machine']['git_sha']} and "
                             f"{run['machine']['versions']}; now {probe['git_sha']} and {probe['versions']}: "
                             "a run's measurements must come from one code and library state: finish it with "
                             "those, or start a new run (remove the folder or choose another --out)")
        return run
    run = {**identity, "machine": {**probe, "command": sys.argv}, "data": split.stats,
           "started": time.strftime(STAMP)}
    write_record(path, run)
    return run


def calibration_file(results: Path, budget: Budget) -> Path:
    """Where the calibration of a budget's quality data is kept: one per data set, shared by all runs."""
    return results / CALIBRATIONS / f"{folder_name(budget.quality_dataset)}.json"


def _calibration(split: Split, data_dir: Path, budget: Budget, path: Path, log: Log) -> dict[str, Any]:
    if path.is_file():
        record = read_record(path, "remove it to calibrate again")
        if record["cache_key"] == split.stats["cache_key"] and len(record["seeds"]) >= budget.calibration_seeds \
                and "summary" in record:
            return record
    log(f"no calibration of {budget.quality_dataset} at {path} yet: making it (the paper's recipe, "
        f"{budget.calibration_seeds} seeds x {budget.calibration_updates} updates)")
    return quality.calibrate(split, data_dir, budget.calibration_seeds, budget.calibration_updates, path, log)


def _train_for_quality(steps: list[Step], seconds_per_update: dict[str, float], budget_s: float, budget: Budget,
                       data_dir: Path, run_dir: Path, log: Log) -> None:
    """One curve per distinct computation, long enough for the fastest step that shares it."""
    groups: dict[str, list[Step]] = {}
    for s in steps:
        if s.skip is None:
            groups.setdefault(s.maths_key, []).append(s)
    plans = []
    for key, members in groups.items():
        first = members[0]
        horizon = budget.calibration_updates * PAPER_CODE_PATH.global_batch // first.train.global_batch
        fastest = min(seconds_per_update[s.speed_key] for s in members)
        updates = max(1, min(horizon, math.ceil(budget_s / fastest)))
        every = max(1, math.floor(budget_s / budget.evaluations / fastest))
        path = run_dir / "quality" / f"{first.slug}.json"
        saved = read_record(path, REDO) if path.is_file() else {}
        done = saved.get("maths_key") == key and saved.get("updates") == updates and saved.get("every") == every
        # A curve's work in the progress: its training time projected at ML-20M's shape (the rate
        # measured on the curves already trained turns that into this data's wall time).
        plans.append((key, members, horizon, updates, every, path, done, updates * seconds_per_update[first.speed_key]))
    seeds = budget.quality_seeds  # replicates of every curve: the seed spread of time to target
    held = {p[5]: quality.seeds_in(read_record(p[5], REDO)) if p[6] else 0 for p in plans}
    with Phase(sum(p[-1] for p in plans) * seeds, "quality",
               done=sum(p[-1] * min(seeds, held[p[5]]) for p in plans)) as phase:
        for n, (key, members, horizon, updates, every, path, done, work) in enumerate(plans, 1):
            first = members[0]
            if not done:
                phase.advance(0, f"curve {n} of {len(plans)}: {first.name}")
                log(f"quality: {first.name} ({updates} updates at batch {first.train.global_batch:,}, "
                    f"validation every {every})" + (f"; shared with {', '.join(s.name for s in members[1:])}"
                                                    if len(members) > 1 else ""))
                quality_dir = run_dir / "quality"
                result = quality.train_curve(data_dir, first.train, updates, every, quality_dir / f".{first.slug}",
                                             quality_dir / f"{first.slug}.log")
                write_record(path, {"maths_key": key, "steps": [s.slug for s in members], "updates": updates,
                                    "every": every, "horizon_updates": horizon,
                                    "train": dataclasses.asdict(first.train), **result})
                phase.advance(work, f"curve {n} of {len(plans)} done: {first.name}")
            for k in range(max(1, held[path]), seeds):
                log(f"quality: {first.name}, seed {k + 1} of {seeds}")
                quality.add_seed(path, data_dir)
                phase.advance(work, f"curve {n} of {len(plans)}, seed {k + 1}: {first.name}")


def budget_and_target(summary: dict[str, Any], target_fraction: float, time_factor: float,
                      reference_seconds_per_update: float) -> tuple[float, float]:
    """The target NDCG (a fraction of the calibrated converged value) and every step's time budget:
    ``time_factor`` x the calibrated updates to that target x the original code path's seconds per update."""
    target = target_fraction * summary["converged_ndcg"]
    to_target = quality.updates_to(summary, target)
    if to_target is None:  # cannot happen for a fraction <= 1 of the curve's own best; guards a bad record
        raise VaecfError(f"the calibration never reaches {target_fraction:.0%} of its best NDCG")
    return target, time_factor * to_target * reference_seconds_per_update


def _step_record(step: Step) -> dict[str, Any]:
    return {"index": step.index, "slug": step.slug, "name": step.name, "change": step.change,
            "train": dataclasses.asdict(step.train), "notes": list(step.notes), "skip": step.skip,
            "speed_key": step.speed_key, "maths_key": step.maths_key}


def calibrate_only(budget_name: str, dataset: str | None = None, source: Path | None = None,
                   results: Path = Path("results"), data_cache: Path = Path(".cache/data"), log: Log = say) -> Path:
    """Make (or finish) the calibration of a budget's quality data; returns its record's path."""
    budget = _budget(budget_name, dataset)
    split, data_dir = prepare_quality(budget, source, data_cache)
    path = calibration_file(results, budget)
    _calibration(split, data_dir, budget, path, log)
    return path


def _budget(budget_name: str, dataset: str | None) -> Budget:
    """The budget, with its quality data replaced by ``dataset`` when given."""
    budget = BUDGETS[budget_name]
    return dataclasses.replace(budget, quality_dataset=dataset) if dataset else budget
