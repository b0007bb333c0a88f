"""Small data made on the spot for tests (plain functions; the fixtures are in conftest.py)."""

import numpy as np
import pandas as pd


def random_ratings(users: int = 300, items: int = 120, per_user: int = 15, seed: int = 0) -> pd.DataFrame:
    """Clustered random ratings (two taste groups), enough signal for a model to learn a little."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        group = u % 2
        pool = np.arange(items // 2) + group * (items // 2)
        picked = rng.choice(pool, size=per_user + int(rng.integers(0, 5)), replace=False)
        rows += [(u, int(i), float(rng.choice([4.0, 5.0, 2.0], p=[0.45, 0.45, 0.1]))) for i in picked]
    return pd.DataFrame(rows, columns=["user", "item", "rating"])


def gpu_in_use() -> bool:
    """Whether TensorFlow runs the tests on a GPU. There a repeat differs in the last bits (segment
    sums add with atomics, in another order each time) and float32 sums run in another order than
    on a CPU; TF32 is off for float32 (``vaecf.tfenv.TF32``), so matmuls keep float32's precision."""
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def rtol(on_cpu: float) -> float:
    """A float32 comparison's relative tolerance: as given on a CPU, 10x looser on a GPU."""
    return on_cpu * 10 if gpu_in_use() else on_cpu


def assert_repeats(a: object, b: object) -> None:
    """Two runs of the same computation: bit for bit on a CPU, to float32 rounding on a GPU."""
    if gpu_in_use():
        np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=1e-5, atol=1e-7)
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
