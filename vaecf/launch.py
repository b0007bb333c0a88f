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

A small fixed workload for the tests and the 1-vs-N comparison is in ``vaecf.probe``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack, suppress
from typing import TYPE_CHECKING

from vaecf import gpus
from vaecf.children import COLLECTIVE_TIMEOUT_S, TIMED_OUT, die_with_parent
from vaecf.errors import TrainingError
from vaecf.provenance import HOSTS_ENV  # $VAECF_HOSTS: the hosts of the worlds `python -m vaecf.launch` starts

if TYPE_CHECKING:
    from vaecf.distributed import World

WORKER_ENV = "VAECF_WORKER"
"""Set to 1 in every launched worker (Horovod workers also carry HOROVOD_RANK)."""
LOCAL_RANK_ENV = "VAECF_LOCAL_RANK"
"""The worker's index on its host (tf-distribute), for GPU pinning."""
MIRRORED_ENV = "VAECF_MIRRORED_DEVICES"
"""Set in a single tf-distribute worker that mirrors over these local devices ("/gpu:0,/gpu:1")."""
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
    if hosts:
        hosts = horovod_hosts(hosts, workers)
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
        return wait_world([subprocess.Popen(command, env={**gpus.first(env, workers), MIRRORED_ENV: devices},
                                       start_new_session=True, preexec_fn=die_with_parent)], timeout)
    env.setdefault("TF_NUM_INTRAOP_THREADS", str(_cpu_threads(workers)))
    procs = [subprocess.Popen(command, start_new_session=True, preexec_fn=die_with_parent,
                              env={**env, LOCAL_RANK_ENV: str(i), "TF_CONFIG": tf_config})
             for i, tf_config in enumerate(tf_configs(_free_ports(workers)))]
    return wait_world(procs, timeout)


def horovod_hosts(hosts: str, workers: int) -> str:
    """``--hosts`` checked before anything starts, as ``-H`` wants it: ``host1:4,host2:4``.

    ``HOST:SLOTS`` items, or bare ``HOST`` items that share the workers equally; every host must
    resolve here (horovodrun reaches it by that name over ssh) and the slots must be the workers.
    """
    items = [item.partition(":") for item in hosts.split(",")]
    if any(not name or (sep and not (slots.isdigit() and int(slots) > 0)) for name, sep, slots in items):
        raise TrainingError(f"--hosts {hosts}: each item is HOST or HOST:SLOTS with SLOTS >= 1, "
                            "e.g. host1:4,host2:4")
    names = [name for name, _, _ in items]
    if len(set(names)) < len(names):
        raise TrainingError(f"--hosts {hosts}: a host named twice; give each host once with its slots")
    if not any(sep for _, sep, _ in items):
        if workers % len(names):
            raise TrainingError(f"--hosts {hosts}: {workers} workers do not divide among {len(names)} hosts; "
                                f"give a multiple of {len(names)} workers or HOST:SLOTS items")
        items = [(name, ":", str(workers // len(names))) for name in names]
    slots = sum(int(s or 1) for _, _, s in items)
    if slots != workers:
        raise TrainingError(f"--hosts {hosts} has {slots} slots for {workers} workers: the slots must add up "
                            "to --workers")
    for name in names:
        try:
            socket.getaddrinfo(name, None)
        except (socket.gaierror, UnicodeError):
            raise TrainingError(f"--hosts {hosts}: unknown host {name!r} (its name does not resolve here; "
                                "horovodrun reaches every host by ssh to that name)") from None
    return ",".join(f"{name}:{s or 1}" for name, _, s in items)


def world_from_env(engine: str, compression: str = "none") -> World:
    """The ``World`` of a launched worker; call it before any other TensorFlow op of the process.

    ``compression`` (``TrainConfig.compression``) applies where gradients cross between processes.
    """
    from vaecf import distributed

    engine = resolve_engine(engine)  # as the launcher resolved it: the same packages on every worker
    if engine == "horovod":
        if not horovod_installed():
            raise TrainingError(_NO_HOROVOD)
        return distributed.HorovodWorld(compression)
    if MIRRORED_ENV in os.environ:
        return distributed.MirroredWorld(os.environ[MIRRORED_ENV].split(","))
    local = os.environ.get(LOCAL_RANK_ENV)
    return distributed.TFDistributeWorld(local_rank=None if local is None else int(local), compression=compression)


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
    # Horovod waits forever on a collective some rank never joins unless told to shut down a stall.
    env = {**os.environ, WORKER_ENV: "1", "HOROVOD_STALL_SHUTDOWN_TIME_SECONDS":
           os.environ.get("HOROVOD_STALL_SHUTDOWN_TIME_SECONDS", str(COLLECTIVE_TIMEOUT_S))}
    if not hosts:  # with -H the workers per host are the user's layout: leave threads to TF
        env.setdefault("TF_NUM_INTRAOP_THREADS", str(_cpu_threads(workers)))
    run = [sys.executable, "-m", "vaecf.hvdrun", "-np", str(workers), "--gloo"]
    run += ["-H", hosts] if hosts else []
    return wait_world([subprocess.Popen([*run, *command], env=env, start_new_session=True,
                                   preexec_fn=die_with_parent)], timeout)


def wait_world(procs: list[subprocess.Popen[bytes]], timeout: float | None) -> int:
    """Wait for all; on the first failure, a timeout or Ctrl-C, stop the rest (whole process groups).

    Each process must lead its own session (``start_new_session``), as the workers started here do.
    """
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


def _launcher_main(argv: list[str]) -> int:
    """``python -m vaecf.launch WORKERS ENGINE TIMEOUT_S COMMAND...``: one world, as a child of
    ``children.run_workers``, stopped after ``TIMEOUT_S`` seconds, on the hosts of ``$VAECF_HOSTS``."""
    # SIGTERM (our parent died, or was stopped) must unwind through launch's clean-up of the workers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workers, engine, timeout, *command = argv
    return launch(command, int(workers), engine, os.environ.get(HOSTS_ENV) or None, timeout=float(timeout))


if __name__ == "__main__":
    sys.exit(_launcher_main(sys.argv[1:]))
