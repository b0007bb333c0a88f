"""Every configuration value is checked when the dataclass is made: field, value and range named."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vaecf.config import PRESETS, ModelConfig, ProtocolConfig, RunConfig, TrainConfig
from vaecf.errors import ConfigError, VaecfError


@pytest.mark.parametrize("cls, field, value, allowed", [
    (TrainConfig, "batch_size", 0, ">= 1"),
    (TrainConfig, "epochs", -1, ">= 1"),
    (TrainConfig, "eval_every", 0, ">= 1"),
    (TrainConfig, "workers", 0, ">= 1"),
    (TrainConfig, "prefetch", -1, ">= 0"),
    (TrainConfig, "total_anneal_steps", -1, ">= 0"),
    (TrainConfig, "lr", 0.0, "> 0"),
    (TrainConfig, "lr", float("nan"), "> 0"),
    (TrainConfig, "beta1", 1.0, "in [0, 1)"),
    (TrainConfig, "beta2", -0.1, "in [0, 1)"),
    (TrainConfig, "epsilon", 0.0, "> 0"),
    (TrainConfig, "anneal_cap", -0.5, ">= 0"),
    (TrainConfig, "precision", "float16", "one of float32, mixed_float16, mixed_bfloat16"),
    (TrainConfig, "engine", "mpi", "one of auto, horovod, tf-distribute"),
    (TrainConfig, "batch_scope", "local", "one of global, worker"),
    (TrainConfig, "xla", "yes", "true or false"),
    (TrainConfig, "batch_size", 2.5, "an integer"),
    (TrainConfig, "batch_size", True, "an integer"),
    (ModelConfig, "dropout_keep", 0.0, "in (0, 1]"),
    (ModelConfig, "dropout_keep", 1.5, "in (0, 1]"),
    (ModelConfig, "kind", "gan", "one of vae, dae"),
    (ModelConfig, "hidden", (600, 0), "integers >= 1"),
    (ProtocolConfig, "heldout_users", 0, ">= 1"),
    (ProtocolConfig, "target_fraction", 1.0, "in (0, 1)"),
])
def test_a_value_out_of_range_names_field_value_and_range(cls, field, value, allowed) -> None:
    with pytest.raises(ConfigError) as caught:
        cls(**{field: value})
    e = caught.value
    assert (e.field, e.allowed) == (field, allowed) and isinstance(e, VaecfError) and isinstance(e, ValueError)
    assert str(e) == f"{field} must be {allowed}, not {value!r}"


def test_the_edges_of_each_range_are_allowed() -> None:
    TrainConfig(batch_size=1, epochs=1, eval_every=1, prefetch=0, total_anneal_steps=0, beta1=0.0, anneal_cap=0.0,
                batch_scope="worker", engine="auto")
    ModelConfig(dropout_keep=1.0)
    TrainConfig(batch_size=np.int64(7), lr=np.float32(0.01))  # numpy scalars are numbers too


def test_defaults_presets_and_a_saved_config_are_valid() -> None:
    assert TrainConfig().engine == "auto" and TrainConfig().batch_scope == "global"
    for preset in PRESETS.values():
        RunConfig(ModelConfig.for_kind("dae", preset.batch_size), preset)
    saved = dataclasses.asdict(RunConfig())
    assert RunConfig.from_dict(saved) == RunConfig()


def test_an_override_is_checked_and_an_unknown_field_named() -> None:
    with pytest.raises(ConfigError, match="lr must be > 0"):
        TrainConfig().with_overrides(lr=-1.0)
    with pytest.raises(ConfigError, match="unknown TrainConfig field.*nosuch"):
        TrainConfig().with_overrides(nosuch=1)
