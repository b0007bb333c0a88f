"""The probe: measured once in a child, then read back while it covers every shape asked for."""

from pathlib import Path

import pytest

from ablations import rates
from vaecf.config import TrainConfig


def test_needs_lists_per_worker_shapes() -> None:
    trains = [TrainConfig(input="dense", batch_size=500), TrainConfig(batch_size=2100, workers=2),
              TrainConfig(batch_size=2100, precision="mixed_bfloat16")]
    job = rates.needs(trains)
    assert job["host"] == [("dense", 500), ("sparse", 1050), ("sparse", 2100)]
    assert job["gemm"] == [(500, "float32"), (1050, "float32"), (2100, "mixed_bfloat16")]
    assert rates.needs(trains, gemm=False)["gemm"] == []
    assert rates.missing({"host_prep_s": {"dense,500": 1.0}, "gemm_flops": {}}, rates.needs(trains[:1], gemm=False)) \
        is False


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ensure_measures_in_a_child_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "rates.json"
    trains = [TrainConfig(input="dense", batch_size=16), TrainConfig(batch_size=16)]
    record = rates.ensure(path, trains, 200, lambda *a: None)
    assert set(record["host_prep_s"]) == {"dense,16", "sparse,16"} and set(record["gemm_flops"]) == {"16,float32"}
    assert record["overhead_s"] > 0 and record["memory_bw"] > 0 and not path.with_suffix(".log").exists()
    monkeypatch.setattr(rates, "run_job", lambda *a: pytest.fail("re-measured a covered probe"))
    assert rates.ensure(path, trains[1:], 200, lambda *a: None)["host_prep_s"] == record["host_prep_s"]
