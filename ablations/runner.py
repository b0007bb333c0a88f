"""Run a ladder: every step trained and measured the same way, one record per step.

Each step is a ``vaecf train`` child process, so its peak memory is its own, its TensorFlow
state starts clean, and a data-parallel step launches its workers like a user would. The GEMM
ceiling (the output layer's GEMMs at the step's per-worker batch and precision) is measured in
this process right before and right after each step; the record keeps both and uses the mean.
Records are written atomically under ``results/<machine>/<run-id>/``; running the same command
again skips finished steps, and a step killed mid-way resumes from its last
finished epoch (``vaecf train`` resumes its own run folder).
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ablations.ladder import BUDGETS, Budget, Hardware, Ladder, Step, resolve
from vaecf.config import ModelConfig
from vaecf.data.prepare import default_protocol, folder_name, prepare
from vaecf.data.split import Split
from vaecf.errors import VaecfError
from vaecf.io import read_json, write_json
from vaecf.model import flops_per_user
from vaecf.perf import gemm_rate, machine_info, machine_name


def run_id(ladder: str, dataset: str, budget: str) -> str:
    """Deterministic, so that running the same command again resumes the same run."""
    return "-".join((ladder, folder_name(dataset), budget))


def run_ladder(ladder_name: str, dataset: str | None = None, budget_name: str = "quick",
               results: Path = Path("results"), data_cache: Path = Path(".cache/data"),
               source: Path | None = None, out: Path | None = None, hardware: Hardware | None = None,
               log=print) -> Path:  # noqa: ANN001 - any print-like callable
    """Run (or resume) every step of a ladder; returns the run folder."""
    ladder = Ladder.load(ladder_name)
    budget: Budget = BUDGETS[budget_name]
    dataset = dataset or budget.dataset
    hardware = hardware or Hardware.detect()
    data_dir = data_cache / folder_name(dataset)
    split = prepare(dataset, data_dir, source=source, protocol=default_protocol(dataset))
    run_dir = out or results / machine_name() / run_id(ladder.name, dataset, budget.name)
    steps = resolve(ladder, hardware, budget, split.train.shape[0])
    _start_run(run_dir, ladder, budget, dataset, data_dir, split, steps, hardware)
    log(f"ladder {ladder.name}: {len(steps)} steps on {dataset} ({budget.name} budget, {budget.epochs} epochs) "
        f"-> {run_dir}")
    for step in steps:
        record_path = run_dir / "steps" / f"{step.slug}.json"
        if record_path.is_file():
            log(f"[{step.index + 1}/{len(steps)}] {step.name}: done earlier, kept")
            continue
        if step.skip:
            write_json(record_path, _record(step, "skipped"))
            log(f"[{step.index + 1}/{len(steps)}] {step.name}: skipped ({step.skip})")
            continue
        record = _run_step(step, run_dir, data_dir, budget, split)
        write_json(record_path, record)
        v = record["validation"]["ndcg@100"]
        log(f"[{step.index + 1}/{len(steps)}] {step.name}: {record['throughput']['median']:.0f} users/s, "
            f"MFU {record['mfu']:.2f}, validation NDCG@100 {v:.4f}")
    from ablations.report import write_report

    write_report(run_dir)
    return run_dir


def _start_run(run_dir: Path, ladder: Ladder, budget: Budget, dataset: str, data_dir: Path, split: Split,
               steps: list[Step], hardware: Hardware) -> None:
    """Write run.json (or check the existing one describes the same run)."""
    path = run_dir / "run.json"
    identity = {"ladder": dataclasses.asdict(ladder), "budget": dataclasses.asdict(budget), "dataset": dataset,
                "data_hash": split.stats.get("cache_key")}
    if path.is_file():
        run = read_json(path)
        if {k: run[k] for k in identity} != identity:
            raise VaecfError(f"{run_dir} holds another run (ladder, budget or data differ); "
                             "remove it or choose another --out")
        return
    run = {**identity, "machine": machine_info(), "hardware": dataclasses.asdict(hardware),
           "data_dir": str(data_dir), "data": split.stats, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "steps": [dataclasses.asdict(s) for s in steps]}
    write_json(path, run)


def _run_step(step: Step, run_dir: Path, data_dir: Path, budget: Budget,
              split: Split) -> dict[str, Any]:
    train_dir = run_dir / "steps" / step.slug
    sets = [f"--set={k}={v}" for k, v in {**step.overrides, "epochs": budget.epochs, "eval_every": 1}.items()]
    cmd = [sys.executable, "-m", "vaecf", "train", "--data", str(data_dir), "--out", str(train_dir), *sets]
    train_dir.mkdir(parents=True, exist_ok=True)
    rate_before = _ceiling(step, split)
    start = time.perf_counter()
    with open(train_dir / "train.log", "a") as stdout:
        done = subprocess.run(cmd, stdout=stdout, stderr=None)
    if done.returncode != 0:
        raise VaecfError(f"step {step.name!r} failed (exit {done.returncode}); its log: {train_dir / 'train.log'}; "
                         "finished steps are kept and the next run resumes here")
    result = read_json(train_dir / "result.json")
    history = read_json(train_dir / "history.json")
    config = read_json(train_dir / "config.json")["config"]
    wall = time.perf_counter() - start
    rates = [rate_before, _ceiling(step, split)]
    rate = sum(rates) / 2
    fpu = flops_per_user(split.n_items, ModelConfig(**{**config["model"], "hidden": tuple(config["model"]["hidden"])}),
                         split.train.nnz / split.train.shape[0])
    # Checkpoints are for resuming the step; once its record exists they are dead weight.
    for folder in ("ckpt", "best"):
        shutil.rmtree(train_dir / folder, ignore_errors=True)
    epoch_s = sorted(h["epoch_s"] for h in history)
    return {
        **_record(step, "done"),
        "config": config,
        "throughput": result["users_per_s"],
        "epoch_s_median": epoch_s[len(epoch_s) // 2],
        "train_s": result["train_s"],
        "wall_s": wall,
        "peak_rss_bytes": result["peak_rss_bytes"],
        "device_peak_bytes": result["device_peak_bytes"],
        "gemm_flops": rate,
        "gemm_flops_before_after": rates,
        "flops_per_user": fpu,
        "mfu": fpu * result["users_per_s"]["median"] / rate,
        "validation": result["validation"],
        "best_epoch": result["best_epoch"],
        "history": [{k: h[k] for k in ("epoch", "train_s", "loss", "val_ndcg@100") if k in h} for h in history],
    }


def _ceiling(step: Step, split: Split) -> float:
    """The GEMM rate a step is measured against: its per-worker batch at its precision.

    Measured around the step, so that a machine shared with other work is compared with
    itself at about the same moment.
    """
    per_worker = int(step.overrides.get("batch_size", 500)) // int(step.overrides.get("workers", 1))
    return gemm_rate(per_worker, ModelConfig().hidden[-1], split.n_items, step.overrides.get("precision", "float32"))


def _record(step: Step, status: str) -> dict[str, Any]:
    return {"index": step.index, "name": step.name, "change": step.change, "status": status,
            "skip_reason": step.skip, "notes": step.notes, "overrides": step.overrides}
