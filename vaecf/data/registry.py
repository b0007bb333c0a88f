"""The datasets: one record each (where it is published, its checksums, its file layout, its rating
scale, the protocol's N) and the shapes the paper's protocol leaves of ML-20M and Netflix.

The one place these facts live; readers (``sources``), preparation (``prepare``), the synthetic
presets, the speed workload (``vaecf.workload``) and the command line's help take them from here.
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


NETFLIX_HELP = ("Netflix no longer distributes the Netflix Prize data; pass your own copy as the source: "
                "the training_set/ folder of mv_*.txt files, a folder holding the Kaggle mirror's "
                "combined_data_1..4.txt, or one such file")


@dataclass(frozen=True)
class Dataset:
    """Everything known about one dataset before it is read: the one record of each (``DATASETS``)."""

    name: str
    scale: Scale
    """Its published rating scale: a rating off it means a damaged or different file."""
    heldout: int
    """The protocol's N: validation users, and as many test users."""
    archive: Archive | None = None
    """Where it is published; None where it is not (Netflix: the user's own copy)."""
    sep: str | None = None
    """Field separator of its ratings file (None: Netflix's own layout, read by ``sources``)."""
    header: str | None = None
    """The ratings file's first line, where it has one."""
    unverifiable: str | None = None
    """Why no published checksum can verify it, where none can."""


DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset("ml-20m", Scale(0.5, 5.0, 0.5), heldout=10_000, sep=",", header="userId,movieId,rating,timestamp",
            archive=Archive(url="https://files.grouplens.org/datasets/movielens/ml-20m.zip",
                            md5="cd245b17a1ae2cc31bb14903e1204af3",
                            sha256="96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
                            member="ml-20m/ratings.csv")),
    Dataset("ml-1m", Scale(1, 5, 1), heldout=600, sep="::",
            archive=Archive(url="https://files.grouplens.org/datasets/movielens/ml-1m.zip",
                            md5="c4d9eecfca2ab87c1945afe126590906", member="ml-1m/ratings.dat")),
    Dataset("ml-100k", Scale(1, 5, 1), heldout=100, sep="\t",
            archive=Archive(url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
                            md5="0e33842e24a9c977be4e0107933c0723", member="ml-100k/u.data")),
    Dataset("netflix", Scale(1, 5, 1), heldout=40_000,
            unverifiable="no published checksum for the Netflix Prize data"),
)}
"""Every dataset vaecf reads from files. ``heldout``: the paper's N for ML-20M and Netflix; for the
small MovieLens sets about 10% of users."""


@dataclass(frozen=True)
class PreparedShape:
    """A dataset's size after the paper's protocol: what a step costs on it."""

    dataset: str
    users: int
    """Users kept (at least 5 ratings of 3.5 or more)."""
    items: int
    """Items kept: the width of the input and output layers."""
    mean_items: float
    """Mean positives per user."""

    @property
    def heldout(self) -> int:
        return DATASETS[self.dataset].heldout

    @property
    def train_users(self) -> int:
        return self.users - 2 * self.heldout


ML20M = PreparedShape("ml-20m", users=136_677, items=20_108, mean_items=73.1)
"""ML-20M as the paper preprocesses it: every speed figure is measured at this shape (``vaecf.workload``)."""
NETFLIX = PreparedShape("netflix", users=463_435, items=17_769, mean_items=122.7)
"""Netflix as the paper preprocesses it."""
