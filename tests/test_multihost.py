"""Training across hosts for real: workers in network namespaces (``tools/hosts.py``), over real links.

Horovod goes through the user's path, ``vaecf train --workers 2 --hosts h1:1,h2:1`` run on h1:
horovodrun reaches h2 by ssh (an sshd in h2's namespace) and the workers all-reduce over Gloo
across the bridge. tf.distribute runs one ``vaecf train`` per host with a ``TF_CONFIG`` naming
the hosts' addresses. Then h2 is cut off mid-run: h1's side stops within ``LOST_WITHIN_S`` with
one line naming worker 1 on h2, and the same command, rerun, resumes and ends where an
uninterrupted run ends.

Run by ``nox -s multihost`` (root, iproute2, Debian's openssh-server, Horovod on TensorFlow 2.18),
which sets VAECF_MULTIHOST=1; skipped elsewhere, saying why.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.test_hosts import NO_NAMESPACES, NO_SSHD, leftovers, prefix
from tools.hosts import Cluster, Spec, namespace_pids, run_each, tf_configs

REPO = Path(__file__).resolve().parent.parent


def _why_skip() -> str | None:
    if os.environ.get("VAECF_MULTIHOST") != "1":
        return "training across namespaces runs in 'nox -s multihost' (or set VAECF_MULTIHOST=1)"
    return NO_NAMESPACES or NO_SSHD


SKIP = _why_skip()
pytestmark = [pytest.mark.multihost, pytest.mark.slow, pytest.mark.skipif(SKIP is not None, reason=SKIP or "")]

EPOCHS = 12
TRAIN = ["--epochs", str(EPOCHS), "--batch-size", "50", "--workers", "2", "--set", "total_anneal_steps=100",
         "--quiet"]
LOST_WITHIN_S = 30.0
"""How soon h1's side of a world stops after h2 is cut off: ssh notices in ~6 s (ServerAliveInterval 2 x 3,
tools/hosts.py), then horovodrun stops the other worker (SIGTERM, up to its grace period)."""
METRICS_ATOL = 1e-5


def vaecf(*args: str) -> list[str]:
    return [sys.executable, "-m", "vaecf", *args]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("multihost") / "data"
    subprocess.run(vaecf("data", "prepare", "synthetic:tiny", "--out", str(folder)), check=True,
                   capture_output=True, cwd=REPO)
    return folder


def horovod_train(cluster: Cluster, data: Path, out: Path, **popen: Any) -> subprocess.Popen[bytes]:
    """``vaecf train --hosts h1:1,h2:1`` started on h1, as a user would on a cluster's first host."""
    return cluster.popen(0, vaecf("train", "--data", str(data), "--out", str(out), *TRAIN, "--engine", "horovod",
                                  "--hosts", "h1:1,h2:1"), cwd=REPO, **popen)


def wait_for_epochs(history: Path, epochs: int, proc: subprocess.Popen[bytes]) -> None:
    """Until the run has finished ``epochs`` epochs (its history says so), while ``proc`` runs."""
    deadline = time.monotonic() + 300
    while not (history.exists() and len(json.loads(history.read_text() or "[]")) >= epochs):
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be stopped"
        time.sleep(0.05)


def final(run: Path) -> dict[str, float]:
    """The run's best epoch and its validation metrics, and the last epoch's training loss."""
    result = json.loads((run / "result.json").read_text())
    last = json.loads((run / "history.json").read_text())[-1]
    return {"best_epoch": result["best_epoch"], **result["validation"], "last_loss": last["loss"]}


@pytest.fixture(scope="module")
def horovod_run(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("horovod") / "run"
    p = prefix("h")
    with Cluster(Spec(hosts=2, prefix=p)) as cluster:
        proc = horovod_train(cluster, data, out, stderr=subprocess.PIPE)
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-3000:]
    assert leftovers(p) == []
    return out


def test_horovod_trains_across_two_hosts_through_vaecf_train_hosts(horovod_run: Path) -> None:
    history = json.loads((horovod_run / "history.json").read_text())
    assert len(history) == EPOCHS
    result = json.loads((horovod_run / "result.json").read_text())
    assert result["workers"] == 2 and 0 < result["validation"]["ndcg@100"] <= 1


def test_tf_distribute_trains_across_two_hosts_by_their_addresses(data: Path, horovod_run: Path,
                                                                   tmp_path: Path) -> None:
    out = tmp_path / "run"
    p = prefix("t")
    with Cluster(Spec(hosts=2, prefix=p, ssh=False)) as cluster:
        code = run_each(cluster, vaecf("train", "--data", str(data), "--out", str(out), *TRAIN,
                                       "--engine", "tf-distribute"), per_host=1)
        assert code == 0
    assert leftovers(p) == []
    # The same global batches, seeds and averaged gradients as Horovod's: the same model, up to rounding.
    ours, theirs = final(out), final(horovod_run)
    assert ours["best_epoch"] == theirs["best_epoch"]
    assert ours == pytest.approx(theirs, abs=METRICS_ATOL)


def test_a_host_cut_off_stops_the_world_in_one_line_and_the_rerun_resumes(data: Path, horovod_run: Path,
                                                                          tmp_path: Path) -> None:
    out = tmp_path / "run"
    p = prefix("l")
    with Cluster(Spec(hosts=2, prefix=p)) as cluster:
        proc = horovod_train(cluster, data, out, stderr=subprocess.PIPE)
        history = out / "history.json"
        wait_for_epochs(history, 2, proc)
        cluster.cut(1)
        cut_at = time.monotonic()
        _, err = proc.communicate(timeout=LOST_WITHIN_S + 60)
        stopped_after = time.monotonic() - cut_at
        done = len(json.loads(history.read_text()))
    assert leftovers(p) == []
    stderr = err.decode()
    assert proc.returncode != 0 and stopped_after < LOST_WITHIN_S, (stopped_after, stderr[-3000:])
    assert done < EPOCHS, "the cut came after the last epoch"
    lines = [line for line in stderr.splitlines() if line.startswith("vaecf: error:")]
    assert len(lines) == 1 and "worker 1 on h2" in lines[0], stderr[-3000:]
    assert "Traceback" not in stderr

    with Cluster(Spec(hosts=2, prefix=p)) as cluster:
        proc = horovod_train(cluster, data, out, stderr=subprocess.PIPE)
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-3000:]
    assert len(json.loads(history.read_text())) == EPOCHS
    resumed, uninterrupted = final(out), final(horovod_run)
    assert resumed["best_epoch"] == uninterrupted["best_epoch"]
    assert resumed == pytest.approx(uninterrupted, abs=METRICS_ATOL)


def test_tf_distribute_with_a_host_cut_off_stops_in_one_line_and_the_rerun_resumes(data: Path, horovod_run: Path,
                                                                                  tmp_path: Path) -> None:
    out = tmp_path / "run"
    command = vaecf("train", "--data", str(data), "--out", str(out), *TRAIN, "--engine", "tf-distribute")
    p = prefix("u")
    with Cluster(Spec(hosts=2, prefix=p, ssh=False)) as cluster:
        procs = [cluster.popen(h, command, env={**os.environ, "VAECF_WORKER": "1", "TF_CONFIG": config},
                               stderr=subprocess.PIPE, cwd=REPO)
                 for h, [config] in enumerate(tf_configs(cluster.spec, per_host=1))]
        history = out / "history.json"
        wait_for_epochs(history, 2, procs[0])
        cluster.cut(1)
        cut_at = time.monotonic()
        _, err = procs[0].communicate(timeout=LOST_WITHIN_S + 60)  # h1's worker: TensorFlow's heartbeat notices
        stopped_after = time.monotonic() - cut_at
        done = len(json.loads(history.read_text()))
    assert leftovers(p) == []
    stderr = err.decode()
    assert procs[0].returncode == 2 and stopped_after < LOST_WITHIN_S, (stopped_after, stderr[-3000:])
    assert done < EPOCHS, "the cut came after the last epoch"
    assert stderr.count("vaecf: error: data-parallel worker 1 (10.77.0.2:23456) was lost") == 1, stderr[-3000:]
    assert "Traceback" not in stderr

    with Cluster(Spec(hosts=2, prefix=p, ssh=False)) as cluster:
        assert run_each(cluster, command, per_host=1) == 0
    assert final(out) == pytest.approx(final(horovod_run), abs=METRICS_ATOL)  # = an uninterrupted run (above)


def test_a_remote_worker_killed_stops_the_world_in_one_line(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    p = prefix("s")
    spec = Spec(hosts=2, prefix=p)
    with Cluster(spec) as cluster:
        proc = horovod_train(cluster, data, out, stderr=subprocess.PIPE)
        wait_for_epochs(out / "history.json", 1, proc)
        [worker] = [pid for pid in namespace_pids([spec.namespaces[1]]) if _is_vaecf_train(pid)]
        os.kill(worker, signal.SIGKILL)
        killed_at = time.monotonic()
        _, err = proc.communicate(timeout=LOST_WITHIN_S + 60)
        stopped_after = time.monotonic() - killed_at
    assert leftovers(p) == []
    stderr = err.decode()
    assert proc.returncode != 0 and stopped_after < LOST_WITHIN_S, (stopped_after, stderr[-3000:])
    lines = [line for line in stderr.splitlines() if line.startswith("vaecf: error:")]
    assert len(lines) == 1 and "worker 1 on h2" in lines[0], stderr[-3000:]


def _is_vaecf_train(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"vaecf" in argv and b"train" in argv
