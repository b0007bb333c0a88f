"""The sentences the pages say about a whole run come from its records, and change when they do."""

import json
import re
from pathlib import Path

from ablations import report, summary, verdicts
from tests.ablations.test_report import STEPS, write_run
from vaecf.io import write_json


def parts(folder) -> dict[str, str]:
    text = summary.markdown(folder, report.derive(report.load_run(folder)))
    return dict(re.findall(r"<!-- part: (\S+) -->\n(.*?)\n<!-- end part -->", text, re.S))


def test_the_run_line_budget_and_ranking_say_what_the_records_hold(tmp_path) -> None:
    write_run(tmp_path)
    said = parts(tmp_path)
    assert set(said) == {"run", "budget", "ranking"}  # no search: not a leave-one-out run
    assert said["run"].startswith("A run of `VAECF_MACHINE=")
    assert "--ladder tiny --budget smoke` at commit abc (its tree not recorded)" in said["run"]
    assert "on test CPU, 2 cores, no GPU: 3 timing windows per speed configuration, 1 seed per quality curve" \
        in said["run"]
    assert said["run"].endswith("1 seed per quality curve; its duration not recorded (runs made before the runner "
                                "recorded when it finished).")
    run = json.loads((tmp_path / "run.json").read_text())
    write_json(tmp_path / "run.json", {**run, "finished": "2026-01-01T00:12:05+0000"})  # started at 00:00:00
    assert parts(tmp_path)["run"].endswith("; 12 min 5 s from its start to its report (a resumed run's includes "
                                          "the pause).")
    assert said["budget"].startswith("Every step had the same time, T = 20 s: 1.5 x what the original code path")
    assert "90% of the calibrated converged validation NDCG@100 (0.3600 of 0.4000; popularity 0.1500, ease " \
           "0.3800)" in said["budget"]
    assert "first to the target: **sparse input**" in said["ranking"]  # the baseline's curve, twice as fast
    assert "(flagged): **larger batch**." in said["ranking"]


def test_a_rerun_that_changes_who_is_first_changes_the_sentence(tmp_path) -> None:
    write_run(tmp_path)
    speed = json.loads((tmp_path / "speed.json").read_text())
    for window in speed["windows"][STEPS[1].speed_key].values():  # sparse input now slower than the baseline
        window["users_per_s_median"] /= 4
    write_json(tmp_path / "speed.json", speed)
    assert "first to the target: **baseline**" in parts(tmp_path)["ranking"]


def test_the_search_line_names_each_move_with_its_speeds(tmp_path) -> None:
    search = {"rounds": [{"from": ["input", "xla"], "fastest": ["input"], "users_per_s": {"input+xla": 365.4,
                                                                                         "input": 768.8}},
                         {"from": ["input"], "fastest": ["input"], "users_per_s": {"input": 768.8}}]}
    assert summary.search_line(search) == ("The search (one timing window per candidate) started from input, xla on "
                                           "and moved 1 time: xla off (365 -> 769 users/s); from there no single "
                                           "flip was faster.")


def test_the_agreement_for_the_pages_names_both_runs_and_each_verdict_they_differ_on() -> None:
    from tests.ablations.test_verdicts import said

    runs = [Path("results/m/one"), Path("results/m/two")]
    near = said(verdicts.FASTER, verdicts.LATER, has=verdicts.Estimate(1.05, 0.01, 2))
    text = summary.agreement(runs, [near, said(verdicts.UNDECIDED, verdicts.LATER)])
    assert text.startswith("<!-- part: answer -->\n`python -m ablations agree results/m/one results/m/two`: they "
                           "differ on 1 verdict that either calls a measured difference:\n- b against baseline, "
                           "speed: faster (not firm) in the first run, not distinguishable in the second.\n"
                           "<!-- end part -->\n<!-- part: table -->\n")
    assert "| step | against | | one | two | agree |" in text  # then both side by side (verdicts.agreement)
    assert text.endswith("| yes |\n<!-- end part -->\n")
    same = summary.agreement(runs, [near, near])
    assert same.startswith("<!-- part: answer -->\n`python -m ablations agree results/m/one results/m/two`: the two "
                           "runs agree on every verdict either calls a measured difference.\n<!-- end part -->\n")


def test_a_run_in_which_no_step_ran_says_so(tmp_path) -> None:
    write_run(tmp_path)
    run = json.loads((tmp_path / "run.json").read_text())
    for step in run["steps"]:
        step["skip"] = "not on this machine"
    write_json(tmp_path / "run.json", run)
    said = parts(tmp_path)
    assert set(said) == {"run", "budget"} and "2 cores, no GPU: no step ran;" in said["run"]
