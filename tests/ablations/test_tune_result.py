"""A tune's result from its rows: the fastest to the target, how much sooner, with ranges; files from the record."""

from __future__ import annotations

import json

import pytest

from ablations import tune_result
from vaecf.io import read_json


def _row(name: str, ups: float, lo: float, hi: float, ttt: float | None, batch: int = 500) -> dict:
    return {"status": "done", "name": name, "change": "input=sparse", "global_batch": batch,
            "window_medians": [lo, ups, hi], "users_per_s": ups, "window_min": lo, "window_max": hi,
            "time_to_target_s": ttt, "ndcg_at_budget": 0.43, "quality_from": None, "disturbed_windows": 0,
            "load1_max": 1.5, "seeds": 2}


def _derived(rows: list[dict]) -> dict:
    run = {"machine": {"git_sha": "abc", "cpu": "a CPU", "cores": 2}, "ladder": {"name": "tune"},
           "budget": {"name": "quick", "evaluations": 20}, "tune": {"rounds": []}}
    return {"run": run, "rows": rows, "budget_s": 100.0, "target": 0.42, "noise_sd": 0.002}


ROWS = [_row("paper", 1000, 900, 1100, 60.0), _row("skipped", 0, 0, 0, None) | {"status": "skipped"},
        _row("batch 500, bf16", 2000, 1800, 2200, 30.0), _row("batch 2,100, bf16", 4000, 3000, 4400, 50.0, 2100),
        _row("batch 2,100, linear", 4000, 3000, 4400, None, 2100)]


def test_the_fastest_to_the_target_against_the_paper_and_the_users_per_s_fastest() -> None:
    record = tune_result.result(_derived(ROWS))
    assert (record["best"], record["paper"], record["users_per_s_fastest"]) == \
        ("batch 500, bf16", "paper", "batch 2,100, bf16")  # equal speeds: the first listed
    best = next(r for r in record["rows"] if r["name"] == "batch 500, bf16")
    assert best["time_to_target_min"] == pytest.approx(30 * 2000 / 2200)
    assert best["time_to_target_max"] == pytest.approx(30 * 2000 / 1800)
    assert best["users_to_target"] == 60_000
    paper = record["sooner_than_paper"]
    assert paper["ratio"] == pytest.approx(2.0)
    assert paper["ratio_min"] == pytest.approx((60 * 1000 / 1100) / (30 * 2000 / 1800))
    assert paper["ratio_max"] == pytest.approx((60 * 1000 / 900) / (30 * 2000 / 2200))
    assert paper["distinguishable"] is True and paper["seconds"] == pytest.approx(30.0)
    fastest = record["sooner_than_users_per_s_fastest"]
    assert fastest["ratio"] == pytest.approx(50 / 30)
    assert fastest["distinguishable"] is ((50 * 4000 / 4400) / (30 * 2000 / 1800) > 1)
    assert record["uncertainty"]["validation_spacing_s"] == 5.0 and record["machine_state"]["windows"] == 12
    # As many seeds per curve as the run trained (the runner's 2), said so in the table and the reading.
    assert record["uncertainty"]["seeds_per_curve"] == 2
    assert "the mean of 2 seeds per quality curve" in tune_result.to_markdown(record)
    assert "each quality curve is the mean of 2 seeds" in tune_result.reading(record)


def test_an_unreached_or_identical_comparison_is_said_as_such() -> None:
    rows = [_row("paper", 1000, 900, 1100, None), _row("fast", 4000, 3900, 4100, 40.0, 2100)]
    record = tune_result.result(_derived(rows))
    assert record["sooner_than_paper"] == {"than": "paper", "reached": False,
                                           "ratio_at_least": pytest.approx(100 / (40 * 4000 / 3900))}
    assert record["sooner_than_users_per_s_fastest"]["same"] is True
    text = tune_result.reading(record)
    assert "does not reach the target within T = 100 s" in text and "It is also the users/s-fastest" in text
    nothing = tune_result.result(_derived([_row("paper", 1000, 900, 1100, None)]))
    assert nothing["best"] is None and "No configuration" in tune_result.reading(nothing)


def test_the_files_are_made_from_the_strict_json_record(tmp_path) -> None:
    record = tune_result.write_result(tmp_path, _derived(ROWS))
    saved = read_json(tmp_path / "tune.json")
    json.dumps(saved, allow_nan=False)
    assert saved["best"] == record["best"]
    # The table and the reading are a function of the record alone: regenerated from the file, the same text.
    assert (tmp_path / "tune.md").read_text() == tune_result.to_markdown(saved)
    assert (tmp_path / "tune-reading.md").read_text() == tune_result.reading(saved)
    assert "**batch 500, bf16**" in tune_result.reading(saved)
    assert "2.00x" in tune_result.reading(saved) and "not reached in 100 s" in tune_result.to_markdown(saved)
    assert (tmp_path / "tune.png").stat().st_size > 0 and (tmp_path / "tune.svg").read_text().startswith("<?xml")
