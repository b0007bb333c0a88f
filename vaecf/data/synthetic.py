"""Synthetic implicit-feedback data of any shape, planted by a known latent model.

The model is the one Mult-VAE assumes (a user draws items from a softmax over the catalogue),
with structure a model can learn and ground truth to score against:

- Item popularity: items get distinct ranks r_i = 1..I in random order and a bias
  b_i = -popularity_skew * log(r_i), so that without taste an item's share is ~ r_i^-skew (Zipf).
- Item embeddings: w_i ~ N(0, I_d / d), so ||w_i|| ~ 1.
- Users belong to one of ``clusters`` equally likely taste groups: z_u = m_c + user_spread * e_u
  with centres m_c ~ N(0, I_d) and e_u ~ N(0, I_d).
- User u's distribution over items is softmax(l_u), with true logits l_ui = z_u . w_i / T + b_i
  (T = ``temperature``: lower means sharper, more personal taste).
- u has n_u positives, lognormal with log-sd ``count_sigma``, rounded and clipped to
  [5, items // 2]; its location is solved so that the clipped mean equals ``mean_items``, and
  the draws are stratified over quantiles so that the sample mean matches it closely too.
- u's n_u items are drawn from softmax(l_u) without replacement, by Gumbel-top-k: the n_u largest
  l_ui + g_ui with g_ui ~ Gumbel(0, 1).

Because l_u is known, ranking a heldout user's unseen items by it is (close to) the Bayes-optimal
recommender: ``oracle_metrics`` gives the ceiling a learned model can approach.

Users are processed in blocks of ``BLOCK_USERS``, so memory holds at most a few users x items
blocks besides the output; each block draws from its own seed stream (spawned from ``seed``), so
blocks can run on several threads and the output is still byte-identical for the same config
(on the same machine: the float32 logits come from BLAS, whose rounding could differ elsewhere).
"""

from __future__ import annotations

import dataclasses
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import brentq
from scipy.special import ndtr, ndtri

from vaecf.data.registry import ML20M, NETFLIX
from vaecf.data.split import Split
from vaecf.errors import DataError
from vaecf.metrics import evaluate

MIN_ITEMS = 5
"""Fewest positives a user gets: the protocol drops users below 5, and we want none dropped."""
BLOCK_USERS = 2000
"""Users sampled together; fixed, because the seed streams are per block."""


_BOUNDS: tuple[tuple[str, float, bool], ...] = (
    ("users", 1, False), ("items", 1, False), ("latent_dim", 1, False), ("clusters", 1, False),
    ("count_sigma", 0, False), ("popularity_skew", 0, False), ("user_spread", 0, False),
    ("temperature", 0, True), ("seed", 0, False))
"""(field, lower bound, whether strict) of SyntheticConfig; mean_items is checked against items."""


@dataclass(frozen=True)
class SyntheticConfig:
    """Shape and planted model of a synthetic data set. Defaults are the ``small`` preset."""

    users: int = 12_000
    """Number of users (ids 0..users-1)."""
    items: int = ML20M.items
    """Size of the catalogue (ids 0..items-1); rare items may never be drawn."""
    mean_items: float = ML20M.mean_items
    """Mean positives per user."""
    count_sigma: float = 1.0
    """Log-scale sd of the lognormal number of positives per user (its skew)."""
    popularity_skew: float = 1.0
    """Zipf-like exponent of item popularity: bias_i = -skew * log(popularity rank)."""
    latent_dim: int = 16
    """Dimension of the user and item embeddings (the rank of the taste part of the logits)."""
    clusters: int = 20
    """Number of user taste groups (mixture components of z_u)."""
    user_spread: float = 0.5
    """Sd of a user's taste around its group centre (the centres have sd 1)."""
    temperature: float = 0.5
    """Divides z_u . w_i: smaller makes users' tastes more peaked and the data easier."""
    seed: int = 0
    """Seeds every random draw (numpy PCG64 through a SeedSequence)."""

    def __post_init__(self) -> None:
        for name, low, strict in _BOUNDS:
            value = getattr(self, name)
            # not (value > low) also catches NaN, which every comparison fails.
            if not math.isfinite(value) or not (value > low if strict else value >= low):
                raise DataError(f"synthetic {name}={value}: allowed range {'>' if strict else '>='} {low}")
        if not MIN_ITEMS < self.mean_items < self.items // 2:
            raise DataError(f"synthetic mean_items={self.mean_items}: allowed range strictly between {MIN_ITEMS} "
                            f"and items//2={self.items // 2} (users get {MIN_ITEMS}..items//2 positives)")


SYNTHETIC_PRESETS: dict[str, SyntheticConfig] = {
    "small": SyntheticConfig(),
    "ml-20m": SyntheticConfig(users=ML20M.users),
    "netflix": SyntheticConfig(users=NETFLIX.users, items=NETFLIX.items, mean_items=NETFLIX.mean_items),
    "tiny": SyntheticConfig(users=600, items=300, mean_items=20.0),
}
"""ML-20M and Netflix shapes as the paper preprocesses them; ``small`` is ML-20M with 12k users."""

_PRESET_HELDOUT = {"ml-20m": ML20M.heldout, "netflix": NETFLIX.heldout, "small": 1_000}


def heldout_users_for(cfg: SyntheticConfig) -> int:
    """The protocol's N, keyed on the user count: 10,000 / 40,000 / 1,000 for the ML-20M, Netflix
    and small numbers of users (the paper's N, and 1,000 + 1,000 of small's 12,000), else 10%."""
    for name, n in _PRESET_HELDOUT.items():
        if cfg.users == SYNTHETIC_PRESETS[name].users:
            return n
    return max(1, cfg.users // 10)


_KINDS: dict[type, str] = {int: "an integer", float: "a number"}


def parse_spec(spec: str) -> SyntheticConfig:
    """Parse 'synthetic:PRESET', 'synthetic:PRESET,key=value,...' or 'synthetic:key=value,...'.

    Overrides without a preset apply to ``small``; the 'synthetic:' prefix is optional.
    """
    head, _, rest = spec.partition(":")
    body = rest if head.strip() == "synthetic" else spec
    tokens = [t.strip() for t in body.split(",") if t.strip()]
    base = SYNTHETIC_PRESETS["small"]
    if tokens and "=" not in tokens[0]:
        name = tokens.pop(0)
        if name not in SYNTHETIC_PRESETS:
            raise DataError(f"unknown synthetic preset {name!r} in {spec!r}; known: {', '.join(SYNTHETIC_PRESETS)}")
        base = SYNTHETIC_PRESETS[name]
    known = {f.name for f in dataclasses.fields(SyntheticConfig)}
    overrides: dict[str, int | float] = {}
    for token in tokens:
        key, sep, value = (s.strip() for s in token.partition("="))
        if not sep:
            raise DataError(f"{token!r} in {spec!r} is not key=value (only the first item may be a preset)")
        if key not in known:
            raise DataError(f"unknown synthetic field {key!r} in {spec!r}; "
                            f"known: {', '.join(sorted(known))}")
        kind = type(getattr(base, key))
        try:
            overrides[key] = kind(value)
        except ValueError:
            raise DataError(f"{key}={value!r} in {spec!r}: expected {_KINDS[kind]}") from None
    try:
        return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]  # each value of its field's type
    except DataError as exc:
        raise DataError(f"{exc} (in {spec!r})") from None


@dataclass(frozen=True, eq=False)
class SyntheticTruth:
    """The planted model: true logits for any users and items (original ids)."""

    user_factors: np.ndarray
    """users x d, already divided by the temperature."""
    item_factors: np.ndarray
    """items x d."""
    item_bias: np.ndarray
    """items: the popularity part of the logits."""

    def logits(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """Dense float32 block (len(user_ids) x len(item_ids)) of true logits."""
        user_ids, item_ids = np.asarray(user_ids), np.asarray(item_ids)
        return self.user_factors[user_ids] @ self.item_factors[item_ids].T + self.item_bias[item_ids]


def generate(cfg: SyntheticConfig) -> tuple[pd.DataFrame, SyntheticTruth]:
    """Draw the ratings table (user, item int64; rating float32 5.0; grouped by user) and its truth."""
    model_seq, noise_seq = np.random.SeedSequence(cfg.seed).spawn(2)
    rng = np.random.Generator(np.random.PCG64(model_seq))
    truth = _draw_model(cfg, rng)
    counts = _draw_counts(cfg, rng)

    offsets = np.concatenate([[0], np.cumsum(counts)])
    items = np.empty(offsets[-1], dtype=np.int64)
    starts = range(0, cfg.users, BLOCK_USERS)
    block_seqs = noise_seq.spawn(len(starts))

    def sample_block(start: int, seq: np.random.SeedSequence) -> None:
        users = np.arange(start, min(start + BLOCK_USERS, cfg.users))
        keys = _gumbel_keys(truth, users, np.random.Generator(np.random.PCG64(seq)))
        for row, user in enumerate(users):
            n = counts[user]
            top = np.argpartition(keys[row], n - 1)[:n]
            top.sort()
            items[offsets[user]:offsets[user] + n] = top

    # numpy's random fills, ufuncs, matmul and argpartition release the GIL, so threads overlap.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        list(pool.map(sample_block, starts, block_seqs))

    ratings = pd.DataFrame({
        "user": np.repeat(np.arange(cfg.users, dtype=np.int64), counts),
        "item": items,
        "rating": np.full(len(items), 5.0, dtype=np.float32),
    })
    return ratings, truth


def _draw_model(cfg: SyntheticConfig, rng: np.random.Generator) -> SyntheticTruth:
    d = cfg.latent_dim
    ranks = rng.permutation(cfg.items) + 1
    bias = (-cfg.popularity_skew * np.log(ranks)).astype(np.float32)
    item_factors = (rng.standard_normal((cfg.items, d)) / math.sqrt(d)).astype(np.float32)
    centres = rng.standard_normal((cfg.clusters, d))
    groups = rng.integers(cfg.clusters, size=cfg.users)
    z = centres[groups] + cfg.user_spread * rng.standard_normal((cfg.users, d))
    return SyntheticTruth((z / cfg.temperature).astype(np.float32), item_factors, bias)


def _draw_counts(cfg: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    """Positives per user: rounded lognormal clipped to [MIN_ITEMS, items // 2], mean ``mean_items``."""
    lo, hi = MIN_ITEMS, cfg.items // 2
    mu = _lognormal_location(cfg.mean_items, cfg.count_sigma, lo, hi)
    # Stratified normal draws (one per 1/users quantile slice, shuffled): the heavy lognormal tail
    # would otherwise move the sample mean by ~1% even at ML-20M's 137k users.
    z = ndtri((rng.permutation(cfg.users) + rng.random(cfg.users)) / cfg.users)
    n = np.rint(np.exp(mu + cfg.count_sigma * z))
    return np.clip(n, lo, hi).astype(np.int64)


def _lognormal_location(mean: float, sigma: float, lo: float, hi: float) -> float:
    """mu such that E[clip(exp(mu + sigma Z), lo, hi)] = mean (closed form, solved by brentq)."""
    if sigma == 0:
        return math.log(mean)
    a, b, s2 = math.log(lo), math.log(hi), sigma**2

    def clipped_mean(mu: float) -> float:
        inside = math.exp(mu + s2 / 2) * (ndtr((b - mu - s2) / sigma) - ndtr((a - mu - s2) / sigma))
        return lo * ndtr((a - mu) / sigma) + hi * (1 - ndtr((b - mu) / sigma)) + inside

    # The clipped mean rises from lo to hi as mu goes from far below a to far above b.
    return brentq(lambda mu: clipped_mean(mu) - mean, a - 10 * sigma, b + 10 * sigma)


def _gumbel_keys(truth: SyntheticTruth, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """log(-log U) - logits: its n smallest entries are the n largest logits + Gumbel noise."""
    keys = rng.random((len(users), truth.item_bias.shape[0]), dtype=np.float32)
    # U = 0 (probability 2^-24) gives +inf: that item is just not drawn in this one row.
    with np.errstate(divide="ignore"):
        np.log(keys, out=keys)
        np.negative(keys, out=keys)
        np.log(keys, out=keys)
    keys -= truth.logits(users, np.arange(truth.item_bias.shape[0]))
    return keys


def oracle_metrics(truth: SyntheticTruth, split: Split, part: str = "test") -> dict[str, float]:
    """Metrics of ranking ``part``'s heldout users' items by the true logits (the ceiling)."""
    foldin, targets = split.heldout(part)
    user_ids = getattr(split, f"{part}_user_ids")
    offset = 0

    def score(batch: sp.csr_matrix) -> np.ndarray:  # evaluate passes consecutive row blocks in order
        nonlocal offset
        rows = user_ids[offset:offset + batch.shape[0]]
        offset += batch.shape[0]
        return truth.logits(rows, split.item_ids)

    return evaluate(score, foldin, targets).to_dict()
