"""Ladder files: a baseline and steps, each a named set of overrides on the step before.

A ladder is TOML (see ``ladders/``). ``resolve`` turns it into concrete steps for the hardware
at hand: a float16 step becomes bfloat16 on a machine without a GPU when the step says so
(``cpu = {...}``), and a step that cannot run (more workers than GPUs or cores, float16 without
a GPU and no CPU form) is kept as *skipped, with its reason*; the steps after it build on the
last step that ran.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaecf.config import TrainConfig, replace_checked
from vaecf.launch import horovod_installed

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

LADDERS = Path(__file__).parent / "ladders"

SWITCH_NAMES = {"input": "sparse input", "pipeline": "tf.data pipeline", "precision": "mixed precision",
                "batch_size": "larger batch", "xla": "XLA", "workers": "data parallel"}
"""How leave-one-out steps name the switch they revert."""


@dataclass(frozen=True)
class Budget:
    """The training budget every step gets: the same for all, so quality is comparable."""

    name: str
    epochs: int
    max_batch_fraction: float
    """Cap a step's batch at this fraction of the training users (small data sets)."""
    dataset: str
    """Default dataset for this budget."""


BUDGETS = {
    "quick": Budget("quick", epochs=3, max_batch_fraction=0.25, dataset="synthetic:small"),
    "full": Budget("full", epochs=200, max_batch_fraction=1.0, dataset="ml-20m"),
}


@dataclass(frozen=True)
class Hardware:
    gpus: int
    cores: int
    horovod: bool

    @staticmethod
    def detect() -> Hardware:
        import tensorflow as tf

        return Hardware(gpus=len(tf.config.list_physical_devices("GPU")), cores=os.cpu_count() or 1,
                        horovod=horovod_installed())

    def describe(self) -> str:
        return f"{self.gpus} GPU(s), {self.cores} CPU core(s)" if self.gpus else f"{self.cores} CPU cores and no GPU"


@dataclass(frozen=True)
class Step:
    index: int
    name: str
    change: str
    overrides: dict[str, Any]
    """TrainConfig fields that differ from the defaults, cumulative from the baseline."""
    notes: list[str] = field(default_factory=list)
    skip: str | None = None

    @property
    def slug(self) -> str:
        return f"{self.index:02d}-" + "".join(c if c.isalnum() else "-" for c in self.name.lower()).strip("-")


@dataclass(frozen=True)
class Ladder:
    name: str
    description: str
    baseline: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)
    quality_tolerance: float = 0.02
    time_to_quality: float = 0.95
    reference: str | None = None
    mode: str = "ladder"
    full: dict[str, Any] = field(default_factory=dict)
    cpu: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def load(name_or_path: str | Path) -> Ladder:
        path = Path(name_or_path)
        if not path.suffix:
            path = LADDERS / f"{name_or_path}.toml"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in LADDERS.glob("*.toml")))
            raise FileNotFoundError(f"no ladder {name_or_path!r} (known: {known})")
        data = tomllib.loads(path.read_text())
        ladder = Ladder(**data)
        for overrides in [ladder.baseline, ladder.full, ladder.cpu, *(s.get("set", {}) for s in ladder.steps)]:
            replace_checked(TrainConfig(), overrides)  # names a misspelt field now, not mid-run
        return ladder

    def expand(self) -> list[dict[str, Any]]:
        """Steps as ``{name, change, set, cpu}``; a leave-one-out ladder is expanded from ``full``."""
        if self.mode == "ladder":
            return [{"name": "baseline", "change": "the paper's code path", "set": {}}, *self.steps]
        if self.mode != "leave-one-out":
            raise ValueError(f"ladder {self.name}: unknown mode {self.mode!r}")
        steps = [{"name": "fully optimised", "change": "every switch on", "set": self.full, "cpu": self.cpu,
                  "absolute": True}]
        for key, value in self.full.items():
            if self.baseline.get(key, value) != value:
                steps.append({"name": f"without {SWITCH_NAMES.get(key, key)}",
                              "change": f"{key}: {value} -> {self.baseline[key]}",
                              "set": {**self.full, key: self.baseline[key]}, "cpu": self.cpu, "absolute": True})
        return steps


def resolve(ladder: Ladder, hardware: Hardware, budget: Budget, train_users: int) -> list[Step]:
    """Concrete steps for this hardware, budget and data size."""
    resolved: list[Step] = []
    current = dict(ladder.baseline)
    cap = max(1, int(train_users * budget.max_batch_fraction))
    for index, spec in enumerate(ladder.expand()):
        base = dict(ladder.baseline) if spec.get("absolute") else dict(current)
        overrides = {**base, **spec.get("set", {})}
        notes: list[str] = []
        skip = None
        if overrides.get("precision") == "mixed_float16" and not hardware.gpus:
            if spec.get("cpu"):
                overrides.update(spec["cpu"])
                fallback = ", ".join(f"{k}={v}" for k, v in spec["cpu"].items())
                notes.append(f"no GPU: float16 mixed precision replaced by {fallback}")
            else:
                skip = "float16 mixed precision needs a GPU"
        workers = int(overrides.get("workers", 1))
        capacity = hardware.gpus or hardware.cores
        if workers > capacity:
            skip = f"needs {workers} workers; this machine has {hardware.describe()}"
        if workers > 1 and overrides.get("engine", "horovod") == "horovod" and not hardware.horovod:
            overrides["engine"] = "tf-distribute"
            notes.append("Horovod is not installed: data parallel with tf.distribute instead")
        if int(overrides.get("batch_size", 500)) > cap:
            notes.append(f"batch {overrides['batch_size']} capped to {cap} "
                         f"({budget.max_batch_fraction:g} of {train_users} training users)")
            overrides["batch_size"] = cap
        resolved.append(Step(index, spec["name"], spec.get("change", ""), overrides, notes, skip))
        if skip is None:
            current = overrides
    return resolved
