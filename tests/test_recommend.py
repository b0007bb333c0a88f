"""``recommend``: the history is never recommended back, k is checked, repeats count once."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from vaecf.errors import ConfigError, DataError
from vaecf.recommend import recommend


def _by_column(foldin: sp.csr_matrix) -> np.ndarray:
    """Scores that rank items by their column, highest column first, plus 10 x the history's weight."""
    n = foldin.shape[1]
    return np.arange(n, dtype=np.float32)[None, :] + 10 * foldin.toarray()


def test_top_k_skips_the_history_even_when_k_reaches_the_catalogue(tiny_split) -> None:
    ids = [int(i) for i in tiny_split.item_ids]
    history = ids[-3:]  # the three best-scored items
    everything_else = recommend(_by_column, tiny_split, history, tiny_split.n_items - 3)
    assert len(everything_else.items) == tiny_split.n_items - 3 and not set(history) & set(everything_else.items)
    assert recommend(_by_column, tiny_split, history, 2).items == ids[-4:-6:-1]


@pytest.mark.parametrize("k", [0, -3])
def test_k_below_one_is_refused(tiny_split, k: int) -> None:
    with pytest.raises(ConfigError, match=rf"k must be in 1\.\.{tiny_split.n_items - 1}"):
        recommend(_by_column, tiny_split, [int(tiny_split.item_ids[0])], k)


def test_k_beyond_the_items_left_is_refused_not_clamped(tiny_split) -> None:
    with pytest.raises(ConfigError) as caught:
        recommend(_by_column, tiny_split, [int(tiny_split.item_ids[0])], tiny_split.n_items)
    assert caught.value.field == "k" and caught.value.value == tiny_split.n_items


def test_a_repeated_id_counts_once_and_is_noted(tiny_split) -> None:
    seen: list[sp.csr_matrix] = []

    def scorer(foldin: sp.csr_matrix) -> np.ndarray:
        seen.append(foldin)
        return _by_column(foldin)

    first, second = (int(i) for i in tiny_split.item_ids[:2])
    result = recommend(scorer, tiny_split, [first, second, first], 5)
    assert seen[0].data.tolist() == [1.0, 1.0]  # not 2.0 for the repeated item
    assert result.notes == [f"item id(s) given more than once, counted once: {first}"]
    assert result.items == recommend(_by_column, tiny_split, [first, second], 5).items


def test_an_empty_history_and_unknown_ids_are_refused(tiny_split) -> None:
    with pytest.raises(DataError, match="history is empty"):
        recommend(_by_column, tiny_split, [], 5)
    with pytest.raises(DataError, match="not in this model's catalogue: 999999"):
        recommend(_by_column, tiny_split, [999999], 5)


def test_a_trainer_like_object_is_accepted(tiny_split) -> None:
    class Model:
        scores = staticmethod(_by_column)

    assert recommend(Model(), tiny_split, [int(tiny_split.item_ids[0])], 3).items == \
        [int(i) for i in tiny_split.item_ids[-1:-4:-1]]


def _argsort_reference(scores: np.ndarray, k: int) -> np.ndarray:
    """A full stable sort: what the ranker must agree with when no scores tie at the k-th."""
    return np.argsort(-scores, kind="stable")[:k]


@pytest.mark.parametrize("seed", range(5))
def test_the_ranker_keeps_its_tie_rule_even_with_ties_everywhere(seed: int) -> None:
    from vaecf.metrics import top_k

    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 7, size=300).astype(np.float64)  # many equal scores, ties at every k
    scores[rng.choice(300, 40, replace=False)] = -np.inf  # a masked history
    for k in (1, 5, 37, 100, 259, 260, 300):
        ranked = top_k(scores[None, :], k)[0]
        assert len(set(ranked.tolist())) == k
        # the k best scores, best first; equal scores in column order
        assert scores[ranked].tolist() == scores[_argsort_reference(scores, k)].tolist(), k
        assert all(scores[a] > scores[b] or (scores[a] == scores[b] and a < b) for a, b in zip(ranked, ranked[1:]))


def test_a_trained_model_recommends_what_the_full_sort_ranked(tiny_split) -> None:
    from vaecf.config import RunConfig, TrainConfig
    from vaecf.train import Trainer

    trainer = Trainer(tiny_split.n_items, RunConfig(train=TrainConfig(epochs=1, batch_size=50)))
    trainer.train_epoch(tiny_split.train, 0, show_progress=False)
    train = tiny_split.train
    for user in range(0, train.shape[0], 37):
        cols = train.indices[train.indptr[user]:train.indptr[user + 1]]
        history = [int(i) for i in tiny_split.item_ids[cols]]
        row = sp.csr_matrix((np.ones(len(cols), np.float32), (np.zeros(len(cols), int), cols)),
                            shape=(1, tiny_split.n_items))
        scores = np.asarray(trainer.scores(row), dtype=np.float64)[0]
        scores[cols] = -np.inf
        expected = [int(tiny_split.item_ids[j]) for j in _argsort_reference(scores, 10)]
        assert recommend(trainer, tiny_split, history[::-1], 10).items == expected
