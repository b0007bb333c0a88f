import numpy as np
import pandas as pd
import pytest

from tests.factories import random_ratings
from vaecf.config import ProtocolConfig
from vaecf.data.protocol import apply_protocol, repeated_pairs
from vaecf.data.split import Split
from vaecf.errors import DataError


def test_ml100k_statistics_match_the_published_protocol(ml100k_split: Split) -> None:
    s = ml100k_split.stats
    assert s["users"] == 938
    assert s["items"] == 1415
    assert (s["train_users"], s["train_interactions"]) == (738, 43_606)
    assert (s["validation_foldin"], s["validation_targets"]) == (4_839, 1_161)
    assert (s["test_foldin"], s["test_targets"]) == (4_612, 1_105)


def test_heldout_users_never_train(ml100k_split: Split) -> None:
    train = set(ml100k_split.train_user_ids)
    assert not train & set(ml100k_split.validation_user_ids)
    assert not train & set(ml100k_split.test_user_ids)
    assert not set(ml100k_split.validation_user_ids) & set(ml100k_split.test_user_ids)


@pytest.mark.parametrize("part", ["validation", "test"])
def test_targets_and_foldin_disjoint_with_80_20_sizes(ml100k_split: Split, part: str) -> None:
    foldin, target = ml100k_split.heldout(part)
    assert foldin.multiply(target).nnz == 0
    n = foldin.getnnz(axis=1) + target.getnnz(axis=1)
    expected = np.where(n >= 5, np.floor(0.2 * n), 0)
    assert np.array_equal(target.getnnz(axis=1), expected)


def test_items_are_those_of_training_users(ml100k_ratings: pd.DataFrame, ml100k_split: Split) -> None:
    pos = ml100k_ratings[ml100k_ratings.rating > 3.5]
    seen = set(pos[pos.user.isin(ml100k_split.train_user_ids)].item)
    assert set(ml100k_split.item_ids) == seen
    assert (ml100k_split.train.getnnz(axis=0) > 0).all()


def test_same_seed_gives_byte_identical_split(tmp_path) -> None:
    ratings = random_ratings(seed=3)
    protocol = ProtocolConfig(heldout_users=30)
    a, b = apply_protocol(ratings, protocol), apply_protocol(ratings, protocol)
    a.save(tmp_path / "a")
    b.save(tmp_path / "b")
    for f in sorted((tmp_path / "a").iterdir()):
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes(), f.name
    c = apply_protocol(ratings, ProtocolConfig(heldout_users=30, seed=1))
    assert not np.array_equal(a.test_user_ids, c.test_user_ids)


def test_save_load_round_trip(tmp_path, tiny_split: Split) -> None:
    tiny_split.save(tmp_path)
    back = Split.load(tmp_path)
    assert (back.train != tiny_split.train).nnz == 0
    assert np.array_equal(back.item_ids, tiny_split.item_ids)
    assert back.stats == tiny_split.stats


def test_too_few_users_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="cannot give"):
        apply_protocol(random_ratings(users=20), ProtocolConfig(heldout_users=10))


def test_low_activity_users_are_dropped_and_threshold_is_strict() -> None:
    ratings = random_ratings(users=200)
    extra = pd.DataFrame({"user": [9999] * 6, "item": range(6), "rating": [3.5] * 5 + [4.0]})
    split = apply_protocol(pd.concat([ratings, extra]), ProtocolConfig(heldout_users=20))
    assert 9999 not in set(split.train_user_ids) | set(split.validation_user_ids) | set(split.test_user_ids)


def test_loading_a_missing_split_names_the_folder(tmp_path) -> None:
    with pytest.raises(DataError, match=str(tmp_path)):
        Split.load(tmp_path)


@pytest.mark.parametrize("scale", [1, -1, 10**17], ids=["small", "negative", "huge"])
def test_repeated_pairs_marks_all_but_the_first_as_pandas_does(scale: int) -> None:
    rng = np.random.default_rng(5)
    user, item = rng.integers(0, 40, 5_000) * scale, rng.integers(0, 60, 5_000) * scale
    expected = pd.DataFrame({"user": user, "item": item}).duplicated().to_numpy()
    assert expected.any()
    assert np.array_equal(repeated_pairs(user, item), expected)
    assert not repeated_pairs(np.arange(9), np.zeros(9, dtype=np.int64)).any()
    assert len(repeated_pairs(user[:0], item[:0])) == 0


def test_duplicate_positives_are_dropped_keeping_the_first_and_counted() -> None:
    ratings = random_ratings(users=200)
    again = ratings[ratings["rating"] > 3.5].iloc[::7].assign(rating=5.0)
    split = apply_protocol(pd.concat([ratings, again]), ProtocolConfig(heldout_users=20))
    assert split.stats["duplicate_positives_dropped"] == len(again)
    assert split.stats["positives"] == int((ratings["rating"] > 3.5).sum())
    reference = apply_protocol(ratings, ProtocolConfig(heldout_users=20))
    assert (split.train != reference.train).nnz == 0


@pytest.mark.parametrize("relabel", [lambda ids: ids * 10**15 + 7, lambda ids: ids - 10**6, lambda ids: ids + 0.5],
                         ids=["huge", "negative", "float"])
def test_ids_far_from_row_numbers_give_the_same_split(relabel) -> None:  # noqa: ANN001
    # Small ids are numbered through a lookup table, others by sorting: both must agree.
    ratings = random_ratings(users=200)
    cfg = ProtocolConfig(heldout_users=20)
    small = apply_protocol(ratings, cfg)
    other = apply_protocol(ratings.assign(user=relabel(ratings["user"]), item=relabel(ratings["item"])), cfg)
    for name in ("train", "validation_foldin", "validation_target", "test_foldin", "test_target"):
        assert (getattr(other, name) != getattr(small, name)).nnz == 0, name
    for name in ("item_ids", "train_user_ids", "validation_user_ids", "test_user_ids"):
        assert np.array_equal(getattr(other, name), relabel(getattr(small, name))), name
