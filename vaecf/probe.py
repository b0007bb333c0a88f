"""A fixed data-parallel run: the tests' equivalence checks and ``vaecf bench --workers``.

``python -m vaecf.probe --out DIR [options]`` trains on seeded rows of ``vaecf.workload``
(ML-20M's shape by default, the tests narrow it) and writes each rank's final weights and rank
0's throughput; ``compare_workers`` runs it with 1 and N workers. With ``--timed-steps K`` each
rank instead times K steps cut in parts (``timed_steps``) and writes them to ``rank{R}-steps.json``:
what ``benchmarks/allreduce.py`` reads.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from vaecf import gpus
from vaecf.config import Compression, Engine, InputKind, ModelKind, Pipeline, Precision, TrainConfig
from vaecf.data.registry import ML20M
from vaecf.launch import horovod_installed, launch, world_from_env

if TYPE_CHECKING:
    import scipy.sparse as sp

    from vaecf.distributed import World
    from vaecf.train import Trainer


def compare_workers(workers: int = 2, engines: Sequence[str] = ("horovod", "tf-distribute"),
                    users: int = 10_000, items: int = ML20M.items, nnz: float = ML20M.mean_items,
                    batch_size: int = TrainConfig.batch_size,
                    kind: str = "vae", timeout: float = 600) -> list[dict[str, Any]]:
    """Training throughput (users/s) of one epoch of ``vaecf.workload`` rows with 1 and with ``workers`` processes.

    The default shape is ML-20M's (10,000 of its users) with the paper's VAE and batch.
    One row per (engine, workers); an engine that cannot run here gets a ``skipped`` reason.
    """
    rows = [_probe_run(1, "local", users, items, nnz, batch_size, kind, timeout)]
    for engine in engines:
        if engine == "horovod" and not horovod_installed():
            rows.append({"engine": engine, "workers": workers, "skipped": "horovod is not installed"})
            continue
        rows.append(_probe_run(workers, engine, users, items, nnz, batch_size, kind, timeout))
    return rows


def _probe_run(workers: int, engine: str, users: int, items: int, nnz: float, batch_size: int, kind: str,
               timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "vaecf.probe", "--out", tmp, "--engine", engine,
                   "--users", str(users), "--items", str(items), "--nnz", str(nnz),
                   "--batch-size", str(batch_size), "--kind", kind, "--dropout-keep", "0.5", "--no-weights"]
        code = (subprocess.run(command, timeout=timeout, env=gpus.first(os.environ, 1)).returncode if workers == 1
                else launch(command, workers, engine, timeout=timeout, one_process=False))
        if code:
            raise RuntimeError(f"probe with {workers} {engine} worker(s) failed with exit code {code}")
        return json.loads((Path(tmp) / "result.json").read_text())


def probe_main(argv: Sequence[str]) -> None:
    """``python -m vaecf.probe``: train on seeded ``vaecf.workload`` rows; write weights and throughput.

    Every rank writes ``rank{R}.npz`` (its final variables); rank 0 writes ``result.json``.
    ``--check-broadcast`` shifts the weights of ranks > 0 before an extra broadcast, so equal
    final weights show that the broadcast works.
    """
    p = argparse.ArgumentParser(prog="python -m vaecf.probe")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--engine", default="local", choices=("local", *(e for e in get_args(Engine) if e != "auto")))
    p.add_argument("--users", type=int, default=64)
    p.add_argument("--items", type=int, default=40)
    p.add_argument("--nnz", type=float, default=6, help="mean items per user")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--kind", choices=get_args(ModelKind), default="dae")
    p.add_argument("--dropout-keep", type=float, default=1.0)
    p.add_argument("--input", choices=get_args(InputKind), default="sparse")
    p.add_argument("--pipeline", choices=get_args(Pipeline), default="tfdata")
    p.add_argument("--precision", choices=get_args(Precision), default="float32")
    p.add_argument("--xla", action="store_true")
    p.add_argument("--check-broadcast", action="store_true")
    p.add_argument("--no-weights", action="store_true")
    p.add_argument("--compression", choices=get_args(Compression), default="none")
    p.add_argument("--timed-steps", type=int, help="time this many steps in parts instead of training epochs")
    args = p.parse_args(argv)

    import numpy as np

    from vaecf.config import ModelConfig, RunConfig
    from vaecf.distributed import Local
    from vaecf.train import Trainer
    from vaecf.workload import rows_of_shape

    world = world_from_env(args.engine, args.compression) if args.engine != "local" else Local()  # before any TF op
    train = rows_of_shape(args.users, args.items, args.nnz)
    model = ModelConfig(kind=args.kind, hidden=() if args.kind == "dae" else (600,), latent=200,
                        dropout_keep=args.dropout_keep)
    config = RunConfig(model, TrainConfig(batch_size=args.batch_size, input=args.input,
                                          pipeline=args.pipeline, precision=args.precision,
                                          xla=args.xla, compression=args.compression))
    trainer = Trainer(args.items, config, world)
    if args.timed_steps:
        args.out.mkdir(parents=True, exist_ok=True)
        record = {"rank": world.rank, "workers": world.size, "host": _host(), "engine": args.engine,
                  "compression": args.compression, "batch_size": args.batch_size,
                  "gradient_bytes": sum(v.shape.num_elements() * v.dtype.size for v in trainer.variables),
                  "steps": timed_steps(trainer, world, train, args.timed_steps)}
        (args.out / f"rank{world.rank}-steps.json").write_text(json.dumps(record, indent=1))
        return
    if args.check_broadcast:
        for v in trainer.variables:
            v.assign_add(np.full(v.shape, float(world.rank), np.float32))
        world.broadcast(trainer.variables)
    epochs = [trainer.train_epoch(train, epoch, show_progress=False) for epoch in range(args.epochs)]
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.no_weights:
        np.savez(args.out / f"rank{world.rank}.npz", *[v.numpy() for v in trainer.variables])
    if world.rank == 0:
        last = epochs[-1]
        result = {"engine": args.engine, "workers": world.size, "steps": last["steps"],
                  "users": last["users"], "epoch_users_per_s": last["users"] / last["epoch_s"],
                  "step_users_per_s": trainer.throughput.summary()}
        (args.out / "result.json").write_text(json.dumps(result, indent=1))


def timed_steps(trainer: Trainer, world: World, train: sp.csr_matrix, steps: int) -> list[dict[str, float]]:
    """This worker's seconds of each of ``steps`` steps, in parts: compute, wait, all-reduce.

    The step runs as four traced calls instead of one, each read back to the host before the clock
    moves on: the gradients (``compute_s``, with the update below), a one-number all-reduce that
    waits for the slowest worker (``wait_s``: skew, not bandwidth), the all-reduce of the gradients
    (``allreduce_s``: their transfer and summing, what the ring model predicts) and the optimizer
    update. Float32 (no loss scaling).
    """
    import numpy as np
    import tensorflow as tf

    from vaecf.pipeline import batch_spec, batches

    t = trainer.config.train
    specs = [tf.TensorSpec(v.shape, v.dtype) for v in trainer.variables]
    grads_of = tf.function(lambda x: world.run(lambda b: trainer.loss_and_grads(b)[1], x),
                           input_signature=[batch_spec(train.shape[1], t.input)])
    # tf.identity: a collective's inputs must be made on the replica's device (vaecf.distributed).
    barrier = tf.function(lambda: world.run(lambda z: world.allreduce([tf.identity(z)])[0], tf.ones([1])))
    reduce = tf.function(lambda g: world.run(lambda gs: world.allreduce([tf.identity(x) for x in gs]), g),  # type: ignore[arg-type,return-value]
                         input_signature=[specs])
    update = tf.function(lambda g: world.run(lambda gs: trainer.optimizer.apply(gs), g),
                         input_signature=[specs])
    order = world.shard(np.arange(train.shape[0]), t.global_batch)
    per_worker = t.global_batch // world.size
    rows: list[dict[str, float]] = []
    for _, x in zip(range(steps), batches(train, order, per_worker, t.input, t.pipeline, t.prefetch)):
        start = time.perf_counter()
        grads = grads_of(x)
        np.asarray(grads[-1])
        computed = time.perf_counter()
        np.asarray(barrier())
        waited = time.perf_counter()
        reduced = reduce(grads)
        np.asarray(reduced[-1])
        summed = time.perf_counter()
        np.asarray(update(reduced))
        end = time.perf_counter()
        rows.append({"compute_s": computed - start + end - summed, "wait_s": waited - computed,
                     "allreduce_s": summed - waited})
    if len(rows) < steps:
        raise RuntimeError(f"--timed-steps {steps}: the data has only {len(rows)} steps of {t.global_batch} users")
    return rows


def _host() -> str:
    """Where this worker runs: its TF_CONFIG address, Horovod's host name, or this machine's name."""
    if "TF_CONFIG" in os.environ:
        config = json.loads(os.environ["TF_CONFIG"])
        return str(config["cluster"]["worker"][config["task"]["index"]])
    return os.environ.get("HOROVOD_HOSTNAME") or socket.gethostname()


if __name__ == "__main__":
    probe_main(sys.argv[1:])
