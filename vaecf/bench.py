"""``vaecf bench``: training, serving and data-parallel speed, each recorded with one header.

Three entry points over one ``BenchSpec`` (the data, the warm-up and timed steps, the record):

* ``bench_training``: for each batch size the GEMM ceiling is measured first
  (``perf.gemm_rate``, same process), then each input path trains ``warmup + steps`` steps
  (``vaecf.train_speed``); users/s is the median over the timed steps with the 10th-90th
  percentile spread, MFU is ``flops.mfu``. ``breakdown`` adds where each step's time goes
  (``vaecf/breakdown.py``) beside the output GEMMs' share.
* ``bench_serving``: evaluation and single-user recommend speed (``vaecf/serving.py``).
* ``bench_workers``: 1 against N data-parallel workers (``probe.compare_workers``).

All three time ``vaecf.workload``'s ML-20M-shaped rows unless given another data set. Data
preparation runs in a child process so its peak RSS is measured on its own. The record goes to
``results/<machine>/bench-<time>.json`` with the provenance header (``perf.machine_info``),
rewritten after every row: run the same command with the same ``out`` again and finished rows
are kept, the rest measured (a row whose process was killed, e.g. for memory, stays marked
``started`` until then).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from vaecf.config import WARMUP_STEPS, InputKind, ModelConfig, Pipeline, Precision, TrainConfig
from vaecf.data.prepare import folder_name
from vaecf.data.split import Split
from vaecf.errors import VaecfError
from vaecf.flops import mfu, output_gemm_flops
from vaecf.io import read_json, write_json
from vaecf.perf import NA, device_peak_bytes, gemm_rate, machine_info, peak_rss_bytes, reset_device_peak
from vaecf.progress import Phase
from vaecf.provenance import machine_name
from vaecf.tfenv import TF32
from vaecf.train_speed import train_speed
from vaecf.workload import spec as workload_spec


@dataclass(frozen=True)
class BenchSpec:
    """What every bench mode measures on, for how long, and where it records it."""

    dataset: str = field(default_factory=workload_spec)
    """Prepared (and cached under ``cache``) when ``data`` is not given: ML-20M's shape by default."""
    data: Path | None = None
    """An already prepared split."""
    cache: Path = Path(".cache/bench-data")
    warmup: int = WARMUP_STEPS
    """Untimed steps first."""
    steps: int = 10
    """Timed steps."""
    out: Path | None = None
    """The record (default: ``results/<machine>/bench-<time>.json``)."""
    argv: tuple[str, ...] = ()
    """The command that made the record (its provenance header's ``command``)."""


def prepare_in_child(dataset: str, folder: Path) -> int:
    """Prepare ``dataset`` in a child process; returns the child's peak RSS in bytes."""
    subprocess.run([sys.executable, "-m", "vaecf", "data", "prepare", dataset, "--out", str(folder)],
                   check=True, stdout=subprocess.DEVNULL)
    return peak_rss_bytes(children=True)


def bench_training(spec: BenchSpec, batch_sizes: Sequence[int], inputs: Sequence[InputKind],
                   pipeline: Pipeline = "tfdata", precision: Precision = "float32", xla: bool = False,
                   breakdown: bool = False) -> Path:
    """Measure every batch size x input not yet in the record; the record's path."""
    out, record, split = _open(spec)
    record["rows"] = _finished_rows(record.get("rows", []))
    done = {_key(r) for r in record["rows"]}
    hidden = ModelConfig().hidden[-1]  # the output layer's input width
    todo = max(0, len(batch_sizes) * len(inputs) - len(done))
    phase = Phase(todo, "bench", "configurations")  # closed after the loop; its thread is a daemon
    for batch in batch_sizes:
        batch = min(batch, split.train.shape[0])
        configs = [TrainConfig(batch_size=batch, input=kind, pipeline=pipeline, precision=precision, xla=xla)
                   for kind in inputs]
        configs = [t for t in configs if _key(_row_settings(t)) not in done]
        if not configs:
            continue
        rate = gemm_rate(batch, hidden, split.n_items, precision)
        for train in configs:
            # Recorded as started first: if the process is killed (out of memory), the record says where.
            record["rows"].append({**_row_settings(train), "status": "started"})
            write_json(out, record)
            reset_device_peak()
            row = {**_row_settings(train), "gemm_flops": rate,
                   **train_speed(split, train, spec.warmup, spec.steps, parts=breakdown)}
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
    return out


def bench_serving(spec: BenchSpec, requests: int = 1000, k: int = 20) -> Path:
    """Add evaluation speed and ``requests`` top-``k`` recommend latencies (kept if already there); the path."""
    from vaecf.serving import measure_serving, serving_lines

    out, record, split = _open(spec)
    if "serving" not in record:
        record["serving"] = measure_serving(split, requests, k, spec.warmup, spec.steps)
        record["peak_rss_bytes"] = peak_rss_bytes()
        write_json(out, record)
    for line in serving_lines(record["serving"]):
        print(line, flush=True)
    return out


def bench_workers(spec: BenchSpec, workers: int, batch_size: int = TrainConfig.batch_size) -> Path:
    """Add 1 against ``workers`` data-parallel workers (``probe.compare_workers``, kept if already there)."""
    from vaecf.probe import compare_workers

    out, record, _ = _open(spec)
    if "workers" not in record:
        rows = compare_workers(workers, batch_size=batch_size)
        base = rows[0]["step_users_per_s"]["median"]
        for row in rows:
            if "skipped" not in row:
                row["vs_one_worker"] = row["step_users_per_s"]["median"] / base
        record["workers"] = rows
        write_json(out, record)
    for row in record["workers"]:
        print(_workers_line(row), flush=True)
    return out


def _open(spec: BenchSpec) -> tuple[Path, dict[str, Any], Split]:
    """The record (resumed if ``spec.out`` exists) with a fresh provenance header, its path and the split."""
    out = spec.out or Path("results") / machine_name() / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    record: dict[str, Any] = read_json(out) if out.is_file() else {}
    record.update(machine=machine_info(list(spec.argv)), argv=list(spec.argv))
    data = spec.data
    if data is None:
        folder = spec.cache / folder_name(spec.dataset)
        start = time.perf_counter()
        prepared = {"dataset": spec.dataset, "peak_rss_bytes": prepare_in_child(spec.dataset, folder),
                    "seconds": time.perf_counter() - start}
        record.setdefault("prepare", prepared)  # a resumed record keeps its first (uncached) preparation
        data = folder
    split = Split.load(data)
    if record.setdefault("data", split.stats)["cache_key"] != split.stats["cache_key"]:
        raise VaecfError(f"{out} holds results for another data set; use a new --out")
    return out, record, split


def _row_settings(train: TrainConfig) -> dict[str, Any]:
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


def _workers_line(row: dict[str, Any]) -> str:
    if "skipped" in row:
        return f"workers={row['workers']} engine={row['engine']} skipped: {row['skipped']}"
    u = row["step_users_per_s"]
    return (f"workers={row['workers']} engine={row['engine']} users_per_s={u['median']:.0f} "
            f"(p10 {u['p10']:.0f}, p90 {u['p90']:.0f}) vs_one_worker={row['vs_one_worker']:.2f}")
