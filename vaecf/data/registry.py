"""The datasets: where each is published, its checksums, its rating scale, the protocol's N, its shape.

The one place these facts live; readers (``sources``), preparation (``prepare``) and the command
line's help take them from here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Archive:
    """A GroupLens archive: where it is, its published checksums, the ratings file inside."""

    url: str
    md5: str
    member: str
    sha256: str | None = None


ARCHIVES: dict[str, Archive] = {
    "ml-20m": Archive(url="https://files.grouplens.org/datasets/movielens/ml-20m.zip",
                      md5="cd245b17a1ae2cc31bb14903e1204af3",
                      sha256="96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
                      member="ml-20m/ratings.csv"),
    "ml-1m": Archive(url="https://files.grouplens.org/datasets/movielens/ml-1m.zip",
                     md5="c4d9eecfca2ab87c1945afe126590906", member="ml-1m/ratings.dat"),
    "ml-100k": Archive(url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
                       md5="0e33842e24a9c977be4e0107933c0723", member="ml-100k/u.data"),
}
DATASETS = (*ARCHIVES, "netflix")


@dataclass(frozen=True)
class Scale:
    """The ratings a dataset allows: ``low``, ``low + step``, ... up to ``high``."""

    low: float
    high: float
    step: float

    def off(self, ratings: np.ndarray) -> np.ndarray:
        """Which ratings are not on the scale (vectorised: whole blocks at a time)."""
        steps = (ratings - self.low) / self.step
        return (ratings < self.low) | (ratings > self.high) | (steps != np.round(steps))

    def __str__(self) -> str:
        if self.step == 1 and float(self.low).is_integer():
            return f"integers {self.low:g}..{self.high:g}"
        return f"{self.low:.1f}..{self.high:.1f} in steps of {self.step:g}"


SCALES = {"ml-20m": Scale(0.5, 5.0, 0.5), "ml-1m": Scale(1, 5, 1), "ml-100k": Scale(1, 5, 1),
          "netflix": Scale(1, 5, 1)}
"""Each dataset's published rating scale: a rating off it means a damaged or different file."""
NETFLIX_HELP = ("Netflix no longer distributes the Netflix Prize data; pass your own copy as the source: "
                "the training_set/ folder of mv_*.txt files, a folder holding the Kaggle mirror's "
                "combined_data_1..4.txt, or one such file")
DEFAULT_HELDOUT = {"ml-20m": 10_000, "netflix": 40_000, "ml-1m": 600, "ml-100k": 100}
"""The paper's N for ML-20M and Netflix; for the small MovieLens sets about 10% of users."""


@dataclass(frozen=True)
class PreparedShape:
    """A dataset's size after the paper's protocol: what a step costs on it."""

    users: int
    """Users kept (at least 5 ratings of 3.5 or more)."""
    items: int
    """Items kept: the width of the input and output layers."""
    mean_items: float
    """Mean positives per user."""
    heldout: int
    """Validation users, and as many test users (the protocol's N)."""

    @property
    def train_users(self) -> int:
        return self.users - 2 * self.heldout


ML20M = PreparedShape(users=136_677, items=20_108, mean_items=73.1, heldout=DEFAULT_HELDOUT["ml-20m"])
"""ML-20M as the paper preprocesses it: every speed figure is measured at this shape (``vaecf.workload``)."""
NETFLIX = PreparedShape(users=463_435, items=17_769, mean_items=122.7, heldout=DEFAULT_HELDOUT["netflix"])
"""Netflix as the paper preprocesses it."""
