"""Ranking metrics exactly as the paper's code defines them, batched and vectorised.

NDCG@k uses binary relevance and normalises by the ideal DCG over ``min(|targets|, k)``
items; Recall@k divides hits by ``min(k, |targets|)`` (not by ``|targets|``). Items the user
already has (the fold-in) are excluded from the ranking, and users without targets are left
out of the means and counted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

Scorer = Callable[[sp.csr_matrix], np.ndarray]
"""Maps a batch of fold-in rows (users x items, CSR) to dense scores of the same shape."""

DEFAULT_KS: tuple[tuple[str, int], ...] = (("ndcg", 100), ("recall", 20), ("recall", 50))


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of each row's k highest scores, best first."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    rows = np.arange(scores.shape[0])[:, None]
    order = np.argsort(-scores[rows, part], axis=1, kind="stable")
    return part[rows, order]


def _hits(scores: np.ndarray, targets: sp.csr_matrix, k: int) -> np.ndarray:
    """Boolean (users x k): whether the item at each rank is a target."""
    top = top_k(scores, k)
    rows = np.arange(scores.shape[0])[:, None]
    return np.asarray(targets[rows, top].todense()) > 0


def ndcg_at_k(scores: np.ndarray, targets: sp.csr_matrix, k: int = 100) -> np.ndarray:
    """Per-user NDCG@k; NaN for users without targets."""
    hits = _hits(scores, targets, k)
    discount = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
    dcg = (hits * discount).sum(axis=1)
    n = targets.getnnz(axis=1)
    ideal = np.concatenate([[0.0], np.cumsum(discount)])[np.minimum(n, hits.shape[1])]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, dcg / ideal, np.nan)


def recall_at_k(scores: np.ndarray, targets: sp.csr_matrix, k: int = 20) -> np.ndarray:
    """Per-user Recall@k = hits / min(k, |targets|); NaN for users without targets."""
    hits = _hits(scores, targets, k).sum(axis=1)
    n = targets.getnnz(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, hits / np.minimum(k, n), np.nan)


_METRICS = {"ndcg": ndcg_at_k, "recall": recall_at_k}


@dataclass
class Evaluation:
    """Mean metrics over users with targets, with the per-user values kept for error bars."""

    per_user: dict[str, np.ndarray]
    users_without_targets: int
    metrics: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = {name: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
                        for name, v in self.per_user.items()}

    @property
    def users(self) -> int:
        first = next(iter(self.per_user.values()))
        return int(np.isfinite(first).sum())

    def to_dict(self) -> dict[str, float | int]:
        return {**self.metrics, "users": self.users, "users_without_targets": self.users_without_targets}


def mask_foldin(scores: np.ndarray, foldin: sp.csr_matrix) -> np.ndarray:
    """Set the scores of fold-in items to -inf, in place, so they are never recommended."""
    rows, cols = foldin.nonzero()
    scores[rows, cols] = -np.inf
    return scores


def evaluate(
    scorer: Scorer,
    foldin: sp.csr_matrix,
    targets: sp.csr_matrix,
    ks: Iterable[tuple[str, int]] = DEFAULT_KS,
    batch_size: int = 2000,
) -> Evaluation:
    """Score heldout users block by block and compute ranking metrics against their targets."""
    if foldin.shape != targets.shape:
        raise ValueError(f"fold-in {foldin.shape} and targets {targets.shape} differ in shape")
    ks = list(ks)
    out: dict[str, list[np.ndarray]] = {f"{name}@{k}": [] for name, k in ks}
    for start in range(0, foldin.shape[0], batch_size):
        block = slice(start, start + batch_size)
        scores = np.array(scorer(foldin[block]), dtype=np.float32, copy=True)
        mask_foldin(scores, foldin[block])
        for name, k in ks:
            out[f"{name}@{k}"].append(_METRICS[name](scores, targets[block], k))
    per_user = {key: np.concatenate(v) if v else np.zeros(0) for key, v in out.items()}
    return Evaluation(per_user, int((targets.getnnz(axis=1) == 0).sum()))
