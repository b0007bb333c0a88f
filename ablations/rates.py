"""The probe: this machine's rates at a ladder's step shapes, the cost model's measured inputs.

``vaecf.costmodel`` needs, from the machine at hand: the host's batch preparation per step
(dense conversion or CSR slicing, at each step's per-worker batch: the feed pipeline's own code,
``vaecf.pipeline.batches``), the framework's fixed cost of one step (a training step at a
negligible shape), the memory bandwidth an elementwise TensorFlow op reaches, and the GEMM rate
at each (per-worker batch, precision, XLA or not) (``vaecf.perf.gemm_rate``, as the speed
ceilings). For data-parallel steps it also starts a world of their workers, as the step runs
(``vaecf.launch``: each worker on its share of the cores), in which every worker measures its
GEMM rates and bandwidth at once, and the world all-reduces the model's gradients (``worlds``).
Host figures are CPU times (wall times are kept beside them): a core's cost of the work,
whatever else shares the machine; the rates are best-of wall times, low when the machine is
loaded. The probe measures them in child processes (the runner never imports TensorFlow) and
records them as ``rates.json`` in the run folder (or where ``--out`` says), the provenance
header under ``machine`` as every record's (``vaecf.provenance.header_of`` also reads the
probes made before, which kept it under ``provenance``).

Child entry point: ``python -m ablations.rates JOB.json OUT.json`` (one process, or a world's worker).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ablations.jobs import run_job
from vaecf.config import ModelConfig, TrainConfig
from vaecf.costmodel import gemm_key
from vaecf.integrity import read_record, write_record
from vaecf.io import read_json
from vaecf.provenance import header, header_of

REPEATS = 7
"""Batches prepared per (input, batch)."""
RATE_REPEATS = 5
"""Timed calls per GEMM rate and per all-reduce, after a warm-up call: the best is kept, so a call that
shared the cores with other work is outvoted."""
BANDWIDTH_FLOATS = 1 << 25
"""Elements of the bandwidth probe's tensor (128 MiB in float32): far beyond any cache."""


def needs(trains: Iterable[TrainConfig], gemm: bool = True, worlds: bool = True) -> dict[str, list[Any]]:
    """The shapes a set of step configurations is predicted at: host (input, batch), GEMM (batch,
    precision, xla) in one process, and per data-parallel world (workers, engine, batch, precision, xla).

    A step of N workers is predicted from rates measured in a world of N workers running at once
    (``vaecf.costmodel``, assumption 9). ``gemm=False``: host figures only (a projection onto GPUs
    takes its rates from their descriptions); ``worlds=False``: no world (a machine with GPUs, whose
    projections take no CPU world's rates).
    """
    per_worker = [(t, t.global_batch // t.workers) for t in trains]
    shapes = {(t.workers, t.engine, b, t.precision, t.xla) for t, b in per_worker} if gemm else set()
    return {"host": sorted({(t.input, b) for t, b in per_worker}),
            "gemm": sorted((b, p, x) for n, _, b, p, x in shapes if n == 1),
            "worlds": sorted(s for s in shapes if s[0] > 1) if worlds else []}


def uncovered(record: dict[str, Any], job: dict[str, list[Any]]) -> list[str]:
    """The shapes of ``job`` (``needs``) that the probe ``record`` has no figure for, named as it keys them."""
    worlds = record.get("worlds", {})
    return ([f"host {k},{b}" for k, b in job["host"] if f"{k},{b}" not in record.get("host_prep_s", {})]
            + [f"GEMM {gemm_key(b, p, x)}" for b, p, x in job["gemm"]
               if gemm_key(b, p, x) not in record.get("gemm_flops", {})]
            + [f"{n} workers' GEMM {gemm_key(b, p, x)}" for n, _, b, p, x in job["worlds"]
               if gemm_key(b, p, x) not in worlds.get(str(n), {}).get("gemm_flops", {})])


def missing(record: dict[str, Any], job: dict[str, list[Any]]) -> bool:
    return bool(uncovered(record, job))


def ensure(path: Path, trains: Iterable[TrainConfig], items: int, log: Callable[[str], None],
           gemm: bool = True, worlds: bool = True) -> dict[str, Any]:
    """The probe record at ``path`` covering every shape of ``trains``: what it lacks is measured (in a
    child for one process's figures, in a world per worker count), what it has is kept.

    A world is added to a probe without measuring the rest again, so the figures a ladder run probed
    beside its speed windows stay the run's; each world carries its own provenance header.
    """
    job: dict[str, Any] = needs(trains, gemm, worlds)
    record = read_record(path, "delete it and rerun: the probe takes a minute") if path.is_file() else None
    one = record is None or missing(record, {**job, "worlds": []})
    todo = [n for n in sorted({w[0] for w in job["worlds"]})
              if record is None or missing(record, {"host": [], "gemm": [], "worlds": [w for w in job["worlds"]
                                                                                        if w[0] == n]})]
    if record is not None and not one and not todo:
        return record
    log((f"probing this machine's rates at {len(job['gemm'])} GEMM and {len(job['host'])} host shapes" if one
         else "probing this machine's rates") + (f", and in a world of {', '.join(map(str, todo))} workers"
                                                 if todo else ""))
    work, log_path = path.with_suffix(""), path.with_suffix(".log")
    kept = dict(record.get("worlds", {})) if record else {}
    if one or record is None:
        record = run_job("ablations.rates", {**job, "items": items}, work, 1, "auto", log_path,
                         "the probe of this machine's rates")
    else:  # kept; a probe made before worlds has its header moved to where every record keeps it
        rest = {k: v for k, v in record.items() if k not in ("machine", "provenance")}
        record = {"machine": header_of(record), **rest}
    record["worlds"] = kept
    for workers in todo:
        shapes = [w[2:] for w in job["worlds"] if w[0] == workers]
        engine = next(w[1] for w in job["worlds"] if w[0] == workers)
        record["worlds"][str(workers)] = run_job(
            "ablations.rates", {"items": items, "world": shapes, "engine": engine}, work, workers, engine,
            log_path, f"the probe of a world of {workers} workers")
    write_record(path, record)
    log_path.unlink(missing_ok=True)  # the child's log is kept only when it failed
    return record


def host_prep_seconds(matrix: Any, kind: str, batch: int) -> dict[str, float]:
    """The feed pipeline preparing one batch of ``kind`` (tensor made, on the host): seconds.

    ``cpu``: the preparing thread's least CPU time over the batches, what the work costs on a core
    of its own (this machine's cores are shared with other work: wall time counts the waiting, and
    a shared core's caches and memory bus inflate even CPU time, never deflate it); ``wall``: the
    median elapsed time, as it was here.
    """
    from vaecf.pipeline import batches

    order = np.random.default_rng(0).permutation(matrix.shape[0])[: batch * REPEATS]
    it = batches(matrix, order, batch, kind, "feed")  # type: ignore[arg-type]
    cpu, wall = [], []
    for _ in range(REPEATS):
        start, start_cpu = time.perf_counter(), time.thread_time()
        next(it)
        cpu.append(time.thread_time() - start_cpu)
        wall.append(time.perf_counter() - start)
    return {"cpu": float(np.min(cpu)), "wall": float(np.median(wall))}


def step_overhead_seconds() -> dict[str, float]:
    """A training step at a negligible shape, the framework's fixed cost per step: seconds per step.

    ``cpu``: the process's CPU time per step (all its threads), ``wall``: elapsed, over a second,
    warm epoch of 32 steps.
    """
    from vaecf.config import RunConfig
    from vaecf.train import Trainer

    tiny = _tiny_rows(256, 32)
    config = RunConfig(model=ModelConfig(hidden=(8,), latent=4), train=TrainConfig(batch_size=8, pipeline="feed"))
    trainer = Trainer(tiny.shape[1], config, warmup_steps=3)
    trainer.train_epoch(tiny, 0, show_progress=False)
    start, start_cpu = time.perf_counter(), time.process_time()
    steps = trainer.train_epoch(tiny, 1, show_progress=False)["steps"]
    return {"cpu": (time.process_time() - start_cpu) / steps, "wall": (time.perf_counter() - start) / steps}


def memory_bandwidth() -> float:
    """Bytes/s of an elementwise TensorFlow op (one read, one write) on a tensor far beyond the caches."""
    import tensorflow as tf

    from vaecf.perf import best_time

    x = tf.random.uniform([BANDWIDTH_FLOATS])
    scale = tf.function(lambda: tf.reduce_sum((x * 1.0001)[:1]))
    return 2 * 4 * BANDWIDTH_FLOATS / best_time(scale, 5)


def _tiny_rows(users: int, items: int) -> Any:
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    return sp.csr_matrix((rng.random((users, items)) < 0.2).astype(np.float32))


def world_rates(world: Any, job: dict[str, Any]) -> dict[str, Any]:
    """One worker of a data-parallel world: its GEMM rates and bandwidth with every worker measuring at
    once (each on its share of the cores, ``vaecf.launch``), and the all-reduce of the model's gradients
    (the world's own collective, as the training step calls it) as an effective ring bandwidth."""
    import tensorflow as tf

    from vaecf.perf import best_time, gemm_rate

    model = ModelConfig()
    shapes = model.encoder_shapes(job["items"]) + model.decoder_shapes(job["items"])
    grads = [t for i, o in shapes for t in (tf.zeros([i, o]), tf.zeros([o]))]
    gradient_bytes = 4 * sum(int(g.shape.num_elements()) for g in grads)

    def collective(tensors: list[Any]) -> Callable[[], Any]:
        return tf.function(lambda: world.run(
            lambda _: tf.add_n([tf.reduce_sum(g[:1]) for g in world.allreduce(tensors)]), tf.constant(0.0)))

    barrier = collective([tf.zeros([1])])  # called before each measurement: every worker starts it together
    rates = {}
    for b, p, x in job["world"]:
        barrier()
        rates[gemm_key(b, p, x)] = gemm_rate(b, model.hidden[-1], job["items"], p, repeats=RATE_REPEATS, xla=x)
    barrier()
    bandwidth = memory_bandwidth()
    barrier()
    allreduce_s = best_time(collective(grads), RATE_REPEATS)
    size = world.size
    return {"machine": header(), "load_average": list(os.getloadavg()), "workers": size, "engine": job["engine"],
            "gemm_flops": rates, "memory_bw": bandwidth,
            "allreduce_s": allreduce_s, "allreduce_bytes": gradient_bytes,
            "allreduce_bw": 2 * (size - 1) / size * gradient_bytes / allreduce_s}


def child_main(job_path: Path, out_path: Path) -> None:
    from vaecf.launch import is_worker, world_from_env

    job = read_json(job_path)
    if is_worker():  # a world of the probe: built before any other TensorFlow op
        world = world_from_env(job["engine"])
        rates = world_rates(world, job)
        if world.rank == 0:
            write_record(out_path, rates)
        return

    from vaecf.perf import gemm_rate
    from vaecf.workload import rows_of_shape

    largest = max(b for _, b in job["host"])
    matrix = rows_of_shape(largest * REPEATS, job["items"], seed=1)
    record: dict[str, Any] = {
        "machine": header(),
        "items": job["items"],
        "mean_items": matrix.nnz / matrix.shape[0],
        "load_average": list(os.getloadavg()),
    }
    host = {f"{k},{b}": host_prep_seconds(matrix, k, b) for k, b in job["host"]}
    overhead = step_overhead_seconds()
    record |= {
        # The model's inputs are the CPU times: the work's cost on a core of its own.
        "host_prep_s": {key: t["cpu"] for key, t in host.items()},
        "overhead_s": overhead["cpu"],
        "wall_s": {"host_prep": {key: t["wall"] for key, t in host.items()}, "overhead": overhead["wall"]},
        "memory_bw": memory_bandwidth(),
        "gemm_flops": {gemm_key(b, p, x): gemm_rate(b, ModelConfig().hidden[-1], job["items"], p,
                                                       repeats=RATE_REPEATS, xla=x)
                       for b, p, x in job["gemm"]},
    }
    record["load_average_after"] = list(os.getloadavg())
    write_record(out_path, record)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m ablations.rates JOB.json OUT.json")
    child_main(Path(sys.argv[1]), Path(sys.argv[2]))
