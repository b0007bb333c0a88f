"""``summary.md``: the sentences the README and docs/ say about a run as a whole, from its records alone.

``verdicts.md`` says what each step measured against the others; the pages also say which run it
was (machine, commit, how many timing windows and seeds), what every step was given (T and the
target) and which step came first. Typed by hand, those sentences went stale when a run was made
again; written here in parts (``<!-- part: SLUG -->``, included by ``ablations.docs``), a rerun
rewrites them with its tables:

- ``run``: the command, commit, machine, the windows per speed configuration, seeds per curve and
  how long it took;
- ``budget``: T and the target, from the calibration;
- ``ranking``: the step first to the target and the one highest at T (point estimates: whether a
  difference is measured is the verdicts' to say), and the flagged steps;
- ``search`` (a leave-one-out run): how the search for the fastest configuration moved.

``agreement`` says the same for two runs (``python -m ablations agree A B --out FILE``): where their
verdicts differ.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from ablations import verdicts
from ablations.page import machine_of
from ablations.quality import NOISE_SIGMAS
from vaecf.provenance import header_of

STAMP = "%Y-%m-%dT%H:%M:%S%z"
"""How ``ablations.runner`` writes run.json's ``started`` and ``finished``, and the run line reads them."""


def markdown(run_dir: Path, derived: dict[str, Any]) -> str:
    parts = {"run": run_line(run_dir, derived), "budget": budget_line(derived)}
    if any(r["status"] == "done" for r in derived["rows"]):
        parts["ranking"] = ranking(derived)
    if derived["run"].get("search"):
        parts["search"] = search_line(derived["run"]["search"])
    return _in_parts(parts)


def _in_parts(parts: dict[str, str]) -> str:
    """Text in named parts (``<!-- part: SLUG -->``), each included on its own by ``ablations.docs``."""
    return "".join(f"<!-- part: {slug} -->\n{text}\n<!-- end part -->\n" for slug, text in parts.items())


def _span(values: list[int], unit: str) -> str:
    low, high = min(values), max(values)
    return f"{low}{'' if low == high else f'-{high}'} {unit}{'' if high == 1 else 's'}"


def run_line(run_dir: Path, derived: dict[str, Any]) -> str:
    """Which run: the command and commit that made it, the machine, the timing windows and seeds."""
    run = derived["run"]
    header = header_of(run)
    ladder, budget = run["ladder"]["name"], run["budget"]["name"]
    clean = {"True": "a clean tree", "False": "uncommitted changes"}.get(str(header.get("clean")),
                                                                         "its tree not recorded")
    done = [r for r in derived["rows"] if r["status"] == "done"]
    gpus = header.get("gpu_count") or 0
    return (f"A run of `VAECF_MACHINE={machine_of(run_dir, run)} python -m ablations run --ladder {ladder} --budget "
            f"{budget}` at commit {str(header.get('git_sha'))[:7]} ({clean}), started "
            f"{run['started'][:16].replace('T', ' ')} {run['started'][19:]}, on {header.get('cpu')}, "
            f"{_span([header.get('cores') or 0], 'core')}, {f'{gpus} GPUs' if gpus else 'no GPU'}: "
            + (f"{_span([len(r['window_medians']) for r in done], 'timing window')} per speed configuration, "
               f"{_span([r['seeds'] for r in done], 'seed')} per quality curve" if done else "no step ran")
            + f"; {_duration(run)}.")


def _duration(run: dict[str, Any]) -> str:
    """From the run's start (after its data and probe) to its report, as the runner recorded them."""
    if "finished" not in run:
        return "its duration not recorded (runs made before the runner recorded when it finished)"
    seconds = (datetime.strptime(run["finished"], STAMP) - datetime.strptime(run["started"], STAMP)).total_seconds()
    return (f"{int(seconds // 60)} min {int(seconds % 60)} s from its start to its report (a resumed run's "
            "includes the pause)")


def budget_line(derived: dict[str, Any]) -> str:
    """What every step was given: T, and the target it is read against."""
    budget = derived["run"]["budget"]
    b = derived["baselines"]
    return (f"Every step had the same time, T = {derived['budget_s']:.0f} s: {budget['time_factor']:g} x what the "
            f"original code path needs to reach the target, {budget['target_fraction']:.0%} of the calibrated "
            f"converged validation NDCG@100 ({derived['target']:.4f} of {derived['converged']:.4f}; "
            + ", ".join(f"{name} {value:.4f}" for name, value in b.items() if name != "oracle") + ").")


def ranking(derived: dict[str, Any]) -> str:
    """First to the target and highest at T (point estimates), and which steps are flagged."""
    done = [r for r in derived["rows"] if r["status"] == "done"]
    first = done[0]
    reached = [r for r in done if r["time_to_target_s"] is not None]
    said = []
    if reached:
        soonest = min(reached, key=lambda r: r["time_to_target_s"])
        said.append(f"first to the target: **{soonest['name']}**, "
                    f"{verdicts.seconds(soonest['time_to_target_s'], soonest['time_to_target_interval'])}"
                    + ("" if soonest is first or first["time_to_target_s"] is None else
                       f" (against {first['name']}: "
                       f"{verdicts.seconds(first['time_to_target_s'], first['time_to_target_interval'])})"))
    else:
        said.append("no step reached the target within T")
    best = max(done, key=lambda r: r["ndcg_at_budget"])
    said.append(f"highest validation NDCG@100 at T: **{best['name']}**, {best['ndcg_at_budget']:.4f}"
                + ("" if best is first else f" (against {first['name']}: {first['ndcg_at_budget']:.4f}; seed noise "
                   + (f"{derived['noise_sd']:.4f} sd)" if derived["noise_sd"] is not None else "unknown)")))
    flagged = [f"**{r['name']}**" for r in done if r["flagged"]]
    said.append(f"below the first step at T by more than {NOISE_SIGMAS:g} seed deviations (flagged): "
                + (", ".join(flagged) if flagged else "none"))
    return "Point estimates (which differences are measured is the verdicts' to say): " + "; ".join(said) + "."


def search_line(search: dict[str, Any]) -> str:
    """The leave-one-out search's moves, each with the users/s of the configuration it left and found."""
    moves = []
    for r in search["rounds"]:
        before, after = set(r["from"]), set(r["fastest"])
        if before == after:
            continue
        flips = [f"{s} off" for s in sorted(before - after)] + [f"{s} on" for s in sorted(after - before)]
        rates = r["users_per_s"]
        moves.append(f"{', '.join(flips)} ({rates['+'.join(sorted(before))]:,.0f} -> "
                     f"{rates['+'.join(sorted(after))]:,.0f} users/s)")
    start = ", ".join(sorted(search["rounds"][0]["from"])) if search["rounds"] else "nothing"
    return (f"The search (one timing window per candidate) started from {start} on and moved "
            f"{len(moves)} time{'' if len(moves) == 1 else 's'}: " + ("; then ".join(moves) or "not at all")
            + "; from there no single flip was faster.")


def agreement(runs: list[Path], derived: list[dict[str, Any]]) -> str:
    """``python -m ablations agree``'s answer as Markdown in two parts: ``answer`` names the two runs and
    each verdict they differ on (``verdicts.disagreements``' lines), ``table`` has both runs' verdicts
    side by side (``verdicts.agreement``)."""
    differ = verdicts.disagreements(derived[0], derived[1])
    said = f"`python -m ablations agree {runs[0].as_posix()} {runs[1].as_posix()}`: "
    if not differ:
        said += "the two runs agree on every verdict either calls a measured difference."
    else:
        said += (f"they differ on {len(differ)} verdict{'' if len(differ) == 1 else 's'} that either calls a "
                 "measured difference:\n" + "\n".join(f"- {line}." for line in differ))
    names = (runs[0].name, runs[1].name)
    table = verdicts.agreement(derived[0], derived[1], names if names[0] != names[1] else ("first", "second"))
    return _in_parts({"answer": said, "table": table.rstrip("\n")})
