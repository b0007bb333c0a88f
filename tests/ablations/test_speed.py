"""Timing windows: a disturbed window is timed again, at most Policy.repeats times, the quietest kept."""

from __future__ import annotations

import pytest

from ablations import speed
from ablations.disturbance import Policy
from ablations.ladder import BUDGETS, Step
from vaecf.config import TrainConfig

STEPS = [Step(0, "a", "", TrainConfig(batch_size=500)), Step(1, "b", "", TrainConfig(batch_size=1000))]


def _fake_child(shares: dict[str, list[float]], calls: list[list[str]]):
    """A child whose window for each step is disturbed by the next share of its list."""
    def child(run_dir, r, steps, shapes, data, budget) -> dict:
        calls.append([s.name for s in steps])
        return {"windows": {s.speed_key: {"users_per_s_median": 100 * (1 - shares[s.name][0]),
                                          "state": {"others_share": shares[s.name].pop(0), "steal_share": 0.0}}
                            for s in steps}, "ceilings": {}, "machine": {}}
    return child


def test_only_disturbed_windows_are_timed_again_and_the_quietest_is_kept(monkeypatch, tmp_path) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(speed, "_child", _fake_child({"a": [0.05], "b": [0.6, 0.3, 0.02]}, calls))
    lines: list[str] = []
    out = speed._timed(tmp_path, 0, STEPS, [], tmp_path, BUDGETS["smoke"], Policy(), lines.append)
    assert calls == [["a", "b"], ["b"], ["b"]]
    b = out["windows"][STEPS[1].speed_key]
    assert b["state"]["others_share"] == 0.02 and len(b["attempts"]) == 2
    assert "quiet_wait" not in b  # no wait asked
    assert len(lines) == 2 and "1 window(s) disturbed" in lines[0]


def test_repeats_are_bounded_and_a_window_that_stays_disturbed_is_kept_with_its_attempts(monkeypatch,
                                                                                          tmp_path) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(speed, "_child", _fake_child({"a": [0.5, 0.4, 0.3, 0.2], "b": [0.0]}, calls))
    out = speed._timed(tmp_path, 0, STEPS, [], tmp_path, BUDGETS["smoke"], Policy(repeats=2), lambda _: None)
    assert calls == [["a", "b"], ["a"], ["a"]]
    a = out["windows"][STEPS[0].speed_key]
    assert a["state"]["others_share"] == pytest.approx(0.3) and len(a["attempts"]) == 2
    calls.clear()  # a disturbance that is not passing: one repeat says so, a second would measure it again
    monkeypatch.setattr(speed, "_child", _fake_child({"a": [0.5, 0.55, 0.1], "b": [0.0]}, calls))
    out = speed._timed(tmp_path, 0, STEPS, [], tmp_path, BUDGETS["smoke"], Policy(repeats=2), lambda _: None)
    assert calls == [["a", "b"], ["a"]]
    assert out["windows"][STEPS[0].speed_key]["state"]["others_share"] == pytest.approx(0.5)
    calls.clear()
    monkeypatch.setattr(speed, "_child", _fake_child({"a": [0.5], "b": [0.5]}, calls))
    speed._timed(tmp_path, 0, STEPS, [], tmp_path, BUDGETS["smoke"], Policy(repeats=0), lambda _: None)
    assert calls == [["a", "b"]]
