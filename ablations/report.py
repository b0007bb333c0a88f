"""Tables and charts of a ladder run, derived from its records alone (no training, no TensorFlow).

Speed: a step's users/s is the median of its timing windows (``ablations.speed``); its *step
factor* is over the previous step that ran, its *total factor* over the first step (in a
leave-one-out run the first step is the fastest configuration, and the factor that matters is
first / this: what the reverted switch was worth there).

Quality: a step's validation NDCG@100 (the mean of its seeds' curves) is read on its own time
axis, updates x its measured seconds per update. Every step had the same time T; "at T" is the
last validation within T. Time to target is where that curve crosses the target within T
(interpolated between validations), or "not reached". A step is flagged when, at T, it is below
the first step by more than twice the calibration's seed noise: a loss a reader can tell from noise.

Intervals, break-even ratios and the verdicts (faster / slower / not distinguishable; sooner /
later) come from ``ablations.verdicts``; ``verdicts.md`` holds them as sentences for the README.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from ablations import summary, verdicts
from ablations.disturbance import note as disturbance_note
from ablations.jobs import REDO
from ablations.ladder import Step
from ablations.quality import NOISE_SIGMAS
from ablations.speed import speed_summary
from vaecf.config import TrainConfig
from vaecf.data.registry import ML20M
from vaecf.errors import DataError
from vaecf.integrity import digest, read_record
from vaecf.io import atomic_write

RESULTS = Path("results")
"""Every command's default results folder (``--results``), relative to where it runs; calibrations are in
RESULTS/calibration/."""


def calibration_ref(path: Path, results: Path, record: dict[str, Any], run_dir: Path) -> dict[str, str]:
    """How run.json names its calibration: its path under the results folder and the sha256 of its contents
    (``vaecf.integrity.digest``: its ``record_sha256`` where it carries one). Not a path from the run folder,
    which broke when a run made with ``--out`` elsewhere was moved under ``results/<machine>/``; ``results``
    (the results folder from the run folder, as made) is only a hint for a run that has not moved."""
    return {"path": path.resolve().relative_to(results.resolve()).as_posix(), "sha256": digest(record),
            "results": os.path.relpath(results.resolve(), run_dir.resolve())}


def find_calibration(run_dir: Path, run: dict[str, Any], results: Path = RESULTS) -> tuple[Path, dict[str, Any]]:
    """The calibration a run used and its path: the recorded path under the nearest folder above the run that
    holds it (a run lives in ``results/<machine>/<run>/``), else under ``results`` or the results folder the
    run was made with (a run made with ``--out`` outside it), checked against the recorded sha256. Runs
    recorded before that named a path relative to the run folder: tried first, then their file's name the
    same way."""
    ref = run["calibration"]
    tried = []
    if isinstance(ref, str):
        tried.append(run_dir / ref)
        ref = {"path": Path(Path(ref).parent.name, Path(ref).name).as_posix(), "sha256": None}
    folders = [*run_dir.resolve().parents, results, run_dir / ref.get("results", ".")]
    tried += [folder / ref["path"] for folder in folders]
    differs = []
    for path in dict.fromkeys(p.resolve() for p in tried):
        if path.is_file():
            record = read_record(path, REDO)
            if ref["sha256"] in (None, digest(record)):
                return path, record
            differs.append(str(path))
    where = f"{', '.join(differs)} hold{'s' if len(differs) == 1 else ''} other contents" if differs else \
        f"no folder above the run, nor {results}, nor the results folder it was made with holds it"
    raise DataError(f"{run_dir / 'run.json'}: its calibration {ref['path']} (sha256 {ref['sha256']}) is missing: "
                    f"{where}; copy the calibration the run used to RESULTS/{ref['path']}")


def load_run(run_dir: Path, results: Path = RESULTS) -> dict[str, Any]:
    """Every record of a run: run.json, speed, the quality curves by step and the calibration (``results``:
    where to look for it when no folder above the run holds it)."""
    run = read_record(run_dir / "run.json", REDO)
    curves = {}
    for path in sorted((run_dir / "quality").glob("*.json")):
        record = read_record(path, REDO)
        for slug in record["steps"]:
            curves[slug] = {**record, "owner": path.stem}
    for step in run.get("steps", []):
        if step.get("skip") is None and step.get("slug") not in curves:
            raise DataError(f"{run_dir / 'quality'}: no quality record holds step {step.get('slug')!r}; "
                            "run the ladder again with the same command: what is missing is trained again")
    repeat = run_dir / "repeat.json"  # runs made before adaptive repetition have none
    return {"run": run, "speed": read_record(run_dir / "speed.json", REDO), "curves": curves,
            "repeat": read_record(repeat, REDO) if repeat.is_file() else None,
            "calibration": find_calibration(run_dir, run, results)[1]}


def derive(records: dict[str, Any]) -> dict[str, Any]:
    """Rows (one per step) and the run-level facts the tables and charts need."""
    run, speed, calibration = records["run"], records["speed"], records["calibration"]
    budget_s, target = run["budget_s"], run["target_ndcg"]
    noise = calibration["summary"]["noise_sd"]
    rows: list[dict[str, Any]] = []
    first: dict[str, Any] | None = None
    previous: dict[str, Any] | None = None
    for s in run["steps"]:
        row: dict[str, Any] = {k: s[k] for k in ("slug", "name", "change", "notes", "skip")}
        row["status"] = "skipped" if s["skip"] else "done"
        if not s["skip"]:
            step = Step(s["index"], s["name"], s["change"], TrainConfig(**s["train"]))
            row.update(speed_summary(speed, step))
            row["global_batch"] = step.train.global_batch
            row["ml20m_epoch_s"] = ML20M.train_users / row["users_per_s"]  # an epoch of the real data
            row.update(_quality(records["curves"][s["slug"]], row["seconds_per_update"], budget_s, target))
            row["quality_from"] = None if records["curves"][s["slug"]]["owner"] == s["slug"] \
                else records["curves"][s["slug"]]["owner"]
            first = first or row
            row["step_factor"] = row["users_per_s"] / previous["users_per_s"] if previous else 1.0
            row["total_factor"] = row["users_per_s"] / first["users_per_s"]
            row["first_over_this"] = first["users_per_s"] / row["users_per_s"]
            row["ndcg_vs_first"] = row["ndcg_at_budget"] - first["ndcg_at_budget"]
            row["flagged"] = noise is not None and row["ndcg_vs_first"] < -NOISE_SIGMAS * noise
            previous = row
        rows.append(row)
    spread = verdicts.annotate(rows, records)
    for row in rows:  # the factor that matters (over the step before; over the first in a leave-one-out)
        compared = row.get("vs_first" if run["ladder"]["mode"] == "leave-one-out" else "vs_previous")
        row["within_spread"] = compared is not None and compared["speed"].startswith(verdicts.UNDECIDED)
    return {"rows": rows, "seed_spread": spread, "repeat": records.get("repeat"),
            "budget_s": budget_s, "target": target, "noise_sd": noise,
            "baselines": calibration["baselines"], "converged": calibration["summary"]["converged_ndcg"],
            "mode": run["ladder"]["mode"], "ladder": run["ladder"]["name"], "run": run,
            "speed_items": speed["workload"]["items"]}


def _quality(curve: dict[str, Any], seconds_per_update: float, budget_s: float, target: float) -> dict[str, Any]:
    """The seed-mean curve on this step's time axis, cut at the budget: NDCG at T and time to target
    (interpolated between the validations either side, ``verdicts.crossing``)."""
    points = [{"t": p["updates"] * seconds_per_update, "updates": p["updates"], "ndcg": p["ndcg@100"],
               "ndcg_lo": p["ndcg_lo"], "ndcg_hi": p["ndcg_hi"], "recall@20": p["recall@20"],
               "recall@50": p["recall@50"]} for p in verdicts.mean_curve(curve)]
    within = [p for p in points if p["t"] <= budget_s * (1 + 1e-9)] or points[:1]
    reached = verdicts.crossing([{"updates": p["updates"], "ndcg@100": p["ndcg"]} for p in within], target)
    last = within[-1]
    return {"curve": within, "ndcg_at_budget": last["ndcg"], "recall20_at_budget": last["recall@20"],
            "recall50_at_budget": last["recall@50"],
            "time_to_target_s": reached * seconds_per_update if reached is not None else None,
            "updates_in_budget": last["updates"],
            "curve_ends_early": last["updates"] >= curve["horizon_updates"] and last["t"] < budget_s * 0.99,
            "quality_train_s": curve["curve"][-1]["train_s"], "quality_eval_s": curve["curve"][-1]["eval_s"]}


COLUMNS = ("name", "status", "users_per_s", "window_min", "window_max", "step_p10", "step_p90", "ml20m_epoch_s",
           "step_factor", "total_factor", "first_over_this", "mfu", "peak_rss_bytes", "device_peak_bytes",
           "global_batch", "updates_in_budget", "ndcg_at_budget", "recall20_at_budget", "recall50_at_budget",
           "within_spread", "ndcg_vs_first", "flagged", "time_to_target_s", "quality_from", "quality_train_s",
           "quality_eval_s", "notes", "skip", "disturbed_windows", "windows_set_aside", "others_share_max",
           "round_gemm_min", "round_gemm_max", *verdicts.CSV_COLUMNS)


def to_csv(derived: dict[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in derived["rows"]:
        writer.writerow({**row, **verdicts.csv_fields(row), "notes": "; ".join(row["notes"])})
    return buf.getvalue()


def to_markdown(derived: dict[str, Any]) -> str:
    loo = derived["mode"] == "leave-one-out"
    factor = "fastest / this" if loo else "step x | total x"
    lines = [f"| step | users/s (95%) | ML-20M epoch | {factor} | MFU | peak memory | batch | "
             f"NDCG@100 at T | vs {'fastest' if loo else 'baseline'} | time to target | notes |",
             "|---|---|---|---|---|---|---|---|---|---|---|" + ("" if loo else "---|")]
    for r in derived["rows"]:
        if r["status"] != "done":
            lines.append(f"| {r['name']} | skipped | |{'' if loo else ' |'} | | | | | | | {r['skip']} |")
            continue
        total = r["vs_first"]["has"] if r["vs_first"] else None
        factors = verdicts.cell(r["first_over_this"], total and total.inverse()) if loo else \
            verdicts.cell(r["step_factor"], r["vs_previous"]["has"] if r["vs_previous"] else None) + " | " + \
            verdicts.cell(r["total_factor"], total)
        flag = " ⚠" if r["flagged"] else ""
        ttt = verdicts.seconds(r["time_to_target_s"], r["time_to_target_interval"]) \
            if r["time_to_target_s"] is not None else "not reached"
        caveats = ["speed not distinguishable from the step it is compared with"] if r["within_spread"] else []
        if r["curve_ends_early"]:
            caveats.append("quality curve ends at the calibration's length, before T")
        caveats += [n for n in [disturbance_note(r, len(r["window_medians"]) + r["windows_set_aside"])] if n]
        shared = [f"quality curve of '{r['quality_from']}' (same computation)"] if r["quality_from"] else []
        notes = "; ".join(r["notes"] + caveats + shared)
        rss = f"{r['peak_rss_bytes'] / 2**30:.1f} GiB" if r["peak_rss_bytes"] else "-"
        if r["device_peak_bytes"]:
            rss += f", GPU {r['device_peak_bytes'] / 2**30:.1f} GiB"
        rate = verdicts.cell(r["users_per_s"], r["users_per_s_interval"] or verdicts.Estimate.unknown(r["users_per_s"]),
                             0)
        lines.append(f"| {r['name']} | {rate} "
                     f"| {r['ml20m_epoch_s']:.0f} s | {factors} | {_maybe(r['mfu'])} | {rss} | {r['global_batch']:,} "
                     f"| {r['ndcg_at_budget']:.4f}{flag} | {r['ndcg_vs_first']:+.4f} | {ttt} | {notes} |")
    b = derived["baselines"]
    lines += ["", f"T = {derived['budget_s']:.0f} s per step; target NDCG@100 {derived['target']:.4f} "
              f"({derived['target'] / derived['converged']:.0%} of the calibration's converged "
              f"{derived['converged']:.4f}); seed noise (sd) "
              + (f"{derived['noise_sd']:.4f}" if derived["noise_sd"] is not None else "unknown (one seed)")
              + "; " + ", ".join(f"{k} {v:.4f}" for k, v in b.items()) + " (validation NDCG@100).",
              "⚠: below the first step at T by more than "
              f"{NOISE_SIGMAS:g} seed deviations. Times are updates x the step's seconds per update "
              f"measured at {derived['speed_items']:,} items; time to target where the seed-mean curve crosses "
              "the target. In brackets: 95% intervals (users/s over its timing windows, factors over the rounds "
              "both steps were timed in, times from the seeds and the windows; ablations/verdicts.py).", "",
              *verdicts.table(derived)]
    return "\n".join(lines) + "\n"


def _maybe(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


TENSORBOARD = "tensorboard"
"""``tensorboard --logdir RUN/tensorboard`` (or the run folder) overlays the steps, one TensorBoard run each."""


def write_events_of(run_dir: Path, derived: dict[str, Any]) -> None:
    """One event file per step that ran: validation NDCG@100 and Recall@20/50 against updates (step axis)
    and this step's training seconds (relative axis), and its users/s at its index in the ladder."""
    from vaecf.events import Point, write_events

    for index, r in enumerate(derived["rows"]):
        if r["status"] != "done":
            continue
        points = [Point(p["updates"], p["t"], {"validation/ndcg@100": p["ndcg"], "validation/recall@20": p["recall@20"],
                                               "validation/recall@50": p["recall@50"]}) for p in r["curve"]]
        points.append(Point(index, 0.0, {"speed/users_per_s": r["users_per_s"]}))
        write_events(run_dir / TENSORBOARD / r["slug"], points)


def write_report(run_dir: Path, page: Path | None = None) -> dict[str, Any]:
    """table.csv, table.md, the charts and the one-file page (``page``, default report.html), from the
    records in ``run_dir``."""
    from ablations import page as html_page
    from ablations.charts import draw

    records = load_run(run_dir)
    derived = derive(records)
    atomic_write(run_dir / "table.csv", lambda tmp: tmp.write_text(to_csv(derived)))
    table = to_markdown(derived)
    atomic_write(run_dir / "table.md", lambda tmp: tmp.write_text(table))
    atomic_write(run_dir / "verdicts.md", lambda tmp: tmp.write_text(verdicts.markdown(derived)))
    atomic_write(run_dir / "summary.md", lambda tmp: tmp.write_text(summary.markdown(run_dir, derived)))
    draw(run_dir, derived)
    if derived["mode"] == "tune":
        from ablations.tune_result import write_result

        write_result(run_dir, records, derived)
    write_events_of(run_dir, derived)
    text = html_page.render(run_dir, derived, table)
    atomic_write(page or run_dir / "report.html", lambda tmp: tmp.write_text(text))
    return derived
