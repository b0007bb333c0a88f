"""The prepared split: CSR matrices, id maps and statistics, saved to and loaded from a folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from vaecf.errors import DataError
from vaecf.io import atomic_write, read_json, write_json

MATRICES = ("train", "validation_foldin", "validation_target", "test_foldin", "test_target")


@dataclass
class Split:
    """Train users x items, plus fold-in and target matrices for validation and test users.

    Columns are items in the order the protocol numbers them (``item_ids[j]`` is column j's
    original id); rows of each heldout matrix are that part's users in permutation order.
    """

    train: sp.csr_matrix
    validation_foldin: sp.csr_matrix
    validation_target: sp.csr_matrix
    test_foldin: sp.csr_matrix
    test_target: sp.csr_matrix
    item_ids: np.ndarray
    train_user_ids: np.ndarray
    validation_user_ids: np.ndarray
    test_user_ids: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def n_items(self) -> int:
        return int(self.train.shape[1])

    def heldout(self, part: str) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(fold-in, targets) of ``part``: 'validation' or 'test'."""
        if part not in ("validation", "test"):
            raise ValueError(f"split part must be 'validation' or 'test', not {part!r}")
        return getattr(self, f"{part}_foldin"), getattr(self, f"{part}_target")

    def save(self, folder: Path) -> None:
        """Write every matrix and map atomically; ``stats.json`` last, so it marks a complete split."""
        folder = Path(folder)
        for name in MATRICES:
            matrix = getattr(self, name)
            atomic_write(folder / f"{name}.npz", lambda tmp, m=matrix: _save_npz(tmp, m))
        ids = {"item_ids": self.item_ids, "train_user_ids": self.train_user_ids,
               "validation_user_ids": self.validation_user_ids, "test_user_ids": self.test_user_ids}
        atomic_write(folder / "ids.npz", lambda tmp: _savez(tmp, ids))
        write_json(folder / "stats.json", self.stats)

    @staticmethod
    def load(folder: Path) -> Split:
        folder = Path(folder)
        if not (folder / "stats.json").is_file():
            raise DataError(f"{folder}: no prepared split here (stats.json missing); "
                            f"run 'vaecf data prepare DATASET --out {folder}' first")
        try:
            matrices = {name: sp.load_npz(folder / f"{name}.npz").tocsr() for name in MATRICES}
            with np.load(folder / "ids.npz") as ids:
                maps = {k: ids[k] for k in ids.files}
        except (OSError, ValueError) as e:
            raise DataError(f"{folder}: prepared split is unreadable ({e})") from e
        return Split(**matrices, **maps, stats=read_json(folder / "stats.json"))


def _save_npz(tmp: Path, matrix: sp.csr_matrix) -> None:
    with open(tmp, "wb") as f:
        sp.save_npz(f, matrix, compressed=False)


def _savez(tmp: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
