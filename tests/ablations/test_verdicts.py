"""Intervals, break-even ratios and verdicts from records: each rule against numbers worked by hand."""

import dataclasses
import json
import math

import numpy as np
import pytest
from scipy.stats import t

from ablations import verdicts
from ablations.ladder import Step
from vaecf.config import TrainConfig

T2 = t.ppf(0.975, 2)  # 3 windows


def speed_record(rates: dict[str, list[float]]) -> dict:
    """Speed configuration -> its window medians, one per round."""
    return {"windows": {key: {str(r): {"users_per_s_median": v} for r, v in enumerate(values)}
                        for key, values in rates.items()}}


def test_a_steps_speed_interval_is_the_t_interval_of_its_log_window_rates() -> None:
    rates = [100.0, 110.0, 90.0]
    e = verdicts.speed_estimate(speed_record({"a": rates}), "a")
    se = np.std(np.log(rates), ddof=1) / math.sqrt(3)
    assert e is not None and e.value == 100.0 and e.df == 2
    assert (e.lo, e.hi) == pytest.approx((100 * math.exp(-T2 * se), 100 * math.exp(T2 * se)))
    assert verdicts.speed_estimate(speed_record({"a": [100.0]}), "a") is None  # one window: no interval


def test_factors_pair_the_rounds_so_drift_shared_by_both_steps_cancels() -> None:
    drift = [1.0, 0.8, 1.2]  # the machine's state in each round, shared by both steps
    record = speed_record({"a": [100 * d for d in drift], "b": [105 * d for d in drift]})
    own_a, own_b = verdicts.speed_estimate(record, "a"), verdicts.speed_estimate(record, "b")
    assert own_a and own_b and own_b.lo < own_a.hi  # each step's own intervals overlap ...
    has = verdicts.factor(record, "b", "a")
    assert has is not None and has.value == pytest.approx(1.05) and has.lo == pytest.approx(1.05)
    assert verdicts.speed_verdict(has) == verdicts.FASTER  # ... yet the paired factor is measured
    noisy = speed_record({"a": [100.0, 100.0, 100.0], "b": [110.0, 95.0, 105.0]})
    assert verdicts.speed_verdict(verdicts.factor(noisy, "b", "a")) == verdicts.UNDECIDED
    assert verdicts.speed_verdict(verdicts.factor(noisy, "a", "a"), same=True) == verdicts.SAME


def test_crossing_is_interpolated_between_the_validations_around_the_target() -> None:
    curve = [{"updates": 10, "ndcg@100": 0.2}, {"updates": 20, "ndcg@100": 0.4}, {"updates": 30, "ndcg@100": 0.5}]
    assert verdicts.crossing(curve, 0.3) == pytest.approx(15.0)
    assert verdicts.crossing(curve, 0.1) == 10.0  # already there at the first validation
    assert verdicts.crossing(curve, 0.6) is None


def points(values: list[float], every: int = 10) -> list[dict]:
    return [{"updates": every * (i + 1), "ndcg@100": v, "recall@20": v, "recall@50": v, "train_s": 0.0,
             "eval_s": 0.0} for i, v in enumerate(values)]


def curve_record(*seeds: list[float], owner: str) -> dict:
    return {"curve": points(seeds[0]), "more_seeds": [{"seed": k, "curve": points(v)} for k, v in enumerate(seeds[1:])],
            "owner": owner, "horizon_updates": 1000}


def test_seed_spread_is_pooled_over_configurations_and_a_single_seed_gives_none() -> None:
    a = curve_record([0.0, 0.4], [0.0, 0.2], owner="a")  # crossings of 0.1: 12.5 and 15 updates
    b = curve_record([0.0, 0.1, 0.4], [0.0, 0.4, 0.4], owner="b")  # 20 and 12.5
    spread = verdicts.seed_spread([a, b], 0.1)
    squares = sum(np.sum((np.log(x) - np.log(x).mean()) ** 2) for x in ([12.5, 15.0], [20.0, 12.5]))
    assert spread is not None and spread.df == 2 and spread.sd == pytest.approx(math.sqrt(squares / 2))
    assert verdicts.seed_spread([curve_record([0.0, 0.4], owner="c")], 0.1) is None
    mean = verdicts.mean_curve(a)
    assert [p["ndcg@100"] for p in mean] == pytest.approx([0.0, 0.3])
    assert (mean[1]["ndcg_lo"], mean[1]["ndcg_hi"]) == (0.2, 0.4)


BASE = TrainConfig(input="sparse", batch_size=100)
STEPS = [Step(0, "small batch", "", BASE), Step(1, "large batch", "", BASE.with_overrides(batch_size=400))]


def records(large_rate: float, large_curves: list[list[float]], small_curves: list[list[float]]) -> dict:
    """Two steps: the large batch needs 4 x 0.5 = 2x the users of the small one to reach 0.3 (half the
    updates); it has ``large_rate`` / 100 its speed."""
    run = {"target_ndcg": 0.3, "ladder": {"mode": "ladder"},
           "steps": [{"slug": s.slug, "name": s.name, "train": dataclasses.asdict(s.train), "speed_key": s.speed_key}
                     for s in STEPS]}
    speed = speed_record({STEPS[0].speed_key: [100.0, 101.0, 99.0],
                          STEPS[1].speed_key: [large_rate * f for f in (1.0, 1.01, 0.99)]})
    curves = {STEPS[0].slug: curve_record(*small_curves, owner=STEPS[0].slug),
              STEPS[1].slug: curve_record(*large_curves, owner=STEPS[1].slug)}
    return {"run": run, "speed": speed, "curves": curves}


SMALL = [[0.1, 0.2, 0.25, 0.3, 0.35], [0.1, 0.2, 0.25, 0.29, 0.34]]  # 0.3 crossed at updates 40 and 42
LARGE = [[0.1, 0.3, 0.35], [0.1, 0.29, 0.34]]  # at 20 and 22


def compared(large_rate: float, large: list[list[float]] = LARGE, small: list[list[float]] = SMALL) -> dict:
    rows: list[dict] = [{"slug": s.slug, "status": "done", "time_to_target_s": 1.0} for s in STEPS]
    verdicts.annotate(rows, records(large_rate, large, small))
    return rows[1]["vs_previous"]


@pytest.mark.parametrize(("rate", "time"), [(120.0, verdicts.LATER), (200.0, verdicts.UNDECIDED),
                                            (400.0, verdicts.SOONER)])
def test_break_even_needs_the_users_ratio_and_the_time_verdict_weighs_it_against_the_speed_ratio(rate, time) -> None:
    c = compared(rate)
    # seed-mean curves cross 0.3 at update 41 (x 100 users) and 21 (x 400): needs 8,400 / 4,100 users
    assert c["needs"].value == pytest.approx(8400 / 4100)
    pooled = math.sqrt((math.log(42 / 40) ** 2 / 2 + math.log(22 / 20) ** 2 / 2) / 2)  # 2 df
    assert c["needs"].se == pytest.approx(pooled * math.sqrt(1 / 2 + 1 / 2)) and c["needs"].df == 2
    assert c["has"].value == pytest.approx(rate / 100) and c["speed"] == verdicts.FASTER
    assert c["ttt"].value == pytest.approx(c["needs"].value / c["has"].value)
    assert c["time"] == time
    assert f"needs {c['needs'].text()}" in verdicts.sentence(c) and verdicts.sentence(c).endswith(time)


def test_one_seed_per_curve_gives_no_time_interval_and_no_invented_verdict() -> None:
    c = compared(400.0, large=LARGE[:1], small=SMALL[:1])
    assert c["time"] == verdicts.UNKNOWN and not c["needs"].known
    assert "(no interval)" in verdicts.sentence(c)


def test_a_step_that_never_reaches_the_target_is_later_than_one_that_does() -> None:
    c = compared(400.0, large=[[0.1, 0.2, 0.25], [0.1, 0.2, 0.2]])
    assert c["needs"] is None and c["time"] == verdicts.LATER


def test_the_same_curve_makes_time_to_target_follow_speed() -> None:
    rec = records(400.0, LARGE, SMALL)
    rec["curves"][STEPS[1].slug] = rec["curves"][STEPS[0].slug]  # one computation, shared
    c = verdicts.compare(rec["speed"], rec["run"]["steps"][1], rec["run"]["steps"][0], rec["curves"], 0.3, None)
    assert c["needs"].value == 1.0 and c["time"] == verdicts.SOONER


def test_cells_show_intervals_only_where_the_records_give_them() -> None:
    assert verdicts.cell(1.5, None) == "1.50"
    assert verdicts.cell(1.5, verdicts.Estimate(1.5)) == "1.50"
    assert verdicts.cell(1.5, verdicts.Estimate(1.5, 0.1, 0.0)) == "1.50 (no interval)"
    e = verdicts.Estimate(30.0, 0.05, 10)
    assert verdicts.cell(30.0, e, 0, " s") == f"30 s ({e.lo:.0f}-{e.hi:.0f})"


def said(speed: str, time: str, has: verdicts.Estimate | None = None) -> dict:
    """A run whose one comparison says ``speed`` and ``time`` (firm unless ``has`` says otherwise)."""
    c = {"against": "baseline", "speed": speed, "time": time, "has": has, "ttt": None}
    return {"mode": "ladder", "rows": [{"name": "baseline", "status": "done", "vs_previous": None, "vs_first": None},
                                       {"name": "b", "status": "done", "vs_previous": c, "vs_first": c}]}


def test_runs_disagree_only_where_one_calls_a_difference_the_other_does_not() -> None:
    undecided, unknown = said(verdicts.FASTER, verdicts.UNDECIDED), said(verdicts.FASTER, verdicts.UNKNOWN)
    assert verdicts.disagreements(undecided, unknown) == []
    assert verdicts.disagreements(said(verdicts.FASTER, verdicts.LATER), said(verdicts.UNDECIDED, verdicts.LATER)) == [
        "b against baseline, speed: faster in the first run, not distinguishable in the second"]
    near = said(verdicts.FASTER, verdicts.LATER, has=verdicts.Estimate(1.05, 0.01, 2))  # 95%: 1.01-1.09; 99%: holds 1
    assert verdicts.disagreements(near, said(verdicts.UNDECIDED, verdicts.LATER)) == [
        "b against baseline, speed: faster (not firm) in the first run, not distinguishable in the second"]
    assert verdicts.disagreements(near, said(verdicts.FASTER, verdicts.LATER)) == []  # firm or not: the same verdict


AGREE = """
name = "agree"
description = "a batch ten times larger, far faster per user, with a learning rate too small to get anywhere"

[baseline]
input = "sparse"
batch_size = 20

[[steps]]
name = "larger batch, tiny learning rate"
set = { batch_size = 200, lr = 1e-6 }
"""


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_run_and_a_remeasurement_agree_on_every_verdict_either_calls_a_difference(tmp_path, monkeypatch) -> None:
    """The mechanism, on smoke data: a run, then its speed measured again from nothing (what differs between two
    runs on one machine: the curves of fixed seeds are the same), on verdicts far from their boundary (the
    smoke budget's windows are short and noisy). About 3 minutes on 2 cores, where a second full run is 5."""
    import shutil

    from ablations import repeat, runner, speed
    from ablations.ladder import BUDGETS, Hardware
    from ablations.report import derive, load_run

    smoke = dataclasses.replace(BUDGETS["smoke"], quality_seeds=2, max_quality_seeds=3, repeat_s=30.0)
    monkeypatch.setitem(BUDGETS, "smoke", smoke)  # the quick budget's seeds: the smoke budget trains one
    (tmp_path / "agree.toml").write_text(AGREE)
    first = runner.run_ladder(str(tmp_path / "agree.toml"), "smoke", results=tmp_path / "results",
                              data_cache=tmp_path / "data", out=tmp_path / "run1",
                              hardware=Hardware(gpus=0, cores=2, horovod=False), log=lambda *a: None)
    second = tmp_path / "run2"
    shutil.copytree(first, second)
    for name in ("speed.json", "repeat.json"):
        (second / name).unlink()
    steps = [Step(s["index"], s["name"], s["change"], TrainConfig(**s["train"]), skip=s["skip"])
             for s in load_run(first)["run"]["steps"]]
    record = speed.time_windows(steps, second, smoke, tmp_path / "data", lambda _: None)
    repeat.more_windows(steps, "ladder", record, second, smoke, tmp_path / "data", lambda _: None)
    runs = [derive(load_run(run)) for run in (first, second)]
    assert verdicts.disagreements(*runs) == []
    for derived in runs:  # each measured both differences, from 2 seeds and >= 3 windows
        larger = derived["rows"][1]
        assert larger["seeds"] == 2 and larger["vs_previous"]["speed"] == verdicts.FASTER
        assert larger["vs_previous"]["time"] == verdicts.LATER


def test_agree_exits_1_naming_the_verdict_two_runs_differ_on(tmp_path, capsys) -> None:
    import shutil
    from pathlib import Path

    from ablations.__main__ import main
    from vaecf.io import write_json

    root = Path(__file__).resolve().parents[2] / "results"
    shutil.copytree(root / "calibration", tmp_path / "calibration")
    runs = [tmp_path / "m" / name for name in ("one", "two")]
    for run in runs:  # the committed Xeon run's records, twice
        shutil.copytree(root / "cpu2-xeon-amx" / "attribution-quick", run,
                        ignore=shutil.ignore_patterns("*.png", "*.svg", "*.html", "tensorboard"))
    out = tmp_path / "agree.md"
    assert main(["agree", *map(str, runs), "--out", str(out)]) == 0
    assert "agree on every verdict" in capsys.readouterr().out
    assert out.read_text().startswith(f"<!-- part: answer -->\n`python -m ablations agree {runs[0]} {runs[1]}`: the "
                                      "two runs agree")
    assert main(["agree", *map(str, runs), "--out", str(tmp_path / "no" / "agree.md")]) == 2  # before any comparison
    assert "--out" in capsys.readouterr().err
    speed = json.loads((runs[1] / "speed.json").read_text())
    speed.pop("record_sha256")
    xla = next(key for key in speed["windows"] if "xla=True" in key)
    for window in speed["windows"][xla].values():  # XLA now as fast as data parallel x2: not slower
        window["users_per_s_median"] *= 2.0
    write_json(runs[1] / "speed.json", speed)
    assert main(["agree", *map(str, runs)]) == 1
    assert "XLA against data parallel x2, speed: slower" in capsys.readouterr().out


def test_agreement_puts_two_runs_verdicts_side_by_side_and_counts_what_differs() -> None:
    near = said(verdicts.FASTER, verdicts.LATER, has=verdicts.Estimate(1.05, 0.01, 2))  # decided, not firm
    text = verdicts.agreement(near, said(verdicts.UNDECIDED, verdicts.LATER), ("one", "two"))
    head, _, *rows = text.splitlines()
    assert head == "2 verdicts; 2 called a measured difference by either run, 1 of them not by the other; " \
                   "1 decided alike and firm at 99% in both."
    assert rows[2:] == ["| b | baseline | speed | faster (not firm) | not distinguishable | **no** |",
                        "| b | baseline | time | later | later | yes |"]
