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

import numpy as np
import pandas as pd
import scipy.sparse as sp

from vaecf.config import ProtocolConfig
from vaecf.data.split import Split
from vaecf.errors import DataError

RATINGS_COLUMNS = ("user", "item", "rating")


def apply_protocol(ratings: pd.DataFrame, cfg: ProtocolConfig | None = None) -> Split:
    """Turn a ratings table (columns user, item, rating; file order) into the paper's split."""
    cfg = cfg or ProtocolConfig()  # checked when made: heldout_users >= 1 (a negative N would invent users)
    missing = set(RATINGS_COLUMNS) - set(ratings.columns)
    if missing:
        raise DataError(f"ratings table lacks column(s) {sorted(missing)}")
    positives = ratings.loc[ratings["rating"] > cfg.threshold, ["user", "item"]]
    duplicated = repeated_pairs(positives["user"].to_numpy(), positives["item"].to_numpy())
    positives = positives.loc[~duplicated]
    n_positives = len(positives)

    counts = positives.groupby("user").size()
    kept_users = counts.index[counts >= cfg.min_user_positives]  # ascending ids, as groupby sorts
    positives = positives.loc[positives["user"].isin(kept_users)]

    n_users = len(kept_users)
    if n_users - 2 * cfg.heldout_users < 1:
        raise DataError(f"{n_users} users with >= {cfg.min_user_positives} positives cannot give "
                        f"{cfg.heldout_users} validation + {cfg.heldout_users} test users and a training set")
    perm = np.random.RandomState(cfg.seed).permutation(n_users)
    users = np.asarray(kept_users)[perm]
    n_train = n_users - 2 * cfg.heldout_users
    train_users = users[:n_train]
    val_users = users[n_train:n_train + cfg.heldout_users]
    test_users = users[n_train + cfg.heldout_users:]

    train_plays = positives.loc[positives["user"].isin(train_users)]
    item_ids = pd.unique(train_plays["item"])
    item_col = pd.Series(np.arange(len(item_ids)), index=item_ids)

    train = _csr(train_plays, train_users, item_col)
    parts = {}
    dropped = 0
    for name, part_users in (("validation", val_users), ("test", test_users)):
        plays = positives.loc[positives["user"].isin(part_users)]
        seen = plays["item"].isin(item_col.index)
        dropped += int((~seen).sum())
        foldin, target = _split_foldin_target(plays.loc[seen], cfg)
        parts[name] = (_csr(foldin, part_users, item_col), _csr(target, part_users, item_col))

    split = Split(train, *parts["validation"], *parts["test"], item_ids=np.asarray(item_ids),
                  train_user_ids=train_users, validation_user_ids=val_users, test_user_ids=test_users)
    split.stats = {
        "ratings": int(len(ratings)),
        "positives": n_positives,
        "duplicate_positives_dropped": int(duplicated.sum()),
        "users": n_users,
        "items": len(item_ids),
        "interactions": int(len(positives)),
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
    span = int(item.max()) + 1
    if min(user.min(), item.min()) < 0 or int(user.max()) > (np.iinfo(np.int64).max - span) // span:
        # Ids that do not combine into one int64 (never so in real data): number them densely first.
        user = pd.factorize(user)[0]
        item, uniques = pd.factorize(item)
        span = len(uniques)
    return user.astype(np.int64) * span + item


def _split_foldin_target(plays: pd.DataFrame, cfg: ProtocolConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per user (ascending id; rows in file order) draw floor(fraction * n) targets."""
    rng = np.random.RandomState(cfg.seed)
    is_target = np.zeros(len(plays), dtype=bool)
    # groupby(sort=True) visits users in ascending id order and keeps file order inside each group,
    # which fixes the order in which the shared random stream is consumed.
    for positions in plays.groupby("user", sort=True).indices.values():
        n = len(positions)
        if n >= cfg.min_split_items:
            drawn = rng.choice(n, size=int(cfg.target_fraction * n), replace=False)
            is_target[positions[drawn]] = True
    return plays.loc[~is_target], plays.loc[is_target]


def _csr(plays: pd.DataFrame, row_users: np.ndarray, item_col: pd.Series) -> sp.csr_matrix:
    """Binary CSR with one row per id in ``row_users`` (in that order) and the protocol's columns."""
    row_of = pd.Series(np.arange(len(row_users)), index=row_users)
    rows = row_of.loc[plays["user"].to_numpy()].to_numpy()
    cols = item_col.loc[plays["item"].to_numpy()].to_numpy()
    data = np.ones(len(rows), dtype=np.float32)
    m = sp.csr_matrix((data, (rows, cols)), shape=(len(row_users), len(item_col)))
    m.sort_indices()
    return m
