"""A tiny ladder end to end: records, charts, resume without re-measuring, refusal on changed code."""

from pathlib import Path

import pytest

import ablations.runner as runner
from ablations import quality, speed
from ablations.ladder import BUDGETS, Hardware
from ablations.report import derive, load_run
from vaecf.errors import DataError, VaecfError

LADDER = """
name = "tiny"
description = "a test ladder"

[baseline]
input = "dense"
pipeline = "feed"
batch_size = 60

[[steps]]
name = "sparse input"
set = { input = "sparse" }

[[steps]]
name = "many workers"
set = { workers = 64 }
"""


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_tiny_ladder_runs_resumes_and_refuses_changed_code(tmp_path, monkeypatch) -> None:
    path = tmp_path / "tiny.toml"
    path.write_text(LADDER)
    kwargs = dict(results=tmp_path / "results", data_cache=tmp_path / "data", out=tmp_path / "run",
                  hardware=Hardware(gpus=0, cores=2, horovod=False), log=lambda *a: None)
    run_dir = runner.run_ladder(str(path), "smoke", **kwargs)

    for name in ("run.json", "speed.json", "rates.json", "quality/00-baseline.json", "table.md", "table.csv",
                 "ladder.svg", "quality_vs_time.svg", "time_to_target.svg"):
        assert (run_dir / name).is_file(), name
    assert (tmp_path / "results" / "calibration" / "synthetic_tiny.json").is_file()
    rows = {r["name"]: r for r in derive(load_run(run_dir))["rows"]}
    assert rows["many workers"]["status"] == "skipped"
    assert rows["sparse input"]["quality_from"] == "00-baseline"  # same computation: one curve, trained once
    windows = len(speed.speed_summary(load_run(run_dir)["speed"], _step(run_dir, 1))["window_medians"])
    assert 3 <= windows <= BUDGETS["smoke"].max_windows  # more where the two steps were not yet distinguishable
    for windows_of in load_run(run_dir)["speed"]["windows"].values():  # each window knows the machine's state
        for window in windows_of.values():
            assert window["gemm_flops"] > 0 and 0 <= window["state"]["others_share"] <= 1
            assert window["state"]["ours_share"] > 0.05  # the child's own training, seen as ours

    # Everything is recorded: a rerun measures and trains nothing, and redraws the same table.
    table = (run_dir / "table.md").read_text()
    monkeypatch.setattr(speed, "_child", lambda *a: pytest.fail("re-measured a recorded window"))
    monkeypatch.setattr(quality, "train_curve", lambda *a: pytest.fail("re-trained a recorded curve"))
    assert runner.run_ladder(str(path), "smoke", **kwargs) == run_dir
    assert (run_dir / "table.md").read_text() == table

    # A damaged record is one error naming it, before anything is measured or trained again.
    damaged = (("speed.json", _truncate, "unreadable"), ("quality/00-baseline.json", _alter, "corrupt"),
               ("run.json", _alter, "corrupt"))
    for name, damage, error in damaged:
        saved = (run_dir / name).read_bytes()
        damage(run_dir / name)
        with pytest.raises(DataError, match=f"{name}: {error}"):
            runner.run_ladder(str(path), "smoke", **kwargs)
        (run_dir / name).write_bytes(saved)

    probe = runner.doctor.probe()
    monkeypatch.setattr(runner.doctor, "probe", lambda: {**probe, "git_sha": "0123456789ab"})
    with pytest.raises(VaecfError, match="was started with code"):
        runner.run_ladder(str(path), "smoke", **kwargs)

    # Made with --out outside the results folder, then moved under it: it still finds its calibration.
    assert load_run(run_dir)["run"]["calibration"]["path"] == "calibration/synthetic_tiny.json"
    assert load_run(run_dir)["run"]["finished"] >= load_run(run_dir)["run"]["started"]  # the run line's duration
    moved = tmp_path / "results" / "machine" / "tiny-smoke"
    moved.parent.mkdir()
    run_dir.rename(moved)
    assert derive(load_run(moved, results=tmp_path / "nowhere"))["rows"][0]["status"] == "done"


def _step(run_dir, index):
    from ablations.ladder import Step
    from vaecf.config import TrainConfig

    s = load_run(run_dir)["run"]["steps"][index]
    return Step(s["index"], s["name"], s["change"], TrainConfig(**s["train"]))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def _alter(path: Path) -> None:
    """One digit changed: still JSON, no longer what was written."""
    text = path.read_text()
    i = next(i for i, c in enumerate(text) if c.isdigit() and i > 100)
    path.write_text(text[:i] + str((int(text[i]) + 1) % 10) + text[i + 1:])
