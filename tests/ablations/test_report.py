"""Tables and charts from records alone: time to an absolute target, 'not reached', flags, stable SVGs."""

import dataclasses
import json
from typing import Any

import pytest

from ablations import report
from ablations.ladder import Step
from ablations.runner import budget_and_target
from vaecf.config import TrainConfig
from vaecf.errors import DataError
from vaecf.io import write_json

BASE = TrainConfig(input="dense", pipeline="feed", batch_size=100)
STEPS = [Step(0, "baseline", "", BASE),
         Step(1, "sparse input", "", BASE.with_overrides(input="sparse")),
         Step(2, "larger batch", "", BASE.with_overrides(input="sparse", batch_size=400)),
         Step(3, "four workers", "", BASE.with_overrides(workers=4), skip="needs 4 workers")]
USERS_PER_S = {0: 100.0, 1: 200.0, 2: 400.0}  # seconds per update: 1.0, 0.5 and 1.0
CALIBRATION = {"summary": {"converged_ndcg": 0.40, "noise_sd": 0.005}, "seeds": [],
               "baselines": {"popularity": 0.15, "ease": 0.38, "oracle": 0.45}}


def curve(values: list[float], every: int, horizon: int = 1000) -> dict:
    points = [{"updates": every * (i + 1), "train_s": 0.1 * i, "eval_s": 0.01 * i, "ndcg@100": v,
               "recall@20": v, "recall@50": v} for i, v in enumerate(values)]
    return {"curve": points, "horizon_updates": horizon}


def write_run(folder, budget_s: float = 20.0, target: float = 0.36) -> None:
    described: list[dict[str, Any]] = [
        {"index": s.index, "slug": s.slug, "name": s.name, "change": s.change, "notes": [], "skip": s.skip,
         "train": dataclasses.asdict(s.train)} for s in STEPS]
    write_json(folder / "calibration.json", CALIBRATION)
    write_json(folder / "run.json", {
        "ladder": {"name": "tiny", "mode": "ladder", "reference": None, "description": "a test ladder"},
        "budget": {"name": "smoke", "quality_dataset": "synthetic:tiny", "time_factor": 1.5, "target_fraction": 0.9},
        "data": {"train_users": 480, "items": 300},
        "machine": {"gpus": [], "cpu": "test CPU", "cores": 2, "cpu_flags": ["avx2"], "git_sha": "abc",
                    "cuda": None, "cudnn": None, "python": "3.11", "versions": {"tensorflow": "2.21"}},
        "started": "2026-01-01T00:00:00+0000",
        "steps": described, "target_ndcg": target, "budget_s": budget_s, "calibration": "calibration.json"})
    windows = {s.speed_key: {str(r): {"users_per_s": [USERS_PER_S[s.index] * f for f in (0.9, 1.1)],
                                      "users_per_s_median": USERS_PER_S[s.index] * (1 + 0.05 * (r - 1)),
                                      "peak_rss_bytes": 2**30, "device_peak_bytes": None} for r in range(3)}
               for s in STEPS if s.skip is None}
    write_json(folder / "speed.json", {"windows": windows, "ceilings": {"0": {"100,float32": 1e9, "400,float32": 1e9}},
                                       "machine": {"gpu_count": 0}, "workload": {"items": 300, "mean_items": 20.0}})
    # baseline and sparse input share one curve (4 updates between validations); the large batch has its own
    shared = curve([0.2, 0.3, 0.37, 0.39, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4], 4)
    write_json(folder / "quality" / "00-baseline.json", {"steps": ["00-baseline", "01-sparse-input"], **shared})
    write_json(folder / "quality" / "02-larger-batch.json",
               {"steps": ["02-larger-batch"], **curve([0.1, 0.2, 0.25, 0.3, 0.33], 4)})


def rows(folder) -> dict[str, dict]:
    return {r["name"]: r for r in report.derive(report.load_run(folder))["rows"]}


def test_time_to_target_is_on_each_steps_own_time_axis(tmp_path) -> None:
    write_run(tmp_path)
    r = rows(tmp_path)
    crossing = 8 + 4 * (0.36 - 0.3) / (0.37 - 0.3)  # 0.3 at update 8, 0.37 at 12: interpolated
    assert r["baseline"]["time_to_target_s"] == pytest.approx(crossing * 1.0)  # 1 s per update
    assert r["sparse input"]["time_to_target_s"] == pytest.approx(crossing * 0.5)  # same curve, twice as fast
    assert r["sparse input"]["quality_from"] == "00-baseline" and r["baseline"]["quality_from"] is None


def test_a_step_that_misses_the_target_within_the_budget_is_not_reached_and_flagged(tmp_path) -> None:
    write_run(tmp_path)
    larger = rows(tmp_path)["larger batch"]
    assert larger["time_to_target_s"] is None
    assert larger["ndcg_at_budget"] == 0.33  # the last validation within T = 20 s (update 20)
    assert larger["flagged"]  # 0.40 - 0.33 is far beyond 2 x 0.005
    table = report.to_markdown(report.derive(report.load_run(tmp_path)))
    assert "| larger batch |" in table and "not reached" in table.split("| larger batch |")[1].splitlines()[0]


def test_quality_within_seed_noise_is_not_flagged(tmp_path) -> None:
    write_run(tmp_path)
    assert not rows(tmp_path)["sparse input"]["flagged"]


def test_the_budget_cuts_curves_and_a_later_target_is_not_reached(tmp_path) -> None:
    write_run(tmp_path, budget_s=8.0)  # the baseline validates at 4 and 8 s only
    r = rows(tmp_path)
    assert r["baseline"]["time_to_target_s"] is None and r["baseline"]["ndcg_at_budget"] == 0.3
    assert r["sparse input"]["time_to_target_s"] == pytest.approx((8 + 4 * 0.06 / 0.07) * 0.5)


def test_speed_is_the_median_of_the_window_medians_with_their_spread(tmp_path) -> None:
    write_run(tmp_path)
    r = rows(tmp_path)
    assert r["sparse input"]["users_per_s"] == pytest.approx(200.0)
    assert (r["sparse input"]["window_min"], r["sparse input"]["window_max"]) == pytest.approx((190.0, 210.0))
    assert r["larger batch"]["step_factor"] == pytest.approx(2.0) and r["larger batch"]["total_factor"] == 4.0
    assert r["four workers"]["status"] == "skipped"


def test_target_is_absolute_from_the_calibration_and_the_budget_from_the_original_code_path() -> None:
    summary = {"converged_ndcg": 0.40, "updates": [10, 20, 30, 40], "mean": [0.2, 0.37, 0.385, 0.40]}
    target, budget_s = budget_and_target(summary, target_fraction=0.95, time_factor=1.5,
                                         reference_seconds_per_update=2.0)
    assert target == pytest.approx(0.38)
    assert budget_s == pytest.approx(1.5 * 30 * 2.0)  # 0.385 >= 0.38 first at update 30


def test_records_and_charts_are_strict_json_and_byte_stable(tmp_path) -> None:
    write_run(tmp_path)
    report.write_report(tmp_path)
    first = {str(p.relative_to(tmp_path)): p.read_bytes()
             for p in [*tmp_path.glob("*.svg"), *tmp_path.glob("*.html"), *tmp_path.glob("tensorboard/*/*")]}
    report.write_report(tmp_path)
    assert {"ladder.svg", "quality_vs_time.svg", "time_to_target.svg", "report.html"} <= set(first)
    assert all(first[name] == (tmp_path / name).read_bytes() for name in first)
    with pytest.raises(ValueError, match="non-finite"):
        write_json(tmp_path / "bad.json", {"users_per_s": float("nan")})
    def refuse(constant: str) -> None:
        raise AssertionError(f"bare {constant} in a record")

    for path in tmp_path.rglob("*.json"):
        json.loads(path.read_text(), parse_constant=refuse)


def test_leave_one_out_reports_what_each_switch_was_worth_from_the_fastest(tmp_path) -> None:
    write_run(tmp_path)
    run = json.loads((tmp_path / "run.json").read_text())
    run["ladder"]["mode"] = "leave-one-out"
    write_json(tmp_path / "run.json", run)
    derived = report.derive(report.load_run(tmp_path))
    r = {row["name"]: row for row in derived["rows"]}
    assert r["sparse input"]["first_over_this"] == pytest.approx(0.5)  # the first is half as fast as this one
    assert r["larger batch"]["first_over_this"] == pytest.approx(0.25)
    header = report.to_markdown(derived).splitlines()[0]
    assert "fastest / this" in header and "step x" not in header and "vs fastest" in header


def test_a_factor_not_distinguishable_from_the_step_before_is_said_to_be(tmp_path) -> None:
    write_run(tmp_path)
    r = rows(tmp_path)
    assert not r["sparse input"]["within_spread"] and not r["baseline"]["within_spread"]  # 190-210 vs 95-105
    speed = json.loads((tmp_path / "speed.json").read_text())
    sparse = speed["windows"][STEPS[1].speed_key]
    for r_, m in zip(sparse, (96.0, 104.0, 110.0)):  # now overlapping the baseline's 95-105
        sparse[r_]["users_per_s_median"] = m
    write_json(tmp_path / "speed.json", speed)
    assert rows(tmp_path)["sparse input"]["within_spread"]
    table = report.to_markdown(report.derive(report.load_run(tmp_path)))
    assert "not distinguishable" in table.split("| sparse input |")[1].splitlines()[0]


def test_a_curve_that_stops_at_the_calibrations_length_before_t_says_so(tmp_path) -> None:
    write_run(tmp_path, budget_s=30.0)
    path = tmp_path / "quality" / "02-larger-batch.json"
    record = json.loads(path.read_text())
    assert not rows(tmp_path)["larger batch"]["curve_ends_early"]
    record["horizon_updates"] = 20  # its last validation, at 20 s of the 30 s budget
    write_json(path, record)
    assert rows(tmp_path)["larger batch"]["curve_ends_early"]
    table = report.to_markdown(report.derive(report.load_run(tmp_path)))
    assert "ends at the calibration's length" in table.split("| larger batch |")[1].splitlines()[0]


def test_a_run_made_elsewhere_and_moved_under_results_finds_its_calibration_by_path_and_sha256(tmp_path) -> None:
    results, made = tmp_path / "results", tmp_path / "elsewhere" / "run"
    (results / "calibration").mkdir(parents=True)
    write_run(made)
    write_json(results / "calibration" / "c.json", CALIBRATION)
    (made / "calibration.json").unlink()
    run = json.loads((made / "run.json").read_text())
    run["calibration"] = report.calibration_ref(results / "calibration" / "c.json", results, CALIBRATION, made)
    assert run["calibration"]["path"] == "calibration/c.json"
    write_json(made / "run.json", run)
    assert report.load_run(made, tmp_path / "gone")["calibration"] == CALIBRATION  # where the runner found it
    moved = results / "machine" / "run"
    moved.parent.mkdir(parents=True)
    made.rename(moved)
    assert report.find_calibration(moved, run, tmp_path / "gone")[0] == results / "calibration" / "c.json"
    assert report.derive(report.load_run(moved, tmp_path / "gone"))["converged"] == 0.40
    write_json(results / "calibration" / "c.json", {**CALIBRATION, "summary": {"converged_ndcg": 0.5, "noise_sd": 0}})
    with pytest.raises(DataError, match=r"calibration/c.json \(sha256 [0-9a-f]{64}\) is missing: .*c.json holds "
                                        "other contents"):
        report.load_run(moved, tmp_path / "gone")
    (results / "calibration" / "c.json").unlink()
    with pytest.raises(DataError, match="no folder above the run, nor .*gone, nor the results folder it was made "
                                        "with holds it"):
        report.load_run(moved, tmp_path / "gone")
