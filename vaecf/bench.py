"""``vaecf bench``: training throughput and model FLOP utilisation at given batch sizes and inputs.

For each batch size the GEMM ceiling is measured first (``perf.gemm_rate``, same process),
then each input path trains ``warmup + steps`` steps; users/s is the median over the timed
steps with the 10th-90th percentile spread. Data preparation runs in a child process so its
peak RSS is measured on its own. ``--breakdown`` adds where each step's time goes
(``vaecf/breakdown.py``) beside the output GEMMs' share. The record goes to
``results/<machine>/bench-<time>.json``, rewritten after every row: run the same command with
the same ``--out`` again and finished rows are kept, the rest measured (a row whose process was
killed, e.g. for memory, stays marked ``started`` until then). ``--workers N`` adds 1 against
N data-parallel workers on ML-20M's shape (``probe.compare_workers``). ``--serving`` measures
evaluation and single-user recommend speed instead of training rows (``vaecf/serving.py``).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vaecf.config import InputKind, ModelConfig, Pipeline, Precision, RunConfig, TrainConfig
from vaecf.data.prepare import folder_name
from vaecf.data.split import Split
from vaecf.errors import VaecfError
from vaecf.flops import flops_per_user, output_gemm_flops
from vaecf.io import read_json, write_json
from vaecf.perf import NA, device_peak_bytes, gemm_rate, machine_info, mfu, peak_rss_bytes, reset_device_peak
from vaecf.progress import Phase
from vaecf.provenance import machine_name
from vaecf.tfenv import TF32


def prepare_in_child(dataset: str, folder: Path) -> int:
    """Prepare ``dataset`` in a child process; returns the child's peak RSS in bytes."""
    subprocess.run([sys.executable, "-m", "vaecf", "data", "prepare", dataset, "--out", str(folder)],
                   check=True, stdout=subprocess.DEVNULL)
    return peak_rss_bytes(children=True)


def measure(split: Split, train: TrainConfig, warmup: int, steps: int, parts: bool = False) -> dict[str, Any]:
    """Throughput and MFU of one configuration (``warmup`` + ``steps`` steps of epoch 0).

    With ``parts``, then the seconds of each part of the step on the epoch's first batch.
    """
    from vaecf.breakdown import breakdown
    from vaecf.pipeline import batches
    from vaecf.train import Trainer

    config = RunConfig(model=ModelConfig(), train=train)
    trainer = Trainer(split.n_items, config, warmup_steps=warmup)
    needed = warmup + steps
    epochs = 0
    while len(trainer.throughput.users_per_s) < steps and epochs < needed:
        trainer.train_epoch(split.train, epochs, max_steps=needed, show_progress=False)
        epochs += 1
    tput = trainer.throughput.summary()
    if tput["median"] is None:  # every step a partial batch or a warm-up: nothing to report
        raise VaecfError(f"batch {train.batch_size}: no full batch was timed ({split.train.shape[0]} training users "
                         f"for {warmup} warm-up and {steps} timed steps); use a smaller batch or more users")
    nnz = split.train.nnz / split.train.shape[0]
    fpu = flops_per_user(split.n_items, config.model, nnz)
    row: dict[str, Any] = {"users_per_s": tput, "flops_per_user": fpu}
    if parts:
        first = next(batches(split.train, np.arange(train.batch_size), train.batch_size, train.input, "feed"))
        row["breakdown_s"] = breakdown(trainer, first)
    return row


def bench(*, dataset: str, data: Path | None, cache: Path, batch_sizes: Sequence[int],
          inputs: Sequence[InputKind], pipeline: Pipeline, precision: Precision, xla: bool, warmup: int,
          steps: int, breakdown: bool, workers: int | None, out: Path | None, argv: list[str],
          serving: bool = False, requests: int = 1000, k: int = 20) -> Path:
    """Measure every batch size x input not yet in the record at ``out``; the record's path.

    ``data`` is a prepared split; without it ``dataset`` is prepared under ``cache`` (in a child
    process, its peak RSS recorded). ``workers`` adds 1 against that many data-parallel workers.
    ``serving`` measures evaluation and ``requests`` top-``k`` recommendations instead of rows.
    """
    out = out or Path("results") / machine_name() / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    record: dict[str, Any] = read_json(out) if out.is_file() else {"rows": []}
    record.update(machine=machine_info(), argv=argv)
    if data is None:
        folder = cache / folder_name(dataset)
        start = time.perf_counter()
        prepared = {"dataset": dataset, "peak_rss_bytes": prepare_in_child(dataset, folder),
                    "seconds": time.perf_counter() - start}
        record.setdefault("prepare", prepared)  # a resumed record keeps its first (uncached) preparation
        data = folder
    split = Split.load(data)
    if record.setdefault("data", split.stats)["cache_key"] != split.stats["cache_key"]:
        raise VaecfError(f"{out} holds results for another data set; use a new --out")
    if serving:
        return _serving(split, record, out, requests, k, warmup, steps)
    record["rows"] = _finished_rows(record["rows"])
    done = {_key(r) for r in record["rows"]}
    hidden = ModelConfig().hidden[-1]  # the output layer's input width
    todo = max(0, len(batch_sizes) * len(inputs) - len(done))
    phase = Phase(todo, "bench", "configurations")  # closed after the loop; its thread is a daemon
    for batch in batch_sizes:
        batch = min(batch, split.train.shape[0])
        configs = [TrainConfig(batch_size=batch, input=kind, pipeline=pipeline, precision=precision, xla=xla)
                   for kind in inputs]
        configs = [t for t in configs if _key(_describe(t)) not in done]
        if not configs:
            continue
        rate = gemm_rate(batch, hidden, split.n_items, precision)
        for train in configs:
            # Recorded as started first: if the process is killed (out of memory), the record says where.
            record["rows"].append({**_describe(train), "status": "started"})
            write_json(out, record)
            reset_device_peak()
            row = {**_describe(train), "gemm_flops": rate,
                   **measure(split, train, warmup, steps, parts=breakdown)}
            peak = device_peak_bytes()  # the GPU's per-step peak; none to read on a CPU
            row.update(device_peak_bytes=NA if peak is None else peak, tf32=TF32[train.precision])
            row["mfu"] = mfu(row["flops_per_user"], row["users_per_s"]["median"], rate)
            if breakdown:  # the ceiling's share of the step: the three output GEMMs at the measured rate
                row["breakdown_s"]["output_gemms"] = output_gemm_flops(batch, hidden, split.n_items) / rate
            record["rows"][-1] = {**row, "status": "done"}
            record["peak_rss_bytes"] = peak_rss_bytes()
            write_json(out, record)
            phase.advance(1, f"batch {batch}, {train.input} input")
            tqdm.write(_row_line(row), file=sys.stdout)  # above the bar on a terminal
    phase.close()
    if workers is not None and "workers" not in record:
        record["workers"] = _compare_workers(workers, batch_sizes[0])
        write_json(out, record)
    return out


def _serving(split: Split, record: dict[str, Any], out: Path, requests: int, k: int, warmup: int,
             steps: int) -> Path:
    """Add the serving figures to the record (kept if already there), print them; the record's path."""
    from vaecf.serving import measure_serving, serving_lines

    if "serving" not in record:
        record["serving"] = measure_serving(split, requests, k, warmup, steps)
        record["peak_rss_bytes"] = peak_rss_bytes()
        write_json(out, record)
    for line in serving_lines(record["serving"]):
        print(line, flush=True)
    return out


def _compare_workers(workers: int, batch: int) -> list[dict[str, Any]]:
    """1 worker against ``workers`` on the same fixed workload (``probe.compare_workers``), printed."""
    from vaecf.probe import compare_workers

    rows = compare_workers(workers, batch_size=batch)
    base = rows[0]["step_users_per_s"]["median"]
    for row in rows:
        if "skipped" in row:
            print(f"workers={row['workers']} engine={row['engine']} skipped: {row['skipped']}")
            continue
        u = row["step_users_per_s"]
        row["vs_one_worker"] = u["median"] / base
        print(f"workers={row['workers']} engine={row['engine']} users_per_s={u['median']:.0f} "
              f"(p10 {u['p10']:.0f}, p90 {u['p90']:.0f}) vs_one_worker={row['vs_one_worker']:.2f}", flush=True)
    return rows


def _describe(train: TrainConfig) -> dict[str, Any]:
    return {"batch_size": train.batch_size, "input": train.input, "pipeline": train.pipeline,
            "precision": train.precision, "xla": train.xla}


def _key(row: dict[str, Any]) -> tuple:
    return tuple(row[k] for k in ("batch_size", "input", "pipeline", "precision", "xla"))


def _finished_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows a resumed bench keeps; a row left 'started' died with its process and runs again."""
    for row in rows:
        if row["status"] != "done":
            print(f"batch={row['batch_size']} input={row['input']}: did not finish last time (the process "
                  "was killed: out of memory?); trying again", file=sys.stderr)
    return [row for row in rows if row["status"] == "done"]


def _row_line(row: dict[str, Any]) -> str:
    u = row["users_per_s"]
    return (f"batch={row['batch_size']} input={row['input']} users_per_s={u['median']:.0f} "
            f"(p10 {u['p10']:.0f}, p90 {u['p90']:.0f}, {u['steps']} steps) "
            f"gemm_gflops={row['gemm_flops'] / 1e9:.1f} mfu={row['mfu']:.3f}"
            + "".join(f" {k}_ms={v * 1e3:.0f}" for k, v in row.get("breakdown_s", {}).items()))
