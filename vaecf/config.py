"""Typed configuration: the one place where every default lives.

Every result record serialises these dataclasses in full (``asdict``), so a number can always
be traced back to the exact settings that produced it.
"""

from __future__ import annotations

import dataclasses
import numbers
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from vaecf.errors import ConfigError

Precision = Literal["float32", "mixed_float16", "mixed_bfloat16"]
InputKind = Literal["dense", "sparse"]
Pipeline = Literal["feed", "tfdata"]
ModelKind = Literal["vae", "dae"]
Engine = Literal["auto", "horovod", "tf-distribute"]
"""``auto``: Horovod where it is installed, else tf.distribute (``launch.resolve_engine``)."""
BatchScope = Literal["global", "worker"]
Compression = Literal["none", "fp16"]
"""``fp16``: gradients cross the network as float16, half the bytes (``vaecf.distributed``)."""


@dataclass(frozen=True)
class Rule:
    """An allowed range of a numeric setting, stated as the error message states it."""

    allows: Callable[[Any], bool]
    text: str


AT_LEAST_0 = Rule(lambda v: v >= 0, ">= 0")
AT_LEAST_1 = Rule(lambda v: v >= 1, ">= 1")
POSITIVE = Rule(lambda v: v > 0, "> 0")
FRACTION_OPEN = Rule(lambda v: 0 < v < 1, "in (0, 1)")
FRACTION_KEEP = Rule(lambda v: 0 < v <= 1, "in (0, 1]")
MOMENTUM = Rule(lambda v: 0 <= v < 1, "in [0, 1)")


def validate(obj: Any, rules: dict[str, Rule]) -> None:
    """Check every field of a config dataclass: its type, its Literal choices and its ``rules``.

    Raises ConfigError naming the first bad field. A field added later needs one line in
    ``rules`` (a Literal or bool field needs none).
    """
    for name, kind in field_types(type(obj)).items():
        value = getattr(obj, name)
        choices = typing.get_args(kind) if typing.get_origin(kind) is Literal else ()
        if choices and value not in choices:
            raise ConfigError(name, value, "one of " + ", ".join(map(str, choices)))
        if kind is bool and not isinstance(value, bool):
            raise ConfigError(name, value, "true or false")
        # numbers.*, not int/float: numpy scalars are fine values too
        if kind is int and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
            raise ConfigError(name, value, "an integer")
        if kind is float and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
            raise ConfigError(name, value, "a number")
        if typing.get_origin(kind) is tuple and not all(isinstance(v, int) and v >= 1 for v in value):
            raise ConfigError(name, value, "integers >= 1")
        rule = rules.get(name)
        if rule is not None and not rule.allows(value):
            raise ConfigError(name, value, rule.text)


def field_types(cls: type) -> dict[str, Any]:
    """Field name -> resolved annotation (this module postpones annotations, so they are strings)."""
    if cls not in _FIELD_TYPES:
        hints = typing.get_type_hints(cls)
        _FIELD_TYPES[cls] = {f.name: hints[f.name] for f in dataclasses.fields(cls)}
    return _FIELD_TYPES[cls]


_FIELD_TYPES: dict[type, dict[str, Any]] = {}


@dataclass(frozen=True)
class ProtocolConfig:
    """The paper's data protocol (Liang et al. 2018, and the authors' preprocessing code)."""

    threshold: float = 3.5
    """A rating is an implicit positive when it is strictly greater than this."""
    min_user_positives: int = 5
    """Users with fewer positives are dropped before the split."""
    heldout_users: int = 10_000
    """N: the last 2N users of the permutation become N validation then N test users."""
    seed: int = 98765
    """Seeds the user permutation, and is reset before each fold-in/target split."""
    target_fraction: float = 0.2
    """floor(fraction * n) of a heldout user's items become targets."""
    min_split_items: int = 5
    """Heldout users with fewer items (after dropping unseen items) go wholly to fold-in."""

    def __post_init__(self) -> None:
        validate(self, {"min_user_positives": AT_LEAST_1, "heldout_users": AT_LEAST_1, "seed": AT_LEAST_0,
                        "target_fraction": FRACTION_OPEN, "min_split_items": AT_LEAST_1})


@dataclass(frozen=True)
class ModelConfig:
    """Architecture. Mult-VAE is [I -> 600 -> 200 -> 600 -> I]; Mult-DAE is [I -> 200 -> I]."""

    kind: ModelKind = "vae"
    hidden: tuple[int, ...] = (600,)
    """Encoder hidden widths between the items and the latent layer (mirrored in the decoder)."""
    latent: int = 200
    dropout_keep: float = 0.5
    """Keep probability of the dropout applied to the L2-normalised input."""
    weight_decay: float = 0.0
    """L2 coefficient lam; the loss adds 2 * lam * sum(w^2) / 2 over weights, as the paper's code."""

    def __post_init__(self) -> None:
        validate(self, {"latent": AT_LEAST_1, "dropout_keep": FRACTION_KEEP, "weight_decay": AT_LEAST_0})

    def encoder_shapes(self, n_items: int) -> list[tuple[int, int]]:
        """(fan-in, fan-out) of each encoder layer; the VAE's last one emits mean and log-variance."""
        dims = [n_items, *self.hidden]
        outs = [*self.hidden, 2 * self.latent if self.kind == "vae" else self.latent]
        return list(zip(dims, outs))

    def decoder_shapes(self, n_items: int) -> list[tuple[int, int]]:
        """(fan-in, fan-out) of each decoder layer: the encoder mirrored back to the items."""
        dims = [self.latent, *reversed(self.hidden), n_items]
        return list(zip(dims[:-1], dims[1:]))

    @staticmethod
    def for_kind(kind: ModelKind, batch_size: int = 500) -> ModelConfig:
        """The paper's settings: VAE with no weight decay; DAE [I->200->I] with lam = 0.01 / batch."""
        if kind == "dae":
            return ModelConfig(kind="dae", hidden=(), latent=200, weight_decay=0.01 / batch_size)
        return ModelConfig()


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, input path and performance switches. Defaults are the paper's settings."""

    batch_size: int = 500
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    total_anneal_steps: int = 200_000
    anneal_cap: float = 0.2
    epochs: int = 200
    eval_every: int = 1
    """Validate every this many epochs (and after the last); the best epoch is kept."""
    seed: int = 98765
    input: InputKind = "sparse"
    pipeline: Pipeline = "tfdata"
    prefetch: int = 2
    """Batches prepared ahead by tf.data (pipeline='tfdata' only)."""
    precision: Precision = "float32"
    xla: bool = False
    workers: int = 1
    engine: Engine = "auto"
    """Data-parallel engine when workers > 1."""
    batch_scope: BatchScope = "global"
    """What ``batch_size`` counts with N workers: the global batch (each worker B/N users, the same
    steps as one worker with B) or each worker's batch (global N x B, the talk's "equivalent to one
    GPU with a multiplied batch size"; the learning rate is not changed by that)."""
    compression: Compression = "none"
    """How gradients travel in the all-reduce between workers: ``fp16`` halves the bytes (Horovod's
    fp16 compressor; tf.distribute casts around its all-reduce), rounding each to float16."""

    @property
    def global_batch(self) -> int:
        """Users per optimizer update, over all workers."""
        return self.batch_size * self.workers if self.batch_scope == "worker" else self.batch_size

    def __post_init__(self) -> None:
        validate(self, {"batch_size": AT_LEAST_1, "lr": POSITIVE, "beta1": MOMENTUM, "beta2": MOMENTUM,
                        "epsilon": POSITIVE, "total_anneal_steps": AT_LEAST_0, "anneal_cap": AT_LEAST_0,
                        "epochs": AT_LEAST_1, "eval_every": AT_LEAST_1, "seed": AT_LEAST_0,
                        "prefetch": AT_LEAST_0, "workers": AT_LEAST_1})

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        return replace_checked(self, overrides)

    def rescaled(self, global_batch: int) -> TrainConfig:
        """A large-batch recipe: this configuration at ``global_batch`` users per update, schedule rescaled.

        The learning rate grows with the square root of the batch (Adam's gradient noise falls as
        1/sqrt(B)); KL annealing reaches its cap after the same number of *users* as before, so its
        steps shrink by the batch ratio. From the paper's settings to NVIDIA's batch 24,576 this gives
        lr 0.0070 (NVIDIA: 0.004) and 4,069 anneal steps (NVIDIA: 15,000 with cap 0.1).
        """
        ratio = global_batch / self.global_batch
        per_update = global_batch // self.workers if self.batch_scope == "worker" else global_batch
        return dataclasses.replace(self, batch_size=per_update, lr=self.lr * ratio**0.5,
                                   total_anneal_steps=round(self.total_anneal_steps / ratio))


WARMUP_STEPS = 3
"""Steps excluded from throughput: tracing, compilation and first-touch allocation happen there."""

PRESETS: dict[str, TrainConfig] = {
    "paper": TrainConfig(),
    "nvidia": TrainConfig(
        batch_size=24_576, lr=0.004, beta1=0.9, beta2=0.9,
        total_anneal_steps=15_000, anneal_cap=0.1, epochs=400,
    ),
}
"""Named hyper-parameter sets: the paper's, and NVIDIA DeepLearningExamples' large-batch recipe."""


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a training run; serialised into its record."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> RunConfig:
        model = dict(d.get("model", {}))
        if "hidden" in model:
            model["hidden"] = tuple(model["hidden"])
        return RunConfig(model=ModelConfig(**model), train=TrainConfig(**d.get("train", {})))


def replace_checked(obj: Any, overrides: dict[str, Any]) -> Any:
    """``dataclasses.replace`` that names an unknown field instead of a bare TypeError."""
    names = {f.name for f in dataclasses.fields(obj)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        rule = f"unknown {type(obj).__name__} field(s): {', '.join(unknown)}; known: {', '.join(sorted(names))}"
        raise ConfigError(unknown[0], overrides[unknown[0]], "a known field", rule=rule)
    return dataclasses.replace(obj, **overrides)
