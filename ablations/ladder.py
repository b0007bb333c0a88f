"""Ladder files and budgets: what a run measures, resolved into one ``TrainConfig`` per step.

A ladder is TOML (see ``ladders/``): a baseline and steps, each a named set of overrides on the
step before; or, with ``mode = "leave-one-out"``, a set of switches (each with its off value in
``baseline`` and its on value in ``full``) from which the runner searches the fastest
configuration (``ablations.search``); with ``mode = "tune"``, the same switches and a grid of
batch, learning-rate scaling, precision and workers, searched for the fastest time to the target
(``ablations.tune``). ``resolve`` turns a ladder into concrete steps for the
hardware at hand: a float16 step becomes bfloat16 on a machine without a GPU when the step says
so (``cpu = {...}``), a step that cannot run (more workers than GPUs or cores) is kept as
*skipped, with its reason*, and a batch larger than the budget allows is capped, with a note.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vaecf.config import WARMUP_STEPS, TrainConfig, replace_checked
from vaecf.data.registry import ML20M
from vaecf.errors import VaecfError

if TYPE_CHECKING:
    from vaecf.data.split import Split

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

LADDERS = Path(__file__).parent / "ladders"

SWITCH_NAMES = {"input": "sparse input", "pipeline": "tf.data pipeline", "precision": "mixed precision",
                "batch_size": "larger batch", "xla": "XLA", "workers": "data parallel",
                "compression": "fp16 gradients"}
"""How leave-one-out steps name the switch they revert."""

PAPER_CODE_PATH = TrainConfig(input="dense", pipeline="feed")
"""The original code's configuration (the paper's settings, dense feed_dict input): every step's time
budget is a multiple of its time to target."""

SPEED_FIELDS = ("batch_size", "batch_scope", "input", "pipeline", "prefetch", "precision", "xla", "workers",
                "engine")
"""The fields that decide what a step costs; two steps equal in these are timed once."""
MATHS_FIELDS = ("batch_size", "batch_scope", "workers", "lr", "beta1", "beta2", "epsilon", "total_anneal_steps",
                "anneal_cap", "precision", "seed")
"""The fields that decide what a step computes (input path, pipeline and XLA compute the same
function); two steps equal in these share one quality curve. Data-parallel steps are trained
even with a global batch: their workers draw their own dropout noise."""


class LadderError(VaecfError):
    """A ladder file that cannot be used: unknown field, bad value, unknown ladder."""


@dataclass(frozen=True)
class Budget:
    """What a run trains on and for how long. Quality is trained on ``quality_dataset``; speed is
    timed on rows of ML-20M's shape (``speed_items`` items) at each step's own batch."""

    name: str
    quality_dataset: str
    """The data every step is trained on for its quality curve (prepared by the protocol)."""
    max_batch_fraction: float
    """A step's global batch is capped at this fraction of the quality data's training users."""
    target_fraction: float
    """The quality target: this fraction of the calibration's converged validation NDCG@100."""
    time_factor: float
    """Every step trains for this multiple of the time the baseline code path needs to reach the
    target (its updates to target in the calibration x its measured seconds per update)."""
    evaluations: int = 20
    """Validations per step within that time, at equal intervals of (projected) time."""
    calibration_seeds: int = 2
    calibration_updates: int = 1_000
    """Length of the calibration run at batch 500; also the most updates any step trains."""
    windows: int = 3
    """Interleaved timing windows per configuration (speed is their median)."""
    warmup_steps: int = WARMUP_STEPS
    window_steps: int = 2
    speed_items: int = ML20M.items
    """ML-20M's catalogue after the protocol: speed is always measured at this width."""
    quality_seeds: int = 2
    """Seeds of every distinct configuration's quality curve: their spread is time to target's interval."""
    max_windows: int = 16
    """Adaptive repetition (``ablations.repeat``): compared steps whose speed verdict is not firm get more
    rounds, up to this many windows each. Why 16: tf.data against feeding at batch 2,100 on the Xeon is
    2.6% faster with a 2.5% sd of per-round ratios, decided at 95% but not firm at 8 windows (two runs
    then disagree about 40% of the time), firm at 99% from about 14."""
    max_quality_seeds: int = 4
    """... and those whose time-to-target verdict is not firm more seeds, up to this many."""
    repeat_s: float = 270.0
    """The extra rounds and seeds stop when the next would take them past this many seconds in all: with
    the second seed of every curve, what keeps the quick ladder within 20 minutes on 2 cores."""


BUDGETS = {
    # 12,000 users x 2,000 items, 40 positives per user: Mult-VAE converges in ~500 updates of 500,
    # so every step can be trained well past the target on 2 cores; the calibration is committed.
    # The large batch is capped at the share of the training users that NVIDIA's 24,576 is of
    # ML-20M's 116,677 (21%): the same few updates per epoch as the published recipe.
    "quick": Budget("quick", quality_dataset="synthetic:small,items=2000,mean_items=40",
                    max_batch_fraction=0.21, target_fraction=0.95, time_factor=1.5),
    # A minute's check that every step runs (tests, a new machine, the GPU check): not a measurement (one
    # seed per curve, so no interval on time to target).
    "smoke": Budget("smoke", quality_dataset="synthetic:tiny", max_batch_fraction=0.5, target_fraction=0.9,
                    time_factor=1.5, evaluations=5, calibration_updates=60, warmup_steps=1, window_steps=1,
                    speed_items=2_000, quality_seeds=1, max_windows=4, max_quality_seeds=1,
                    repeat_s=15.0),
    # The real thing: ML-20M (116,677 training users), batches as published, 200 epochs' horizon.
    "full": Budget("full", quality_dataset="ml-20m", max_batch_fraction=1.0, target_fraction=0.95,
                   time_factor=1.5, calibration_updates=46_600, evaluations=40),
}


@dataclass(frozen=True)
class Hardware:
    gpus: int
    cores: int
    horovod: bool

    def describe(self) -> str:
        return f"{self.gpus} GPU(s), {self.cores} CPU core(s)" if self.gpus else f"{self.cores} CPU cores and no GPU"


@dataclass(frozen=True)
class Step:
    index: int
    name: str
    change: str
    train: TrainConfig
    notes: tuple[str, ...] = ()
    skip: str | None = None

    @property
    def slug(self) -> str:
        return f"{self.index:02d}-" + "".join(c if c.isalnum() else "-" for c in self.name.lower()).strip("-")

    @property
    def speed_key(self) -> str:
        return _key(self.train, SPEED_FIELDS)

    @property
    def maths_key(self) -> str:
        return _key(self.train, MATHS_FIELDS)


def _key(train: TrainConfig, fields: tuple[str, ...]) -> str:
    key = ",".join(f"{name}={getattr(train, name)}" for name in fields)
    # Gradient compression changes both cost and maths; named only when on, so keys made before it stay.
    return key if train.compression == "none" else f"{key},compression={train.compression}"


_STEP_FIELDS = {"name", "change", "set", "cpu", "recipe"}
_RECIPES = ("large-batch",)


@dataclass(frozen=True)
class Ladder:
    name: str
    description: str
    baseline: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)
    reference: str | None = None
    """A published ladder (``results/reference/<name>-ladder.json``) drawn beside the measured one."""
    mode: str = "ladder"
    full: dict[str, Any] = field(default_factory=dict)
    cpu: dict[str, Any] = field(default_factory=dict)
    needs_gpu: bool = False
    """Refuse to run where TensorFlow sees no GPU (a check meant for GPUs, not a CPU substitute)."""

    @staticmethod
    def load(name_or_path: str | Path) -> Ladder:
        path = Path(name_or_path)
        if not path.suffix:
            path = LADDERS / f"{name_or_path}.toml"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in LADDERS.glob("*.toml")))
            raise LadderError(f"no ladder {str(name_or_path)!r} (known: {known}, or a .toml path)")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise LadderError(f"{path}: not valid TOML ({e})") from e
        known_fields = {f.name for f in dataclasses.fields(Ladder)}
        if unknown := sorted(set(data) - known_fields):
            raise LadderError(f"{path}: unknown field(s) {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(known_fields))}")
        try:
            ladder = Ladder(**data)
        except TypeError as e:
            raise LadderError(f"{path}: {e}") from e
        if ladder.mode not in ("ladder", "leave-one-out", "tune"):
            raise LadderError(f"{path}: mode = {ladder.mode!r}; allowed: 'ladder', 'leave-one-out', 'tune'")
        for i, step in enumerate(ladder.steps):
            where = f"{path}: steps[{i}]"
            if unknown := sorted(set(step) - _STEP_FIELDS):
                raise LadderError(f"{where}: unknown field(s) {', '.join(unknown)}; "
                                  f"known: {', '.join(sorted(_STEP_FIELDS))}")
            if "name" not in step:
                raise LadderError(f"{where}: every step needs a name")
            if step.get("recipe", _RECIPES[0]) not in _RECIPES:
                raise LadderError(f"{where}: recipe = {step['recipe']!r}; allowed: {', '.join(_RECIPES)}")
        tables = {"baseline": ladder.baseline, "full": ladder.full, "cpu": ladder.cpu,
                  **{f"steps[{i}].set": s.get("set", {}) for i, s in enumerate(ladder.steps)},
                  **{f"steps[{i}].cpu": s.get("cpu", {}) for i, s in enumerate(ladder.steps)}}
        for where, overrides in tables.items():
            try:
                replace_checked(TrainConfig(), overrides)  # names a misspelt field or a bad value now, not mid-run
            except (ValueError, TypeError, VaecfError) as e:
                raise LadderError(f"{path}: [{where}] {e}") from e
        return ladder


def resolve(ladder: Ladder, hardware: Hardware, budget: Budget, train_users: int,
            float16_on_cpu: bool = False) -> list[Step]:
    """Concrete steps of a ``mode = "ladder"`` ladder for this hardware, budget and data size.

    ``float16_on_cpu``: run float16 steps as written where there is no GPU (a check of the GPU
    code paths on a CPU, e.g. the gpu-check ladder in CI), instead of substituting or skipping them.
    """
    if ladder.mode != "ladder":
        raise LadderError(f"ladder {ladder.name!r} is a {ladder.mode} ladder: its steps come from a search")
    baseline = TrainConfig().with_overrides(**ladder.baseline)
    specs = [{"name": "baseline", "change": "the paper's code path", "set": {}}, *ladder.steps]
    resolved: list[Step] = []
    current = baseline
    for index, spec in enumerate(specs):
        train, notes = cap_batch(current.with_overrides(**spec.get("set", {})), budget, train_users)
        if spec.get("recipe") == "large-batch":
            train = large_batch_recipe(train, baseline)
        step = fit_to(Step(index, spec["name"], spec.get("change", ""), train, notes), hardware, spec.get("cpu"),
                      float16_on_cpu)
        resolved.append(step)
        if step.skip is None:
            current = step.train
    return resolved


def large_batch_recipe(train: TrainConfig, baseline: TrainConfig) -> TrainConfig:
    """``train`` with the baseline's learning rate and KL schedule rescaled to its global batch."""
    scaled = baseline.rescaled(train.global_batch)
    return train.with_overrides(lr=scaled.lr, total_anneal_steps=scaled.total_anneal_steps)


def cap_batch(train: TrainConfig, budget: Budget, train_users: int) -> tuple[TrainConfig, tuple[str, ...]]:
    """``train`` with its global batch capped by the budget (small data), and the note that says so."""
    cap = int(train_users * budget.max_batch_fraction) // train.workers * train.workers
    if train.global_batch <= cap:
        return train, ()
    per_update = cap // train.workers if train.batch_scope == "worker" else cap
    note = (f"batch {train.global_batch:,} capped to {cap:,} "
            f"({budget.max_batch_fraction:g} of {train_users:,} training users)")
    return train.with_overrides(batch_size=per_update), (note,)


def fit_to(step: Step, hardware: Hardware, cpu: dict[str, Any] | None = None, float16_on_cpu: bool = False) -> Step:
    """``step`` as it can run on ``hardware``: substitutions noted, or a reason to skip it."""
    train, notes, skip = step.train, list(step.notes), None
    if train.precision == "mixed_float16" and not hardware.gpus:
        if float16_on_cpu:
            notes.append("no GPU: float16 run on the CPU as written (a check of the code path, slow)")
        elif cpu:
            train = train.with_overrides(**cpu)
            notes.append("no GPU: float16 replaced by " + ", ".join(f"{k}={v}" for k, v in cpu.items()))
        else:
            skip = "float16 mixed precision needs a GPU"
    if train.workers > (hardware.gpus or hardware.cores):
        skip = f"needs {train.workers} workers; this machine has {hardware.describe()}"
    if train.workers > 1 and train.engine != "tf-distribute":
        if not hardware.horovod:
            notes.append("Horovod not installed: tf.distribute instead")
        train = train.with_overrides(engine="horovod" if hardware.horovod else "tf-distribute")
    return dataclasses.replace(step, train=train, notes=tuple(notes), skip=skip)


def prepare_quality(budget: Budget, source: Path | None, data_cache: Path) -> tuple[Split, Path]:
    """The budget's quality data, prepared (or found prepared) under ``data_cache``: what ``resolve`` caps
    batches by, for the runner and ``vaecf doctor`` alike. Imported here, not at the top: preparation
    brings pandas and the synthetic generator (0.8 s), which ``python -m ablations --help`` and
    ``list`` do not need."""
    from vaecf.data.prepare import default_protocol, folder_name, prepare

    data_dir = data_cache / folder_name(budget.quality_dataset)
    return prepare(budget.quality_dataset, data_dir, source=source,
                   protocol=default_protocol(budget.quality_dataset)), data_dir
