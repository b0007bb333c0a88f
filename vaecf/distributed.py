"""Data-parallel training: Horovod, or tf.distribute where Horovod is not installed.

Each worker is one process (``vaecf.launch`` starts them) holding a full copy of the model;
every step, each worker differentiates the loss of its own slice of the global batch and the
workers average their gradients before the (identical) optimizer update, so the copies stay
equal. The worlds below plug that into ``vaecf.train.Trainer`` (the ``World`` protocol).

Engines
    ``horovod``: ``HorovodWorld``; collectives over Gloo (TCP, CPU tensors, no MPI needed) or,
    with GPU tensors, NCCL when Horovod was built with ``HOROVOD_GPU_OPERATIONS=NCCL``.
    ``tf-distribute``: ``TFDistributeWorld``, ``MultiWorkerMirroredStrategy`` with one replica
    per process (gRPC rendezvous from ``TF_CONFIG``; ring all-reduce on CPU, NCCL on GPU);
    ``MirroredWorld``, ``MirroredStrategy`` over several local devices in one process.

GPUs
    Horovod and multi-process tf.distribute run one process per GPU: each sees only the GPU of
    its local rank (``pin_gpu``), so ``--workers 8 --hosts host1:4,host2:4`` puts four processes
    on each host, one per GPU. tf.distribute on one host with enough GPUs runs one process
    instead (``MirroredWorld``), as ``vaecf.launch`` explains.

Global batch and learning rate
    ``batch_size`` is the *global* batch B: each of N workers takes B/N users of it, computes the
    mean loss over them, and the gradients are averaged, which is the gradient of the mean loss
    over all B users. So a run with B on N workers takes the same steps as a run with B on one
    worker and needs the same learning rate: keep ``lr`` for the same B. (Growing B with N to
    keep B/N fixed is a larger-batch run: rescale ``lr`` as for any larger batch, e.g. the
    ``nvidia`` preset's recipe, and expect fewer steps per epoch.) B must be a multiple of N.

Sharding (``shard_users``): every worker takes the same number of steps in every epoch,
whatever the number of users, and at most N-1 users of an epoch are skipped. Equal step counts
are what keep the job alive: a worker with an extra step waits forever in its all-reduce, and
one that exits early breaks the others' collectives. Skipping beats padding (repeating users to
fill the last batch): a repeated user would count twice in that step's mean, and 1 and N
workers would no longer train on the same batches.

Initial weights: rank 0's values are broadcast before the first step (the model is also seeded
identically everywhere, so this guards against any divergence, e.g. a restored checkpoint).
Evaluation, checkpoints and logs happen on rank 0 only (the trainer's ``main``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol

import numpy as np
import tensorflow as tf

from vaecf.children import COLLECTIVE_TIMEOUT_S
from vaecf.errors import TrainingError
from vaecf.gpus import assigned_one
from vaecf.model import Batch, Loss


class World(Protocol):
    """What the step needs to know about data-parallel peers (implemented below)."""

    rank: int
    size: int

    def scope(self) -> AbstractContextManager[Any]:
        """Context in which the model and optimizer variables are created."""
        ...

    def run(self, step: Callable[[Any], Loss], x: Any) -> Loss:
        """Run ``step`` on this worker's batch inside the traced function; return local losses."""
        ...

    def shard(self, order: np.ndarray, batch_size: int) -> np.ndarray:
        """This worker's users of an epoch's global order; every worker gets the same step count."""
        ...

    def allreduce(self, grads: list[tf.Tensor]) -> list[tf.Tensor]:
        """Average gradients across workers (called inside the step)."""
        ...

    def broadcast(self, variables: list[tf.Variable]) -> None:
        """Make every worker start from rank 0's values."""
        ...


class Local:
    """A single worker: every user, no collectives."""

    rank = 0
    size = 1

    def scope(self) -> AbstractContextManager[Any]:
        return nullcontext()

    def run(self, step: Callable[[Any], Loss], x: Any) -> Loss:
        return step(x)

    def shard(self, order: np.ndarray, batch_size: int) -> np.ndarray:
        return order

    def allreduce(self, grads: list[tf.Tensor]) -> list[tf.Tensor]:
        return grads

    def broadcast(self, variables: list[tf.Variable]) -> None:
        return None


def shard_users(order: np.ndarray, batch_size: int, rank: int, size: int, replicas: int = 1) -> np.ndarray:
    """Worker ``rank``'s users of an epoch's global ``order``: its slice of every global batch.

    The epoch is cut into global batches of ``batch_size`` consecutive users of ``order``
    (exactly as one worker would cut it); each of the ``size`` workers takes the ``rank``-th
    contiguous slice of ``batch_size / size`` users of every full batch. The last, partial batch
    of ``m`` users is split evenly: every worker takes ``floor(m / (size * replicas)) * replicas``
    of them and the remaining ``m mod (size * replicas)`` users are skipped this epoch (a different
    random few every epoch, since the order is reshuffled). ``replicas`` is the number of local
    devices each worker splits its slice across again (``MirroredWorld``), which must also get
    equal shares.

    Consequences: the shards are disjoint; every worker gets ``ceil(len(shard) / (B / size))``
    steps, the same number; global step k trains on the same users as step k of one worker
    with batch B (the last step on up to size*replicas - 1 fewer); with fewer users than
    ``size * replicas`` the epoch has no step at all.
    """
    parts = size * replicas
    if batch_size % parts:
        raise TrainingError(f"the global batch size {batch_size} must be a multiple of the number of "
                         f"replicas ({size} workers x {replicas} devices)")
    per_worker = batch_size // size
    full, rest = divmod(len(order), batch_size)
    head = order[: full * batch_size].reshape(full, size, per_worker)[:, rank].ravel()
    tail = rest // parts * replicas
    start = full * batch_size + rank * tail
    return np.concatenate([head, order[start: start + tail]])


def pin_gpu(local_rank: int) -> None:
    """Make this process see only the GPU of its local rank (none to do on a CPU-only host).

    Must run before TensorFlow touches a GPU. One process per GPU is what Horovod and NCCL
    expect, and it keeps each process's memory and kernels on its own device. A process that a
    scheduler (Slurm, mpirun) started with one GPU in ``CUDA_VISIBLE_DEVICES`` uses that GPU,
    whatever its local rank (``vaecf.gpus.assigned_one``).
    """
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return
    if len(gpus) == 1 and assigned_one(os.environ):
        tf.config.set_visible_devices(gpus[0], "GPU")
        return
    if local_rank >= len(gpus):
        raise TrainingError(f"local rank {local_rank} has no GPU: this host has {len(gpus)}; "
                           "start at most one worker per GPU on each host")
    tf.config.set_visible_devices(gpus[local_rank], "GPU")


def pin_mirrored(devices: list[str]) -> None:
    """Make this process see only the GPUs a ``MirroredWorld`` names (``/gpu:0,/gpu:1``: the first two).

    The others keep their memory for other processes. The first k GPUs stay ``/gpu:0..k-1``.
    """
    wanted = [int(d.rsplit(":", 1)[1]) for d in devices if "gpu" in d.lower()]
    if not wanted:
        return
    gpus = tf.config.list_physical_devices("GPU")
    if max(wanted) >= len(gpus):
        raise TrainingError(f"devices {','.join(devices)} name GPU {max(wanted)}; TensorFlow sees {len(gpus)}")
    tf.config.set_visible_devices(gpus[: max(wanted) + 1], "GPU")


def communication_options(on_gpu: bool) -> tf.distribute.experimental.CommunicationOptions:
    """tf.distribute's collectives: NCCL between GPUs, ring on CPUs, and a hang becomes an error.

    With a timeout TensorFlow runs each collective on a thread of its own (microseconds a step).
    """
    implementation = (tf.distribute.experimental.CommunicationImplementation.NCCL if on_gpu
                      else tf.distribute.experimental.CommunicationImplementation.RING)
    return tf.distribute.experimental.CommunicationOptions(implementation=implementation,
                                                           timeout_seconds=COLLECTIVE_TIMEOUT_S)


PEER_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError,
               tf.errors.CancelledError)
"""What a tf.distribute collective raises when a peer is gone (its heartbeat stopped, a collective timed out)."""
_TASK = re.compile(r"/job:worker/replica:\d+/task:(\d+)")


def lost_peer(error: tf.errors.OpError) -> TrainingError:
    """A collective that failed for a lost peer, as one line naming the peer (its TF_CONFIG address where known)."""
    match = _TASK.search(error.message)
    lines = error.message.strip().splitlines()
    why = lines[0].split(": ")[-1] if lines else type(error).__name__
    if match is None:
        return TrainingError(f"a data-parallel collective failed: {why}; finished epochs are kept: the same "
                             "command resumes the run")
    task = int(match[1])
    workers = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {}).get("worker", [])
    where = f" ({workers[task]})" if task < len(workers) else ""
    return TrainingError(f"data-parallel worker {task}{where} was lost ({why}); this worker stopped. Finished epochs "
                         "are kept: the same command resumes the run")


def _check_agreement(counts: list[int], what: str) -> None:
    """Raise on every worker if they disagree (rather than hang in a collective later)."""
    if len(set(counts)) > 1:
        raise TrainingError(f"workers disagree on {what}: {counts}; every worker must load the same data")


class HorovodWorld:
    """Horovod: ``hvd.init()``, GPU pinned by local rank, grouped all-reduce of the gradients.

    Launch with ``horovodrun -np N [-H host1:4,host2:4] --gloo`` (``vaecf.launch`` does).
    Horovod's TF collectives accept the model's plain ``tf.Variable``s; they fail on Keras 3
    variables, which vaecf does not use.
    """

    def __init__(self, compression: str = "none") -> None:
        import horovod.tensorflow as hvd  # optional dependency: only a Horovod worker needs it

        hvd.init()
        self._hvd = hvd
        self._compression = hvd.Compression.fp16 if compression == "fp16" else hvd.Compression.none
        self.rank, self.size, self.local_rank = hvd.rank(), hvd.size(), hvd.local_rank()
        pin_gpu(self.local_rank)

    def scope(self) -> AbstractContextManager[Any]:
        return nullcontext()

    def run(self, step: Callable[[Batch], Loss], x: Batch) -> Loss:
        return step(x)

    def shard(self, order: np.ndarray, batch_size: int) -> np.ndarray:
        _check_agreement(self._hvd.allgather_object(len(order)), "the number of training users")
        return shard_users(order, batch_size, self.rank, self.size)

    def allreduce(self, grads: list[tf.Tensor]) -> list[tf.Tensor]:
        # One grouped request: Horovod fuses the tensors into few collectives.
        return self._hvd.grouped_allreduce(grads, op=self._hvd.Average, compression=self._compression)

    def broadcast(self, variables: list[tf.Variable]) -> None:
        self._hvd.broadcast_variables(variables, root_rank=0)


class TFDistributeWorld:
    """``MultiWorkerMirroredStrategy`` with one replica per process (cluster from ``TF_CONFIG``).

    The strategy must be built before any other TensorFlow op of the process. Variables made in
    ``scope()`` are mirrored variables; the step runs under ``strategy.run`` and averages the
    gradients with the replica context's all-reduce.
    """

    def __init__(self, local_rank: int | None = None, compression: str = "none") -> None:
        self._fp16 = compression == "fp16"
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        self.rank, self.size = int(resolver.task_id), len(resolver.cluster_spec().as_dict()["worker"])
        gpus = tf.config.list_physical_devices("GPU")
        # Default: ranks fill each host's GPUs in order (right for one host and for uniform hosts).
        pin_gpu(self.rank % max(len(gpus), 1) if local_rank is None else local_rank)
        self.strategy: tf.distribute.Strategy = tf.distribute.MultiWorkerMirroredStrategy(
            cluster_resolver=resolver, communication_options=communication_options(bool(gpus)))
        if self.strategy.num_replicas_in_sync != self.size:
            raise TrainingError(f"expected one replica per worker, got {self.strategy.num_replicas_in_sync} "
                               f"replicas for {self.size} workers")
        # Every worker's value concatenated along axis 0, in rank order (traced once). The
        # identity puts the input on the replica's device, which the collective needs.
        self._all_gather = tf.function(lambda value: self.strategy.run(
            lambda: tf.distribute.get_replica_context().all_gather(tf.identity(value), axis=0)))

    def scope(self) -> AbstractContextManager[Any]:
        return self.strategy.scope()

    def run(self, step: Callable[[Batch], Loss], x: Batch) -> Loss:
        out = self.strategy.run(step, args=(x,))
        return tf.nest.map_structure(lambda v: self.strategy.experimental_local_results(v)[0], out)

    def shard(self, order: np.ndarray, batch_size: int) -> np.ndarray:
        counts = self.strategy.experimental_local_results(self._all_gather(tf.constant([len(order)])))[0]
        _check_agreement(counts.numpy().tolist(), "the number of training users")
        return shard_users(order, batch_size, self.rank, self.size)

    def allreduce(self, grads: list[tf.Tensor]) -> list[tf.Tensor]:
        context = tf.distribute.get_replica_context()
        if not self._fp16:
            return context.all_reduce(tf.distribute.ReduceOp.MEAN, grads)
        # As Horovod's fp16 compressor: float16 on the wire, each worker's mean cast back.
        halves = context.all_reduce(tf.distribute.ReduceOp.MEAN, [tf.cast(g, tf.float16) for g in grads])
        return [tf.cast(h, g.dtype) for h, g in zip(halves, grads)]

    def broadcast(self, variables: list[tf.Variable]) -> None:
        # MWMS already syncs initial values when it creates a variable; an explicit broadcast
        # (a sum to which only rank 0 contributes) also covers values changed after creation.
        @tf.function
        def from_rank0() -> None:
            def replica() -> None:
                mine = [v.read_value() if self.rank == 0 else tf.zeros_like(v) for v in variables]
                summed = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, mine)
                for v, s in zip(variables, summed, strict=True):
                    v.assign(s)
            self.strategy.run(replica)

        from_rank0()


class MirroredWorld:
    """``MirroredStrategy`` over the local devices of one process (several GPUs, or for tests CPUs).

    To the trainer this is one worker (``size == 1``) with the whole global batch; ``run`` cuts
    each batch into equal row blocks, one per device, inside the traced step. All-reduce across
    GPUs uses NCCL. The replicas share the step's random seed, so their dropout masks (and VAE
    noise) are drawn from the same stream: correlated across replicas, unbiased for each user.
    """

    rank = 0
    size = 1

    def __init__(self, devices: list[str]) -> None:
        pin_mirrored(devices)
        cpus = [d for d in devices if "cpu" in d.lower()]
        if len(cpus) > 1:  # several CPU replicas: split the one physical CPU into logical devices
            logical = [tf.config.LogicalDeviceConfiguration()] * len(cpus)
            tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0], logical)
        self.strategy = tf.distribute.MirroredStrategy(devices)
        self.replicas = self.strategy.num_replicas_in_sync

    def scope(self) -> AbstractContextManager[Any]:
        return self.strategy.scope()

    def run(self, step: Callable[[Batch], Loss], x: Batch) -> Loss:
        blocks = self.strategy.experimental_distribute_values_from_function(
            lambda ctx: _row_block(x, ctx.replica_id_in_sync_group, self.replicas))
        out = self.strategy.run(step, args=(blocks,))
        return tf.nest.map_structure(
            lambda v: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None), out)

    def shard(self, order: np.ndarray, batch_size: int) -> np.ndarray:
        return shard_users(order, batch_size, 0, 1, replicas=self.replicas)

    def allreduce(self, grads: list[tf.Tensor]) -> list[tf.Tensor]:
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.MEAN, grads)

    def broadcast(self, variables: list[tf.Variable]) -> None:
        return None  # one process: mirrored variables start from the same initial value


def _row_block(x: Batch, k: Any, parts: int) -> Batch:
    """Rows ``[k*n/parts, (k+1)*n/parts)`` of a batch whose row count is a multiple of ``parts``."""
    if isinstance(x, tf.SparseTensor):
        n = x.dense_shape[0] // parts
        return tf.sparse.slice(x, tf.stack([tf.cast(k, tf.int64) * n, 0]), tf.stack([n, x.dense_shape[1]]))
    n = tf.shape(x)[0] // parts
    return x[k * n: (k + 1) * n]

