"""Data parallelism: the sharding rule, the launcher, and real multi-process training.

The multi-process tests start 2 workers on CPU (Horovod over Gloo, and tf.distribute's
MultiWorkerMirroredStrategy over loopback) running ``python -m vaecf.probe``: a Mult-DAE
on a seeded random matrix, dropout off, so that one step is a deterministic function of the
weights and the users of the batch. (The VAE draws its noise per worker and per batch shape,
so it could not match one worker exactly.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from vaecf.config import BatchScope
from vaecf.distributed import shard_users
from vaecf.errors import TrainingError
from vaecf.launch import LOCAL_RANK_ENV, MIRRORED_ENV, TIMED_OUT, WORKER_ENV, launch
from vaecf.probe import compare_workers, probe_main


def _horovod_missing() -> str | None:
    try:
        import horovod.tensorflow  # noqa: F401
    except Exception as e:  # ImportError, or its extension failing to load against this TensorFlow
        return (f"horovod.tensorflow does not import ({type(e).__name__}: {e}); it needs the 'horovod' "
                "extra on TensorFlow 2.15-2.18: run 'nox -s horovod'")
    return None


HOROVOD_MISSING = _horovod_missing()
HOROVOD_REQUIRED = os.environ.get("VAECF_REQUIRE_HOROVOD") == "1"
"""Set by `nox -s horovod`: there a broken Horovod install fails the Horovod tests instead of skipping them."""
ENGINES = [pytest.param("horovod", marks=pytest.mark.skipif(HOROVOD_MISSING is not None and not HOROVOD_REQUIRED,
                                                            reason=HOROVOD_MISSING or "")),
           "tf-distribute"]

ATOL = 1e-5
"""Allowed |2 workers - 1 worker| per weight. The weights are ~0.2 and Adam moves each by up to
lr = 1e-3 per step, so a wrong step shows as ~1e-3; the observed difference (8e-7) is float32
rounding of the gradient mean summed in another order."""

EQUIVALENCE = ["--users", "36", "--items", "40", "--nnz", "6", "--batch-size", "8", "--epochs", "2",
               "--kind", "dae", "--dropout-keep", "1.0"]
"""36 users, global batch 8: four full batches and a last one of 4, split 2 + 2; 5 steps x 2 epochs."""
UNEVEN = ["--users", "37", "--items", "40", "--nnz", "6", "--batch-size", "8", "--epochs", "2",
          "--kind", "dae", "--precision", "mixed_float16"]
"""37 users: the last global batch has 5, so each worker takes 2 and one user sits the epoch out."""


# -- the sharding rule -------------------------------------------------------------------------------

@pytest.mark.parametrize(("batch_size", "size", "replicas"),
                         [(8, 1, 1), (8, 2, 1), (12, 3, 1), (8, 4, 1), (8, 1, 2), (12, 2, 3), (500, 2, 1)])
def test_shards_partition_the_epoch_into_equal_step_counts(batch_size: int, size: int, replicas: int) -> None:
    parts = size * replicas
    per_worker = batch_size // size
    for n_users in [*range(0, 3 * batch_size + 2 * parts + 2), 10 * batch_size + 1]:
        order = np.random.default_rng(n_users).permutation(n_users)
        shards = [shard_users(order, batch_size, r, size, replicas) for r in range(size)]
        full, rest = divmod(n_users, batch_size)
        used = full * batch_size + rest // parts * parts
        # Disjoint, and together exactly the epoch's users but the last rest mod parts.
        joined = np.concatenate(shards)
        assert len(np.unique(joined)) == len(joined) == used
        assert set(joined) == set(order[:used])
        # Equal shares, hence equal step counts; each device's share of a step is equal too.
        assert {len(s) for s in shards} == {used // size}
        assert all(len(s) % replicas == 0 for s in shards)
        # Global step k holds the same users as step k of one worker with the same batch size.
        for k, start in enumerate(range(0, used, batch_size)):
            step_users = np.concatenate([s[k * per_worker:(k + 1) * per_worker] for s in shards])
            assert np.array_equal(np.sort(step_users), np.sort(order[start:min(start + batch_size, used)]))


def test_fewer_users_than_workers_gives_no_step_on_any_worker() -> None:
    assert [len(shard_users(np.arange(1), 8, r, 2)) for r in range(2)] == [0, 0]
    assert [len(shard_users(np.arange(5), 8, r, 2)) for r in range(2)] == [2, 2]


def test_a_lost_peer_is_named_by_its_address(monkeypatch: pytest.MonkeyPatch) -> None:
    import tensorflow as tf

    from vaecf.distributed import lost_peer

    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]},
                                                "task": {"type": "worker", "index": 0}}))
    error = tf.errors.UnavailableError(None, None, "Collective ops is aborted by: Error reported from "
                                       "/job:worker/task:1: Task /job:worker/replica:0/task:1 heartbeat timeout.\nmore")
    message = str(lost_peer(error))
    assert message.startswith("data-parallel worker 1 (10.0.0.2:2222) was lost (Task /job:worker/replica:0/task:1 "
                              "heartbeat timeout.)") and "\n" not in message


def test_global_batch_must_split_evenly() -> None:
    with pytest.raises(TrainingError, match="multiple"):
        shard_users(np.arange(10), 9, 0, 2)


# -- the launcher ------------------------------------------------------------------------------------

FAIL_ON_RANK_1 = "import os, sys, time; sys.exit(3) if os.environ[{!r}] == '1' else time.sleep(60)"


@pytest.mark.multiprocess
@pytest.mark.timeout(60)
def test_a_failing_worker_stops_the_others() -> None:
    command = [sys.executable, "-c", FAIL_ON_RANK_1.format(LOCAL_RANK_ENV)]
    assert launch(command, 2, "tf-distribute", timeout=50, one_process=False) == 3


@pytest.mark.multiprocess
@pytest.mark.timeout(60)
def test_a_stuck_job_is_killed_at_the_timeout() -> None:
    command = [sys.executable, "-c", "import time; time.sleep(60)"]
    assert launch(command, 2, "tf-distribute", timeout=2, one_process=False) == TIMED_OUT


# -- real training on 2 workers ----------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _quiet_tensorflow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    """The 1-worker reference, trained in this process."""
    out = tmp_path_factory.mktemp("one-worker")
    probe_main([*EQUIVALENCE, "--out", str(out)])
    return _weights(out / "rank0.npz")


def _weights(path: Path) -> list[np.ndarray]:
    with np.load(path) as f:
        return [f[k] for k in f.files]


def _probe(out: Path, engine: str, args: list[str]) -> list[str]:
    return [sys.executable, "-m", "vaecf.probe", "--out", str(out), "--engine", engine, *args]


def _assert_close(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=0, atol=ATOL)


def _assert_ranks_identical(out: Path) -> list[np.ndarray]:
    # Both ranks apply the same all-reduced gradient (a + b == b + a) to the same weights.
    rank0, rank1 = _weights(out / "rank0.npz"), _weights(out / "rank1.npz")
    for a, b in zip(rank0, rank1, strict=True):
        np.testing.assert_array_equal(a, b)
    return rank0


@pytest.mark.slow
@pytest.mark.multiprocess
@pytest.mark.timeout(240)
@pytest.mark.parametrize("engine", ENGINES)
def test_two_workers_match_one_worker_with_the_same_global_batch(
        engine: str, tmp_path: Path, one_worker: list[np.ndarray]) -> None:
    # --check-broadcast shifts rank 1's weights first: matching proves rank 0's were broadcast.
    code = launch(_probe(tmp_path, engine, [*EQUIVALENCE, "--check-broadcast"]), 2, engine, timeout=180,
                  one_process=False)
    assert code == 0
    _assert_close(_assert_ranks_identical(tmp_path), one_worker)


@pytest.mark.slow
@pytest.mark.multiprocess
@pytest.mark.timeout(240)
@pytest.mark.parametrize("engine", ENGINES)
def test_uneven_shards_neither_hang_nor_crash(engine: str, tmp_path: Path) -> None:
    # Horovod also goes through the sparse tf.data path; tf.distribute through dense feed.
    inputs = [] if engine == "horovod" else ["--input", "dense", "--pipeline", "feed"]
    code = launch(_probe(tmp_path, engine, [*UNEVEN, *inputs]), 2, engine, timeout=180, one_process=False)
    assert code == 0, "a worker failed" if code != TIMED_OUT else "the workers hung"
    _assert_ranks_identical(tmp_path)
    result = (tmp_path / "result.json").read_text()
    assert '"steps": 5' in result and '"users": 36' in result


FP16_WIRE = """
import sys
import numpy as np
import tensorflow as tf
from vaecf.launch import world_from_env
world = world_from_env(sys.argv[1], sys.argv[2])
x = tf.constant([1 + 2.0 ** -12, 3.0 + world.rank])  # 1 + 2**-12 has no float16: it rounds to 1
mean = tf.function(lambda v: world.run(lambda g: world.allreduce([tf.identity(g)])[0], v))(x)
np.save(f"{sys.argv[3]}/rank{world.rank}.npy", np.asarray(mean))
"""


@pytest.mark.slow
@pytest.mark.multiprocess
@pytest.mark.timeout(240)
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("compression, first", [("none", 1 + 2.0 ** -12), ("fp16", 1.0)])
def test_fp16_compression_sends_gradients_as_float16(engine: str, compression: str, first: float,
                                                     tmp_path: Path) -> None:
    code = launch([sys.executable, "-c", FP16_WIRE, engine, compression, str(tmp_path)], 2, engine, timeout=180,
                  one_process=False)
    assert code == 0
    for rank in (0, 1):
        assert np.load(tmp_path / f"rank{rank}.npy").tolist() == [first, 3.5]


@pytest.mark.slow
@pytest.mark.multiprocess
@pytest.mark.timeout(240)
def test_timed_steps_record_compute_and_all_reduce_apart_on_every_worker(tmp_path: Path) -> None:
    args = ["--users", "40", "--items", "30", "--nnz", "6", "--batch-size", "8", "--kind", "vae",
            "--timed-steps", "4"]
    assert launch(_probe(tmp_path, "tf-distribute", args), 2, "tf-distribute", timeout=180, one_process=False) == 0
    ranks = [json.loads((tmp_path / f"rank{r}-steps.json").read_text()) for r in (0, 1)]
    # [30 -> 600 -> 2 x 200] encoder, [200 -> 600 -> 30] decoder: weights and biases, float32.
    params = 30 * 600 + 600 + 600 * 400 + 400 + 200 * 600 + 600 + 600 * 30 + 30
    for r, record in enumerate(ranks):
        assert record["rank"] == r and record["workers"] == 2 and record["gradient_bytes"] == 4 * params
        assert len(record["steps"]) == 4
        assert all(s["compute_s"] > 0 and s["allreduce_s"] > 0 and s["wait_s"] >= 0 for s in record["steps"])


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_mirrored_replicas_in_one_process_match_one_worker(
        tmp_path: Path, one_worker: list[np.ndarray]) -> None:
    env = {**os.environ, WORKER_ENV: "1", MIRRORED_ENV: "/cpu:0,/cpu:1"}
    subprocess.run(_probe(tmp_path, "tf-distribute", EQUIVALENCE), env=env, check=True, timeout=150)
    _assert_close(_weights(tmp_path / "rank0.npz"), one_worker)


@pytest.mark.slow
@pytest.mark.multiprocess
@pytest.mark.timeout(300)
def test_compare_workers_measures_one_and_two_workers_of_each_engine() -> None:
    rows = compare_workers(2, users=1200, items=60, nnz=6, batch_size=100, timeout=240)
    assert [(r["engine"], r["workers"]) for r in rows] == [("local", 1), ("horovod", 2), ("tf-distribute", 2)]
    for row in rows:
        if row["engine"] == "horovod" and HOROVOD_MISSING and not HOROVOD_REQUIRED:
            assert "horovod" in row["skipped"]
            continue
        # 12 steps of 100 users per epoch: every worker count takes the same steps and users
        assert row["steps"] == 12 and row["users"] == 1200 and row["step_users_per_s"]["median"] > 0


class _Worker:
    """The sharding of a data-parallel world, without its collectives."""

    def __init__(self, rank: int, size: int) -> None:
        self.rank, self.size = rank, size

    def shard(self, order: np.ndarray, batch_size: int) -> np.ndarray:
        return shard_users(order, batch_size, self.rank, self.size)


@pytest.mark.parametrize("scope, per_worker", [("global", 30), ("worker", 60)])
def test_each_worker_trains_on_its_own_users_of_every_global_batch(scope: BatchScope, per_worker: int) -> None:
    """The talk's pitfall: N workers must not train on copies of the same users."""
    from vaecf.config import RunConfig, TrainConfig
    from vaecf.train import Trainer

    config = RunConfig(train=TrainConfig(batch_size=60, workers=2, batch_scope=scope))
    train = np.ones((600, 4), np.float32)
    shards = []
    for rank in range(2):
        trainer = Trainer.__new__(Trainer)  # only the epoch's sharding is exercised here
        trainer.config, trainer.world = config, _Worker(rank, 2)  # type: ignore[assignment]  # a World in all it uses
        order, users_per_step = trainer._epoch_shard(train, epoch=0)
        assert users_per_step == per_worker
        shards.append(order.reshape(-1, per_worker))
    for a, b in zip(*shards):  # step by step: disjoint, and together one global batch of the epoch's order
        assert not set(a) & set(b) and len(a) + len(b) == config.train.global_batch


# -- GPU pinning with a faked device list ------------------------------------------------------------

@pytest.fixture()
def fake_gpus(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], list]:
    """``n`` fake physical GPUs for TensorFlow's device list; what is made visible lands in ``shown``."""
    import tensorflow as tf

    shown: list = []

    def install(n: int) -> list:
        devices = [tf.config.PhysicalDevice(f"/physical_device:GPU:{i}", "GPU") for i in range(n)]
        monkeypatch.setattr(tf.config, "list_physical_devices",
                            lambda kind=None: devices if kind == "GPU" else [])
        monkeypatch.setattr(tf.config, "set_visible_devices", lambda d, kind=None: shown.append((d, kind)))
        return shown

    return install


def test_each_local_rank_sees_its_own_gpu(fake_gpus: Callable[[int], list], monkeypatch: pytest.MonkeyPatch) -> None:
    from vaecf.distributed import pin_gpu

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    shown = fake_gpus(8)
    pin_gpu(3)
    assert [(d.name, kind) for d, kind in shown] == [("/physical_device:GPU:3", "GPU")]
    with pytest.raises(TrainingError, match="local rank 8 has no GPU"):
        pin_gpu(8)


def test_a_scheduler_given_gpu_is_used_whatever_the_local_rank(
        fake_gpus: Callable[[int], list], monkeypatch: pytest.MonkeyPatch) -> None:
    from vaecf.distributed import pin_gpu

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")  # Slurm gave rank 3 of this host its GPU
    shown = fake_gpus(1)
    pin_gpu(3)
    assert [d.name for d, _ in shown] == ["/physical_device:GPU:0"]


def test_no_gpu_no_pinning(fake_gpus: Callable[[int], list]) -> None:
    from vaecf.distributed import pin_gpu, pin_mirrored

    shown = fake_gpus(0)
    pin_gpu(1)
    pin_mirrored(["/cpu:0", "/cpu:1"])
    assert shown == []


def test_one_process_mirrored_world_sees_only_its_gpus(fake_gpus: Callable[[int], list]) -> None:
    from vaecf.distributed import pin_mirrored

    shown = fake_gpus(8)
    pin_mirrored(["/gpu:0", "/gpu:1"])
    assert [[d.name for d in devices] for devices, _ in shown] == [["/physical_device:GPU:0", "/physical_device:GPU:1"]]
    with pytest.raises(TrainingError, match="name GPU 8"):
        pin_mirrored(["/gpu:8"])


def test_tf_distribute_collectives_use_nccl_on_gpus_and_time_out() -> None:
    import tensorflow as tf

    from vaecf.children import COLLECTIVE_TIMEOUT_S
    from vaecf.distributed import communication_options

    impl = tf.distribute.experimental.CommunicationImplementation
    for on_gpu, want in ((True, impl.NCCL), (False, impl.RING)):
        options = communication_options(on_gpu)
        assert options.implementation == want and options.timeout_seconds == COLLECTIVE_TIMEOUT_S


ENV_PROBE = "import json, os, sys; print(json.dumps({k: os.environ.get(k) for k in sys.argv[1:]}))"


@pytest.mark.timeout(60)
def test_a_single_worker_child_sees_the_first_gpu_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vaecf.children import run_workers

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "6,7")
    log = tmp_path / "log"
    command = [sys.executable, "-c", ENV_PROBE, "CUDA_VISIBLE_DEVICES", "TF_FORCE_GPU_ALLOW_GROWTH"]
    assert run_workers(command, 1, "tf-distribute", log) == 0
    assert json.loads(log.read_text()) == {"CUDA_VISIBLE_DEVICES": "6", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}


@pytest.mark.multiprocess
@pytest.mark.timeout(240)  # the launcher loads TensorFlow to count GPUs first
def test_a_hung_world_of_the_runner_ends_at_its_timeout_with_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ablations.jobs import run_job
    from vaecf.children import WORLD_TIMEOUT_ENV
    from vaecf.errors import VaecfError

    monkeypatch.setenv(WORLD_TIMEOUT_ENV, "3")
    hang = tmp_path / "hang.py"  # stands in for a worker stuck in a collective
    hang.write_text("import time; time.sleep(120)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{os.environ.get('PYTHONPATH', '')}")
    with pytest.raises(VaecfError, match=r"timed out after 3 s .*hung collective") as e:
        run_job("hang", {}, tmp_path / "job", workers=2, engine="tf-distribute", log=tmp_path / "log",
                what="training for quality")
    assert "\n" not in str(e.value)
