"""Charts for a report, drawn from ``report.derive`` alone.

``ladder``: speed-up per step (log scale, its interval over the timing windows as error bars) beside the talk's
published ladder on the same axis, every substitution or cap written under its bar; below,
each step's validation NDCG@100 after the same time T, with the seed-noise band, the target
and the popularity, EASE and oracle levels. ``quality_vs_time``: the "plot twist" chart,
NDCG@100 against training time per step (the seed-mean curve, the seeds' range as a band).
``time_to_target``: seconds to the target per step with its interval (seeds and windows), "not
reached within T" drawn as such. SVGs are byte-stable (fixed hash salt, no date).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator  # noqa: E402

from ablations.ladder import BUDGETS  # noqa: E402
from ablations.quality import NOISE_SIGMAS  # noqa: E402
from ablations.verdicts import LEVEL, seconds  # noqa: E402

ML20M_ITEMS = BUDGETS["full"].speed_items

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference" / "case-study-ladder.json"
"""The talk's ladder (a copy of the published figures, so charts need nothing outside the repo)."""

OK, FLAGGED, SKIPPED, TALK = "#3b75af", "#c0392b", "#bbbbbb", "#8c8c8c"
LEVELS = {"popularity": ("#7f7f7f", ":"), "ease": ("#8e44ad", ":"), "oracle": ("#2e8b57", "--")}
plt.rcParams["svg.hashsalt"] = "vaecf"  # stable ids in the SVG, so that redrawing changes no byte


def draw(run_dir: Path, derived: dict[str, Any]) -> None:
    for name, chart in (("ladder", _ladder), ("quality_vs_time", _quality_vs_time),
                        ("time_to_target", _time_to_target)):
        fig = chart(derived)
        for ext, metadata in (("png", {"Software": None}), ("svg", {"Date": None})):
            fig.savefig(run_dir / f"{name}.{ext}", dpi=110, metadata=metadata)
        plt.close(fig)


def _subtitle(derived: dict[str, Any]) -> str:
    run = derived["run"]
    m = run["machine"]
    device = ", ".join(m["gpus"]) if m["gpus"] else f"{m['cpu']}, {m['cores']} cores, no GPU"
    flags = ", ".join(m.get("cpu_flags", [])) or "none of AVX-512/AMX"
    data = run["data"]
    shape = " (ML-20M's catalogue)" if derived["speed_items"] == ML20M_ITEMS else ""
    return (f"speed at {derived['speed_items']:,} items{shape}\nquality on {run['budget']['quality_dataset']} "
            f"({data['train_users']:,} training users x {data['items']:,} items)\n{device} [{flags}]\n"
            f"commit {str(m['git_sha'])[:12]}")  # a line of its own: an AMX CPU's flags fill one


def _label(row: dict[str, Any], width: int = 16) -> str:
    notes = list(row["notes"]) + ([f"skipped: {row['skip']}"] if row["skip"] else [])
    return _wrap(row["name"], width) + ("\n" + "\n".join(_wrap(n, width + 4) for n in notes) if notes else "")


def _ladder(derived: dict[str, Any]) -> plt.Figure:
    rows, loo = derived["rows"], derived["mode"] == "leave-one-out"
    reference = json.loads(REFERENCE.read_text()) if derived["run"]["ladder"].get("reference") else None
    talk = ([("baseline", 1.0, None)] + [(s["name"], s["cumulative_speedup"], s["step_speedup"])
                                         for s in reference["steps"]]) if reference else []
    n = len(rows) + (len(talk) + 1 if talk else 0)
    fig, (speed, quality) = plt.subplots(2, 1, figsize=(max(10.0, 1.25 * n), 9.5), height_ratios=[2.0, 1.2],
                                         sharex=True, constrained_layout=True)
    done = [r for r in rows if r["status"] == "done"]
    values = [r["total_factor"] for r in done] + [v for _, v, _ in talk]
    top, bottom = max(values, default=1.0), min(values, default=1.0)
    for i, r in enumerate(rows):
        if r["status"] != "done":
            speed.bar(i, top, bottom=bottom * 0.6, color="none", edgecolor=SKIPPED, hatch="//")
            continue
        total = r["vs_first"]["has"] if r["vs_first"] else None
        err = [[r["total_factor"] - total.lo], [total.hi - r["total_factor"]]] if total and total.known else None
        speed.bar(i, r["total_factor"], color=FLAGGED if r["flagged"] else OK, yerr=err, capsize=3)
        text = f"{r['first_over_this']:.2f}x" if loo else f"{r['total_factor']:.2f}x\n(step {r['step_factor']:.2f}x)"
        speed.text(i, r["total_factor"] * 1.08, text, ha="center", va="bottom", fontsize=8)
    offset = len(rows) + 1
    for j, (_, value, step) in enumerate(talk):
        speed.bar(offset + j, value, color=TALK)
        speed.text(offset + j, value * 1.08, f"{value:g}x" + (f"\n(step {step:g}x)" if step else ""),
                   ha="center", va="bottom", fontsize=8)
    if talk:
        speed.axvline(len(rows), color="black", lw=0.5)
        speed.text(offset - 0.4, top * 4, "published (the talk: ML-20M, 4x V100)", fontsize=9, color="#555555")
        speed.text(-0.4, top * 4, "measured here", fontsize=9, color="#555555")
    _log_axis(speed)
    speed.set_ylim(bottom * 0.5, top * 8)
    speed.axhline(1.0, color="black", lw=0.6)
    speed.set_ylabel(f"users/s relative to the first step\n(error bars: {LEVEL:.0%} interval, timing windows)")
    title = "Leave-one-out from the fastest configuration" if loo else "Speed-up ladder"
    speed.set_title(f"{title}: '{derived['ladder']}'\n{_subtitle(derived)}", fontsize=9)

    quality.axhspan(done[0]["ndcg_at_budget"] - NOISE_SIGMAS * (derived["noise_sd"] or 0),
                    done[0]["ndcg_at_budget"] + NOISE_SIGMAS * (derived["noise_sd"] or 0), color="#e3e3e3",
                    label=f"first step ± {NOISE_SIGMAS:g} seed sd")
    quality.axhline(derived["target"], color="black", ls="--", lw=1, label=f"target {derived['target']:.3f}")
    for name, value in derived["baselines"].items():
        color, style = LEVELS[name]
        quality.axhline(value, color=color, ls=style, lw=1, label=f"{name} {value:.3f}")
    for i, r in enumerate(rows):
        if r["status"] == "done":
            color = FLAGGED if r["flagged"] else OK
            quality.plot(i, r["ndcg_at_budget"], "o", color=color, ms=7)
            quality.annotate(f"{r['ndcg_at_budget']:.3f}" + (" below" if r["flagged"] else ""),
                             (i, r["ndcg_at_budget"]), textcoords="offset points", xytext=(6, 4), fontsize=8,
                             color=color)
    if talk:
        quality.text(offset, derived["target"], "no quality published", fontsize=8, color="#555555", va="bottom")
    quality.set_ylabel(f"validation NDCG@100\nafter T = {derived['budget_s']:.0f} s")
    quality.legend(fontsize=7, loc="lower left", ncol=3)
    ticks = list(range(len(rows))) + [offset + j for j in range(len(talk))]
    quality.set_xticks(ticks, [_label(r) for r in rows] + [_wrap(name, 14) for name, _, _ in talk], fontsize=7)
    return fig


def _quality_vs_time(derived: dict[str, Any]) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(10, 6.5), constrained_layout=True)
    colors = plt.get_cmap("tab10")
    done = [r for r in derived["rows"] if r["status"] == "done"]
    first = done[0]
    band = NOISE_SIGMAS * (derived["noise_sd"] or 0)
    t0 = [p["t"] for p in first["curve"]]
    y0 = [p["ndcg"] for p in first["curve"]]
    ax.fill_between(t0, [y - band for y in y0], [y + band for y in y0], color=colors(0), alpha=0.15, lw=0,
                    label=f"{first['name']} ± {NOISE_SIGMAS:g} seed sd (calibration)")
    for k, r in enumerate(done):
        style = "--" if r["quality_from"] else "-"
        label = r["name"] + (" ⚠ below at T" if r["flagged"] else "") + (" (shared curve)" if r["quality_from"] else "")
        label += f", {r['seeds']} seeds (band: their range)" if r["seeds"] > 1 else ", 1 seed"
        ax.plot([p["t"] for p in r["curve"]], [p["ndcg"] for p in r["curve"]], style, color=colors(k % 10),
                lw=1.6, marker="." if len(r["curve"]) < 40 else None, label=label)
        if r["seeds"] > 1:
            ax.fill_between([p["t"] for p in r["curve"]], [p["ndcg_lo"] for p in r["curve"]],
                            [p["ndcg_hi"] for p in r["curve"]], color=colors(k % 10), alpha=0.12, lw=0)
        if r["time_to_target_s"] is not None:
            ax.plot(r["time_to_target_s"], derived["target"], "o", color=colors(k % 10), ms=6)
    ax.axhline(derived["target"], color="black", ls="--", lw=1, label=f"target {derived['target']:.3f}")
    for name, value in derived["baselines"].items():
        color, style = LEVELS[name]
        ax.axhline(value, color=color, ls=style, lw=1.2, label=f"{name} {value:.3f}")
    ax.axvline(derived["budget_s"], color="black", lw=0.8)
    ax.text(derived["budget_s"], ax.get_ylim()[0], " T", fontsize=9, va="bottom")
    ax.set_xlim(0, derived["budget_s"] * 1.04)
    ax.set_xlabel(f"training seconds (updates x each step's seconds per update measured at "
                  f"{derived['speed_items']:,} items; validation excluded)")
    ax.set_ylabel("validation NDCG@100")
    ax.set_title(f"Quality against training time: '{derived['ladder']}'\n{_subtitle(derived)}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def _time_to_target(derived: dict[str, Any]) -> plt.Figure:
    rows = derived["rows"]
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(rows) + 2.0), constrained_layout=True)
    budget = derived["budget_s"]
    right = budget
    for i, r in enumerate(rows):
        if r["status"] != "done":
            ax.text(0, i, f"  skipped: {r['skip']}", va="center", fontsize=8, color="#555555")
        elif r["time_to_target_s"] is None:
            ax.barh(i, budget, color="none", edgecolor=FLAGGED, hatch="//")
            ax.text(budget * 0.02, i, f"not reached within T = {budget:.0f} s (NDCG {r['ndcg_at_budget']:.3f})",
                    va="center", fontsize=8, color=FLAGGED, bbox={"facecolor": "white", "edgecolor": "none"})
        else:
            ttt, interval = r["time_to_target_s"], r["time_to_target_interval"]
            known = interval is not None and interval.known
            err = [[ttt - interval.lo], [interval.hi - ttt]] if known else None
            ax.barh(i, ttt, color=FLAGGED if r["flagged"] else OK, xerr=err, capsize=3)
            ax.text(interval.hi if known else ttt, i, " " + seconds(ttt, interval), va="center", fontsize=8)
            right = max(right, interval.hi if known else ttt)
    ax.set_yticks(range(len(rows)), [r["name"] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, right * 1.25)
    ax.axvline(budget, color="black", lw=0.8)
    # Right-aligned at T, inside the axes: at the line's right the label ran off the figure.
    ax.text(budget, -0.55, f"T = {budget:.0f} s (every step's time) ", fontsize=8, va="bottom", ha="right")
    ax.set_xlabel(f"training seconds until validation NDCG@100 >= {derived['target']:.3f} "
                  f"({derived['target'] / derived['converged']:.0%} of the calibrated converged value)\n"
                  f"error bars: {LEVEL:.0%} interval (the seeds' spread and the timing windows')")
    ax.set_title(f"Time to target: '{derived['ladder']}'\n{_subtitle(derived)}", fontsize=9)
    return fig


def _log_axis(ax: plt.Axes) -> None:
    """Log scale labelled 0.5x, 1x, 2x, 5x... rather than in powers of ten."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_minor_locator(LogLocator(base=10, subs=()))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))


def _wrap(text: str, width: int) -> str:
    words, lines, line = text.split(), [], ""
    for w in words:
        if line and len(line) + len(w) + 1 > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return "\n".join([*lines, line])
