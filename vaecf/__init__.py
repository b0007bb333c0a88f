"""Mult-VAE and Mult-DAE collaborative filtering in TensorFlow 2 (Liang et al., WWW 2018).

The public API, loaded on first use so that ``import vaecf`` does not load TensorFlow (only
``Trainer`` does); ``docs/python-api.md`` shows it end to end.
"""

from __future__ import annotations

import importlib
from typing import Any

from vaecf import tfenv

tfenv.configure()  # before any submodule can load TensorFlow

# Bound here, before anything else can import the submodule of the same name: importing
# vaecf.recommend first would make ``vaecf.recommend`` that module, not the function.
from vaecf.recommend import Recommendation as Recommendation  # noqa: E402 (after configure)
from vaecf.recommend import recommend as recommend  # noqa: E402

_HOME = {
    "prepare": "vaecf.data.prepare", "Split": "vaecf.data.split",
    "RunConfig": "vaecf.config", "ModelConfig": "vaecf.config", "TrainConfig": "vaecf.config",
    "ProtocolConfig": "vaecf.config", "PRESETS": "vaecf.config",
    "Trainer": "vaecf.train", "FitResult": "vaecf.train",
    "evaluate": "vaecf.metrics", "Evaluation": "vaecf.metrics",
    "VaecfError": "vaecf.errors", "ConfigError": "vaecf.errors", "DataError": "vaecf.errors",
    "DownloadError": "vaecf.errors", "TrainingError": "vaecf.errors",
}
"""Each public name -> the module that defines it."""

__all__ = sorted([*_HOME, "Recommendation", "recommend"])


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'vaecf' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
