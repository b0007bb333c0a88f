"""A tune's result from its run's records: the fastest to the target and how much sooner, with verdicts' 95%
intervals worked by hand here; the files from the strict JSON record."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import t

from ablations import report, tune_result, verdicts
from tests.ablations.test_report import STEPS, curve, write_run
from vaecf.io import read_json, write_json

# test_report's run as a tune: the paper's configuration (batch 100, dense input), the same maths with sparse
# input (the paper's curve), batch 400 (its own curve), a skipped step. Window medians per round:
RATES = {0: [95.0, 100.0, 108.0], 1: [190.0, 200.0, 220.0], 2: [380.0, 400.0, 410.0]}
# Seed-mean curves (a validation every 4 updates) cross 0.36 at update 12 (the paper's) and 8 (batch 400):
# 12 s at 100 users/s, 6 s at 200 and 8 s at 400. The seeds alone cross at 8 + 4 x 6/7 and 12 + 4/3 updates,
# and at 4 + 4 x 6/7 and 8 + 4/3.
SEEDS = {"00-baseline": ([0.2, 0.3, 0.37, 0.4, 0.4, 0.4], [0.2, 0.3, 0.35, 0.38, 0.4, 0.4]),
         "02-larger-batch": ([0.3, 0.37, 0.4, 0.4, 0.4], [0.3, 0.35, 0.38, 0.4, 0.4])}
CROSSINGS = {"00-baseline": [8 + 4 * 6 / 7, 12 + 4 / 3], "02-larger-batch": [4 + 4 * 6 / 7, 8 + 4 / 3]}


def write_tune(folder, seeds: int, budget_s: float = 40.0) -> dict:
    """The run's records, ``seeds`` (1 or 2) per curve; returns report.derive's view and the records."""
    write_run(folder, budget_s=budget_s)
    run = read_json(folder / "run.json")
    run["ladder"] = {**run["ladder"], "name": "tune", "mode": "tune"}
    run["budget"] |= {"evaluations": 20}
    run["machine"] |= {"machine_name": "test", "command": ["vaecf"], "clean": True}
    write_json(folder / "run.json", run)
    speed = read_json(folder / "speed.json")
    for step in STEPS[:3]:
        speed["windows"][step.speed_key] = {
            str(r): {"users_per_s": [v], "users_per_s_median": v, "peak_rss_bytes": 2**30, "device_peak_bytes": None}
            for r, v in enumerate(RATES[step.index])}
    write_json(folder / "speed.json", speed)
    for owner, curves in SEEDS.items():
        path = folder / "quality" / f"{owner}.json"
        record = {**read_json(path), **curve(curves[0], 4)}
        write_json(path, {**record, "more_seeds": [{"seed": 1, "curve": curve(c, 4)["curve"]}
                                                   for c in curves[1:seeds]]})
    records = report.load_run(folder)
    return {"records": records, "derived": report.derive(records)}


def log_se(values: list[float]) -> float:
    return float(np.std(np.log(values), ddof=1) / math.sqrt(len(values)))


def interval(point: float, se: float, df: float) -> tuple[float, float]:
    half = t.ppf(0.975, df) * se
    return point * math.exp(-half), point * math.exp(half)


def welch(a: float, b: float, df_a: float, df_b: float) -> tuple[float, float]:
    """The se and df of a ratio of two independent log estimates."""
    return math.sqrt(a**2 + b**2), (a**2 + b**2) ** 2 / (a**4 / df_a + b**4 / df_b)


SEED_SD = math.sqrt(sum((math.log(a) - math.log(b)) ** 2 / 2 for a, b in CROSSINGS.values()) / 2)  # pooled, 2 df


def test_two_seeds_per_curve_give_every_time_and_ratio_its_interval(tmp_path) -> None:
    run = write_tune(tmp_path, seeds=2)
    record = tune_result.result(run["records"], run["derived"])
    assert (record["best"], record["paper"], record["users_per_s_fastest"], record["runner_up"]) == \
        ("sparse input", "baseline", "larger batch", "larger batch")
    rows = {r["name"]: r for r in record["rows"]}
    assert set(rows) == {"baseline", "sparse input", "larger batch"}  # the skipped step is no configuration
    # users/s: the median of the windows, the t interval of their logs (2 df)
    paper = rows["baseline"]["users_per_s"]
    assert paper["point"] == 100.0 and paper["df"] == 2
    assert (paper["lo"], paper["hi"]) == pytest.approx(interval(100.0, log_se(RATES[0]), 2))
    # time to target: the seeds' pooled spread (each curve the mean of 2) and the windows combined
    best = rows["sparse input"]["time_to_target_s"]
    se, df = welch(SEED_SD / math.sqrt(2), log_se(RATES[1]), 2, 2)
    assert best["point"] == pytest.approx(6.0) and best["df"] == pytest.approx(df)
    assert (best["lo"], best["hi"]) == pytest.approx(interval(6.0, se, df))
    assert rows["sparse input"]["users_to_target"] == 1200
    # against the paper's configuration: the same curve, so the ratio is the paired speed factor alone
    s = record["sooner_than_paper"]
    factors = [a / b for a, b in zip(RATES[1], RATES[0], strict=True)]
    assert s["ratio"]["point"] == pytest.approx(2.0) and s["seconds"] == pytest.approx(6.0)
    assert (s["ratio"]["lo"], s["ratio"]["hi"]) == pytest.approx(interval(2.0, log_se(factors), 2))
    assert s["verdict"] == verdicts.SOONER
    # against batch 400 (users/s-fastest and runner-up): needs 1,200 / 3,200 users, has 200 / 400 users/s
    s = record["sooner_than_runner_up"]
    assert s == record["sooner_than_users_per_s_fastest"]
    factors = [a / b for a, b in zip(RATES[1], RATES[2], strict=True)]
    se, df = welch(SEED_SD, log_se(factors), 2, 2)  # the needs: two curves of 2 seeds, sqrt(1/2 + 1/2)
    assert s["ratio"]["point"] == pytest.approx(8 / 6) and s["seconds"] == pytest.approx(2.0)
    assert (s["ratio"]["lo"], s["ratio"]["hi"]) == pytest.approx(interval(8 / 6, se, df))
    assert s["ratio"]["lo"] < 1 < s["ratio"]["hi"] and s["verdict"] == verdicts.UNDECIDED
    assert record["uncertainty"] == {"level": 0.95, "windows_per_step": 3, "seeds_per_curve": 2,
                                     "seed_spread_sd": pytest.approx(SEED_SD), "seed_spread_df": 2,
                                     "validation_spacing_s": 2.0}
    text = tune_result.reading(record)
    paper = record["sooner_than_paper"]["ratio"]
    assert f"{paper['point']:.2f}x ({paper['lo']:.2f}-{paper['hi']:.2f}) sooner, 6.0 s earlier" in text
    assert f"{s['ratio']['point']:.2f}x ({s['ratio']['lo']:.2f}-{s['ratio']['hi']:.2f}) sooner" in text
    assert "Against the users/s-fastest configuration and the runner-up, larger batch" in text
    assert "it is not distinguishable from the runner-up" in text and "verdict: sooner" in text
    assert f"6.0 s ({best['lo']:.1f}-{best['hi']:.1f})" in tune_result.to_markdown(record)


def test_one_seed_per_curve_gives_no_time_interval_and_an_unknown_verdict(tmp_path) -> None:
    run = write_tune(tmp_path, seeds=1)
    record = tune_result.result(run["records"], run["derived"])
    rows = {r["name"]: r for r in record["rows"]}
    assert all(r["time_to_target_s"]["lo"] is None and r["time_to_target_s"]["hi"] is None for r in rows.values())
    assert rows["baseline"]["users_per_s"]["lo"] is not None  # the windows still give users/s theirs
    s = record["sooner_than_runner_up"]
    best, runner_up = CROSSINGS["00-baseline"][0] * 100 / 200, CROSSINGS["02-larger-batch"][0]  # the first seeds'
    assert s["ratio"]["point"] == pytest.approx(runner_up / best) and s["ratio"]["lo"] is None
    assert s["verdict"] == verdicts.UNKNOWN
    # the paper's curve is the best's: the ratio rests on the windows alone, and has its interval
    assert record["sooner_than_paper"]["verdict"] == verdicts.SOONER
    assert record["sooner_than_paper"]["ratio"]["lo"] is not None
    assert record["uncertainty"]["seeds_per_curve"] == 1 and record["uncertainty"]["seed_spread_sd"] is None
    table, text = tune_result.to_markdown(record), tune_result.reading(record)
    assert f"| {best:.1f} s (no interval) |" in table
    assert f"{runner_up / best:.2f}x (no interval) sooner" in text and "is not known (one seed per curve)" in text
    assert "every quality curve here has one seed" in text


def test_an_unreached_or_identical_comparison_is_said_as_such(tmp_path) -> None:
    run = write_tune(tmp_path, seeds=2, budget_s=10.0)  # the paper's configuration needs 12 s
    record = tune_result.result(run["records"], run["derived"])
    assert record["sooner_than_paper"] == {"than": "baseline", "same": False, "reached": False,
                                           "ratio_at_least": pytest.approx(10 / 6), "verdict": verdicts.SOONER}
    text = tune_result.reading(record)
    assert "does not reach the target within T = 10 s" in text
    for row in run["derived"]["rows"]:  # sparse input the fastest in users/s too: compared with itself
        if row["name"] == "sparse input":
            row["users_per_s"] = 1000.0
    record = tune_result.result(run["records"], run["derived"])
    assert record["sooner_than_users_per_s_fastest"] == {"than": "sparse input", "same": True}
    assert "It is also the users/s-fastest configuration." in tune_result.reading(record)


def test_the_files_are_made_from_the_strict_json_record(tmp_path) -> None:
    run = write_tune(tmp_path, seeds=2)
    record = tune_result.write_result(tmp_path, run["records"], run["derived"])
    saved = read_json(tmp_path / "tune.json")
    json.dumps(saved, allow_nan=False)
    assert saved["best"] == record["best"] == "sparse input"
    # The table and the reading are a function of the record alone: regenerated from the file, the same text.
    assert (tmp_path / "tune.md").read_text() == tune_result.to_markdown(saved)
    assert (tmp_path / "tune-reading.md").read_text() == tune_result.reading(saved)
    assert (tmp_path / "tune.png").stat().st_size > 0 and (tmp_path / "tune.svg").read_text().startswith("<?xml")
    exact = tune_result.numbers(verdicts.Estimate(1.0))  # a configuration against itself: df infinite, as null
    assert exact["df"] is None and tune_result.estimate(exact) == verdicts.Estimate(1.0)
