import dataclasses

import numpy as np
import pandas as pd
import pytest

from vaecf.baselines import Popularity
from vaecf.config import ProtocolConfig
from vaecf.data.protocol import apply_protocol
from vaecf.data.synthetic import (
    SYNTHETIC_PRESETS,
    SyntheticConfig,
    generate,
    heldout_users_for,
    oracle_metrics,
    parse_spec,
)
from vaecf.errors import DataError
from vaecf.metrics import evaluate

TINY = SYNTHETIC_PRESETS["tiny"]


@pytest.fixture(scope="module")
def tiny():
    ratings, truth = generate(TINY)
    return ratings, truth, apply_protocol(ratings, ProtocolConfig(heldout_users=heldout_users_for(TINY)))


def _frame_bytes(frame: pd.DataFrame) -> list[bytes]:
    return [frame[c].to_numpy().tobytes() for c in frame.columns]


def test_same_seed_gives_byte_identical_data(tiny):
    ratings, truth, _ = tiny
    again, truth_again = generate(TINY)
    assert list(again.columns) == ["user", "item", "rating"]
    assert _frame_bytes(again) == _frame_bytes(ratings)
    np.testing.assert_array_equal(truth_again.user_factors, truth.user_factors)


def test_another_seed_gives_other_data(tiny):
    other, _ = generate(dataclasses.replace(TINY, seed=TINY.seed + 1))
    assert _frame_bytes(other) != _frame_bytes(tiny[0])


@pytest.mark.parametrize("cfg", [TINY, parse_spec("synthetic:users=2500,items=400,mean_items=30,seed=7")])
def test_shape_counts_and_format(cfg):
    ratings, _ = generate(cfg)
    assert ratings.dtypes.to_dict() == {"user": np.int64, "item": np.int64, "rating": np.float32}
    assert (ratings["rating"] == 5.0).all()
    assert ratings["user"].is_monotonic_increasing  # grouped by user
    assert not ratings.duplicated(["user", "item"]).any()
    per_user = ratings.groupby("user").size()
    assert len(per_user) == cfg.users
    assert per_user.min() >= 5 and per_user.max() <= cfg.items // 2
    assert per_user.mean() == pytest.approx(cfg.mean_items, rel=0.03)
    assert ratings["item"].between(0, cfg.items - 1).all()


def test_protocol_keeps_every_user_and_the_mean(tiny):
    _, _, split = tiny
    assert split.stats["users"] == TINY.users
    assert split.stats["test_users"] == split.stats["validation_users"] == 60
    assert split.stats["mean_items_per_train_user"] == pytest.approx(TINY.mean_items, rel=0.1)


def test_logits_follow_the_given_ids(tiny):
    _, truth, _ = tiny
    full = truth.logits(np.arange(TINY.users), np.arange(TINY.items))
    users, items = np.array([7, 3, 599]), np.array([250, 0, 17])
    np.testing.assert_allclose(truth.logits(users, items), full[np.ix_(users, items)], rtol=1e-5, atol=1e-5)


def test_oracle_clearly_beats_popularity(tiny):
    _, truth, split = tiny
    oracle = oracle_metrics(truth, split)
    popularity = evaluate(Popularity.fit(split.train).score, *split.heldout("test")).to_dict()
    assert set(oracle) >= {"ndcg@100", "recall@20", "recall@50"}
    assert oracle["ndcg@100"] > popularity["ndcg@100"] + 0.15


def test_oracle_tracks_users_across_evaluation_blocks():
    # More than evaluate's 2,000-user block, so the scorer's running offset matters.
    cfg = SyntheticConfig(users=4_600, items=120, mean_items=12.0, seed=3)
    ratings, truth = generate(cfg)
    split = apply_protocol(ratings, ProtocolConfig(heldout_users=2_100))
    foldin, targets = split.heldout("validation")
    direct = truth.logits(split.validation_user_ids, split.item_ids)
    expected = evaluate(lambda _: direct, foldin, targets, batch_size=foldin.shape[0]).metrics
    assert oracle_metrics(truth, split, "validation")["ndcg@100"] == pytest.approx(expected["ndcg@100"])


def test_presets_have_the_papers_shapes():
    ml, nf = SYNTHETIC_PRESETS["ml-20m"], SYNTHETIC_PRESETS["netflix"]
    assert (ml.users, ml.items) == (136_677, 20_108)
    assert ml.mean_items == pytest.approx(9_990_682 / 136_677, rel=0.01)
    assert (nf.users, nf.items) == (463_435, 17_769)
    assert nf.mean_items == pytest.approx(56_880_037 / 463_435, rel=0.01)
    small = SYNTHETIC_PRESETS["small"]
    assert (small.users, small.items, small.mean_items) == (12_000, ml.items, ml.mean_items)
    assert [heldout_users_for(SYNTHETIC_PRESETS[n]) for n in ("ml-20m", "netflix", "small", "tiny")] == [
        10_000, 40_000, 1_000, 60]
    assert heldout_users_for(dataclasses.replace(ml, seed=5)) == 10_000


def test_parse_spec():
    assert parse_spec("synthetic:small") == SYNTHETIC_PRESETS["small"] == SyntheticConfig()
    assert parse_spec("synthetic") == SYNTHETIC_PRESETS["small"]
    assert parse_spec("tiny") == TINY
    assert parse_spec("synthetic:ml-20m, seed=3") == dataclasses.replace(SYNTHETIC_PRESETS["ml-20m"], seed=3)
    cfg = parse_spec("synthetic:users=5000,items=2000,mean_items=30")
    assert (cfg.users, cfg.items, cfg.mean_items) == (5000, 2000, 30.0)
    assert isinstance(cfg.mean_items, float) and isinstance(cfg.users, int)


@pytest.mark.parametrize("spec, message", [
    ("synthetic:huge", "unknown synthetic preset 'huge'"),
    ("synthetic:small,colour=3", "unknown synthetic field 'colour'"),
    ("synthetic:users=many", "users='many'.*expected an integer"),
    ("synthetic:small,tiny", "not key=value"),
    ("synthetic:items=101,mean_items=50.5", "mean_items=50.5: allowed range strictly between 5 and items//2=50"),
    ("synthetic:users=0", "users=0: allowed range >= 1 .in 'synthetic:users=0'"),
    ("synthetic:seed=-1", "seed=-1: allowed range >= 0"),
    ("synthetic:temperature=0", "temperature=0.0: allowed range > 0"),
    ("synthetic:temperature=nan", "temperature=nan: allowed range > 0"),
    ("synthetic:count_sigma=inf", "count_sigma=inf: allowed range >= 0"),
    ("synthetic:mean_items=nan", "mean_items=nan: allowed range"),
])
def test_parse_spec_rejects_bad_specs(spec, message):
    with pytest.raises(DataError, match=message):
        parse_spec(spec)


def test_config_refuses_out_of_range_values_as_data_error():
    with pytest.raises(DataError, match="latent_dim=0: allowed range >= 1"):
        SyntheticConfig(latent_dim=0)


@pytest.mark.slow
def test_small_preset_is_realistic():
    cfg = SYNTHETIC_PRESETS["small"]
    ratings, truth = generate(cfg)
    split = apply_protocol(ratings, ProtocolConfig(heldout_users=heldout_users_for(cfg)))
    assert split.stats["train_users"] == 10_000
    assert split.stats["mean_items_per_train_user"] == pytest.approx(73.1, rel=0.03)
    assert split.stats["items"] > 0.95 * cfg.items
    oracle = oracle_metrics(truth, split)["ndcg@100"]
    popularity = evaluate(Popularity.fit(split.train).score, *split.heldout("test")).metrics["ndcg@100"]
    assert 0.35 < oracle < 0.6
    assert popularity < oracle - 0.15
