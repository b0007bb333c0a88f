"""The one speed workload: rows drawn by the synthetic generator at ML-20M's shape."""

from __future__ import annotations

import dataclasses

import numpy as np

from vaecf import workload
from vaecf.data.registry import ML20M
from vaecf.data.synthetic import SYNTHETIC_PRESETS, generate, parse_spec


def test_the_spec_prepare_reads_is_the_generator_config_the_rows_are_drawn_with() -> None:
    assert parse_spec(workload.spec()) == workload.config() == SYNTHETIC_PRESETS["ml-20m"]
    assert parse_spec(workload.spec(users=6000)) == workload.config(users=6000)
    assert (workload.config().items, workload.config().mean_items, workload.config().users) == \
        (ML20M.items, ML20M.mean_items, ML20M.users) == (20_108, 73.1, 136_677)


def test_rows_are_the_generators_positives_as_binary_csr() -> None:
    rows = workload.rows_of_shape(300, items=200, mean_items=20.0, seed=4)
    ratings, _ = generate(dataclasses.replace(workload.config(300, 200, 20.0, seed=4)))
    assert rows.shape == (300, 200) and rows.dtype == np.float32 and rows.has_sorted_indices
    assert set(rows.data.tolist()) == {1.0}
    assert np.array_equal(rows.indices, ratings["item"].to_numpy())
    assert np.array_equal(np.diff(rows.indptr), np.bincount(ratings["user"].to_numpy(), minlength=300))
    assert rows.nnz / 300 == np.float64(len(ratings)) / 300 and abs(rows.nnz / 300 - 20.0) < 1.0
