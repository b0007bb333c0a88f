import numpy as np
import pytest
import scipy.sparse as sp

from vaecf import baselines
from vaecf.baselines import EASE, Popularity, gram, select_ease
from vaecf.config import ProtocolConfig
from vaecf.data.protocol import apply_protocol
from vaecf.data.synthetic import SYNTHETIC_PRESETS, generate, heldout_users_for
from vaecf.metrics import evaluate, mask_foldin

X = sp.csr_matrix(np.array([
    [1, 1, 0, 0, 1],
    [0, 1, 1, 0, 0],
    [1, 0, 1, 1, 0],
    [1, 1, 1, 0, 0],
    [0, 0, 0, 1, 1],
    [1, 0, 0, 1, 0],
], dtype=np.float32))


def _ease_by_formula(x: np.ndarray, lam: float) -> np.ndarray:
    p = np.linalg.inv(x.T @ x + lam * np.eye(x.shape[1]))
    b = np.eye(x.shape[1]) - p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    return b


@pytest.fixture(scope="module")
def planted_split():
    ratings, _ = generate(SYNTHETIC_PRESETS["tiny"])
    return apply_protocol(ratings, ProtocolConfig(heldout_users=heldout_users_for(SYNTHETIC_PRESETS["tiny"])))


@pytest.mark.parametrize("lam", [0.5, 3.0])
def test_ease_matches_the_closed_form(lam):
    model = EASE.fit(X, lam)
    expected = _ease_by_formula(X.toarray().astype(np.float64), lam)
    np.testing.assert_allclose(model.weights, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.score(X[:3]), X[:3].toarray() @ expected, rtol=1e-5, atol=1e-6)
    assert model.lam == lam


def test_ease_diagonal_is_zero(planted_split):
    model = EASE.fit(planted_split.train, 100.0)
    assert model.weights.dtype == np.float32
    assert not np.diag(model.weights).any()


def test_block_inverse_agrees_with_one_cholesky(planted_split, monkeypatch):
    # Large catalogues are inverted by Schur-complement blocks; force that path on a small one.
    direct = EASE.fit(planted_split.train, 50.0).weights
    monkeypatch.setattr(baselines, "_DIRECT_MAX", 40)
    blocked = EASE.fit(planted_split.train, 50.0).weights
    np.testing.assert_allclose(blocked, direct, rtol=1e-4, atol=1e-6)


def test_gram_binarises_and_sums_user_blocks(monkeypatch):
    monkeypatch.setattr(baselines, "_GRAM_BLOCK_USERS", 4)
    ratings = X * 5.0
    np.testing.assert_array_equal(gram(ratings), (X.T @ X).toarray())


def test_popularity_ranks_the_most_popular_unseen_item_first():
    model = Popularity.fit(X)  # item counts: 4, 3, 3, 3, 2
    np.testing.assert_array_equal(model.counts, [4, 3, 3, 3, 2])
    foldin = sp.csr_matrix(np.array([[0, 0, 0, 0, 1], [1, 0, 0, 0, 0]], dtype=np.float32))
    scores = mask_foldin(model.score(foldin), foldin)
    assert scores[0].argmax() == 0
    assert scores[1].argmax() in (1, 2, 3)  # ties among the next most popular


def test_select_ease_picks_the_best_validation_ndcg(planted_split):
    lambdas = (1.0, 30.0, 300.0, 3000.0)
    model, ndcg = select_ease(planted_split.train, *planted_split.heldout("validation"), lambdas=lambdas)
    assert list(ndcg) == list(lambdas)
    assert model.lam == max(ndcg, key=ndcg.get)
    assert len(set(ndcg.values())) > 1  # the grid matters on this data
    refit = EASE.fit(planted_split.train, model.lam)
    np.testing.assert_allclose(model.weights, refit.weights)
    score = evaluate(model.score, *planted_split.heldout("validation")).metrics["ndcg@100"]
    assert score == pytest.approx(ndcg[model.lam])


def test_ease_beats_popularity_on_synthetic_data(planted_split):
    model, _ = select_ease(planted_split.train, *planted_split.heldout("validation"), lambdas=(10.0, 100.0, 1000.0))
    test = planted_split.heldout("test")
    ease = evaluate(model.score, *test).metrics["ndcg@100"]
    popularity = evaluate(Popularity.fit(planted_split.train).score, *test).metrics["ndcg@100"]
    assert ease > popularity + 0.05


@pytest.mark.slow
def test_ease_on_movielens_100k(ml100k_split):
    split = ml100k_split
    # A short grid around the optimum (200 on the full default grid) keeps the test fast.
    model, _ = select_ease(split.train, *split.heldout("validation"), lambdas=(100.0, 200.0, 500.0, 1000.0))
    test = evaluate(model.score, *split.heldout("test")).metrics
    assert test["ndcg@100"] > 0.40
