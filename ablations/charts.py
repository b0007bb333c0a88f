"""Charts for a report: the speed-up ladder with quality beside it, and time to quality.

``ladder.png``/``.svg``: left, the measured cumulative speed-up per step (log scale, each bar
annotated with its step factor; skipped steps drawn empty with their reason), and under it the
validation NDCG@100 each step reached after the same budget, with the baseline's tolerance band
(steps below it in red). Right, the talk's published ladder (no quality was shown there).
``time_to_quality.png``/``.svg``: training seconds each step needed to reach the target NDCG.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference" / "case-study-ladder.json"
"""The talk's ladder (a copy of the published figures, so charts need nothing outside the repo)."""

OK, FLAGGED, SKIPPED, TALK = "#3b75af", "#c0392b", "#bbbbbb", "#7f7f7f"


def _subtitle(run: dict[str, Any]) -> str:
    m = run["machine"]
    device = ", ".join(m["gpus"]) if m["gpus"] else f"{m['cpu']} ({m['cores']} cores, no GPU)"
    return f"{run['dataset']}, {run['budget']['name']} budget ({run['budget']['epochs']} epochs) on {device}"


def draw(run_dir: Path, run: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    _ladder_chart(run_dir, run, rows)
    _time_chart(run_dir, run, rows)


def _ladder_chart(run_dir: Path, run: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    reference = json.loads(REFERENCE.read_text()) if run["ladder"].get("reference") else None
    fig = plt.figure(figsize=(13 if reference else 8, 7.5), constrained_layout=True)
    grid = fig.add_gridspec(2, 2 if reference else 1, height_ratios=[2.2, 1],
                            width_ratios=[1.4, 1] if reference else [1])
    speed, quality = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[1, 0])
    names = [r["step"] for r in rows]
    x = range(len(rows))
    done = [r for r in rows if r["status"] == "done"]
    top = max((r["cumulative_factor"] for r in done), default=1.0)
    for i, r in zip(x, rows):
        if r["status"] != "done":
            speed.bar(i, top, color="none", edgecolor=SKIPPED, hatch="//")
            speed.text(i, 1.0, "skipped:\n" + _wrap(r["notes"], 18), ha="center", va="bottom", fontsize=7,
                       color="#555555")
            continue
        color = FLAGGED if r["quality_flag"] else OK
        speed.bar(i, r["cumulative_factor"], color=color)
        speed.text(i, r["cumulative_factor"] * 1.04, f"{r['cumulative_factor']:.2f}x\n(step {r['step_factor']:.2f}x)",
                   ha="center", va="bottom", fontsize=8)
    _log_axis(speed)
    speed.set_ylim(min(0.5, min((r["cumulative_factor"] for r in done), default=1) * 0.7), top * 2.2)
    speed.set_ylabel("cumulative speed-up (users/s vs first step)")
    speed.set_title(f"Measured: ladder '{run['ladder']['name']}'\n{_subtitle(run)}", fontsize=10)
    speed.set_xticks(list(x), [""] * len(rows))
    speed.axhline(1.0, color="black", lw=0.6)

    if done:
        base = done[0]["ndcg@100"]
        tol = run["ladder"]["quality_tolerance"]
        quality.axhspan(base - tol, base + tol, color="#dddddd", label=f"first step ± {tol}")
        for i, r in zip(x, rows):
            if r["status"] == "done":
                color = FLAGGED if r["quality_flag"] else OK
                quality.plot(i, r["ndcg@100"], "o", color=color, ms=8)
                quality.text(i, r["ndcg@100"], f"  {r['ndcg@100']:.3f}" + (" below" if r["quality_flag"] else ""),
                             fontsize=8, va="center", color=color)
        oracle = run["data"].get("oracle_validation", {}).get("ndcg@100")
        if oracle:
            quality.axhline(oracle, color="green", ls="--", lw=1, label=f"oracle {oracle:.3f}")
        quality.legend(fontsize=7, loc="center right")
    quality.set_ylabel("validation\nNDCG@100")
    quality.set_xticks(list(x), [_wrap(n, 14) for n in names], fontsize=8)
    quality.set_xlim(speed.get_xlim())

    if reference:
        talk = fig.add_subplot(grid[:, 1])
        labels = ["baseline"] + [s["name"] for s in reference["steps"]]
        values = [1.0] + [s["cumulative_speedup"] for s in reference["steps"]]
        talk.bar(range(len(values)), values, color=TALK)
        for i, (v, s) in enumerate(zip(values, [None, *reference["steps"]])):
            talk.text(i, v * 1.04, f"{v:g}x" + (f"\n(step {s['step_speedup']}x)" if s else ""), ha="center",
                      va="bottom", fontsize=8)
        _log_axis(talk)
        talk.set_ylim(0.5, max(values) * 2.2)
        talk.set_xticks(range(len(values)), [_wrap(n, 12) for n in labels], fontsize=8)
        talk.set_title("Published: the case study talk\n(ML-20M, DGX Station 4x V100; no quality shown)", fontsize=10)
    for ext in ("png", "svg"):
        fig.savefig(run_dir / f"ladder.{ext}", dpi=120)
    plt.close(fig)


def _time_chart(run_dir: Path, run: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(rows) + 1.8), constrained_layout=True)
    for i, r in enumerate(rows):
        if r["status"] != "done":
            ax.text(0, i, "  skipped", va="center", fontsize=8, color="#555555")
        elif r["time_to_quality_s"] is None:
            ax.text(0, i, "  target not reached within the budget", va="center", fontsize=8, color=FLAGGED)
        else:
            ax.barh(i, r["time_to_quality_s"], color=FLAGGED if r["quality_flag"] else OK)
            ax.text(r["time_to_quality_s"], i, f" {r['time_to_quality_s']:.0f} s", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), [r["step"] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"training seconds until validation NDCG@100 >= {run['ladder']['time_to_quality']:.0%} "
                  "of the first step's best")
    ax.set_title(f"Time to quality: '{run['ladder']['name']}'\n{_subtitle(run)}", fontsize=10)
    for ext in ("png", "svg"):
        fig.savefig(run_dir / f"time_to_quality.{ext}", dpi=120)
    plt.close(fig)


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
