"""Tables and charts of a ladder run, derived from its records alone (no training).

Factors: a step's *step factor* is its throughput over the previous step that ran; its
*cumulative factor* is over the first step (the baseline, or the fully optimised configuration
in a leave-one-out ladder). Quality: a step whose best validation NDCG@100 within the budget is
more than the ladder's tolerance below the first step's is flagged, in the table and the chart.
Time to quality: training seconds until validation NDCG@100 first reached the ladder's
fraction of the first step's best.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from vaecf.io import atomic_write, read_json


def load_run(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    run = read_json(run_dir / "run.json")
    steps = [read_json(p) for p in sorted((run_dir / "steps").glob("*.json"))]
    return run, sorted(steps, key=lambda s: s["index"])


def derive(run: dict[str, Any], steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per step with factors, flags and time to quality."""
    ladder = run["ladder"]
    done = [s for s in steps if s["status"] == "done"]
    first = done[0] if done else None
    target = ladder["time_to_quality"] * first["validation"]["ndcg@100"] if first else None
    rows, previous = [], None
    for s in steps:
        row: dict[str, Any] = {"step": s["name"], "change": s["change"], "status": s["status"],
                               "notes": "; ".join(s["notes"] + ([s["skip_reason"]] if s["skip_reason"] else []))}
        if s["status"] == "done":
            t = s["throughput"]
            ndcg = s["validation"]["ndcg@100"]
            row.update({
                "users_per_s": t["median"], "users_per_s_p10": t["p10"], "users_per_s_p90": t["p90"],
                "step_factor": t["median"] / previous["throughput"]["median"] if previous else 1.0,
                "cumulative_factor": t["median"] / first["throughput"]["median"],
                "epoch_s": s["epoch_s_median"], "mfu": s["mfu"], "peak_rss_gib": s["peak_rss_bytes"] / 2**30,
                "ndcg@100": ndcg, "recall@20": s["validation"]["recall@20"],
                "recall@50": s["validation"]["recall@50"],
                "quality_flag": ndcg < first["validation"]["ndcg@100"] - ladder["quality_tolerance"],
                "time_to_quality_s": next((h["train_s"] for h in s["history"]
                                           if h.get("val_ndcg@100", -1) >= target), None),
            })
            previous = s
        rows.append(row)
    return rows


COLUMNS = ("step", "status", "users_per_s", "users_per_s_p10", "users_per_s_p90", "step_factor",
           "cumulative_factor", "epoch_s", "mfu", "peak_rss_gib", "ndcg@100", "recall@20", "recall@50",
           "quality_flag", "time_to_quality_s", "notes")


def to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def to_markdown(rows: list[dict[str, Any]], run: dict[str, Any]) -> str:
    ladder = run["ladder"]
    lines = ["| step | users/s (p10-p90) | step x | total x | MFU | peak RSS | NDCG@100 | R@20 | R@50 | "
             f"time to {ladder['time_to_quality']:.0%} NDCG | notes |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["status"] != "done":
            lines.append(f"| {r['step']} | skipped | | | | | | | | | {r['notes']} |")
            continue
        flag = " ⚠ below baseline" if r["quality_flag"] else ""
        ttq = f"{r['time_to_quality_s']:.0f} s" if r["time_to_quality_s"] is not None else "not reached"
        lines.append(
            f"| {r['step']} | {r['users_per_s']:.0f} ({r['users_per_s_p10']:.0f}-{r['users_per_s_p90']:.0f}) "
            f"| {r['step_factor']:.2f} | {r['cumulative_factor']:.2f} | {r['mfu']:.2f} | {r['peak_rss_gib']:.1f} GiB "
            f"| {r['ndcg@100']:.4f}{flag} | {r['recall@20']:.4f} | {r['recall@50']:.4f} | {ttq} | {r['notes']} |")
    return "\n".join(lines) + "\n"


def write_report(run_dir: Path) -> list[dict[str, Any]]:
    """table.csv, table.md and the charts, from the records in ``run_dir``."""
    from ablations.charts import draw

    run, steps = load_run(run_dir)
    rows = derive(run, steps)
    atomic_write(run_dir / "table.csv", lambda tmp: tmp.write_text(to_csv(rows)))
    atomic_write(run_dir / "table.md", lambda tmp: tmp.write_text(to_markdown(rows, run)))
    draw(run_dir, run, rows)
    return rows
