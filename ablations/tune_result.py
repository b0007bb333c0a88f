"""A tune's result, from its run's records alone: the record, its table, its chart and its reading.

Every uncertainty is ``ablations.verdicts``' 95% interval, nothing else: per configuration of the
tune (``ablations.tune``) its users/s over its timing windows and its time to the target from the
windows and the seeds combined (``verdicts.annotate``'s); then the fastest to the target (by the
point estimates) and, from ``verdicts.compare``, how much sooner it gets there than the paper's
configuration, than the users/s-fastest one and than the runner-up: the ratio of their times with
its interval and the verdict (sooner / not distinguishable / not known with one seed per curve).
The seconds earlier are the points' difference alone: the two times share their timing rounds,
and the records give that pairing's uncertainty only as the ratio's.

``tune.json`` (strict JSON; under ``machine`` the provenance of the run that measured it) keeps
each estimate as its numbers: ``point``, ``lo`` and ``hi`` (null where the records give no
interval: one seed per curve, fewer than 2 windows), and the standard error of its log with its
degrees of freedom (``se_log``, ``df``; df null: exact), from which the table, the chart and the
reading (``tune.md``, ``tune.png``/``.svg``, ``tune-reading.md``; docs/ladder.md includes them) are
made with ``verdicts``' own cells, by ``python -m ablations plot RUN`` too.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

from ablations import verdicts
from ablations.verdicts import Estimate
from vaecf.io import atomic_write, write_json

GREEN, GREY, ORANGE, BLUE = "#2e8b57", "#8c8c8c", "#e67e22", "#3b75af"
ROLES = (("the paper's configuration", "paper"), ("the users/s-fastest configuration", "users_per_s_fastest"),
         ("the runner-up", "runner_up"))
"""What the fastest is compared with: (label, the record's key naming it; ``sooner_than_`` + key its comparison)."""


def result(records: dict[str, Any], derived: dict[str, Any]) -> dict[str, Any]:
    """The tune's record from its run's records (``report.load_run``) and their ``report.derive``."""
    run = derived["run"]
    done = [r for r in derived["rows"] if r["status"] == "done"]
    rows = [_row(r) for r in done]
    reached = sorted((r for r in done if r["time_to_target_s"] is not None), key=lambda r: r["time_to_target_s"])
    chosen = {"paper": done[0],
              "users_per_s_fastest": max(done, key=lambda r: r["users_per_s"]),  # equal speeds: the first (sqrt)
              "runner_up": reached[1] if len(reached) > 1 else None}
    best = reached[0] if reached else None
    spread = derived["seed_spread"]
    loads = [r["load1_max"] for r in derived["rows"] if r.get("load1_max") is not None]
    return {
        "machine": run["machine"], "ladder": run["ladder"]["name"], "budget": run["budget"]["name"],
        "target_ndcg": derived["target"], "budget_s": derived["budget_s"], "rows": rows,
        "best": best["name"] if best else None,
        **{key: row["name"] if row else None for key, row in chosen.items()},
        **{f"sooner_than_{key}": _sooner(records, derived, best, row) if best and row else None
           for key, row in chosen.items()},
        "uncertainty": {"level": verdicts.LEVEL, "windows_per_step": min(r["windows"] for r in rows),
                        "seeds_per_curve": min(r["seeds"] for r in rows),
                        "seed_spread_sd": spread.sd if spread else None,
                        "seed_spread_df": spread.df if spread else None,
                        "validation_spacing_s": derived["budget_s"] / run["budget"]["evaluations"]},
        "machine_state": {"load1_max": max(loads) if loads else None,
                          "disturbed_windows": sum(r["disturbed_windows"] or 0 for r in rows),
                          "windows": sum(r["windows"] for r in rows)},
        "search": run.get("tune"),
    }


def numbers(estimate: Estimate) -> dict[str, Any]:
    """An estimate as strict JSON: point, 95% bounds (null without an interval), se of its log and df (null: exact)."""
    return {"point": estimate.value, "lo": estimate.lo if estimate.known else None,
            "hi": estimate.hi if estimate.known else None, "se_log": estimate.se,
            "df": None if math.isinf(estimate.df) else estimate.df}


def estimate(saved: dict[str, Any]) -> Estimate:
    """``numbers``' inverse: the estimate, for ``verdicts``' cells."""
    return Estimate(saved["point"], saved["se_log"], math.inf if saved["df"] is None else saved["df"])


def _row(r: dict[str, Any]) -> dict[str, Any]:
    ttt = r["time_to_target_s"]
    rate = r["users_per_s_interval"]  # its value is the row's users/s: the median of the windows
    return {"name": r["name"], "switches": r["change"], "batch": r["global_batch"], "windows": len(r["window_medians"]),
            "seeds": r["seeds"],
            "users_per_s": numbers(rate or Estimate.unknown(r["users_per_s"])),
            "time_to_target_s": None if ttt is None else numbers(r["time_to_target_interval"] or Estimate.unknown(ttt)),
            "users_to_target": round(ttt * r["users_per_s"]) if ttt is not None else None,
            "ndcg_at_budget": r["ndcg_at_budget"], "quality_from": r["quality_from"],
            "disturbed_windows": r.get("disturbed_windows"), "load1_max": r.get("load1_max")}


def _sooner(records: dict[str, Any], derived: dict[str, Any], best: dict[str, Any],
            other: dict[str, Any]) -> dict[str, Any]:
    """How much sooner ``best`` reaches the target than ``other`` (``derived``'s rows): from ``verdicts.compare``,
    the ratio of their times (other's over best's) with its interval and the verdict; the seconds as the points'
    difference (see the module's docstring)."""
    if other["slug"] == best["slug"]:
        return {"than": other["name"], "same": True}
    steps = {s["slug"]: s for s in records["run"]["steps"]}
    compared = verdicts.compare(records["speed"], steps[best["slug"]], steps[other["slug"]], records["curves"],
                                derived["target"], derived["seed_spread"])
    out = {"than": other["name"], "same": False, "verdict": compared["time"]}
    if other["time_to_target_s"] is None:  # not within T: at least T / best's time
        return {**out, "reached": False, "ratio_at_least": derived["budget_s"] / best["time_to_target_s"]}
    ratio = compared["ttt"].inverse() if compared["ttt"] else \
        Estimate.unknown(other["time_to_target_s"] / best["time_to_target_s"])
    return {**out, "reached": True, "ratio": numbers(ratio),
            "seconds": other["time_to_target_s"] - best["time_to_target_s"]}


def to_markdown(record: dict[str, Any]) -> str:
    roles = (("**fastest to target**", "best"), ("paper's", "paper"), ("users/s-fastest", "users_per_s_fastest"),
             ("runner-up", "runner_up"))
    lines = ["| configuration | speed switches | users/s (95%) | users to target | time to target (95%) | |",
             "|---|---|---|---|---|---|"]
    for r in record["rows"]:
        role = [label for label, key in roles if record[key] == r["name"]]
        ttt = _ttt(r) if r["time_to_target_s"] is not None else f"not reached in {record['budget_s']:.0f} s"
        users = f"{r['users_to_target']:,}" if r["users_to_target"] is not None else "-"
        lines.append(f"| {r['name']} | {r['switches']} | {_rate(r)} | {users} | {ttt} | {', '.join(role)} |")
    u = record["uncertainty"]
    lines += ["", f"Target NDCG@100 {record['target_ndcg']:.4f}; every configuration trained for T = "
              f"{record['budget_s']:.0f} s. In brackets: {u['level']:.0%} intervals (ablations/verdicts.py), users/s "
              f"over the configuration's {u['windows_per_step']}+ timing windows, time to target from those windows "
              f"and the seeds combined ({_seeds(u)} per quality curve; {_spread(u)}); \"(no interval)\" where the "
              f"records give none. Validations about every {u['validation_spacing_s']:.1f} s (the target's crossing "
              "interpolated between them)."]
    return "\n".join(lines) + "\n"


def reading(record: dict[str, Any]) -> str:
    """The sentences a page states about the tune, every number from the record."""
    if record["best"] is None:
        return f"No configuration of the tune reached the target within T = {record['budget_s']:.0f} s.\n"
    rows = {r["name"]: r for r in record["rows"]}
    best = rows[record["best"]]
    m = record["machine"]
    device = ", ".join(m["gpus"]) if m.get("gpus") else f"{m.get('cpu')}, {m.get('cores')} cores, no GPU"
    text = [f"- Made by `VAECF_MACHINE={m.get('machine_name')} {_command(m.get('command', []))}` at commit "
            f"{str(m.get('git_sha'))[:10]} ({'a clean tree' if m.get('clean') else 'uncommitted changes'}) on "
            f"{device}; {len(record['rows'])} configurations, T = {record['budget_s']:.0f} s each, target "
            f"NDCG@100 {record['target_ndcg']:.4f}.",
            f"- The fastest configuration to the target here, by the point estimates, is **{best['name']}** "
            f"({best['switches']}): {_ttt(best)}, after {best['users_to_target']:,} users, at {_rate(best)} users/s."]
    compared: dict[str, tuple[list[str], dict[str, Any]]] = {}  # one sentence per configuration, its roles joined
    for label, key in ROLES:
        if record[key] is not None:
            compared.setdefault(record[key], ([], record[f"sooner_than_{key}"]))[0].append(label)
    for name, (labels, s) in compared.items():
        other, said = rows[name], " and ".join(labels)
        called = said if name in labels else f"{said}, {name}"
        if s["same"]:
            text.append(f"- It is also {said}.")
            continue
        if not s["reached"]:
            sentence = (f"- {called[0].upper() + called[1:]}, at {_rate(other)} users/s, does not reach the target "
                        f"within T = {record['budget_s']:.0f} s: the tune gets there at least "
                        f"{s['ratio_at_least']:.2f}x sooner (verdict over their quality curves: {s['verdict']}).")
        else:
            sentence = (f"- Against {called}: {_ttt(other)}, at {_rate(other)} users/s after "
                        f"{other['users_to_target']:,} users; the tune gets there {estimate(s['ratio']).text()} "
                        f"sooner, {_seconds(s['seconds'])} earlier by the point estimates; verdict: {s['verdict']}.")
        if name == record["runner_up"]:
            sentence += (" The pick is distinguishable from the runner-up." if s["verdict"] == verdicts.SOONER else
                         " The pick rests on the point estimates: whether it is distinguishable from the runner-up "
                         f"is {s['verdict']}." if s["verdict"] == verdicts.UNKNOWN else
                         f" The pick rests on the point estimates: it is {s['verdict']} from the runner-up.")
        text.append(sentence)
    u, m = record["uncertainty"], record["machine_state"]
    text.append(f"- In brackets: {u['level']:.0%} intervals (ablations/verdicts.py). Users/s over each "
                f"configuration's timing windows (at least {u['windows_per_step']}); time to target from those windows "
                f"and the seeds combined ({_seeds(u)} per quality curve; {_spread(u)}); a ratio of two times from "
                "the speed ratios of the rounds both were timed in and both curves' seeds. \"(no interval)\" where "
                "the records give none" + (": every quality curve here has one seed, so no time to target has one, nor "
                                           "a ratio of two on different curves" if u["seeds_per_curve"] == 1 else "")
                + f". The target is placed between validations about {u['validation_spacing_s']:.1f} s apart. "
                + (f"{m['disturbed_windows']} of {m['windows']} timing windows stayed disturbed by other processes"
                   + (f"; the load average reached {m['load1_max']:.1f}" if m["load1_max"] is not None else "") + "."
                   if m["disturbed_windows"] else "No timing window was disturbed by other processes."))
    return "\n".join(t for t in text if t) + "\n"


def _command(argv: list[str]) -> str:
    """The command as typed: ``python -m ablations ...`` for the runner's own argv."""
    if argv and Path(argv[0]).name == "__main__.py" and Path(argv[0]).parent.name == "ablations":
        return " ".join(["python -m ablations", *argv[1:]])
    return " ".join(argv)


def _ttt(r: dict[str, Any]) -> str:
    return verdicts.seconds(r["time_to_target_s"]["point"], estimate(r["time_to_target_s"]))


def _seconds(value: float) -> str:
    """A difference of two times: a point, in ``verdicts.seconds``' digits."""
    return verdicts.cell(value, None, verdicts.second_digits(value), " s")


def _rate(r: dict[str, Any]) -> str:
    return verdicts.cell(r["users_per_s"]["point"], estimate(r["users_per_s"]), 0)


def _seeds(u: dict[str, Any]) -> str:
    n = u["seeds_per_curve"]
    return "one seed" if n == 1 else f"the mean of {n} seeds"


def _spread(u: dict[str, Any]) -> str:
    if u["seed_spread_sd"] is None:
        return "no seed spread: no curve has two seeds"
    return f"the seeds' sd of log users to target, pooled, {u['seed_spread_sd']:.3f} ({u['seed_spread_df']} df)"


def draw(record: dict[str, Any], stem: Path) -> None:
    """Time to target per configuration, its 95% interval (windows and seeds) as error bars where the records
    give one; ``stem``.png and .svg."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "vaecf"  # byte-stable SVGs, as ablations.charts
    rows = record["rows"]
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.8))
    for y, r in enumerate(rows):
        colour = (GREEN if r["name"] == record["best"] else ORANGE if r["name"] == record["users_per_s_fastest"]
                  else GREY if r["name"] == record["paper"] else BLUE)
        if r["time_to_target_s"] is None:
            ax.barh(y, record["budget_s"], color="white", edgecolor=colour, hatch="//")
            ax.text(record["budget_s"], y, " not reached in T", va="center", fontsize=8)
            continue
        t = r["time_to_target_s"]
        if t["lo"] is None:
            ax.barh(y, t["point"], color=colour)
            ax.text(t["point"], y, f" {t['point']:.0f} s (no interval)", va="center", fontsize=8)
        else:
            ax.barh(y, t["point"], color=colour, xerr=[[t["point"] - t["lo"]], [t["hi"] - t["point"]]], capsize=3)
            ax.text(t["hi"], y, f" {t['point']:.0f} s", va="center", fontsize=8)
    labels = [textwrap.fill(r["name"], 40) + "\n" + textwrap.fill(r["switches"], 44) for r in rows]
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ends = [t["hi"] if t["hi"] is not None else t["point"] for t in (r["time_to_target_s"] for r in rows) if t]
    ax.set_xlim(0, max([record["budget_s"], *ends]) * 1.2)
    ax.set_xlabel(f"seconds to NDCG@100 {record['target_ndcg']:.4f} (error bars: "
                  f"{record['uncertainty']['level']:.0%} intervals over the timing windows and the seeds)")
    m = record["machine"]
    ax.set_title(f"Tune: time to the target (green: fastest to it; orange: most users/s; grey: the paper's)\n"
                 f"{m.get('cpu', '')}, {m.get('cores', '')} cores; commit {str(m.get('git_sha'))[:12]}", fontsize=9)
    fig.tight_layout()
    for ext, metadata in (("png", {"Software": None}), ("svg", {"Date": None})):
        fig.savefig(stem.with_suffix(f".{ext}"), dpi=110, metadata=metadata)
    plt.close(fig)


def write_result(run_dir: Path, records: dict[str, Any], derived: dict[str, Any]) -> dict[str, Any]:
    """tune.json from the run's records and their derivation, then tune.md, tune-reading.md and the chart from it."""
    record = result(records, derived)
    write_json(run_dir / "tune.json", record)
    for name, text in (("tune.md", to_markdown(record)), ("tune-reading.md", reading(record))):
        atomic_write(run_dir / name, lambda tmp, text=text: tmp.write_text(text))  # type: ignore[misc]
    draw(record, run_dir / "tune")
    return record
