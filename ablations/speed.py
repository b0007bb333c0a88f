"""Speed: users/s of each step's configuration on rows of ML-20M's shape, in interleaved windows.

Speed is always timed at each step's own batch on ``vaecf.workload``'s rows: ML-20M's shape
drawn by the synthetic generator, the same rows ``vaecf bench`` and the asv suites time, so a
step costs here what it would cost on the real data. Each configuration is timed in ``windows``
rounds; in every round each configuration gets one window (``warmup`` untimed steps, then
``steps`` timed ones of the largest batch; a smaller batch gets up to twice as many, as long as
they time no more users) in a fresh child process, one after the other, so that a machine whose
load drifts during the run is shared out evenly between the steps rather than falling on one.
A step's speed is the median of its undisturbed windows' medians, with their spread. Each window
records the machine's state during it and its round's GEMM rate; a disturbed one is timed again,
within bounds, and set aside if it stays disturbed (``ablations.disturbance``).

The runner's own process never imports TensorFlow (on a GPU it would reserve the device's
memory before a child could): the GEMM ceilings are measured by the children, in the first and
the last round, for every (per-worker batch, precision) that a step trains at; a shape's ceiling
is the best of its rounds.

Child entry point: ``python -m ablations.speed JOB.json OUT.json`` (data-parallel configurations
are started through ``vaecf.launch`` with their workers; rank 0 writes OUT).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from ablations import disturbance
from ablations.jobs import REDO, run_job
from ablations.ladder import Budget, Step
from vaecf.config import ModelConfig, TrainConfig
from vaecf.errors import VaecfError
from vaecf.integrity import read_record, write_record
from vaecf.io import atomic_write, read_json
from vaecf.progress import Phase
from vaecf.tfenv import TF32
from vaecf.workload import PRESET, rows_of_shape


def ceiling_shapes(steps: Sequence[Step]) -> list[tuple[int, str]]:
    """The (per-worker batch, precision) pairs whose GEMM ceiling the steps are measured against."""
    return sorted({(s.train.global_batch // s.train.workers, s.train.precision) for s in steps})


def time_windows(steps: Sequence[Step], run_dir: Path, budget: Budget, cache: Path,
            log: Callable[[str], None], windows: int | None = None,
            policy: disturbance.Policy = disturbance.DEFAULT) -> dict[str, Any]:
    """Time every distinct configuration of ``steps`` in ``windows`` (default: the budget's) rounds.

    Returns the speed record (``run_dir/speed.json``), rewritten after every window, so a killed
    run resumes with the windows it has; a window is recorded whole or not at all. Fewer windows
    now and more later add to the same record. ``policy``: what counts as a disturbed window, how often
    one is repeated, and how long to wait for quiet before each round.
    """
    unique: dict[str, Step] = {}
    for s in steps:  # the first step of each cost is the one named in the log
        if s.skip is None:
            unique.setdefault(s.speed_key, s)
    path = run_dir / "speed.json"
    record = read_record(path, REDO) if path.is_file() else {"windows": {}, "ceilings": {}}
    users = max(s.train.global_batch for s in unique.values()) * (budget.warmup_steps + budget.window_steps)
    data = cache / f"speed-workload-{PRESET}-{users}x{budget.speed_items}.npz"
    if not data.is_file():
        data.parent.mkdir(parents=True, exist_ok=True)
        rows = rows_of_shape(users, budget.speed_items)
        atomic_write(data, lambda tmp: _save_npz(tmp, rows))
    if record.get("workload", {}).get("users") != users:  # read once; the search calls this every round
        record["workload"] = {"preset": PRESET, "users": users, "items": budget.speed_items,
                              "mean_items": sp.load_npz(data).nnz / users}
    shapes = ceiling_shapes(list(unique.values()))
    record["disturbance"] = {"threshold": policy.threshold, "repeats": policy.repeats}
    rounds = windows or budget.windows
    with Phase(rounds * len(unique), "speed", "windows",
               done=sum(not _missing(record, key, r) for key in unique for r in range(rounds))) as phase:
        _rounds(record, unique, shapes, rounds, run_dir, data, budget, log, phase, policy)
    return record


def _rounds(record: dict[str, Any], unique: dict[str, Step], shapes: list[tuple[int, str]], rounds: int,
            run_dir: Path, data: Path, budget: Budget, log: Callable[[str], None], phase: Phase,
            policy: disturbance.Policy) -> None:
    """The timing windows ``record`` lacks, round by round, each recorded as it finishes."""
    path = run_dir / "speed.json"
    took: dict[str, float] = {}  # seconds of each child (the single-worker one, each world) in its latest round

    def left(r: int, after: str) -> float | None:
        """Seconds the children still to run take, each as long as its latest round (None: one not yet timed)."""
        order = ["single", *(k for k, s in unique.items() if s.train.workers > 1)]
        todo = order[order.index(after) + 1:] + order * (rounds - r - 1)
        return sum(took[c] for c in todo) if all(c in took for c in todo) else None

    for r in range(rounds):
        single = [s for key, s in unique.items() if s.train.workers == 1 and _missing(record, key, r)]
        # Ceilings around the run: in the first and the last round, for every shape timed by then.
        have = record["ceilings"].get(f"{r}", {})
        ceilings = [sh for sh in shapes if f"{sh[0]},{sh[1]}" not in have] if r in (0, budget.windows - 1) else []
        if single or ceilings:
            log(f"speed, round {r + 1} of {rounds}: " + ", ".join(s.name for s in single))
            start = time.monotonic()
            out = _timed(run_dir, r, single, ceilings, data, budget, policy, log)
            took["single"] = time.monotonic() - start
            for key, window in out["windows"].items():
                record["windows"].setdefault(key, {})[f"{r}"] = window
            if ceilings:
                record["ceilings"].setdefault(f"{r}", {}).update(out["ceilings"])
            record["machine"] = out["machine"]
            write_record(path, record)
            phase.advance(len(single), f"round {r + 1} of {rounds}", left(r, "single"))
        for key, step in unique.items():
            if step.train.workers > 1 and _missing(record, key, r):
                log(f"speed, round {r + 1} of {rounds}: {step.name} ({step.train.workers} workers)")
                start = time.monotonic()
                out = _timed(run_dir, r, [step], [], data, budget, policy, log)
                took[key] = time.monotonic() - start
                record["windows"].setdefault(key, {})[f"{r}"] = out["windows"][key]
                write_record(path, record)
                phase.advance(1, f"round {r + 1} of {rounds}, {step.name}", left(r, key))


def _save_npz(path: Path, matrix: sp.csr_matrix) -> None:
    with open(path, "wb") as f:  # a file object: given a path, scipy would append ".npz" to it
        sp.save_npz(f, matrix)


def _missing(record: dict[str, Any], key: str, r: int) -> bool:
    return f"{r}" not in record["windows"].get(key, {})


def _timed(run_dir: Path, r: int, steps: list[Step], shapes: list[tuple[int, str]], data: Path, budget: Budget,
           policy: disturbance.Policy, log: Callable[[str], None]) -> dict[str, Any]:
    """``_child`` after waiting for quiet (when asked), its disturbed windows timed again: at most
    ``policy.repeats`` times, and no more once an attempt is no quieter than the one before (the
    disturbance is not passing: another attempt would measure it again)."""
    wait = disturbance.wait_quiet(policy, log)
    out = _child(run_dir, r, steps, shapes, data, budget)
    again = [s for s in steps if disturbance.disturbed(out["windows"][s.speed_key], policy.threshold)]
    for attempt in range(policy.repeats):
        if not again:
            break
        log(f"speed, round {r + 1}: {len(again)} window(s) disturbed (other processes above "
            f"{policy.threshold:.0%} of the CPUs): timing again ({attempt + 1} of {policy.repeats})")
        redo = _child(run_dir, r, again, [], data, budget)
        passing = []
        for s in again:
            before, new = out["windows"][s.speed_key], redo["windows"][s.speed_key]
            if disturbance.disturbed(new, policy.threshold) and disturbance.quieter(new, before):
                passing.append(s)
            out["windows"][s.speed_key] = disturbance.keep(before, new)
        again = passing
    if wait is not None:
        for window in out["windows"].values():
            window["quiet_wait"] = wait
    return out


def _child(run_dir: Path, r: int, steps: list[Step], shapes: list[tuple[int, str]], data: Path,
           budget: Budget) -> dict[str, Any]:
    """One child process (or one data-parallel world) timing ``steps`` in window ``r``."""
    job = {"window": r, "data": str(data), "warmup": budget.warmup_steps, "steps": budget.window_steps,
           "ceilings": shapes, "configs": {s.speed_key: dataclasses.asdict(s.train) for s in steps},
           "root_pid": os.getpid()}
    train = steps[0].train if steps else TrainConfig()
    what = f"timing window {r + 1} of {', '.join(s.name for s in steps) or 'the ceilings'}"
    return run_job("ablations.speed", job, run_dir / "speed", train.workers if len(steps) == 1 else 1, train.engine,
                   run_dir / "speed.log", what)


def speed_summary(record: dict[str, Any], step: Step) -> dict[str, Any]:
    """One configuration's speed: median of its undisturbed windows' medians (``disturbance.quiet``), their
    spread, MFU and memory; what the machine did counts over every window."""
    from vaecf.flops import flops_per_user, mfu

    threshold = disturbance.threshold_of(record)
    windows = list(record["windows"][step.speed_key].values())
    used = list(disturbance.quiet(record["windows"][step.speed_key], threshold).values())
    medians = [w["users_per_s_median"] for w in used]
    steps = [u for w in used for u in w["users_per_s"]]
    shape = f"{step.train.global_batch // step.train.workers},{step.train.precision}"
    rates = [c[shape] for c in record["ceilings"].values() if shape in c]
    # The ceiling is the best rate this machine reached at the shape in the run: a round that shared
    # the cores with other work measures less, and its mean would let MFU exceed 1.
    ceiling = max(rates) if rates else None  # every shape is measured; None guards an old record
    # On GPUs each worker brings its own device and ceiling; CPU workers split one host's cores.
    devices = step.train.workers if record["machine"]["gpu_count"] else 1
    fpu = flops_per_user(record["workload"]["items"], ModelConfig(), record["workload"]["mean_items"])
    users_per_s = float(np.median(medians))
    return {
        **disturbance.summarise(windows, threshold),
        "windows_set_aside": len(windows) - len(used),
        "users_per_s": users_per_s,
        "window_medians": medians,
        "window_min": min(medians), "window_max": max(medians),
        "step_p10": float(np.percentile(steps, 10)), "step_p90": float(np.percentile(steps, 90)),
        "seconds_per_update": step.train.global_batch / users_per_s,
        "gemm_flops": ceiling, "gemm_flops_by_round": rates, "flops_per_user": fpu,
        "mfu": mfu(fpu, users_per_s, ceiling, devices) if ceiling else None,
        "peak_rss_bytes": max(w["peak_rss_bytes"] or 0 for w in windows) or None,
        "device_peak_bytes": max(w["device_peak_bytes"] or 0 for w in windows) or None,
    }


# -- the child ------------------------------------------------------------------------------------

def child_main(job_path: Path, out_path: Path) -> None:
    """Measure the job's ceilings and its shapes' GEMM rates in this round, then time each configuration for
    one window with the machine's state during it; write the result."""
    import gc

    from vaecf.launch import is_worker, world_from_env
    from vaecf.machine_state import between, sample

    job = read_json(job_path)
    configs = {key: TrainConfig(**c) for key, c in job["configs"].items()}
    world = None
    if is_worker():  # a data-parallel job: one configuration, this process one of its workers
        first = next(iter(configs.values()))
        world = world_from_env(first.engine, first.compression)
    from vaecf.perf import gemm_rate, machine_info, reset_peak_memory, window_peak_bytes
    from vaecf.train import Trainer

    matrix = sp.load_npz(job["data"]).tocsr()
    ceilings = {f"{batch},{precision}": gemm_rate(batch, ModelConfig().hidden[-1], matrix.shape[1], precision,
                                                  repeats=2) for batch, precision in job["ceilings"]}
    # This round's GEMM rate at each step's shape: the ceiling where this round measured it, else a short
    # one; not in a world, whose workers would share the cores and measure each other.
    shapes = {f"{t.global_batch // t.workers},{t.precision}": (t.global_batch // t.workers, t.precision)
              for t in configs.values()} if world is None else {}
    gemm = {shape: ceilings.get(shape) or gemm_rate(batch, ModelConfig().hidden[-1], matrix.shape[1], precision,
                                                    repeats=1) for shape, (batch, precision) in shapes.items()}
    windows = {}
    # A smaller batch, cheap, gets more timed steps: as many as time the users of ``steps`` steps of the
    # largest batch the workload was sized for (``time_windows``: rows = that batch x (warm-up + steps)),
    # up to twice ``steps`` (each window of a 2-core run is paid for in minutes).
    timed_users = matrix.shape[0] // (job["warmup"] + job["steps"]) * job["steps"]
    for key, train in configs.items():
        reset_peak_memory()
        steps = min(2 * job["steps"], max(job["steps"], timed_users // train.global_batch))
        trainer = Trainer(matrix.shape[1], _run_config(train), world=world, warmup_steps=job["warmup"])
        before = sample(job.get("root_pid"))
        trainer.train_epoch(matrix, job["window"], max_steps=job["warmup"] + steps, show_progress=False)
        state = between(before, sample(job.get("root_pid")))
        timed = trainer.throughput.users_per_s
        if len(timed) < steps:
            raise VaecfError(f"{key}: only {len(timed)} full timed steps (workload too small)")
        windows[key] = {"users_per_s": timed, "users_per_s_median": float(np.median(timed)), **window_peak_bytes(),
                        "tf32": TF32[train.precision], "state": state,
                        "gemm_flops": gemm.get(f"{train.global_batch // train.workers},{train.precision}")}
        del trainer
        gc.collect()
    if world is None or world.rank == 0:
        write_record(out_path, {"windows": windows, "ceilings": ceilings, "machine": machine_info()})


def _run_config(train: TrainConfig) -> Any:
    from vaecf.config import RunConfig

    return RunConfig(model=ModelConfig(), train=train)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m ablations.speed JOB.json OUT.json")
    child_main(Path(sys.argv[1]), Path(sys.argv[2]))
