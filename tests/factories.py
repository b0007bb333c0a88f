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
