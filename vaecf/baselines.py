"""Non-neural baselines in the same evaluation harness: item popularity and EASE (Steck 2019).

Each fitted model's ``score`` maps a CSR batch of fold-in rows to dense scores, so it plugs
straight into ``vaecf.metrics.evaluate`` (which masks the fold-in items itself).

EASE memory: the Gram matrix and the inverse are dense items x items float64 (8 * items^2 bytes
each, 3.2 GB at ML-20M's 20,108 items). ``select_ease`` holds the Gram matrix, the matrix being
inverted plus ~items^2 elements of temporaries, and at most two float32 weight matrices: about
32 * items^2 bytes at peak (~13 GB for ML-20M). The inverse costs ~1.3 * items^3 flops per lambda.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from vaecf.metrics import evaluate

DEFAULT_LAMBDAS: tuple[float, ...] = (50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0)
_GRAM_BLOCK_USERS = 20_000
_SYMMETRISE_BLOCK = 2048
_DIRECT_MAX = 8192
"""Largest matrix inverted by one Cholesky call (see ``_spd_inverse``)."""


@dataclass(frozen=True, eq=False)
class Popularity:
    """Scores every item by its number of training users, the same for every user."""

    counts: np.ndarray

    @classmethod
    def fit(cls, train: sp.csr_matrix) -> Popularity:
        return cls(np.asarray((train > 0).sum(axis=0), dtype=np.float32).ravel())

    def score(self, foldin: sp.csr_matrix) -> np.ndarray:
        return np.tile(self.counts, (foldin.shape[0], 1))


@dataclass(frozen=True, eq=False)
class EASE:
    """Embarrassingly Shallow Autoencoder: scores = X B, B = I - P / diag(P), P = (X^T X + lam I)^-1.

    Dividing column j of P by P_jj and subtracting from I is the closed-form solution of
    min ||X - X B||^2 + lam ||B||^2 subject to diag(B) = 0.
    """

    weights: np.ndarray
    """B: items x items float32, zero diagonal."""
    lam: float

    @classmethod
    def fit(cls, train: sp.csr_matrix, lam: float = 500.0) -> EASE:
        return cls.from_gram(gram(train), lam)

    @classmethod
    def from_gram(cls, g: np.ndarray, lam: float) -> EASE:
        """Fit from a precomputed X^T X (float64, left unchanged), so lambdas share one Gram matrix."""
        a = g.copy()
        a[np.diag_indices_from(a)] += lam
        p = _spd_inverse(a)
        p /= -np.diag(p)  # column j divided by -P_jj: B = I - P / diag(P) off the diagonal
        np.fill_diagonal(p, 0.0)
        return cls(p.astype(np.float32), float(lam))

    def score(self, foldin: sp.csr_matrix) -> np.ndarray:
        return np.asarray(foldin.astype(np.float32) @ self.weights)


def gram(train: sp.csr_matrix) -> np.ndarray:
    """Dense float64 X^T X of the binarised matrix, summed over user blocks to bound sparse temporaries."""
    x = (train > 0).astype(np.float64).tocsr()
    n = x.shape[1]
    g = np.zeros((n, n))
    for start in range(0, x.shape[0], _GRAM_BLOCK_USERS):
        block = x[start:start + _GRAM_BLOCK_USERS]
        part = (block.T @ block).tocsr()  # canonical: each (row, col) once, so += is safe
        rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(part.indptr))
        g.ravel()[rows * n + part.indices] += part.data
    return g


def _spd_inverse(a: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive definite matrix; overwrites ``a``.

    Up to ``_DIRECT_MAX`` rows: Cholesky (potrf + potri, half LU's flops). Above, one block step
    on the Schur complement S = A22 - A21 A11^-1 A12, recursing on A11 and S, so the bulk of the
    work is gemm: multithreaded OpenBLAS potrf segfaults on large matrices (seen at n > ~16k
    with 2 threads, OpenBLAS 0.3.31).
    """
    n = a.shape[0]
    if n <= _DIRECT_MAX:
        return _cholesky_inverse(a)
    h = n // 2
    # Temporaries are dropped as soon as possible: they add ~n^2 elements on top of ``a``.
    a11_inv = _spd_inverse(a[:h, :h].copy())
    x = a11_inv @ a[:h, h:]  # A11^-1 A12
    s = a[h:, :h] @ x
    np.subtract(a[h:, h:], s, out=s)
    a[h:, h:] = _spd_inverse(s)  # P22 = S^-1
    del s
    a[:h, h:] = x @ a[h:, h:]
    np.negative(a[:h, h:], out=a[:h, h:])  # P12 = -A11^-1 A12 P22
    a[h:, :h] = a[:h, h:].T
    a[:h, :h] = a11_inv
    del a11_inv
    a[:h, :h] -= a[:h, h:] @ x.T  # P11 = A11^-1 + A11^-1 A12 P22 A21 A11^-1
    return a


def _cholesky_inverse(a: np.ndarray) -> np.ndarray:
    """SPD inverse by LAPACK potrf + potri, in place."""
    # a.T is the same symmetric matrix in Fortran order, so LAPACK works on it without a copy.
    c, info = lapack.dpotrf(a.T, lower=False, overwrite_a=True, clean=False)
    if info != 0:
        raise np.linalg.LinAlgError(f"Gram matrix + lam I is not positive definite (dpotrf info={info})")
    p, info = lapack.dpotri(c, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"Cholesky inverse failed (dpotri info={info})")
    # dpotri fills only the upper triangle; mirror it down block by block to avoid an n x n temporary.
    n = p.shape[0]
    for start in range(0, n, _SYMMETRISE_BLOCK):
        stop = min(start + _SYMMETRISE_BLOCK, n)
        p[start:stop, :start] = p[:start, start:stop].T
        diag = p[start:stop, start:stop]
        diag[...] = np.triu(diag) + np.triu(diag, 1).T
    return p


def select_ease(
    train: sp.csr_matrix,
    val_foldin: sp.csr_matrix,
    val_target: sp.csr_matrix,
    lambdas: Iterable[float] = DEFAULT_LAMBDAS,
) -> tuple[EASE, dict[float, float]]:
    """Fit EASE for each lambda on one Gram matrix; keep the best validation NDCG@100.

    Returns the chosen model and every lambda's validation NDCG@100 (ties go to the first).
    """
    g = gram(train)
    best: EASE | None = None
    ndcg: dict[float, float] = {}
    for lam in lambdas:
        model = EASE.from_gram(g, lam)
        ndcg[float(lam)] = evaluate(model.score, val_foldin, val_target).metrics["ndcg@100"]
        if best is None or ndcg[float(lam)] > ndcg[best.lam]:
            best = model
    if best is None:
        raise ValueError("select_ease needs at least one lambda")
    return best, ndcg
