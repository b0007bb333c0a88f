"""A tune's result, from its run's records alone: the record, its table, its chart and its reading.

``tune.json`` (strict JSON; under ``machine`` the provenance of the run that measured it) holds,
per configuration of the tune (``ablations.tune``), its users/s with the range of its timing
windows, its time to the target with the range those windows give (the same updates to the
target at the slowest and the fastest window's speed), and the users it saw by then; then the
fastest to the target, and how much sooner it gets there than the paper's configuration and than
the users/s-fastest one, each as a ratio with its range (the two configurations' extremes
against each other: *distinguishable* when even the least favourable pair keeps the order).
The range is the speed's, not the seeds' (a curve is the mean of its seeds, as many as the run
trained); the record says how many, with the calibration's seed noise and the spacing of the
validations that place the target.

``tune.md`` (the table), ``tune-reading.md`` (the sentences docs/ladder.md includes) and
``tune.png``/``.svg`` are generated from ``tune.json``, by ``python -m ablations plot RUN`` too.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from vaecf.io import atomic_write, write_json

GREEN, GREY, ORANGE, BLUE = "#2e8b57", "#8c8c8c", "#e67e22", "#3b75af"


def result(derived: dict[str, Any]) -> dict[str, Any]:
    """The tune's record from ``report.derive``'s rows of its run."""
    run = derived["run"]
    done = [r for r in derived["rows"] if r["status"] == "done"]
    rows = [_row(r) for r in done]
    reached = [r for r in rows if r["time_to_target_s"] is not None]
    paper = rows[0]
    fastest = max(rows, key=lambda r: r["users_per_s"])  # equal speeds: the first, the square-root recipe
    best = min(reached, key=lambda r: r["time_to_target_s"]) if reached else None
    budget_s = derived["budget_s"]
    loads = [r["load1_max"] for r in derived["rows"] if r.get("load1_max") is not None]
    return {
        "machine": run["machine"], "ladder": run["ladder"]["name"], "budget": run["budget"]["name"],
        "target_ndcg": derived["target"], "budget_s": budget_s, "rows": rows,
        "best": best["name"] if best else None, "paper": paper["name"], "users_per_s_fastest": fastest["name"],
        "sooner_than_paper": _sooner(best, paper, budget_s) if best else None,
        "sooner_than_users_per_s_fastest": _sooner(best, fastest, budget_s) if best else None,
        "uncertainty": {"windows_per_step": min(r["windows"] for r in rows),
                        "seeds_per_curve": min(r["seeds"] for r in done),
                        "seed_noise_sd": derived["noise_sd"],
                        "validation_spacing_s": budget_s / run["budget"]["evaluations"]},
        "machine_state": {"load1_max": max(loads) if loads else None,
                          "disturbed_windows": sum(r["disturbed_windows"] or 0 for r in rows),
                          "windows": sum(r["windows"] for r in rows)},
        "search": run.get("tune"),
    }


def _row(r: dict[str, Any]) -> dict[str, Any]:
    ttt = r["time_to_target_s"]
    return {"name": r["name"], "switches": r["change"], "batch": r["global_batch"], "windows": len(r["window_medians"]),
            "users_per_s": r["users_per_s"], "users_per_s_min": r["window_min"], "users_per_s_max": r["window_max"],
            "time_to_target_s": ttt,
            # The same updates to the target at the fastest and the slowest window's speed.
            "time_to_target_min": ttt * r["users_per_s"] / r["window_max"] if ttt is not None else None,
            "time_to_target_max": ttt * r["users_per_s"] / r["window_min"] if ttt is not None else None,
            "users_to_target": round(ttt * r["users_per_s"]) if ttt is not None else None,
            "ndcg_at_budget": r["ndcg_at_budget"], "quality_from": r["quality_from"],
            "disturbed_windows": r.get("disturbed_windows"), "load1_max": r.get("load1_max")}


def _sooner(best: dict[str, Any], other: dict[str, Any], budget_s: float) -> dict[str, Any]:
    """How much sooner ``best`` reaches the target than ``other``: ratio and seconds, each with its range."""
    if other["time_to_target_s"] is None:  # not within T: at least T / best's time
        return {"than": other["name"], "reached": False, "ratio_at_least": budget_s / best["time_to_target_max"]}
    ratio = other["time_to_target_s"] / best["time_to_target_s"]
    low = other["time_to_target_min"] / best["time_to_target_max"]
    return {"than": other["name"], "reached": True, "same": other["name"] == best["name"],
            "ratio": ratio, "ratio_min": low, "ratio_max": other["time_to_target_max"] / best["time_to_target_min"],
            "seconds": other["time_to_target_s"] - best["time_to_target_s"],
            "seconds_min": other["time_to_target_min"] - best["time_to_target_max"],
            "seconds_max": other["time_to_target_max"] - best["time_to_target_min"],
            "distinguishable": low > 1}


def to_markdown(record: dict[str, Any]) -> str:
    lines = ["| configuration | speed switches | users/s (windows) | users to target | time to target (windows) | |",
             "|---|---|---|---|---|---|"]
    for r in record["rows"]:
        role = [label for label, key in (("**fastest to target**", "best"), ("paper's", "paper"),
                                         ("users/s-fastest", "users_per_s_fastest")) if record[key] == r["name"]]
        ttt = (f"{r['time_to_target_s']:.0f} s ({r['time_to_target_min']:.0f}-{r['time_to_target_max']:.0f})"
               if r["time_to_target_s"] is not None else f"not reached in {record['budget_s']:.0f} s")
        users = f"{r['users_to_target']:,}" if r["users_to_target"] is not None else "-"
        lines.append(f"| {r['name']} | {r['switches']} | {r['users_per_s']:.0f} ({r['users_per_s_min']:.0f}-"
                     f"{r['users_per_s_max']:.0f}) | {users} | {ttt} | {', '.join(role)} |")
    u = record["uncertainty"]
    lines += ["", f"Target NDCG@100 {record['target_ndcg']:.4f}; every configuration trained for T = "
              f"{record['budget_s']:.0f} s. Ranges: the time to target at the fastest and the slowest of the "
              f"configuration's {u['windows_per_step']}+ timing windows; {_seeds(u)} per quality curve (calibration "
              f"seed noise {_noise(u)}), validations about every {u['validation_spacing_s']:.1f} s."]
    return "\n".join(lines) + "\n"


def reading(record: dict[str, Any]) -> str:
    """The sentences a page states about the tune, every number from the record."""
    if record["best"] is None:
        return f"No configuration of the tune reached the target within T = {record['budget_s']:.0f} s.\n"
    rows = {r["name"]: r for r in record["rows"]}
    best, paper, fast = rows[record["best"]], rows[record["paper"]], rows[record["users_per_s_fastest"]]
    m = record["machine"]
    device = ", ".join(m["gpus"]) if m.get("gpus") else f"{m.get('cpu')}, {m.get('cores')} cores, no GPU"
    text = [f"- Made by `VAECF_MACHINE={m.get('machine_name')} {_command(m.get('command', []))}` at commit "
            f"{str(m.get('git_sha'))[:10]} ({'a clean tree' if m.get('clean') else 'uncommitted changes'}) on "
            f"{device}; {len(record['rows'])} configurations, T = {record['budget_s']:.0f} s each, target "
            f"NDCG@100 {record['target_ndcg']:.4f}.",
            f"- The fastest configuration to the target here is **{best['name']}** ({best['switches']}): "
            f"{_ttt(best)}, after {best['users_to_target']:,} users."]
    for label, key, other in (("the paper's configuration", "sooner_than_paper", paper),
                              ("the users/s-fastest configuration", "sooner_than_users_per_s_fastest", fast)):
        s = record[key]
        called = f"{other['users_per_s']:,.0f} users/s" if other["name"] == label else \
            f"{other['name']}, {other['users_per_s']:,.0f} users/s"
        if s["reached"] and s["same"]:
            text.append(f"- It is also {label}.")
        elif not s["reached"]:
            text.append(f"- {label.capitalize()} ({called}) does not "
                        f"reach the target within T = {record['budget_s']:.0f} s: the tune gets there at least "
                        f"{s['ratio_at_least']:.2f}x sooner.")
        else:
            verdict = "sooner" if s["distinguishable"] else "sooner, not distinguishably (the windows' ranges overlap)"
            text.append(f"- Against {label} ({called}, {other['users_to_target']:,} users to the target): "
                        f"{_ttt(other)}; the tune's is "
                        f"{s['ratio']:.2f}x ({s['ratio_min']:.2f}-{s['ratio_max']:.2f}) {verdict}, "
                        f"{s['seconds']:.0f} s ({s['seconds_min']:.0f} to {s['seconds_max']:.0f} s) earlier.")
    u, m = record["uncertainty"], record["machine_state"]
    text.append(f"- Ranges are over each configuration's timing windows (at least {u['windows_per_step']}); each "
                f"quality curve is {_seeds(u)} (the calibration's seed noise: {_noise(u)}), and the target is placed "
                f"at validations about {u['validation_spacing_s']:.1f} s apart. "
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
    return f"{r['time_to_target_s']:.0f} s ({r['time_to_target_min']:.0f}-{r['time_to_target_max']:.0f})"


def _seeds(u: dict[str, Any]) -> str:
    n = u["seeds_per_curve"]
    return "one seed" if n == 1 else f"the mean of {n} seeds"


def _noise(u: dict[str, Any]) -> str:
    return f"{u['seed_noise_sd']:.4f} sd" if u["seed_noise_sd"] is not None else "unknown"


def draw(record: dict[str, Any], stem: Path) -> None:
    """Time to target per configuration, the windows' range as error bars; ``stem``.png and .svg."""
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
        err = [[r["time_to_target_s"] - r["time_to_target_min"]], [r["time_to_target_max"] - r["time_to_target_s"]]]
        ax.barh(y, r["time_to_target_s"], color=colour, xerr=err, capsize=3)
        ax.text(r["time_to_target_max"], y, f" {r['time_to_target_s']:.0f} s", va="center", fontsize=8)
    labels = [textwrap.fill(r["name"], 40) + "\n" + textwrap.fill(r["switches"], 44) for r in rows]
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    right = max([record["budget_s"], *(r["time_to_target_max"] or 0 for r in rows)])
    ax.set_xlim(0, right * 1.2)
    ax.set_xlabel(f"seconds to NDCG@100 {record['target_ndcg']:.4f} (range: the timing windows)")
    m = record["machine"]
    ax.set_title(f"Tune: time to the target (green: fastest to it; orange: most users/s; grey: the paper's)\n"
                 f"{m.get('cpu', '')}, {m.get('cores', '')} cores; commit {str(m.get('git_sha'))[:12]}", fontsize=9)
    fig.tight_layout()
    for ext, metadata in (("png", {"Software": None}), ("svg", {"Date": None})):
        fig.savefig(stem.with_suffix(f".{ext}"), dpi=110, metadata=metadata)
    plt.close(fig)


def write_result(run_dir: Path, derived: dict[str, Any]) -> dict[str, Any]:
    """tune.json, then tune.md, tune-reading.md and the chart from it."""
    record = result(derived)
    write_json(run_dir / "tune.json", record)
    for name, text in (("tune.md", to_markdown(record)), ("tune-reading.md", reading(record))):
        atomic_write(run_dir / name, lambda tmp, text=text: tmp.write_text(text))  # type: ignore[misc]
    draw(record, run_dir / "tune")
    return record
