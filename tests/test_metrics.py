import math

import numpy as np
import pytest
import scipy.sparse as sp

from vaecf.metrics import evaluate, mask_foldin, top_k


def csr(rows: list[list[int]]) -> sp.csr_matrix:
    return sp.csr_matrix(np.array(rows, dtype=np.float32))


def per_user(scores: np.ndarray, targets: sp.csr_matrix, name: str, k: int) -> np.ndarray:
    """Metric ``name``@``k`` of each user through ``evaluate`` (the path validation and test take), no fold-in."""
    empty = sp.csr_matrix(scores.shape, dtype=np.float32)
    return evaluate(lambda rows: scores, empty, targets, ks=[(name, k)]).per_user[f"{name}@{k}"]


def test_ndcg_hand_computed() -> None:
    # Ranking: items 0 > 1 > 2 > 3; targets {1, 3}. DCG = 1/log2(3) + 1/log2(5).
    scores = np.array([[4.0, 3.0, 2.0, 1.0]])
    targets = csr([[0, 1, 0, 1]])
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 / math.log2(2) + 1 / math.log2(3)
    assert per_user(scores, targets, "ndcg", 4)[0] == pytest.approx(dcg / idcg)
    # At k=2 only item 1 is a hit; IDCG over min(|targets|=2, k=2) items.
    assert per_user(scores, targets, "ndcg", 2)[0] == pytest.approx((1 / math.log2(3)) / idcg)


def test_ndcg_idcg_uses_min_of_targets_and_k() -> None:
    # Three targets, k=1, the top item a hit: perfect NDCG@1 (IDCG over one item, not three).
    scores = np.array([[3.0, 2.0, 1.0, 0.0]])
    assert per_user(scores, csr([[1, 1, 1, 0]]), "ndcg", 1)[0] == pytest.approx(1.0)


def test_recall_divides_by_min_k_and_targets() -> None:
    scores = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]])
    targets = csr([[1, 0, 1, 1, 1]])  # 4 targets
    assert per_user(scores, targets, "recall", 2)[0] == pytest.approx(1 / 2)  # 1 hit / min(2, 4)
    assert per_user(scores, targets, "recall", 5)[0] == pytest.approx(4 / 4)
    assert per_user(scores, targets, "recall", 3)[0] == pytest.approx(2 / 3)


def test_users_without_targets_are_nan_and_counted() -> None:
    scores = np.array([[1.0, 2.0], [2.0, 1.0]])
    targets = csr([[0, 1], [0, 0]])
    values = per_user(scores, targets, "ndcg", 2)
    assert values[0] == pytest.approx(1.0) and np.isnan(values[1])
    result = evaluate(lambda f: scores[: f.shape[0]], csr([[0, 0], [0, 0]]), targets, ks=[("ndcg", 2)])
    assert result.users_without_targets == 1
    assert result.users == 1
    assert result.metrics["ndcg@2"] == pytest.approx(1.0)


def test_foldin_items_are_never_ranked() -> None:
    # Item 0 scores highest but is in the fold-in: item 1 (a target) must come first.
    foldin = csr([[1, 0, 0]])
    targets = csr([[0, 1, 0]])
    result = evaluate(lambda f: np.array([[9.0, 2.0, 1.0]]), foldin, targets, ks=[("ndcg", 1), ("recall", 1)])
    assert result.metrics == {"ndcg@1": pytest.approx(1.0), "recall@1": pytest.approx(1.0)}
    masked = mask_foldin(np.array([[9.0, 2.0, 1.0]]), foldin)
    assert masked[0, 0] == -np.inf


def test_evaluate_in_blocks_matches_one_block() -> None:
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(57, 40))
    targets = sp.csr_matrix((rng.random((57, 40)) < 0.1).astype(np.float32))
    foldin = sp.csr_matrix((rng.random((57, 40)) < 0.1).astype(np.float32))
    offsets = iter(range(0, 57, 10))

    def scorer(block: sp.csr_matrix) -> np.ndarray:
        start = next(offsets)
        return scores[start:start + block.shape[0]]

    blocked = evaluate(scorer, foldin, targets, batch_size=10).metrics
    whole = evaluate(lambda f: scores, foldin, targets, batch_size=100).metrics
    assert blocked == pytest.approx(whole)


def test_top_k_in_threads_ranks_every_row_as_one_thread_does(monkeypatch) -> None:
    import vaecf.metrics as metrics

    rng = np.random.default_rng(0)
    scores = rng.integers(0, 50, size=(1001, 300)).astype(np.float32)  # many ties
    one = top_k(scores[:1], 20)  # a single row: never threaded
    monkeypatch.setattr(metrics.os, "cpu_count", lambda: 3)
    threaded = top_k(scores, 20)  # 3 slices of ~334 rows
    monkeypatch.setattr(metrics, "PARALLEL_ROWS", 10**9)
    assert threaded.shape == (1001, 20) and np.array_equal(threaded, top_k(scores, 20))
    assert np.array_equal(threaded[:1], one)
    best = np.sort(scores, axis=1)[:, ::-1][:, :20]
    assert np.array_equal(np.take_along_axis(scores, threaded, axis=1), best)


def test_top_k_orders_best_first() -> None:
    assert top_k(np.array([[0.1, 0.9, 0.5, 0.7]]), 3).tolist() == [[1, 3, 2]]
