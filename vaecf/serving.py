"""Serving: a trained model made ready for single users, and ``vaecf bench --serving``.

``SingleUserScorer`` wraps a ``Trainer`` for ``vaecf.recommend.recommend``: one user's history goes to one
traced graph as its columns only. The bench measures three figures, each on the prepared split
and a freshly initialised model (the time of a forward pass and a ranking does not depend on
the weights' values):

* evaluation: ``Trainer.evaluate`` on the validation users (users/s), the same pass again with
  its scoring timed apart from ranking and metrics (two passes: under load their totals
  differ, both are recorded), against the ceiling of the output layer's
  forward GEMM at the evaluation block size (``perf.gemm_rate(..., flavour="forward")``);
* recommend: latency of ``vaecf.recommend.recommend`` (what ``vaecf recommend`` calls) with a
  warm model, one request per history, the histories being training rows of the data, beside
  its floor: the output layer's product for one user, timed alone;
* validation share: one validation against one epoch of training, the epoch's seconds
  estimated from the median step rate of a few steps (a whole epoch is minutes on a CPU).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from vaecf.config import ModelConfig, RunConfig, TrainConfig
from vaecf.data.split import Split
from vaecf.recommend import ScoringModel

if TYPE_CHECKING:
    from vaecf.train import Trainer

WARM_REQUESTS = 10
"""Requests answered before the timed ones: the first traces nothing (fixed signature) but touches memory."""


def measure_serving(split: Split, requests: int, k: int, warmup: int, steps: int,
                    seed: int = 0) -> dict[str, Any]:
    """Evaluation throughput, single-user recommend latency and the validation share of an epoch."""
    from vaecf.train import Trainer
    from vaecf.train_speed import train_speed

    load_before = os.getloadavg()[0]  # other processes on the cores make every figure here slower
    trainer = Trainer(split.n_items, RunConfig())
    evaluation = evaluation_speed(trainer, split)
    latency = recommend_latency(SingleUserScorer(trainer), split, requests, k, seed)
    latency["output_product_p50_ms"] = output_product_ms(trainer, requests)
    train = TrainConfig(batch_size=min(TrainConfig().batch_size, split.train.shape[0]))  # only full batches are timed
    users_per_s = train_speed(split, train, warmup, steps)["users_per_s"]
    epoch_s = split.train.shape[0] / users_per_s["median"]
    share = {"batch_size": train.batch_size, "timed_steps": users_per_s["steps"],
             "train_users_per_s": users_per_s["median"], "epoch_s_estimated": epoch_s,
             "validation_s": evaluation["seconds"],
             "validation_share": evaluation["seconds"] / (evaluation["seconds"] + epoch_s)}
    return {"evaluation": evaluation, "recommend": latency, "validation_vs_epoch": share,
            "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]}}


def evaluation_speed(trainer: Trainer, split: Split) -> dict[str, Any]:
    """``trainer.evaluate`` on the validation users, its scoring/ranking split, and the GEMM ceiling."""
    from vaecf.flops import forward_gemm_flops
    from vaecf.metrics import BLOCK, evaluate
    from vaecf.perf import gemm_rate

    foldin, target = split.heldout("validation")
    users = foldin.shape[0]
    block = min(BLOCK, users)
    trainer.scores(foldin[:block])  # warm: the first call builds the graph and touches its memory
    start = time.perf_counter()
    trainer.evaluate(split, "validation")
    seconds = time.perf_counter() - start
    scoring = _Timed(trainer.scores)
    start = time.perf_counter()
    evaluate(scoring, foldin, target)
    instrumented = time.perf_counter() - start
    hidden = ModelConfig().hidden[-1]
    rate = gemm_rate(block, hidden, split.n_items, flavour="forward")
    ceiling = rate / forward_gemm_flops(1, hidden, split.n_items)
    return {"users": users, "block": block, "seconds": seconds, "users_per_s": users / seconds,
            "instrumented_s": instrumented, "scoring_s": scoring.seconds, "ranking_s": instrumented - scoring.seconds,
            "forward_gemm_flops": rate, "ceiling_users_per_s": ceiling,
            "of_ceiling": users / seconds / ceiling, "scoring_of_ceiling": users / scoring.seconds / ceiling}


def recommend_latency(model: ScoringModel, split: Split, requests: int, k: int, seed: int = 0) -> dict[str, Any]:
    """Seconds of ``recommend`` per request (p50/p90/p99 in ms) over ``requests`` training rows drawn at random."""
    from vaecf.recommend import recommend

    histories = training_histories(split, requests + WARM_REQUESTS, seed)
    for history in histories[:WARM_REQUESTS]:
        recommend(model, split, history, k)
    seconds = []
    for history in histories[WARM_REQUESTS:]:
        start = time.perf_counter()
        recommend(model, split, history, k)
        seconds.append(time.perf_counter() - start)
    p50, p90, p99 = np.percentile(seconds, [50, 90, 99]) * 1e3
    lengths = [len(h) for h in histories[WARM_REQUESTS:]]
    return {"requests": requests, "k": k, "p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99),
            "max_ms": float(max(seconds)) * 1e3, "history_median": float(np.median(lengths)),
            "history_max": int(max(lengths))}


def output_product_ms(trainer: Trainer, repeats: int) -> float:
    """Median milliseconds of one user's output-layer product alone (1 x hidden x items): recommend's floor.

    The product reads every output weight once per request (48 MB in float32 at 20,108 items), so
    memory bandwidth, not arithmetic, bounds it; the rest of a request is measured against it.
    """
    import tensorflow as tf

    w = trainer.model.decoder[-1][0]
    h = tf.ones([1, w.shape[0]], w.dtype)
    product = tf.function(lambda: tf.matmul(h, w))
    product()  # traced and warm
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        product().numpy()
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds)) * 1e3


def training_histories(split: Split, n: int, seed: int) -> list[list[int]]:
    """``n`` histories of original item ids: training rows drawn at random (with replacement)."""
    train: sp.csr_matrix = split.train
    users = np.random.default_rng(seed).integers(0, train.shape[0], n)
    return [split.item_ids[train.indices[train.indptr[u]:train.indptr[u + 1]]].tolist() for u in users]


class SingleUserScorer:
    """A trainer's scores, with single users scored by a graph over their history's columns.

    ``Trainer.scores`` takes any batch as a ``tf.SparseTensor``: for one user the conversion
    (CSR -> COO -> three tensors) and binding that structure to the graph cost about as much as
    the encoder. Here one int64 vector goes in and the same SparseTensor is built in the graph,
    then the model's own forward pass runs on it: the scores are the same numbers.
    """

    def __init__(self, trainer: Trainer) -> None:
        import tensorflow as tf

        self.trainer = trainer
        n_items = trainer.model.n_items
        no_noise = tf.constant([0, 0], tf.int64)  # forward(training=False) draws nothing

        def one_user(cols: tf.Tensor) -> tf.Tensor:
            indices = tf.stack([tf.zeros_like(cols), cols], axis=1)
            row = tf.SparseTensor(indices, tf.ones_like(cols, tf.float32), [1, n_items])
            return trainer.model.forward(row, False, no_noise)[0]

        self._one_user = tf.function(one_user, input_signature=[tf.TensorSpec([None], tf.int64)])

    def scores(self, foldin: sp.csr_matrix) -> np.ndarray:
        """Scores of every item for the users of ``foldin``'s rows; one user with 0/1 entries by the fast path."""
        if foldin.shape[0] != 1 or not foldin.has_sorted_indices or (foldin.data != 1).any():
            return self.trainer.scores(foldin)
        return self._one_user(foldin.indices.astype(np.int64)).numpy()


class _Timed:
    """A scorer that adds up the seconds spent in it."""

    def __init__(self, scorer: Callable[[sp.csr_matrix], np.ndarray]) -> None:
        self.scorer = scorer
        self.seconds = 0.0

    def __call__(self, rows: sp.csr_matrix) -> np.ndarray:
        start = time.perf_counter()
        scores = self.scorer(rows)
        self.seconds += time.perf_counter() - start
        return scores


def serving_lines(serving: dict[str, Any]) -> list[str]:
    """One printed line per figure."""
    e, r, v = serving["evaluation"], serving["recommend"], serving["validation_vs_epoch"]
    return [
        f"evaluation users_per_s={e['users_per_s']:.0f} ({e['users']} users, block {e['block']}; timed again: "
        f"{e['instrumented_s']:.2f} s = scoring {e['scoring_s']:.2f} + ranking {e['ranking_s']:.2f}) "
        f"forward_gemm_gflops={e['forward_gemm_flops'] / 1e9:.1f} ceiling_users_per_s={e['ceiling_users_per_s']:.0f} "
        f"of_ceiling={e['of_ceiling']:.2f}",
        f"recommend p50_ms={r['p50_ms']:.2f} p90_ms={r['p90_ms']:.2f} p99_ms={r['p99_ms']:.2f} "
        f"({r['requests']} requests, k={r['k']}, history median {r['history_median']:.0f}, max {r['history_max']}; "
        f"the output product alone: p50 {r['output_product_p50_ms']:.2f} ms)",
        f"validation_s={v['validation_s']:.1f} epoch_s={v['epoch_s_estimated']:.1f} (estimated from "
        f"{v['timed_steps']} steps at batch {v['batch_size']}) validation_share={v['validation_share']:.2f}",
        "load_average_1min before={before:.1f} after={after:.1f} ({cores} cores)".format(
            **serving["load_average_1min"], cores=os.cpu_count()),
    ]
