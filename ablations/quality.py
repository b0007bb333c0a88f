"""Quality: validation NDCG@100 of a configuration as it trains, and the calibration it is judged by.

A step's quality curve is validation NDCG@100 (and Recall@20/50) every few updates, trained on
the budget's quality data in a child process (``python -m ablations.quality JOB.json OUT.json``;
data-parallel steps as a world of workers). Validation time is kept out of the training
seconds and recorded beside them. The runner turns updates into time with the step's measured
seconds per update at ML-20M's shape (``ablations.speed``), so that every curve is on the time
axis of the speed it was measured at.

The calibration is the paper's recipe (batch 500) trained long on the same data with several
seeds: its converged validation NDCG@100 (the best of the seed-mean curve) defines the target,
its seed spread the noise a quality difference must exceed, and its updates to the target the
time budget. Popularity, EASE and (on synthetic data) the oracle are recorded with it.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ablations.jobs import REDO, run_job
from vaecf.config import ModelConfig, TrainConfig
from vaecf.data.split import Split
from vaecf.errors import VaecfError
from vaecf.integrity import read_record, write_record
from vaecf.io import read_json
from vaecf.progress import Phase
from vaecf.provenance import header

NOISE_SIGMAS = 2.0
"""A quality difference counts when it exceeds this many calibration seed deviations (report and charts)."""
CALIBRATION_EVERY = 10
"""Updates between validations in the calibration (fine enough to place the target)."""
BASE_SEED = TrainConfig().seed


def train_curve(data: Path, train: TrainConfig, updates: int, every: int, work: Path, log: Path) -> dict[str, Any]:
    """Train ``train`` for ``updates`` on the split in ``data`` in a child (or a world); its curve."""
    job = {"data": str(data), "train": dataclasses.asdict(train), "updates": updates, "every": every}
    return run_job("ablations.quality", job, work, train.workers, train.engine, log, "training for quality")


def seeds_in(record: dict[str, Any]) -> int:
    """Seeds a curve record holds: its ``curve`` (the configuration's own seed), then ``more_seeds``."""
    return 1 + len(record.get("more_seeds", []))


def add_seed(path: Path, data: Path) -> float:
    """Train the curve recorded at ``path`` once more with the next seed (its seed + the seeds it holds),
    for the same updates and validations, and add it to the record; the seconds it took.

    Replicates of one configuration give the seed spread of its time to target (``ablations.verdicts``).
    """
    start = time.monotonic()
    record = read_record(path, REDO)
    train = TrainConfig(**record["train"])
    train = train.with_overrides(seed=train.seed + seeds_in(record))
    result = train_curve(data, train, record["updates"], record["every"], path.parent / f".{path.stem}-{train.seed}",
                         path.with_suffix(".log"))
    record.setdefault("more_seeds", []).append({"seed": train.seed, "curve": result["curve"]})
    write_record(path, record)
    return time.monotonic() - start


def child_main(job_path: Path, out_path: Path) -> None:
    from vaecf.launch import is_worker, world_from_env

    job = read_json(job_path)
    train = TrainConfig(**job["train"])
    world = world_from_env(train.engine, train.compression) if is_worker() else None  # before any other TensorFlow op
    from vaecf.config import RunConfig
    from vaecf.perf import peak_rss_bytes
    from vaecf.train import Trainer

    split = Split.load(Path(job["data"]))
    trainer = Trainer(split.n_items, RunConfig(ModelConfig(), train), world=world)
    curve = trainer.train_updates(split, job["updates"], job["every"])
    if trainer.world.rank == 0:
        write_record(out_path, {"curve": curve, "peak_rss_bytes": peak_rss_bytes()})


# -- calibration --------------------------------------------------------------------------------------

def calibrate(split: Split, data: Path, seeds: int, updates: int, out: Path,
              log: Callable[[str], None]) -> dict[str, Any]:
    """Train the paper's recipe ``seeds`` times for ``updates``; record, summary and baselines (resumes)."""
    record = read_record(out, "remove it to calibrate again") if out.is_file() else {
        "dataset": split.stats["dataset"], "cache_key": split.stats["cache_key"], "data": split.stats,
        "config": dataclasses.asdict(TrainConfig()), "updates": updates, "every": CALIBRATION_EVERY,
        "machine": header(), "seeds": []}
    if record["cache_key"] != split.stats["cache_key"] or record["updates"] != updates:
        raise VaecfError(f"{out} calibrates other data or another length; move it away to calibrate again")
    with Phase(seeds, "calibration", "seeds", done=min(seeds, len(record["seeds"]))) as phase:
        for k in range(len(record["seeds"]), seeds):
            seed = BASE_SEED + k
            log(f"calibration: seed {seed} ({k + 1} of {seeds}), {updates} updates of the paper's recipe")
            work = out.parent / f".{out.stem}-seed{seed}"
            result = train_curve(data, TrainConfig(seed=seed), updates, CALIBRATION_EVERY, work,
                                 out.with_suffix(".log"))
            record["seeds"].append({"seed": seed, "curve": [_slim(p) for p in result["curve"]]})
            write_record(out, record)
            phase.advance(1, f"seed {seed} done")
    if "baselines" not in record:
        record["baselines"] = baselines(split)
    record["summary"] = summarise_calibration(record)
    write_record(out, record)
    return record


def baselines(split: Split) -> dict[str, float]:
    """Validation NDCG@100 of popularity, EASE (lambda picked on validation) and the oracle when known."""
    from vaecf.baselines import Popularity, select_ease
    from vaecf.metrics import evaluate

    foldin, target = split.heldout("validation")
    ease, _ = select_ease(split.train, foldin, target)
    out = {"popularity": evaluate(Popularity.fit(split.train).score, foldin, target).metrics["ndcg@100"],
           "ease": evaluate(ease.score, foldin, target).metrics["ndcg@100"]}
    if "oracle_validation" in split.stats:
        out["oracle"] = split.stats["oracle_validation"]["ndcg@100"]
    return out


def summarise_calibration(record: dict[str, Any]) -> dict[str, Any]:
    """Converged NDCG (best of the seed-mean curve), seed noise, and the mean curve itself."""
    curves = [[p["ndcg@100"] for p in s["curve"]] for s in record["seeds"]]
    n = min(len(c) for c in curves)
    values = np.array([c[:n] for c in curves])
    updates = [p["updates"] for p in record["seeds"][0]["curve"][:n]]
    mean = values.mean(axis=0)
    sd = values.std(axis=0, ddof=1) if len(curves) > 1 else np.zeros(n)
    best = int(np.argmax(mean))
    # The seed noise of a trained model: the seeds' spread pooled over the second half of the curve.
    noise = float(math.sqrt(np.mean(sd[n // 2:] ** 2))) if len(curves) > 1 else None
    return {"converged_ndcg": float(mean[best]), "converged_at_updates": updates[best],
            "noise_sd": noise, "updates": updates, "mean": mean.tolist(), "sd": sd.tolist()}


def updates_to(summary: dict[str, Any], ndcg: float) -> int | None:
    """The first calibration update count at which the seed-mean curve reaches ``ndcg``."""
    return next((u for u, v in zip(summary["updates"], summary["mean"]) if v >= ndcg), None)


def _slim(point: dict[str, Any]) -> dict[str, Any]:
    return {k: point[k] for k in ("updates", "train_s", "eval_s", "ndcg@100", "recall@20", "recall@50")}


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m ablations.quality JOB.json OUT.json")
    child_main(Path(sys.argv[1]), Path(sys.argv[2]))
