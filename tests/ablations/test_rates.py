"""The probe: measured once in a child, then read back while it covers every shape asked for."""

from pathlib import Path

import pytest

from ablations import rates
from vaecf.config import TrainConfig
from vaecf.io import write_json


def test_needs_lists_per_worker_shapes() -> None:
    trains = [TrainConfig(input="dense", batch_size=500), TrainConfig(batch_size=2100, workers=2),
              TrainConfig(batch_size=2100, workers=2, xla=True),
              TrainConfig(batch_size=2100, precision="mixed_bfloat16")]
    job = rates.needs(trains)
    assert job["host"] == [("dense", 500), ("sparse", 1050), ("sparse", 2100)]
    # one process's GEMMs for one-worker steps; a 2-worker step's in a world of 2, XLA's apart
    assert job["gemm"] == [(500, "float32", False), (2100, "mixed_bfloat16", False)]
    assert job["worlds"] == [(2, "auto", 1050, "float32", False), (2, "auto", 1050, "float32", True)]
    assert rates.needs(trains, gemm=False)["gemm"] == [] and rates.needs(trains, gemm=False)["worlds"] == []
    assert rates.needs(trains, worlds=False)["worlds"] == [] and rates.needs(trains, worlds=False)["gemm"]
    assert rates.missing({"host_prep_s": {"dense,500": 1.0}, "gemm_flops": {}}, rates.needs(trains[:1], gemm=False)) \
        is False
    record = {"host_prep_s": {"dense,500": 1.0, "sparse,1050": 1.0, "sparse,2100": 1.0},
              "gemm_flops": {"500,float32": 1.0, "2100,mixed_bfloat16": 1.0},
              "worlds": {"2": {"gemm_flops": {"1050,float32": 1.0}}}}
    assert rates.uncovered(record, job) == ["2 workers' GEMM 1050,float32,xla"]


def test_ensure_adds_a_missing_world_and_keeps_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A probe made before worlds (header under provenance) that covers a run's one-process shapes:
    # only the 2-worker world is measured, and the header moves under machine.
    path = tmp_path / "rates.json"
    old = {"machine": "box", "provenance": {"git_sha": "a" * 40, "cpu": "x"},
           "host_prep_s": {"sparse,16": 1.0, "sparse,8": 2.0}, "gemm_flops": {"16,float32": 3.0}, "memory_bw": 4.0}
    write_json(path, old)
    calls = []

    def fake_job(module: str, job: dict, work: Path, workers: int, *rest: object) -> dict:
        calls.append(workers)
        return {"machine": {"git_sha": "b" * 40}, "gemm_flops": {"8,float32": 5.0}, "allreduce_bw": 6.0}

    monkeypatch.setattr(rates, "run_job", fake_job)
    trains = [TrainConfig(batch_size=16), TrainConfig(batch_size=16, workers=2)]
    record = rates.ensure(path, trains, 200, lambda *a: None)
    assert calls == [2]  # the world only
    assert record["machine"] == {"git_sha": "a" * 40, "cpu": "x", "machine_name": "box"} and "provenance" not in record
    assert record["gemm_flops"] == {"16,float32": 3.0} and record["worlds"]["2"]["allreduce_bw"] == 6.0
    assert rates.ensure(path, trains, 200, lambda *a: None) == record and calls == [2]  # covered: nothing measured


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ensure_measures_in_a_child_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "rates.json"
    trains = [TrainConfig(input="dense", batch_size=16), TrainConfig(batch_size=16)]
    record = rates.ensure(path, trains, 200, lambda *a: None)
    assert set(record["host_prep_s"]) == {"dense,16", "sparse,16"} and set(record["gemm_flops"]) == {"16,float32"}
    assert record["overhead_s"] > 0 and record["memory_bw"] > 0 and not path.with_suffix(".log").exists()
    assert record["machine"]["machine_name"] and record["machine"]["git_sha"]  # the standard header
    monkeypatch.setattr(rates, "run_job", lambda *a: pytest.fail("re-measured a covered probe"))
    assert rates.ensure(path, trains[1:], 200, lambda *a: None)["host_prep_s"] == record["host_prep_s"]


@pytest.mark.slow
@pytest.mark.multiprocess
@pytest.mark.timeout(300)
def test_a_data_parallel_step_is_probed_in_a_world_of_its_workers(tmp_path: Path) -> None:
    path = tmp_path / "rates.json"
    train = TrainConfig(batch_size=16, workers=2, engine="tf-distribute", xla=True)
    world = rates.ensure(path, [train], 200, lambda *a: None)["worlds"]["2"]
    assert set(world["gemm_flops"]) == {"8,float32,xla"} and world["gemm_flops"]["8,float32,xla"] > 0
    # the all-reduce of the model's float32 gradients at 200 items: 4 x (200 x 600 + 600 + 600 x 400 + 400
    # + 200 x 600 + 600 + 600 x 200 + 200) bytes
    assert world["allreduce_bytes"] == 4 * (200 * 600 + 600 + 600 * 400 + 400 + 200 * 600 + 600 + 600 * 200 + 200)
    assert world["allreduce_bw"] == pytest.approx(world["allreduce_bytes"] / world["allreduce_s"])  # 2(N-1)/N = 1
    assert world["memory_bw"] > 0 and world["workers"] == 2
