"""A tiny ladder end to end: records, resume after a kill, skipped steps, charts from records."""

import json

import pytest

import ablations.runner as runner
from ablations.__main__ import main
from ablations.ladder import Hardware
from ablations.report import derive

LADDER = """
name = "tiny"
description = "a test ladder"
quality_tolerance = 0.02
time_to_quality = 0.5
reference = "case-study"

[baseline]
input = "dense"
pipeline = "feed"
batch_size = 120

[[steps]]
name = "sparse input"
set = { input = "sparse" }

[[steps]]
name = "many workers"
set = { workers = 64 }

[[steps]]
name = "tf.data"
set = { pipeline = "tfdata" }
"""


@pytest.fixture()
def ladder(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(LADDER)
    return path


def run(ladder, tmp_path):
    return runner.run_ladder(str(ladder), "synthetic:tiny", "quick", data_cache=tmp_path / "data",
                             out=tmp_path / "run", hardware=Hardware(gpus=0, cores=2, horovod=False),
                             log=lambda *a: None)


@pytest.mark.slow
def test_tiny_ladder_runs_resumes_and_redraws(ladder, tmp_path, monkeypatch) -> None:
    ran = []
    original = runner._run_step

    def killed_at_third_step(step, *args):
        if step.index == 3:
            raise KeyboardInterrupt  # as if the machine went away mid-ladder
        ran.append(step.index)
        return original(step, *args)

    monkeypatch.setattr(runner, "_run_step", killed_at_third_step)
    with pytest.raises(KeyboardInterrupt):
        run(ladder, tmp_path)
    assert ran == [0, 1]

    ran.clear()
    monkeypatch.setattr(runner, "_run_step", lambda step, *a: ran.append(step.index) or original(step, *a))
    run_dir = run(ladder, tmp_path)
    assert ran == [3]  # finished and skipped steps are not run again

    records = {json.loads(p.read_text())["name"]: json.loads(p.read_text())
               for p in (run_dir / "steps").glob("*.json")}
    assert records["many workers"]["status"] == "skipped"
    assert "64 workers" in records["many workers"]["skip_reason"]
    for name in ("baseline", "sparse input", "tf.data"):
        r = records[name]
        assert r["status"] == "done"
        assert r["throughput"]["median"] > 0 and 0 < r["mfu"] < 1.5
        assert 0 < r["validation"]["ndcg@100"] <= 1
        assert r["config"]["train"]["epochs"] == 3
        assert r["peak_rss_bytes"] > 0 and r["gemm_flops"] > 1e9
    run_record = json.loads((run_dir / "run.json").read_text())
    assert run_record["machine"]["cores"] and run_record["data"]["cache_key"]
    table = (run_dir / "table.md").read_text()
    assert "| many workers | skipped |" in table and "64 workers" in table

    # Charts come back from the records alone: no step is trained again.
    for name in ("ladder.png", "ladder.svg", "time_to_quality.png", "table.md", "table.csv"):
        (run_dir / name).unlink()
    monkeypatch.setattr(runner, "_run_step", lambda *a: pytest.fail("plot must not train"))
    assert main(["plot", str(run_dir)]) == 0
    assert (run_dir / "ladder.png").stat().st_size > 10_000
    assert (run_dir / "table.md").read_text() == table


def _record(index: int, name: str, users_per_s: float, ndcg: float, history: list) -> dict:
    return {"index": index, "name": name, "change": "", "status": "done", "skip_reason": None, "notes": [],
            "throughput": {"median": users_per_s, "p10": users_per_s, "p90": users_per_s, "steps": 5},
            "epoch_s_median": 1.0, "mfu": 0.5, "peak_rss_bytes": 2**30,
            "validation": {"ndcg@100": ndcg, "recall@20": 0.1, "recall@50": 0.2}, "history": history}


def test_factors_flags_and_time_to_quality_derive_from_records() -> None:
    run = {"ladder": {"quality_tolerance": 0.02, "time_to_quality": 0.9}}
    steps = [
        _record(0, "baseline", 100.0, 0.40,
                [{"train_s": 10, "val_ndcg@100": 0.30}, {"train_s": 20, "val_ndcg@100": 0.40}]),
        _record(1, "fast", 400.0, 0.39, [{"train_s": 3, "val_ndcg@100": 0.37}]),
        {"index": 2, "name": "skipped", "change": "", "status": "skipped", "skip_reason": "no GPU", "notes": []},
        _record(3, "faster but worse", 1200.0, 0.30, [{"train_s": 1, "val_ndcg@100": 0.30}]),
    ]
    rows = derive(run, steps)
    assert [r.get("cumulative_factor") for r in rows] == [1.0, 4.0, None, 12.0]
    assert rows[3]["step_factor"] == pytest.approx(3.0)  # against the last step that ran
    assert [r.get("quality_flag") for r in rows] == [False, False, None, True]
    assert [r.get("time_to_quality_s") for r in rows] == [20, 3, None, None]  # target 0.36
    assert rows[2]["notes"] == "no GPU"
