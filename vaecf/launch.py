"""Start N training workers, and tell a worker which world it belongs to.

One host (what ``vaecf train --workers N`` does)::

    vaecf train --data D --out R --workers 4                          # auto: Horovod where installed
    vaecf train --data D --out R --workers 4 --engine tf-distribute

Horovod runs ``horovodrun -np 4 --gloo python -m vaecf train ...``: Gloo rendezvous over local
TCP, no MPI. ``tf-distribute`` starts the processes itself, each with a ``TF_CONFIG`` naming free
loopback ports (``MultiWorkerMirroredStrategy``); on a host with at least N GPUs it instead runs
one process with ``MirroredStrategy`` over the first N GPUs. CPU workers of one host split its
cores (``TF_NUM_INTRAOP_THREADS``), unless that variable is already set.

A cluster (Horovod)::

    vaecf train --data D --out R --workers 8 --hosts host1:4,host2:4

runs ``horovodrun -np 8 -H host1:4,host2:4 --gloo ...`` from host1: passwordless ssh to every
host, the same Python environment at the same path, and the data and run folder at the same
path (a shared file system; the run folder is written by rank 0 only, but a resumed run reads
it on every rank). On GPUs, each host runs one process per GPU, pinned by local rank, and
Horovod built with ``HOROVOD_GPU_OPERATIONS=NCCL`` all-reduces on the GPUs over NCCL.
``tf-distribute`` across hosts is not launched for you: start ``vaecf train`` on every host
with ``VAECF_WORKER=1`` and a ``TF_CONFIG`` listing all workers and its own index.

Who can reach the workers: every TF_CONFIG address of single-host workers is on loopback
(127.0.0.1), so workers dial each other only there. TensorFlow's gRPC server itself still
listens on every interface: ``GrpcServer::Init`` (tensorflow/core/distributed_runtime/rpc/
grpc_server_lib.cc) adds the listening port as ``"0.0.0.0:" + port`` whatever host TF_CONFIG
names, and TensorFlow (2.21 checked) has no option or environment variable to change that (its
gRPC variables are TF_GRPC_DEFAULT_OPTIONS for client channels, TF_GRPC_REUSE_PORT and the worker
cache's thread and queue counts). The service is unauthenticated (TensorFlow expects a private
network), so on a host reachable by others, firewall the ports or run the workers where only you
can connect (a container, a private network namespace). Horovod's Gloo rendezvous is Horovod's.

``python -m vaecf.launch probe ...`` is a small fixed workload on random data used by the tests
and by ``compare_workers`` (throughput of 1 vs N workers).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vaecf.children import die_with_parent
from vaecf.errors import TrainingError

if TYPE_CHECKING:
    from vaecf.train import World

WORKER_ENV = "VAECF_WORKER"
"""Set to 1 in every launched worker (Horovod workers also carry HOROVOD_RANK)."""
LOCAL_RANK_ENV = "VAECF_LOCAL_RANK"
"""The worker's index on its host (tf-distribute), for GPU pinning."""
MIRRORED_ENV = "VAECF_MIRRORED_DEVICES"
"""Set in a single tf-distribute worker that mirrors over these local devices ("/gpu:0,/gpu:1")."""
TIMED_OUT = 124
LOOPBACK = "127.0.0.1"
"""The address single-host workers name in TF_CONFIG (not "localhost", which may resolve to ::1 first)."""


def is_worker() -> bool:
    """Whether this process was started by ``launch_workers`` (or by horovodrun)."""
    return os.environ.get(WORKER_ENV) == "1" or "HOROVOD_RANK" in os.environ


def launch_workers(argv: list[str], workers: int, engine: str, hosts: str | None = None) -> int:
    """Re-run the vaecf command line ``argv`` in ``workers`` processes; their exit code."""
    return launch([sys.executable, "-m", "vaecf", *argv], workers, engine, hosts)


def launch(command: Sequence[str], workers: int, engine: str, hosts: str | None = None,
           timeout: float | None = None, one_process: bool | None = None) -> int:
    """Run ``command`` as ``workers`` data-parallel workers; 0 if all succeed, else a failure's code.

    If any worker fails the others are stopped (they would wait forever in a collective).
    After ``timeout`` seconds every worker is killed and the result is 124. ``one_process``
    (tf-distribute only): one MirroredStrategy process over the first ``workers`` GPUs rather
    than ``workers`` processes; by default, when this host has that many GPUs.
    """
    if workers < 1:
        raise TrainingError(f"workers must be >= 1, not {workers}")
    if engine == "auto":
        engine = resolve_engine(engine)
        why = "Horovod is installed" if engine == "horovod" else "Horovod is not installed"
        print(f"vaecf: data parallel with {engine} (--engine auto: {why})", file=sys.stderr, flush=True)
    if engine == "horovod":
        return _horovodrun(list(command), workers, hosts, timeout)
    if engine != "tf-distribute":
        raise TrainingError(f"unknown engine {engine!r}: 'auto', 'horovod' or 'tf-distribute'")
    if hosts:
        raise TrainingError("--hosts needs --engine horovod; for tf-distribute across hosts start "
                         "'vaecf train' on each host with VAECF_WORKER=1 and its own TF_CONFIG")
    env = {**os.environ, WORKER_ENV: "1"}
    if one_process is None:
        one_process = 1 < workers <= _local_gpus()
    if one_process:
        devices = ",".join(f"/gpu:{i}" for i in range(workers))
        return _wait([subprocess.Popen(command, env={**env, MIRRORED_ENV: devices},
                                       start_new_session=True, preexec_fn=die_with_parent)], timeout)
    env.setdefault("TF_NUM_INTRAOP_THREADS", str(_cpu_threads(workers)))
    procs = [subprocess.Popen(command, start_new_session=True, preexec_fn=die_with_parent,
                              env={**env, LOCAL_RANK_ENV: str(i), "TF_CONFIG": tf_config})
             for i, tf_config in enumerate(tf_configs(_free_ports(workers)))]
    return _wait(procs, timeout)


def world_from_env(engine: str) -> World:
    """The ``World`` of a launched worker; call it before any other TensorFlow op of the process."""
    from vaecf import distributed

    engine = resolve_engine(engine)  # as the launcher resolved it: the same packages on every worker
    if engine == "horovod":
        if not horovod_installed():
            raise TrainingError(_NO_HOROVOD)
        return distributed.HorovodWorld()
    if MIRRORED_ENV in os.environ:
        return distributed.MirroredWorld(os.environ[MIRRORED_ENV].split(","))
    local = os.environ.get(LOCAL_RANK_ENV)
    return distributed.TFDistributeWorld(local_rank=None if local is None else int(local))


def horovod_installed() -> bool:
    """Whether the optional ``horovod`` package is here (found, not imported: importing loads its TF ops)."""
    return importlib.util.find_spec("horovod") is not None


def resolve_engine(engine: str) -> str:
    """``auto`` -> ``horovod`` where Horovod is installed, else ``tf-distribute``; any other name as is."""
    if engine != "auto":
        return engine
    return "horovod" if horovod_installed() else "tf-distribute"


_NO_HOROVOD = ("Horovod is not installed: pip install 'vaecf[horovod]' (needs TensorFlow 2.15-2.18; "
               "see the README), or use --engine tf-distribute")


def _horovodrun(command: list[str], workers: int, hosts: str | None, timeout: float | None) -> int:
    if not horovod_installed():
        raise TrainingError(_NO_HOROVOD)
    env = {**os.environ, WORKER_ENV: "1"}
    if not hosts:  # with -H the workers per host are the user's layout: leave threads to TF
        env.setdefault("TF_NUM_INTRAOP_THREADS", str(_cpu_threads(workers)))
    run = [sys.executable, "-m", "horovod.runner.launch", "-np", str(workers), "--gloo"]
    run += ["-H", hosts] if hosts else []
    return _wait([subprocess.Popen([*run, *command], env=env, start_new_session=True,
                                   preexec_fn=die_with_parent)], timeout)


def _wait(procs: list[subprocess.Popen[bytes]], timeout: float | None) -> int:
    """Wait for all; on the first failure, a timeout or Ctrl-C, stop the rest (whole process groups)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            codes = [p.poll() for p in procs]
            failed = [c for c in codes if c not in (None, 0)]
            if failed:
                return failed[0]
            if all(c == 0 for c in codes):
                return 0
            if deadline is not None and time.monotonic() > deadline:
                return TIMED_OUT
            time.sleep(0.1)
    finally:
        _stop(procs)


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each live process group, then SIGKILL what remains.

    Workers start in their own sessions (``start_new_session``) so that a group holds exactly one
    worker (or horovodrun and its workers) and nothing of the caller's.
    """
    live = [p for p in procs if p.poll() is None]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in live:
            with suppress(ProcessLookupError):  # already gone
                os.killpg(p.pid, sig)
        end = time.monotonic() + 10
        while time.monotonic() < end and any(p.poll() is None for p in live):
            time.sleep(0.1)
        live = [p for p in live if p.poll() is None]


def tf_configs(ports: Sequence[int]) -> list[str]:
    """Each single-host worker's TF_CONFIG: the cluster on loopback ``ports``, and the worker's index."""
    cluster = {"worker": [f"{LOOPBACK}:{port}" for port in ports]}
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}) for i in range(len(ports))]


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports (held open together so that they differ)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind((LOOPBACK, 0))
        return [s.getsockname()[1] for s in socks]


def _cpu_threads(workers_on_host: int) -> int:
    """Intra-op threads per worker so that the workers of one host share its cores, not fight over them."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // workers_on_host)


def _local_gpus() -> int:
    """GPUs TensorFlow sees here (it honours CUDA_VISIBLE_DEVICES; a CPU-only build sees none)."""
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


# -- a fixed workload for tests and the 1-vs-N throughput comparison -----------------------------------

def compare_workers(workers: int = 2, engines: Sequence[str] = ("horovod", "tf-distribute"),
                    users: int = 10_000, items: int = 20_108, nnz: int = 73, batch_size: int = 500,
                    kind: str = "vae", timeout: float = 600) -> list[dict[str, Any]]:
    """Training throughput (users/s) of one epoch on random data with 1 and with ``workers`` processes.

    The default shape is ML-20M's catalogue with ~73 items per user and the paper's VAE and
    batch. One row per (engine, workers); an engine that cannot run here gets a ``skipped`` reason.
    """
    rows = [_probe_run(1, "local", users, items, nnz, batch_size, kind, timeout)]
    for engine in engines:
        if engine == "horovod" and not horovod_installed():
            rows.append({"engine": engine, "workers": workers, "skipped": "horovod is not installed"})
            continue
        rows.append(_probe_run(workers, engine, users, items, nnz, batch_size, kind, timeout))
    return rows


def _probe_run(workers: int, engine: str, users: int, items: int, nnz: int, batch_size: int, kind: str,
               timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "vaecf.launch", "probe", "--out", tmp, "--engine", engine,
                   "--users", str(users), "--items", str(items), "--nnz", str(nnz),
                   "--batch-size", str(batch_size), "--kind", kind, "--dropout-keep", "0.5", "--no-weights"]
        code = (subprocess.run(command, timeout=timeout).returncode if workers == 1
                else launch(command, workers, engine, timeout=timeout, one_process=False))
        if code:
            raise RuntimeError(f"probe with {workers} {engine} worker(s) failed with exit code {code}")
        return json.loads((Path(tmp) / "result.json").read_text())


def probe_main(argv: Sequence[str]) -> None:
    """``python -m vaecf.launch probe``: train on a seeded random CSR; write weights and throughput.

    Every rank writes ``rank{R}.npz`` (its final variables); rank 0 writes ``result.json``.
    ``--check-broadcast`` shifts the weights of ranks > 0 before an extra broadcast, so equal
    final weights show that the broadcast works.
    """
    p = argparse.ArgumentParser(prog="python -m vaecf.launch probe")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--engine", default="local", choices=("local", "horovod", "tf-distribute"))
    p.add_argument("--users", type=int, default=64)
    p.add_argument("--items", type=int, default=40)
    p.add_argument("--nnz", type=int, default=6, help="mean items per user")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--kind", choices=("vae", "dae"), default="dae")
    p.add_argument("--dropout-keep", type=float, default=1.0)
    p.add_argument("--input", choices=("sparse", "dense"), default="sparse")
    p.add_argument("--pipeline", choices=("tfdata", "feed"), default="tfdata")
    p.add_argument("--precision", choices=("float32", "mixed_float16", "mixed_bfloat16"), default="float32")
    p.add_argument("--xla", action="store_true")
    p.add_argument("--check-broadcast", action="store_true")
    p.add_argument("--no-weights", action="store_true")
    args = p.parse_args(argv)

    import numpy as np
    import scipy.sparse as sp

    from vaecf.config import ModelConfig, RunConfig, TrainConfig
    from vaecf.train import Local, Trainer

    world = world_from_env(args.engine) if args.engine != "local" else Local()  # before any TF op
    rng = np.random.default_rng(0)
    train = sp.random(args.users, args.items, density=args.nnz / args.items, format="csr",
                      random_state=rng, dtype=np.float32)
    train.data[:] = 1.0
    model = ModelConfig(kind=args.kind, hidden=() if args.kind == "dae" else (600,), latent=200,
                        dropout_keep=args.dropout_keep)
    config = RunConfig(model, TrainConfig(batch_size=args.batch_size, input=args.input,
                                          pipeline=args.pipeline, precision=args.precision,
                                          xla=args.xla))
    trainer = Trainer(args.items, config, world)
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


if __name__ == "__main__":
    if sys.argv[1:2] != ["probe"]:
        sys.exit("usage: python -m vaecf.launch probe --out DIR [options]")
    probe_main(sys.argv[2:])
