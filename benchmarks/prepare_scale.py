"""Time ``vaecf data prepare`` on a Netflix- or ML-20M-shaped ratings set (issue #11).

    python benchmarks/prepare_scale.py --shape netflix|ml-20m --workdir DIR [--repeats N] [--out FILE]

1. Writes a ratings set of the published shape into ``DIR/<shape>/`` once (kept for later runs):
   Netflix as the official ``training_set/mv_*.txt`` layout (17,770 files, 100,480,507 ratings,
   480,189 customers, integer ratings 1..5, dates), ML-20M as ``ratings.csv`` (20,000,263 rows,
   138,493 users, 26,744 movies, half-star ratings, timestamps). Users' counts and movies'
   popularity are long-tailed, as in the real sets; no (user, movie) pair repeats.
2. Runs ``python -m vaecf data prepare SHAPE --source ... --out ...`` as a child process and
   measures its wall time and its peak RSS (``os.wait4``'s rusage of exactly that child).
3. Checks that the child never imported TensorFlow: preparation must not pay for it.

The record is strict JSON. This module runs nothing on import: asv, which imports every module
in ``benchmarks/``, finds no benchmarks in it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vaecf.provenance import header

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Shape:
    """The published size of a ratings set, the issue's targets for it, and how to fake it."""

    name: str
    rows: int
    users: int
    items: int
    max_wall_s: float
    max_rss_bytes: int
    user_sigma: float
    """Log-normal spread of ratings per user: the real sets have mean/median of about 2.2."""
    item_sigma: float
    """Log-normal spread of ratings per movie: far more skewed than per user, as in the real sets."""
    min_per_user: int


SHAPES = {
    "netflix": Shape("netflix", rows=100_480_507, users=480_189, items=17_770, max_wall_s=180,
                     max_rss_bytes=12 * 10**9, user_sigma=1.25, item_sigma=2.15, min_per_user=1),
    "ml-20m": Shape("ml-20m", rows=20_000_263, users=138_493, items=26_744, max_wall_s=30,
                    max_rss_bytes=4 * 10**9, user_sigma=1.25, item_sigma=2.7, min_per_user=20),
}
SEED = 20_111  # the data set is a function of the shape and this seed, so a cached copy is reused
GENERATOR_VERSION = 1
"""Bump when a change here changes the files written, so cached copies are written again."""
CHUNK_ROWS = 4_000_000  # rows formatted at once: ~250 MB of temporaries, however big the set

CHILD = """\
import json, os, runpy, sys
sys.argv = ["vaecf", *sys.argv[1:]]
try:
    runpy.run_module("vaecf", run_name="__main__", alter_sys=True)
finally:
    with open(os.environ["PREPARE_SCALE_PROBE"], "w") as probe:
        json.dump({"tensorflow_imported": "tensorflow" in sys.modules}, probe)
"""
"""``python -m vaecf ARGS`` that records, whatever the outcome, whether TensorFlow was imported."""


# --- Generating the ratings -----------------------------------------------------------------

def user_counts(rng: np.random.Generator, shape: Shape) -> np.ndarray:
    """Ratings per user: long-tailed, at least ``min_per_user``, at most half the movies, summing to ``rows``."""
    # Capping at half the catalogue keeps drawing distinct movies quick (real Netflix has a few
    # customers who rated nearly every movie; leaving them out does not change the file sizes).
    cap = shape.items // 2
    weights = rng.lognormal(0.0, shape.user_sigma, shape.users)
    counts = shape.min_per_user + rng.multinomial(shape.rows - shape.min_per_user * shape.users,
                                                  weights / weights.sum())
    while (excess := int(np.maximum(counts - cap, 0).sum())) > 0:
        counts = np.minimum(counts, cap)
        room = np.where(counts < cap, weights, 0.0)
        counts += rng.multinomial(excess, room / room.sum())
    return counts


def distinct_pairs(rng: np.random.Generator, shape: Shape) -> tuple[np.ndarray, np.ndarray]:
    """(user, item) indices, each pair once, sorted by user then item, with long-tailed counts.

    Movies are drawn by popularity (90%, log-normal) or uniformly (10%: every movie gets
    ratings); a pair drawn twice is drawn again for that user until the user's count is met,
    uniformly after a few rounds, which always succeeds since no user takes over half the movies.
    """
    counts = user_counts(rng, shape)
    popularity = rng.lognormal(0.0, shape.item_sigma, shape.items)
    p = 0.9 * popularity / popularity.sum() + 0.1 / shape.items
    users = np.repeat(np.arange(shape.users, dtype=np.int64), counts)
    keys = _distinct(users * shape.items + rng.choice(shape.items, size=len(users), p=p))
    del users
    deficit = counts - np.bincount(keys // shape.items, minlength=shape.users)
    extra = np.empty(0, np.int64)
    for attempt in range(1000):
        if not deficit.any():
            break
        users = np.repeat(np.arange(shape.users, dtype=np.int64), deficit)
        drawn = rng.choice(shape.items, size=len(users), p=p if attempt < 3 else None)
        fresh = _distinct(users * shape.items + drawn)
        fresh = fresh[~_contains(keys, fresh) & ~_contains(extra, fresh)]
        deficit -= np.bincount(fresh // shape.items, minlength=shape.users)
        extra = np.sort(np.concatenate([extra, fresh]))
    else:
        raise RuntimeError("could not draw distinct movies for every user")
    keys = np.sort(np.concatenate([keys, extra]))
    return keys // shape.items, keys % shape.items


def _distinct(keys: np.ndarray) -> np.ndarray:
    """The distinct values of ``keys``, sorted, in place of ``keys``.

    Sorting and dropping repeats is ~20 times faster here than ``np.unique``, whose hash-based
    path in numpy 2.3 took 5 s per 20M keys.
    """
    keys.sort()
    return keys[np.concatenate([[True], keys[1:] != keys[:-1]])]


def _contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Which of ``keys`` occur in ``sorted_keys``."""
    at = np.minimum(np.searchsorted(sorted_keys, keys), max(len(sorted_keys) - 1, 0))
    return sorted_keys[at] == keys if len(sorted_keys) else np.zeros(len(keys), bool)


def _digits(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decimal digits of non-negative ints as an (n, width) ASCII table and a mask without leading zeros."""
    width = len(str(int(values.max()))) if len(values) else 1
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    column = values.astype(np.int64)[:, None]
    table = (column // powers % 10 + ord("0")).astype(np.uint8)
    return table, (column >= powers) | (powers == 1)


def lines(fields: Sequence[np.ndarray | bytes]) -> tuple[bytes, np.ndarray]:
    """The text of rows whose fields are int arrays (decimal), (n, w) uint8 tables or constant bytes.

    Returns the bytes and each row's length. Building one ASCII table and dropping the leading
    zeros with a mask formats millions of rows in numpy, with no Python work per row.
    """
    n = next(len(f) for f in fields if isinstance(f, np.ndarray))
    tables, masks = [], []
    for field in fields:
        if isinstance(field, bytes):
            table = np.broadcast_to(np.frombuffer(field, np.uint8), (n, len(field)))
            mask = np.ones(table.shape, bool)
        elif field.ndim == 2:
            table, mask = field, np.ones(field.shape, bool)
        else:
            table, mask = _digits(field)
        tables.append(table)
        masks.append(mask)
    mask = np.hstack(masks)
    return np.hstack(tables)[mask].tobytes(), mask.sum(axis=1)


def _strings(texts: Sequence[str]) -> np.ndarray:
    """Equal-length ASCII strings as an (n, width) uint8 table, to index per row."""
    return np.frombuffer("".join(texts).encode("ascii"), np.uint8).reshape(len(texts), -1)


RATING_SHARES: dict[str, dict[float, float]] = {
    # Approximate shares of each rating in the real sets.
    "netflix": {1: 0.046, 2: 0.101, 3: 0.287, 4: 0.336, 5: 0.230},
    "ml-20m": {0.5: 0.012, 1.0: 0.034, 1.5: 0.014, 2.0: 0.072, 2.5: 0.044, 3.0: 0.214, 3.5: 0.105,
               4.0: 0.278, 4.5: 0.077, 5.0: 0.150},
}


def write_netflix(folder: Path, shape: Shape, rng: np.random.Generator) -> None:
    """``folder/training_set/mv_0000001.txt`` ...: ``MovieID:`` then ``CustomerID,Rating,YYYY-MM-DD`` lines."""
    users, items = distinct_pairs(rng, shape)
    # Sparse customer ids, as the real 1..2,649,429; each movie's rows in no particular order.
    customers = np.sort(rng.choice(np.arange(1, 2_649_430), size=shape.users, replace=False))
    order = np.lexsort((rng.random(len(items)), items))
    users, items = customers[users[order]], items[order]
    del order
    shares = RATING_SHARES["netflix"]
    ratings = _strings([str(r) for r in shares])
    rating = rng.choice(len(shares), size=len(items), p=np.array(list(shares.values())) / sum(shares.values()))
    days = np.arange(np.datetime64("1999-11-11"), np.datetime64("2006-01-01"))
    dates = _strings([str(d) for d in days])
    date = rng.integers(0, len(days), len(items))
    out = folder / "training_set"
    out.mkdir(parents=True)
    starts = np.searchsorted(items, np.arange(shape.items + 1))
    for first in range(0, shape.items, 500):  # ~2.8M rows a time: memory stays flat
        last = min(first + 500, shape.items)
        rows = slice(starts[first], starts[last])
        text, lengths = lines([users[rows], b",", ratings[rating[rows]], b",", dates[date[rows]], b"\n"])
        ends = np.concatenate([[0], np.cumsum(lengths)])
        for movie in range(first, last):
            lo, hi = ends[starts[movie] - starts[first]], ends[starts[movie + 1] - starts[first]]
            (out / f"mv_{movie + 1:07d}.txt").write_bytes(b"%d:\n" % (movie + 1) + text[lo:hi])


def write_ml20m(folder: Path, shape: Shape, rng: np.random.Generator) -> None:
    """``folder/ratings.csv``: header, then ``userId,movieId,rating,timestamp`` sorted by user and movie."""
    users, items = distinct_pairs(rng, shape)
    # Sparse movie ids, as the real 1..131,262; users are 1..138,493 as in the real file.
    movie_ids = np.sort(rng.choice(np.arange(1, 131_263), size=shape.items, replace=False))
    shares = RATING_SHARES["ml-20m"]
    ratings = _strings([f"{r:.1f}" for r in shares])
    with open(folder / "ratings.csv", "wb") as f:
        f.write(b"userId,movieId,rating,timestamp\n")
        for start in range(0, len(users), CHUNK_ROWS):
            rows = slice(start, start + CHUNK_ROWS)
            n = len(users[rows])
            rating = rng.choice(len(shares), size=n, p=np.array(list(shares.values())) / sum(shares.values()))
            stamp = rng.integers(789_652_009, 1_427_784_003, n)
            text, _ = lines([users[rows] + 1, b",", movie_ids[items[rows]], b",", ratings[rating], b",", stamp, b"\n"])
            f.write(text)


WRITERS = {"netflix": write_netflix, "ml-20m": write_ml20m}


def ensure_source(workdir: Path, shape: Shape) -> tuple[Path, float | None]:
    """The source folder of ``shape`` under ``workdir``, written unless a complete copy is there.

    Returns the folder and the seconds spent writing it (None when reused). The files go to a
    temporary folder renamed into place at the end, so an interrupted write is never reused.
    """
    folder = workdir / shape.name
    marker = {"generator_version": GENERATOR_VERSION, "seed": SEED, **asdict(shape)}
    done = folder / "generated.json"
    if done.is_file() and json.loads(done.read_text()) == marker:
        return folder, None
    shutil.rmtree(folder, ignore_errors=True)
    partial = workdir / f".{shape.name}.writing"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    start = time.perf_counter()
    WRITERS[shape.name](partial, shape, np.random.default_rng(SEED))
    (partial / "generated.json").write_text(json.dumps(marker))
    os.rename(partial, folder)
    return folder, time.perf_counter() - start


# --- Running and measuring ------------------------------------------------------------------

def run_prepare(shape: Shape, source: Path, out: Path, probe: Path) -> dict[str, Any]:
    """Run ``vaecf data prepare`` in a child process; its wall time, peak RSS, stats and probe."""
    shutil.rmtree(out, ignore_errors=True)  # an up-to-date split there would be a cache hit
    printed, log = out.with_name(out.name + ".stdout"), out.with_name(out.name + ".stderr")
    probe.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PREPARE_SCALE_PROBE": str(probe)}
    args = [sys.executable, "-c", CHILD, "data", "prepare", shape.name,
            "--source", str(source), "--out", str(out)]
    with open(printed, "wb") as stdout, open(log, "wb") as stderr:
        start = time.perf_counter()
        child = subprocess.Popen(args, cwd=REPO, env=env, stdout=stdout, stderr=stderr)
        # wait4 gives the rusage of this child alone; RUSAGE_CHILDREN would mix in earlier children.
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
    exit_code = os.waitstatus_to_exitcode(status)
    if exit_code != 0:
        raise RuntimeError(f"vaecf data prepare failed (exit {exit_code}):\n{log.read_text()[-3000:]}")
    tensorflow = json.loads(probe.read_text())["tensorflow_imported"]
    if tensorflow:
        raise RuntimeError("vaecf data prepare imported TensorFlow: preparation must not load it")
    return {"wall_s": round(wall, 2), "peak_rss_bytes": usage.ru_maxrss * 1024,  # Linux: KiB
            "user_cpu_s": round(usage.ru_utime, 2), "system_cpu_s": round(usage.ru_stime, 2),
            "tensorflow_imported": tensorflow, "stats": json.loads(printed.read_text())}


def measure_preparation(shape: Shape, workdir: Path, repeats: int) -> dict[str, Any]:
    """Write (or reuse) the source, prepare it ``repeats`` times, and make the record."""
    source, write_s = ensure_source(workdir, shape)
    runs = []
    for _ in range(repeats):
        load = os.getloadavg()[0]
        run = run_prepare(shape, source, workdir / f"{shape.name}-prepared", workdir / "probe.json")
        runs.append({**run, "load_average_1min_before": load})
        print(f"{shape.name}: {run['wall_s']:.1f} s, peak RSS {run['peak_rss_bytes'] / 1e9:.2f} GB "
              f"(load {load:.2f} before)", file=sys.stderr)
    best = min(runs, key=lambda r: r["wall_s"])
    peak = max(r["peak_rss_bytes"] for r in runs)
    stats = best.pop("stats")
    return {
        "benchmark": "prepare-scale", "shape": shape.name, "machine": header(),
        "measured": f"python -m vaecf data prepare {shape.name} --source {source.name} --out DIR",
        "source": {"rows": shape.rows, "users": shape.users, "items": shape.items,
                   "bytes": sum(p.stat().st_size for p in source.rglob("*") if p.is_file()),
                   "written_in_s": None if write_s is None else round(write_s, 1), "seed": SEED,
                   "page_cache": "warm: the files were written or read just before"},
        "wall_s": best["wall_s"], "peak_rss_bytes": peak,
        "targets": {"wall_s": shape.max_wall_s, "peak_rss_bytes": shape.max_rss_bytes},
        "met": {"wall_s": best["wall_s"] <= shape.max_wall_s, "peak_rss_bytes": peak <= shape.max_rss_bytes},
        "tensorflow_imported": False,
        "prepared": {key: stats[key] for key in ("ratings", "positives", "users", "items", "train_users",
                                                 "train_interactions") if key in stats},
        "runs": runs,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), required=True)
    parser.add_argument("--workdir", type=Path, required=True,
                        help="where the generated source is kept (Netflix: ~2.6 GB) and prepared")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write the JSON record here (else print it)")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    record = measure_preparation(SHAPES[args.shape], args.workdir.resolve(), args.repeats)
    text = json.dumps(record, indent=2, allow_nan=False) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
