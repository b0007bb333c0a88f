"""The training loop: a ``tf.function`` step, per-epoch validation, checkpoints and timing.

``fit`` writes a run folder through ``vaecf.rundir.RunDir`` (configuration, history, the latest
checkpoint, the best epoch's weights); starting it on a folder that already holds a run of the
same configuration resumes after its last finished epoch. ``train_updates`` trains for a number
of updates with validation on a schedule of its own (the ablation runner's quality curves).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import tensorflow as tf

from vaecf.config import WARMUP_STEPS, RunConfig
from vaecf.data.split import Split
from vaecf.distributed import Local, World
from vaecf.errors import DataError, TrainingError
from vaecf.events import Point, write_events
from vaecf.log import EpochLog, progress
from vaecf.metrics import Evaluation, evaluate
from vaecf.model import Loss, MultVAE
from vaecf.optim import Adam, LossScale
from vaecf.perf import device_peak_bytes, peak_rss_bytes
from vaecf.pipeline import batch_spec, batches, epoch_order, to_sparse_tensor
from vaecf.progress import Phase
from vaecf.rundir import READ_FIX, RunDir

EVENT_KEYS = ("loss", "neg_ll", "kl", "users_per_s", "val_ndcg@100", "val_recall@20", "val_recall@50")
"""The history's scalars in a run folder's ``tensorboard/`` (by epoch, and by training seconds)."""


@dataclass
class Throughput:
    """Training users per second over timed steps (full batches after warm-up)."""

    users_per_s: list[float] = field(default_factory=list)

    def record(self, users: int, seconds: float) -> None:
        self.users_per_s.append(users / seconds)

    def summary(self) -> dict[str, float | None]:
        if not self.users_per_s:  # fewer steps than the warm-up: nothing was timed (null, not NaN)
            return {"median": None, "p10": None, "p90": None, "steps": 0}
        v = np.asarray(self.users_per_s)
        p10, med, p90 = np.percentile(v, [10, 50, 90])
        return {"median": float(med), "p10": float(p10), "p90": float(p90), "steps": int(v.size)}


@dataclass
class FitResult:
    history: list[dict[str, Any]]
    best_epoch: int
    best: dict[str, float]
    throughput: dict[str, float | None]
    train_seconds: float
    summary: dict[str, Any] = field(default_factory=dict)
    """What ``vaecf train`` prints and the run folder keeps as result.json (filled by ``fit``)."""


class Trainer:
    """Builds the model and optimizer for a ``RunConfig`` and trains it on a ``Split``."""

    def __init__(self, n_items: int, config: RunConfig, world: World | None = None,
                 warmup_steps: int = WARMUP_STEPS) -> None:
        self.config = config
        self.warmup_steps = warmup_steps
        self.world = world or Local()
        t = config.train
        with self.world.scope():
            self.model = MultVAE(n_items, config.model, seed=t.seed, precision=t.precision, xla=t.xla)
            self.variables = [v for pair in self.model.encoder + self.model.decoder for v in pair]
            self.optimizer = Adam(self.variables, t.lr, t.beta1, t.beta2, t.epsilon)
            self.loss_scale = LossScale(enabled=t.precision == "mixed_float16")
        self.world.broadcast(self.variables)
        spec = batch_spec(n_items, t.input)
        # The step's two parts as graphs: this worker's loss and gradients (XLA-compiled when asked), then the step.
        self.loss_and_grads = tf.function(self._loss_and_grads, input_signature=[spec], jit_compile=t.xla)
        self.step = tf.function(lambda x: self.world.run(self._step, x), input_signature=[spec])
        self._score = tf.function(lambda x: self.model.forward(x, False, tf.constant([0, 0], tf.int64))[0],
                                  input_signature=[batch_spec(n_items, "sparse")])
        self.throughput = Throughput()
        self._steps_seen = 0
        self.skipped_steps = 0
        """Steps whose float16 gradients overflowed: not applied, so not updates (``train_updates``)."""
        self._skipped_last = False

    # -- one step --------------------------------------------------------------------------------
    def _loss_and_grads(self, x: tf.Tensor | tf.SparseTensor) -> tuple[Loss, list[tf.Tensor]]:
        """This worker's loss and (loss-scaled) gradients: the part XLA compiles."""
        t = self.config.train
        it = self.optimizer.iterations
        if self.config.model.kind == "dae":
            anneal = tf.constant(0.0)
        elif t.total_anneal_steps == 0:  # no annealing: the cap from the first step, as the authors' code does
            anneal = tf.constant(t.anneal_cap)
        else:
            anneal = tf.minimum(t.anneal_cap, tf.cast(it, tf.float32) / float(t.total_anneal_steps))
        seed = tf.stack([tf.constant(t.seed + 7919 * self.world.rank, tf.int64), it])
        with tf.GradientTape() as tape:
            loss = self.model.loss(x, anneal, training=True, seed=seed)
            objective = loss.total * self.loss_scale.scale if self.loss_scale.enabled else loss.total
        # Under XLA the first layer's gradient arrives as IndexedSlices (from the embedding-bag's
        # gather); Adam's fused kernel and the collectives want it dense.
        return loss, [tf.convert_to_tensor(g) for g in tape.gradient(objective, self.variables)]

    def _step(self, x: tf.Tensor | tf.SparseTensor) -> Loss:
        # Collectives stay outside the compiled part: XLA on CPU cannot compile a ring all-reduce.
        loss, grads = self.loss_and_grads(x)
        grads = self.world.allreduce(grads)
        grads, finite = self.loss_scale.unscale(grads)
        if self.loss_scale.enabled:
            tf.cond(finite, lambda: self.optimizer.apply(grads), lambda: self.optimizer.iterations.read_value())
            self.loss_scale.update(finite)
        else:
            self.optimizer.apply(grads)
        return loss

    def train_epoch(self, train: sp.csr_matrix, epoch: int, max_steps: int | None = None,
                    show_progress: bool | None = None) -> dict[str, float]:
        """Run one epoch (or ``max_steps`` steps of it); returns loss means and timing."""
        order, per_worker = self._epoch_shard(train, epoch)
        n_steps = math.ceil(len(order) / per_worker)
        if max_steps is not None:
            n_steps = min(n_steps, max_steps)
            order = order[: n_steps * per_worker]
        sums = np.zeros(3)
        start = time.perf_counter()
        bar = progress(n_steps, f"epoch {epoch}", show_progress)
        for _, values in zip(range(n_steps), self._steps(train, order, per_worker, epoch)):
            sums += values
            bar.update(1)
        bar.close()
        seconds = time.perf_counter() - start
        steps = max(n_steps, 1)
        return {"loss": sums[0] / steps, "neg_ll": sums[1] / steps, "kl": sums[2] / steps,
                "steps": n_steps, "epoch_s": seconds, "users": len(order) * self.world.size}

    def train_updates(self, split: Split, updates: int, eval_every: int) -> list[dict[str, Any]]:
        """Train ``updates`` steps across epochs, validating every ``eval_every`` steps (and after the last).

        Returns one record per validation: updates and users so far, training seconds (validation
        excluded: the clock stops while it runs) and the validation seconds on their own. Validation
        happens on rank 0; the other workers wait for it in the next step's all-reduce.
        """
        curve: list[dict[str, Any]] = []
        done, train_s, eval_s, epoch = 0, 0.0, 0.0, 0
        while done < updates:
            order, per_worker = self._epoch_shard(split.train, epoch)
            start = time.perf_counter()
            for _ in self._steps(split.train, order, per_worker, epoch):
                if self._skipped_last:  # a float16 overflow: no update was applied
                    continue
                done += 1
                if done % eval_every == 0 or done == updates:
                    train_s += time.perf_counter() - start
                    if self.world.rank == 0:
                        before = time.perf_counter()
                        metrics = self.evaluate(split, "validation").metrics
                        eval_s += time.perf_counter() - before
                        curve.append({"updates": done, "users": done * self.config.train.global_batch,
                                      "train_s": train_s, "eval_s": eval_s, **metrics})
                    start = time.perf_counter()
                if done == updates:
                    break
            else:
                train_s += time.perf_counter() - start
            epoch += 1
        return curve

    def _epoch_shard(self, train: sp.csr_matrix, epoch: int) -> tuple[np.ndarray, int]:
        """This worker's users of ``epoch`` in order, and its users per step."""
        t = self.config.train
        order = self.world.shard(epoch_order(train.shape[0], t.seed, epoch), t.global_batch)
        return order, t.global_batch // self.world.size

    def _steps(self, train: sp.csr_matrix, order: np.ndarray, per_worker: int,
               epoch: int) -> Iterator[np.ndarray]:
        """Train on ``order`` batch by batch; yield each step's (total, neg_ll, kl) losses."""
        t = self.config.train
        it = batches(train, order, per_worker, t.input, t.pipeline, t.prefetch, pad=t.xla and t.input == "sparse")
        last = time.perf_counter()
        for k, x in enumerate(it):
            before = int(self.optimizer.iterations.numpy()) if self.loss_scale.enabled else 0
            floored = self.loss_scale.at_floor()
            loss = self.step(x)
            values = np.array([float(loss.total), float(loss.neg_ll), float(loss.kl)])  # syncs the device
            now = time.perf_counter()
            self._skipped_last = self.loss_scale.enabled and int(self.optimizer.iterations.numpy()) == before
            if self._skipped_last:
                self.skipped_steps += 1
                if floored:
                    raise TrainingError(f"non-finite float16 gradients at epoch {epoch}, step {k} with the loss "
                                        f"scale at its floor ({self.loss_scale.floor:g}): float16 cannot hold "
                                        "this model's gradients; use mixed_bfloat16 or float32")
            if not np.isfinite(values[0]):
                raise TrainingError(f"non-finite loss {values[0]} at epoch {epoch}, step {k} "
                                    f"(precision={t.precision}, lr={t.lr}); the last finished epoch's "
                                    "checkpoint is kept: lower the learning rate or use float32")
            users = _batch_users(x)
            self._steps_seen += 1
            if self._steps_seen > self.warmup_steps and users == per_worker:
                self.throughput.record(users * self.world.size, now - last)
            yield values
            last = time.perf_counter()  # the consumer's time (validation, bookkeeping) is not the step's

    # -- evaluation --------------------------------------------------------------------------------
    def scores(self, foldin: sp.csr_matrix) -> np.ndarray:
        """Scores of every item for users given by their fold-in rows (no dropout, z = mean)."""
        return self._score(to_sparse_tensor(foldin)).numpy()

    def evaluate(self, split: Split, part: str = "validation") -> Evaluation:
        foldin, target = split.heldout(part)
        result = evaluate(self.scores, foldin, target)
        if result.users == 0:
            raise DataError(f"no {part} user has target items ({result.users_without_targets} users without): "
                            "the metrics would be NaN; prepare the data with more heldout users")
        return result

    # -- the whole run -----------------------------------------------------------------------------
    def fit(self, split: Split, out: Path | None = None, log: EpochLog | None = None,
            show_progress: bool | None = None, data_dir: Path | None = None) -> FitResult:
        """Train for ``epochs``, validating every ``eval_every``; keep the best epoch's weights.

        With ``out``, the run folder (``vaecf.rundir``) records it all and a run found there is
        resumed after its last finished epoch; ``data_dir`` (the split's folder) is recorded with it.
        """
        t = self.config.train
        log = log or EpochLog()
        state = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, loss_scale=self.loss_scale)
        best_ckpt = tf.train.Checkpoint(model=self.model)
        main = self.world.rank == 0
        run = RunDir(Path(out)) if out is not None else None
        history: list[dict[str, Any]] = []
        if run is not None:
            history = run.start(self.config, split.stats, data_dir) if main else run.history()
        best_epoch, best = _best_of(history)
        if best_epoch >= 0 and run is not None:
            best_ckpt.read(str(run.best_prefix(best_epoch))).assert_consumed()
        best_weights = [v.numpy() for v in self.variables]
        if history and run is not None:
            state.read(str(run.state(history[-1]["ckpt"]))).assert_consumed()
        train_seconds = history[-1]["train_s"] if history else 0.0
        phase = Phase(t.epochs, "epochs", "epochs", done=len(history),
                      quiet=True if not main or show_progress is False else None)
        for epoch in range(len(history), t.epochs):
            stats = self.train_epoch(split.train, epoch, show_progress=show_progress and main)
            train_seconds += stats["epoch_s"]
            record: dict[str, Any] = {"epoch": epoch, **stats, "train_s": train_seconds,
                                      "users_per_s": stats["users"] / stats["epoch_s"]}
            if main and ((epoch + 1) % t.eval_every == 0 or epoch + 1 == t.epochs):
                metrics = self.evaluate(split, "validation").metrics
                record.update({f"val_{k}": v for k, v in metrics.items()})
                if best_epoch < 0 or metrics["ndcg@100"] > best["ndcg@100"]:
                    best_epoch, best = epoch, metrics
                    best_weights = [v.numpy() for v in self.variables]
                    if run is not None:
                        best_ckpt.write(str(run.best_prefix(epoch)))
            record["best_epoch"] = best_epoch
            history.append(record)
            if main:
                log.epoch(record)
                if run is not None:
                    run.checkpointed(history, state.write)
                    write_events(run.path / "tensorboard", [
                        Point(h["epoch"], h["train_s"], {k: h[k] for k in EVENT_KEYS if k in h}) for h in history])
            phase.advance(1, f"epoch {epoch}" + (f", best {best_epoch}" if best_epoch >= 0 else ""))
        phase.close()
        # The model leaves fit() holding its best validation epoch's weights (rank 0 tracks them).
        if main:
            for v, w in zip(self.variables, best_weights):
                v.assign(w)
        result = FitResult(history, best_epoch, best, self.throughput.summary(), train_seconds)
        result.summary = {"best_epoch": best_epoch, "validation": best, "users_per_s": result.throughput,
                          "train_s": train_seconds, "workers": self.world.size,
                          "peak_rss_bytes": peak_rss_bytes(), "device_peak_bytes": device_peak_bytes()}
        if main and run is not None:
            run.write_result(result.summary)
        return result

    @classmethod
    def from_run(cls, path: Path) -> Trainer:
        """A finished run's model at its best validation epoch (``vaecf evaluate``, ``recommend``, serving).

        Every file of the run is checked against its manifest first: a missing or damaged one is a
        DataError naming it, not TensorFlow's error from inside a checkpoint read. The run's split
        is ``RunDir(path).load_split()``.
        """
        run = RunDir(Path(path))
        best = run.finished()
        trainer = cls(run.n_items(), run.run_config())
        try:
            tf.train.Checkpoint(model=trainer.model).read(str(best)).expect_partial()
        except (tf.errors.OpError, ValueError) as exc:
            raise DataError(f"{best}: unreadable ({exc}); {READ_FIX}") from exc
        return trainer


def _batch_users(x: tf.Tensor | tf.SparseTensor) -> int:
    return int(x.dense_shape[0]) if isinstance(x, tf.SparseTensor) else int(x.shape[0])


def _best_of(history: list[dict[str, Any]]) -> tuple[int, dict[str, float]]:
    scored = [h for h in history if "val_ndcg@100" in h]
    if not scored:
        return -1, {}
    top = max(scored, key=lambda h: h["val_ndcg@100"])
    return top["epoch"], {k[4:]: v for k, v in top.items() if k.startswith("val_")}
