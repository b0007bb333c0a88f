"""The one workload every speed figure is measured on: ML-20M's shape, drawn by the synthetic generator.

A users/s means something only beside the data it was timed on: the catalogue sets the output
GEMMs, the positives per user the sparse input's cost, item popularity the input's memory
access. So ``vaecf bench`` (training, ``--serving`` and ``--workers``), the ablation runner's
speed windows (``ablations.speed``) and the asv suites (``benchmarks/``) all time rows drawn by
``vaecf.data.synthetic`` at ML-20M's shape (``registry.ML20M``: 20,108 items, 73.1 positives per
user, lognormal, Zipf popularity), differing only in how many users they draw.

No TensorFlow here: the ablation runner's own process draws the rows.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from vaecf.data.registry import ML20M
from vaecf.data.synthetic import SYNTHETIC_PRESETS, SyntheticConfig, generate

PRESET = "ml-20m"
"""The synthetic preset of ML-20M's shape (``synthetic.SYNTHETIC_PRESETS``)."""


def spec(users: int | None = None) -> str:
    """The dataset name that ``vaecf data prepare`` turns into the workload (all of ML-20M's users by default)."""
    return f"synthetic:{PRESET}" + ("" if users is None else f",users={users}")


def config(users: int = ML20M.users, items: int = ML20M.items, mean_items: float = ML20M.mean_items,
           seed: int = 0) -> SyntheticConfig:
    """The generator's settings for ``users`` rows of ML-20M's shape (narrower catalogues for tests)."""
    return dataclasses.replace(SYNTHETIC_PRESETS[PRESET], users=users, items=items, mean_items=mean_items, seed=seed)


def rows_of_shape(users: int, items: int = ML20M.items, mean_items: float = ML20M.mean_items,
                  seed: int = 0) -> sp.csr_matrix:
    """``users`` binary rows (float32 CSR, sorted columns) drawn at ML-20M's shape, without the protocol's split."""
    ratings, _ = generate(config(users, items, mean_items, seed))
    counts = np.bincount(ratings["user"].to_numpy(), minlength=users)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    data = np.ones(len(ratings), np.float32)
    return sp.csr_matrix((data, ratings["item"].to_numpy(), indptr), shape=(users, items))
