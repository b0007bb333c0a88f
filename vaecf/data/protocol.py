"""The paper's data protocol, step for step as the authors' preprocessing code does it.

1. Keep ratings above the threshold as implicit positives.
2. Keep users with at least ``min_user_positives`` positives (no item filter).
3. Sort the unique user ids, permute them with ``numpy`` seed 98765 (legacy ``RandomState``,
   as ``np.random.seed`` + ``np.random.permutation``); the last 2N users become N validation
   users followed by N test users, the rest train.
4. The item set is the items seen among training users, numbered in order of first
   appearance in the training ratings; heldout interactions on other items are dropped.
5. For validation and test separately, with the seed reset to 98765: each user (in ascending
   id order, rows in file order) with at least 5 items gets ``floor(0.2 n)`` items drawn as
   targets, the rest fold-in; users with fewer go wholly to fold-in.

Where we had to choose (the authors' code leaves it implicit):
- Duplicate (user, item) pairs, absent from MovieLens and Netflix, are dropped keeping the
  first, and counted in the statistics (the authors' CSR construction would sum them).
- Every heldout user keeps a row, even one left without items after step 4: such users have
  no targets, so the metrics exclude and count them (the authors' row range did the same
  implicitly for users between the first and last present id).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from vaecf.config import ProtocolConfig
from vaecf.data.split import Split
from vaecf.errors import DataError

RATINGS_COLUMNS = ("user", "item", "rating")
STAGES = 6
"""How many times ``apply_protocol`` reports a stage done (its progress)."""


def apply_protocol(ratings: pd.DataFrame, cfg: ProtocolConfig | None = None,
                   stage: Callable[[str], None] | None = None) -> Split:
    """Turn a ratings table (columns user, item, rating; file order) into the paper's split.

    ``stage`` is told each of the ``STAGES`` stages as it ends (a command's progress).
    """
    done = stage or (lambda _: None)
    cfg = cfg or ProtocolConfig()  # checked when made: heldout_users >= 1 (a negative N would invent users)
    missing = set(RATINGS_COLUMNS) - set(ratings.columns)
    if missing:
        raise DataError(f"ratings table lacks column(s) {sorted(missing)}")
    # Plain arrays and dense user/item numbers throughout: on Netflix's 57M positives, pandas'
    # isin, groupby and label lookups hash every row again and again (a third of the time).
    positive = (ratings["rating"] > cfg.threshold).to_numpy()
    user, item = ratings["user"].to_numpy()[positive], ratings["item"].to_numpy()[positive]
    duplicated = repeated_pairs(user, item)
    user, item = user[~duplicated], item[~duplicated]
    n_positives = len(user)
    done("positives kept")

    user_ids, user_code = _dense_codes(user)  # ascending ids, as a groupby would list them
    kept = np.flatnonzero(np.bincount(user_code, minlength=len(user_ids)) >= cfg.min_user_positives)
    n_users = len(kept)
    if n_users - 2 * cfg.heldout_users < 1:
        raise DataError(f"{n_users} users with >= {cfg.min_user_positives} positives cannot give "
                        f"{cfg.heldout_users} validation + {cfg.heldout_users} test users and a training set")
    perm = np.random.RandomState(cfg.seed).permutation(n_users)
    ordered = kept[perm]
    n_train = n_users - 2 * cfg.heldout_users
    part_codes = (ordered[:n_train], ordered[n_train:n_train + cfg.heldout_users],
                  ordered[n_train + cfg.heldout_users:])  # train, validation, test
    part_of = np.full(len(user_ids), -1, dtype=np.int8)  # -1: too few positives
    row_of = np.zeros(len(user_ids), dtype=_index_dtype(len(user_ids)))  # the user's row within its part
    for part, codes in enumerate(part_codes):
        part_of[codes] = part
        row_of[codes] = np.arange(len(codes))
    row_part = part_of[user_code]
    rows = row_of[user_code]
    done("users split")

    in_train = row_part == 0
    item_ids = pd.unique(item[in_train])  # numbered in order of first appearance
    item_values, item_code = _dense_codes(item)
    col_of = np.full(len(item_values), -1, dtype=_index_dtype(len(item_values)))  # -1: no training user has it
    col_of[np.searchsorted(item_values, item_ids)] = np.arange(len(item_ids))
    cols = col_of[item_code]
    shape = (n_train, len(item_ids))
    done("items numbered")

    train = _csr(rows[in_train], cols[in_train], shape)
    done("training matrix")
    parts = {}
    dropped = 0
    for part, name in ((1, "validation"), (2, "test")):
        plays = np.flatnonzero(row_part == part)  # file order
        seen = cols[plays] >= 0
        dropped += int((~seen).sum())
        plays = plays[seen]
        is_target = _draw_targets(user_code[plays], cfg)
        n_rows = len(part_codes[part])
        foldin, target = plays[~is_target], plays[is_target]
        parts[name] = (_csr(rows[foldin], cols[foldin], (n_rows, len(item_ids))),
                       _csr(rows[target], cols[target], (n_rows, len(item_ids))))
        done(f"{name} targets drawn")
    train_users, val_users, test_users = (user_ids[codes] for codes in part_codes)

    split = Split(train, *parts["validation"], *parts["test"], item_ids=np.asarray(item_ids),
                  train_user_ids=train_users, validation_user_ids=val_users, test_user_ids=test_users)
    split.stats = {
        "ratings": int(len(ratings)),
        "positives": n_positives,
        "duplicate_positives_dropped": int(duplicated.sum()),
        "users": n_users,
        "items": len(item_ids),
        "interactions": int((row_part >= 0).sum()),
        "train_users": int(n_train),
        "train_interactions": int(train.nnz),
        "mean_items_per_train_user": float(train.nnz / max(n_train, 1)),
        "density": float(train.nnz / max(n_train * len(item_ids), 1)),
        "heldout_interactions_on_unseen_items": dropped,
        **{f"{name}_{key}": value for name, (fi, tg) in parts.items() for key, value in (
            ("users", fi.shape[0]), ("foldin", int(fi.nnz)), ("targets", int(tg.nnz)),
            ("users_without_targets", int((tg.getnnz(axis=1) == 0).sum())))},
    }
    return split


def repeated_pairs(user: np.ndarray, item: np.ndarray) -> np.ndarray:
    """Which rows repeat the (user, item) pair of an earlier row: all but each pair's first."""
    keys = _pair_keys(user, item)
    repeated = np.zeros(len(keys), dtype=bool)
    # Real data has no repeats: one plain sort proves it, several times faster than hashing the
    # pairs (DataFrame.duplicated) on 50M+ positives, and than the stable sort needed otherwise.
    if len(keys) < 2 or not (np.diff(np.sort(keys)) == 0).any():
        return repeated
    order = np.argsort(keys, kind="stable")  # equal pairs stay in file order: the first comes first
    sorted_keys = keys[order]
    repeated[order[1:]] = sorted_keys[1:] == sorted_keys[:-1]
    return repeated


def _pair_keys(user: np.ndarray, item: np.ndarray) -> np.ndarray:
    """One int64 per row, equal exactly when the rows' (user, item) pairs are."""
    if not len(user):
        return np.zeros(0, dtype=np.int64)
    combinable = user.dtype.kind == "i" and item.dtype.kind == "i" and min(user.min(), item.min()) >= 0
    span = int(item.max()) + 1 if combinable else 0
    if not combinable or int(user.max()) > (np.iinfo(np.int64).max - span) // span:
        # Ids that do not combine into one int64 (never so in real data): number them densely first.
        user = pd.factorize(user)[0]
        item, uniques = pd.factorize(item)
        span = len(uniques)
    return user.astype(np.int64) * span + item


def _index_dtype(n: int) -> type[np.signedinteger]:
    """int32 for row and column numbers below ``n`` when they fit (always, in practice).

    Half the memory of int64 per play, and the CSR's own index type, so scipy builds the
    matrices without copying them to int32 first: Netflix-shaped peak RSS 8.0 -> 6.6 GB.
    """
    return np.int32 if n < np.iinfo(np.int32).max else np.int64


def _dense_codes(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct ids ascending, each row's index among them)."""
    if ids.dtype.kind == "i" and len(ids) and ids.min() >= 0 and ids.max() < max(len(ids), 1 << 22):
        # Ids below the row count (real data's): a table indexed by id, no sort. It costs at
        # most one more array as long as ``ids``.
        present = np.zeros(int(ids.max()) + 1, dtype=bool)
        present[ids] = True
        return np.flatnonzero(present).astype(ids.dtype), (np.cumsum(present) - 1)[ids]
    values, codes = np.unique(ids, return_inverse=True)
    return values, codes.reshape(-1)


def _draw_targets(user_code: np.ndarray, cfg: ProtocolConfig) -> np.ndarray:
    """Which plays are targets: per user (ascending id; plays in file order) floor(fraction * n) drawn."""
    rng = np.random.RandomState(cfg.seed)
    is_target = np.zeros(len(user_code), dtype=bool)
    # A stable sort visits users in ascending id order and keeps file order inside each user,
    # which fixes the order in which the shared random stream is consumed.
    order = np.argsort(user_code, kind="stable")
    bounds = np.flatnonzero(np.diff(user_code[order])) + 1
    for positions in np.split(order, bounds) if len(order) else []:
        n = len(positions)
        if n >= cfg.min_split_items:
            drawn = rng.choice(n, size=int(cfg.target_fraction * n), replace=False)
            is_target[positions[drawn]] = True
    return is_target


def _csr(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """Binary CSR of the given (row, column) cells."""
    m = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=shape)
    m.sort_indices()
    return m
