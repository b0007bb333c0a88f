"""Adaptive repetition: more windows for compared steps whose verdict is not firm, until it is, the cap or the time."""

import dataclasses
import json

import pytest

from ablations import disturbance, repeat, speed, verdicts
from ablations.ladder import BUDGETS, Step
from vaecf.config import TrainConfig

STEPS = [Step(0, "a", "", TrainConfig(batch_size=100)), Step(1, "b", "", TrainConfig(batch_size=200)),
         Step(2, "c", "", TrainConfig(batch_size=200, input="dense"))]
BUDGET = dataclasses.replace(BUDGETS["quick"], max_windows=8, repeat_s=1000.0)

POLICY = disturbance.Policy(threshold=0.25, repeats=1)
"""A run's own rules for disturbed windows, which its extra rounds must follow."""


def run(tmp_path, monkeypatch, c_later, budget=BUDGET):
    """Steps a (50 users/s), b (100) and c (its first windows 100, 106, 103, then ``c_later(round)``)."""
    rate = {STEPS[0].speed_key: lambda r: 50.0, STEPS[1].speed_key: lambda r: 100.0,
            STEPS[2].speed_key: lambda r: (100.0, 106.0, 103.0)[r] if r < 3 else c_later(r)}
    record = {"windows": {key: {str(r): {"users_per_s_median": f(r)} for r in range(3)} for key, f in rate.items()},
              "workload": {"users": 1000}}
    timed = []

    def time_windows(steps, run_dir, budget, cache, log, windows, policy):
        assert policy == POLICY  # the run's rules reach the extra rounds
        for s in steps:
            for r in range(windows):
                record["windows"][s.speed_key].setdefault(str(r), {"users_per_s_median": rate[s.speed_key](r)})
        timed.append(sorted(s.name for s in steps))
        return record

    monkeypatch.setattr(speed, "time_windows", time_windows)
    out = repeat.more_windows(STEPS, "ladder", record, tmp_path, budget, tmp_path, lambda _: None, POLICY)
    return out, timed, json.loads((tmp_path / "repeat.json").read_text())


def test_a_pair_not_yet_firm_gets_rounds_of_its_own_until_it_is(tmp_path, monkeypatch) -> None:
    out, timed, state = run(tmp_path, monkeypatch, lambda r: 103.0)
    # c over b, 1.03x: (0.958-1.107) at 3 windows; decided at 95% from 5 windows, where repetition used to
    # stop, but not at 99% before 7 ((1.014-1.046) at 95%)
    assert timed == [["b", "c"]] * 4  # a, firmly apart from both, is not timed again
    assert state["speed"] == {"02-c vs 01-b": "firm after 7 windows"}
    has = verdicts.factor(out, STEPS[2].speed_key, STEPS[1].speed_key)
    assert has is not None and has.firm() and verdicts.speed_verdict(has) == verdicts.FASTER
    assert len(state["rounds"]) == 4 and state["windows_done"]


def test_a_verdict_decided_at_95_but_not_99_percent_is_not_firm() -> None:
    from tests.ablations.test_verdicts import speed_record

    c = [100.0, 106.0, 103.0, 103.0, 103.0]
    has = verdicts.factor(speed_record({"b": [100.0] * 5, "c": c}), "c", "b")
    assert has is not None and has.sign() == 1 and has.sign(verdicts.FIRM) == 0 and not has.firm()
    assert not verdicts.Estimate(1.0, 0.01, 10).firm()  # undecided: never firm, it may still separate


def test_a_pair_that_never_separates_stops_at_the_cap(tmp_path, monkeypatch) -> None:
    _, timed, state = run(tmp_path, monkeypatch, lambda r: 102.0 if r % 2 else 98.0)
    assert len(timed) == 5 and state["speed"] == {"02-c vs 01-b": "cap: 8 windows, not distinguishable"}


@pytest.mark.parametrize("repeat_s", [1000.0, 31.0])
def test_disturbed_windows_are_set_aside_and_their_rounds_timed_again(tmp_path, monkeypatch, repeat_s) -> None:
    """b's second window ran at half speed with others on the CPUs: set aside, the pair a-b has only 2
    undisturbed rounds, not firm, so it gets a round of its own. A round of a and b is expected to take
    (10 + 1000 / 50) + (10 + 1000 / 100.5) = 49.95 s: past a 31 s cap, but the cap gets back the 19.95 s
    that timing b's set-aside window again takes."""
    rate = {STEPS[0].speed_key: 50.0, STEPS[1].speed_key: 100.0}
    measured = {STEPS[0].speed_key: [50.0, 51.0, 49.0], STEPS[1].speed_key: [100.0, 50.0, 101.0]}
    windows = {key: {str(r): {"users_per_s_median": v, "state": {"others_share": 0.4 if v == 50.0 and r == 1 else 0.0}}
                     for r, v in enumerate(values)} for key, values in measured.items()}  # b's round 1 disturbed
    record = {"windows": windows, "workload": {"users": 1000}}
    has = verdicts.factor(record, STEPS[1].speed_key, STEPS[0].speed_key)
    assert has is not None and has.df == 1  # rounds 0 and 2: the disturbed round is not in the ratio
    assert has.value == pytest.approx(100.5 / 50.0) and has.sign() == 1 and not has.firm()
    timed = []

    def time_windows(steps, run_dir, budget, cache, log, windows, policy):
        for s in steps:
            record["windows"][s.speed_key][str(windows - 1)] = {"users_per_s_median": rate[s.speed_key],
                                                                "state": {"others_share": 0.0}}
        timed.append(sorted(s.name for s in steps))
        return record

    monkeypatch.setattr(speed, "time_windows", time_windows)
    budget = dataclasses.replace(BUDGET, repeat_s=repeat_s)
    assert repeat.given_back(record, STEPS[:2]) == pytest.approx(10 + 1000 / 100.5)
    repeat.more_windows(STEPS[:2], "ladder", record, tmp_path, budget, tmp_path, lambda _: None, POLICY)
    state = json.loads((tmp_path / "repeat.json").read_text())
    assert timed == [["a", "b"]] and state["speed"] == {"01-b vs 00-a": "firm after 4 windows (3 undisturbed)"}
    assert state["given_back_s"] == pytest.approx(10 + 1000 / 100.5)


def test_repetition_stops_when_the_seconds_run_out_and_a_resumed_run_keeps_its_windows(tmp_path, monkeypatch) -> None:
    tight = dataclasses.replace(BUDGET, repeat_s=1.0)  # less than one window's expected time
    _, timed, state = run(tmp_path, monkeypatch, lambda r: 103.0, budget=tight)
    assert timed == [] and state["speed"] == {"02-c vs 01-b": "time: not firm after 3 windows"}
    _, timed, _ = run(tmp_path, monkeypatch, lambda r: 103.0)  # resumed, now with time to spare
    assert timed == []


def test_the_report_says_what_repetition_did() -> None:
    said = verdicts.repetition({"speed": {"02-c vs 01-b": "cap: 6 windows", "03-d vs 02-c": "time: not firm after 4 "
                                          "windows"}, "time": {"03-d vs 02-c": "time: not firm with 2 and 2 seeds"},
                                "rounds": [{}, {}, {}], "seeds": [], "spent_s": 61.4, "cap_s": 120.0, "max_windows": 6,
                                "max_seeds": 3})
    assert said.startswith("Adaptive repetition (repeat.json): 3 extra round(s) of windows, 0 extra seed(s), 61 s")
    assert "02-c vs 01-b in speed: cap: 6 windows" in said
    assert "03-d vs 02-c in speed: out of seconds, not firm after 4 windows" in said
    assert "03-d vs 02-c in time to target: out of seconds, not firm with 2 and 2 seeds" in said
    assert verdicts.repetition(None) == "Adaptive repetition: none (the run predates it)."


@pytest.mark.parametrize("mode", ["ladder", "leave-one-out"])
def test_pairs_are_the_comparisons_the_report_states(mode) -> None:
    skipped = dataclasses.replace(STEPS[1], skip="needs a GPU")
    names = [(a.name, b.name) for a, b in repeat.pairs([STEPS[0], skipped, STEPS[2]], mode)]
    assert names == [("a", "c")]


def write_seeded_run(tmp_path) -> None:
    """test_report's run, each curve with 2 seeds: the larger batch's time to target is not distinguishable
    from sparse input's (has 2.00x exactly: its windows move with the baseline's)."""
    from tests.ablations.test_report import curve, write_run
    from vaecf.io import write_json

    write_run(tmp_path, budget_s=40.0)  # sparse input 200 users/s at batch 100; larger batch 400 at 400
    seeds = {"00-baseline": ([0.2, 0.3, 0.37, 0.4, 0.4, 0.4], [0.2, 0.3, 0.35, 0.38, 0.4, 0.4]),  # 0.36 at 11.4, 13.3
             "02-larger-batch": ([0.3, 0.37, 0.4, 0.4, 0.4], [0.3, 0.35, 0.38, 0.4, 0.4])}  # at 7.4 and 9.3 updates
    for name, (first, second) in seeds.items():
        path = tmp_path / "quality" / f"{name}.json"
        record = {**json.loads(path.read_text()), **curve(first, 4)}
        write_json(path, {**record, "more_seeds": [{"seed": 1, "curve": curve(second, 4)["curve"]}]})


@pytest.mark.parametrize("cap", [3, 4])
def test_times_to_target_not_firm_get_seeds_on_the_side_with_fewer_until_they_are(tmp_path, monkeypatch, cap) -> None:
    from ablations import quality
    from tests.ablations.test_report import STEPS as RUN_STEPS
    from vaecf.io import write_json

    write_seeded_run(tmp_path)
    added = []

    def add_seed(path, data):  # another seed as the first: deterministic, so the verdict is worked by hand
        record = json.loads(path.read_text())
        record["more_seeds"].append({"seed": len(record["more_seeds"]) + 1, "curve": record["curve"]})
        write_json(path, record)
        added.append(path.stem)
        return 5.0

    monkeypatch.setattr(quality, "add_seed", add_seed)
    steps = [s for s in RUN_STEPS if s.skip is None]
    repeat.more_seeds(steps, "ladder", tmp_path, dataclasses.replace(BUDGET, max_quality_seeds=cap), tmp_path,
                      lambda _: None)
    state = json.loads((tmp_path / "repeat.json").read_text())
    # against sparse input (has 2.00x) and the baseline (4.00x; the same curve as sparse input's).
    # 2 seeds each: needs 2.67x (1.47-4.82), both undecided; 3 each: 2.64x (2.05-3.41): later, sooner,
    # neither at 99%; 4 each: 2.63x (2.22-3.11), both firm
    assert added == ["00-baseline", "02-larger-batch"] * (cap - 2)
    pairs = ("02-larger-batch vs 01-sparse-input", "02-larger-batch vs 00-baseline")
    said = ("cap: 3 and 3 seeds, later", "cap: 3 and 3 seeds, sooner") if cap == 3 else ("firm with 4 and 4 seeds",) * 2
    assert state["time"] == dict(zip(pairs, said))
    assert state["spent_s"] == 10.0 * (cap - 2) and state["seeds_done"]


def test_no_seed_is_added_where_the_speed_keeps_the_time_verdict_from_being_firm(tmp_path, monkeypatch) -> None:
    from ablations import quality
    from tests.ablations.test_report import STEPS as RUN_STEPS
    from vaecf.io import write_json

    write_seeded_run(tmp_path)
    record = json.loads((tmp_path / "speed.json").read_text())
    for r, noise in zip("012", (1.0, 1.6, 0.7)):  # the larger batch's windows far apart
        record["windows"][RUN_STEPS[2].speed_key][r]["users_per_s_median"] *= noise
    write_json(tmp_path / "speed.json", record)
    monkeypatch.setattr(quality, "add_seed", lambda *a: pytest.fail("a seed cannot narrow the speed's interval"))
    repeat.more_seeds([s for s in RUN_STEPS if s.skip is None], "ladder", tmp_path, BUDGET, tmp_path, lambda _: None)
    state = json.loads((tmp_path / "repeat.json").read_text())
    said = "not firm (not distinguishable): the speed's interval is the wider, more seeds would not settle it"
    assert state["time"] == {"02-larger-batch vs 01-sparse-input": said, "02-larger-batch vs 00-baseline": said}
