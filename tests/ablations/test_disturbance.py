"""Disturbed windows: the policy's checks, which attempt is kept, a step's summary and waiting for quiet."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ablations import disturbance as d
from vaecf.errors import ConfigError, VaecfError


def _window(others: float | None, rate: float = 100.0, **extra: object) -> dict:
    state = None if others is None else {"others_share": others, "steal_share": 0.01, "load1": 2.0 + others}
    return {"users_per_s_median": rate, "state": state, "gemm_flops": 1e11 * (1 - (others or 0)), **extra}


def test_bad_settings_are_refused_with_their_name() -> None:
    with pytest.raises(ConfigError, match="threshold"):
        d.Policy(threshold=1.5)
    with pytest.raises(ConfigError, match="wait_quiet_s"):
        d.Policy(wait_quiet_s=float("nan"))
    for text in ("abc", "-1", "inf"):
        with pytest.raises(VaecfError, match=f"--wait-quiet {text}: must be a number of seconds >= 0"):
            d.parse_seconds(text, "--wait-quiet")
    assert d.parse_seconds(None, "--wait-quiet") == 0.0 and d.parse_seconds("2.5", "--wait-quiet") == 2.5


def test_a_window_is_disturbed_by_others_plus_steal_above_the_threshold() -> None:
    assert d.disturbed(_window(0.2), 0.1)
    assert not d.disturbed(_window(0.05), 0.1)
    assert not d.disturbed(_window(None), 0.1)  # not measured: not called disturbed


def test_the_less_disturbed_attempt_is_kept_and_the_others_listed() -> None:
    first, second, third = _window(0.6, 50.0), _window(0.02, 100.0), _window(0.3, 80.0)
    kept = d.keep(first, second)
    assert kept["users_per_s_median"] == 100.0 and [a["users_per_s_median"] for a in kept["attempts"]] == [50.0]
    kept = d.keep(kept, third)  # a worse third attempt is set aside, the kept one stays
    assert kept["users_per_s_median"] == 100.0
    assert sorted(a["users_per_s_median"] for a in kept["attempts"]) == [50.0, 80.0]


def test_a_steps_summary_counts_what_stayed_disturbed_and_the_note_says_so() -> None:
    windows = [_window(0.02), d.keep(_window(0.7), _window(0.5)), _window(0.04, quiet_wait={"quiet": False})]
    summary = d.summarise(windows, 0.1)
    assert summary["disturbed_windows"] == 1 and summary["repeats"] == 1 and summary["not_quiet"] == 1
    assert summary["others_share_max"] == pytest.approx(0.51)
    assert summary["round_gemm_min"] == pytest.approx(0.5e11) and summary["load1_max"] == pytest.approx(2.5)
    assert d.note(summary, 3) == "1 of 3 timing windows disturbed (others' CPU share up to 51%, 1 repeat(s))"
    assert d.note(d.summarise([_window(0.01)], 0.1), 1) is None
    assert d.summarise([_window(None)], 0.1)["disturbed_windows"] is None  # an old record: unknown


def test_waiting_for_quiet_gives_up_at_its_limit_and_says_so() -> None:
    assert d.wait_quiet(d.Policy(), print) is None  # no wait asked
    bystander = subprocess.Popen(["sleep", "30"])
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    lines: list[str] = []
    try:
        waited = d.wait_quiet(d.Policy(wait_quiet_s=0.6, poll_s=0.3), lines.append, root=bystander.pid)
    finally:
        for p in (hog, bystander):
            p.kill()
            p.wait()
    assert waited is not None and waited["quiet"] is False and waited["waited_s"] >= 0.6
    assert waited["others_share"] > 0.1 and lines and lines[0].startswith("not quiet after")
