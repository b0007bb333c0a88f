"""``vaecf bench --serving``: runs on tiny data and records finite figures; the metrics it times are unchanged."""

from __future__ import annotations

import importlib
import json
import math

import numpy as np
import pytest
import scipy.sparse as sp

from vaecf.cli import main
from vaecf.metrics import evaluate


def _finite_numbers(value: object) -> list[float]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _finite_numbers(v)]
    return [float(value)] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


@pytest.mark.slow
def test_the_serving_bench_writes_finite_figures(tmp_path, capsys) -> None:
    data, out = tmp_path / "data", tmp_path / "bench.json"
    assert main(["data", "prepare", "synthetic:tiny", "--out", str(data)]) == 0
    capsys.readouterr()
    assert main(["bench", "--serving", "--data", str(data), "--requests", "30", "-k", "5", "--warmup", "1",
                 "--steps", "2", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    first_words = [line.split()[0].split("=")[0] for line in lines[:4]]
    assert first_words == ["evaluation", "recommend", "validation_s", "load_average_1min"]
    serving = json.loads(out.read_text())["serving"]
    figures = _finite_numbers(serving)
    assert figures and all(math.isfinite(x) for x in figures)
    e, r, v = serving["evaluation"], serving["recommend"], serving["validation_vs_epoch"]
    assert e["users_per_s"] > 0 and e["scoring_s"] > 0 and e["ranking_s"] > 0 and e["ceiling_users_per_s"] > 0
    assert r["requests"] == 30 and r["k"] == 5
    assert 0 < v["validation_share"] < 1
    assert len(r["rounds"]) == 3 and r["p99_ms"] in [x["p99_ms"] for x in r["rounds"]]
    assert serving["agreement"]["top_k_overlap"]["20"] > 0.99 and serving["batched"]["rows"][0]["batch"] == 1


def test_recommend_latency_times_each_request_apart_after_the_warm_ones(tiny_split, monkeypatch) -> None:
    # A scripted clock: the i-th recommend call (warm ones included) takes i ms, so the timed requests
    # take WARM_REQUESTS..WARM_REQUESTS+99 ms, whatever the machine.
    from vaecf import serving

    recommend_module = importlib.import_module("vaecf.recommend")  # the module: vaecf.recommend is the function
    clock, calls = [0.0], []

    def recommend(model, split, history, k):  # noqa: ANN001, ANN202
        calls.append((len(history), k))
        clock[0] += len(calls) / 1e3
        return []

    monkeypatch.setattr(recommend_module, "recommend", recommend)
    monkeypatch.setattr(serving.time, "perf_counter", lambda: clock[0])
    latency = serving.recommend_latency(None, tiny_split, requests=100, k=7)  # type: ignore[arg-type]
    assert len(calls) == 100 + serving.WARM_REQUESTS and {k for _, k in calls} == {7}
    timed_ms = np.arange(serving.WARM_REQUESTS + 1, serving.WARM_REQUESTS + 101)
    for q in (50, 90, 99):
        assert latency[f"p{q}_ms"] == pytest.approx(np.percentile(timed_ms, q))
    assert latency["max_ms"] == pytest.approx(timed_ms[-1])
    lengths = [n for n, _ in calls[serving.WARM_REQUESTS:]]
    assert latency["history_median"] == np.median(lengths) and latency["history_max"] == max(lengths)


def _reference(scores: np.ndarray, foldin: sp.csr_matrix, targets: sp.csr_matrix, name: str, k: int) -> np.ndarray:
    """The metric by a full stable sort per user: what the ranking must agree with when no scores tie."""
    scores = scores.copy()
    scores[foldin.toarray() > 0] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    relevant = targets.toarray() > 0
    hits = np.take_along_axis(relevant, top, axis=1)
    n = relevant.sum(axis=1)
    if name == "recall":
        return hits.sum(axis=1) / np.minimum(k, n)
    discount = 1 / np.log2(np.arange(2, k + 2))
    ideal = np.array([discount[:min(m, k)].sum() for m in n])
    return (hits * discount).sum(axis=1) / ideal


def test_one_ranking_per_block_gives_the_metrics_of_a_full_sort() -> None:
    rng = np.random.default_rng(3)
    users, items = 230, 500
    scores = rng.normal(size=(users, items)).astype(np.float32)
    foldin = sp.csr_matrix((rng.random((users, items)) < 0.05).astype(np.float32))
    relevant = (rng.random((users, items)) < 0.05) & (foldin.toarray() == 0)
    relevant[0] = False  # one user without targets
    targets = sp.csr_matrix(relevant.astype(np.float32))
    ks = [("ndcg", 100), ("recall", 20), ("recall", 50), ("ndcg", 7)]
    result = evaluate(lambda rows: scores, foldin, targets, ks=ks, batch_size=users)
    for name, k in ks:
        expected = _reference(scores[1:], foldin[1:], targets[1:], name, k)
        np.testing.assert_allclose(result.per_user[f"{name}@{k}"][1:], expected, rtol=1e-12)
        assert np.isnan(result.per_user[f"{name}@{k}"][0])


def test_a_warm_model_scores_one_user_as_the_trainer_does(tiny_split) -> None:
    from vaecf.config import RunConfig, TrainConfig
    from vaecf.recommend import recommend
    from vaecf.serving import SingleUserScorer, training_histories
    from vaecf.train import Trainer

    trainer = Trainer(tiny_split.n_items, RunConfig(train=TrainConfig(epochs=1, batch_size=50)))
    trainer.train_epoch(tiny_split.train, 0, show_progress=False)
    warm = SingleUserScorer(trainer)
    train = tiny_split.train
    for user in range(0, train.shape[0], 41):
        row = train[user]  # the same function in float32: equal up to summation order
        np.testing.assert_allclose(warm.scores(row), trainer.scores(row), rtol=1e-4, atol=1e-6)
    block = train[:7]  # several users: the sparse product
    np.testing.assert_allclose(warm.scores(block), trainer.scores(block), rtol=1e-4, atol=1e-6)
    weighted = block.copy()
    weighted.data[:] = 2.0  # not 0/1: the trainer's path, exactly
    assert np.array_equal(warm.scores(weighted), trainer.scores(weighted))
    for history in training_histories(tiny_split, 10, seed=1):
        assert recommend(warm, tiny_split, history, 10) == recommend(trainer, tiny_split, history, 10)


def test_evaluation_leaves_the_scorers_array_as_it_gave_it() -> None:
    rng = np.random.default_rng(5)
    scores = rng.normal(size=(20, 30)).astype(np.float32)
    given = scores.copy()
    foldin = sp.csr_matrix((rng.random((20, 30)) < 0.2).astype(np.float32))
    targets = sp.csr_matrix(((rng.random((20, 30)) < 0.2) & (foldin.toarray() == 0)).astype(np.float32))
    evaluate(lambda rows: scores, foldin, targets, batch_size=20)
    assert np.array_equal(scores, given)
    read_only = given.copy()
    read_only.flags.writeable = False
    assert evaluate(lambda rows: read_only, foldin, targets, batch_size=20).metrics == \
        evaluate(lambda rows: given.copy(), foldin, targets, batch_size=20).metrics


def test_agreement_and_batched_scoring(tiny_split) -> None:
    from vaecf.config import ModelConfig, RunConfig, TrainConfig
    from vaecf.serving import SingleUserScorer, agreement, batched_scoring
    from vaecf.train import Trainer

    trainer = Trainer(tiny_split.n_items, RunConfig(train=TrainConfig(epochs=1, batch_size=50)))
    trainer.train_epoch(tiny_split.train, 0, show_progress=False)
    same = agreement(trainer, SingleUserScorer(trainer), tiny_split, "test")
    assert same["metrics_equal"] and same["top_k_overlap"] == {"20": 1.0, "100": 1.0}
    assert 0 < same["max_abs_score_diff"] < 1e-4
    other = Trainer(tiny_split.n_items, RunConfig(ModelConfig(), TrainConfig(seed=7)))  # different weights
    differ = agreement(trainer, SingleUserScorer(other), tiny_split, "test")
    assert not differ["metrics_equal"] and differ["top_k_overlap"]["20"] < 1.0
    batched = batched_scoring(SingleUserScorer(trainer), tiny_split, k=10, calls=5)
    rows = batched["rows"]
    assert [r["batch"] for r in rows] == [1, 4, 16, 32, 64, 128, 256, 512][:len(rows)]
    assert all(r["p99_ms"] <= batched["p99_limit_ms"] for r in rows[:-1])  # it stops at the first over the limit
    within = [r for r in rows if r["p99_ms"] <= batched["p99_limit_ms"]]
    if within:  # on a machine too busy for even one user within the limit the figure is None
        assert batched["users_per_s"] == max(r["users_per_s"] for r in within)
    else:
        assert batched["users_per_s"] is None and len(rows) == 1
