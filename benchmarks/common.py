"""The benchmark data set (prepared once per `asv run`), the sampling every timed suite uses, quiet TensorFlow.

This module does not import TensorFlow, so the data-preparation memory benchmark measures
preparation alone, not TensorFlow's own footprint.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from vaecf.data.prepare import prepare
from vaecf.data.split import Split

try:
    from vaecf.workload import spec as workload_spec
except ImportError:  # a commit before vaecf.workload (asv history): its synthetic preset of the same shape

    def workload_spec(users: int | None = None) -> str:
        return "synthetic:ml-20m" + ("" if users is None else f",users={users}")

SPEC = os.environ.get("VAECF_BENCH_SPEC", workload_spec(users=6000))
"""``vaecf.workload``'s ML-20M shape (20,108 items, 73.1 positives per user) with 6,000 users (4,800
train, 600 validation): a step costs what it costs on ML-20M, and a full `asv run` of one commit
stays under 15 minutes on 2 CPU cores. Tests set ``VAECF_BENCH_SPEC=synthetic:tiny,...``."""


def prepare_data() -> str:
    """``setup_cache`` of every suite: prepare ``SPEC`` into asv's per-run cache folder (the cwd).

    Every suite names this one function, so asv keys its cache by it and runs it once per run.
    Each commit prepares its own data, so changes to the generator or protocol are measured too.
    """
    folder = Path("data").resolve()
    prepare(SPEC, out=folder)
    return str(folder)


prepare_data.timeout = 600  # type: ignore[attr-defined]  # asv's setup_cache limit (default 60 s)


ROUNDS = 2
"""Rounds of every timed suite, each in its own process: `asv continuous` alternates them between the
two commits, so load that comes and goes on a shared machine hits both sides alike."""
REPEAT = (6, 12, 10.0)
"""Samples per round: at least 6, then up to 12 within ~10 s (asv's ``repeat``; ``number`` is 1).

asv flags a change only when its Mann-Whitney test gives p < 0.002 on the two commits' samples.
With 6 a side the smallest p it can reach is 2/C(12, 6) = 0.0022, so nothing is ever flagged:
that is why 3-sample batch-2,000 steps (~1.5 s each, so 3 fitted in the old 5 s) were listed as
"stayed the same" at 1.87x. 2 rounds x 6 gives 12 a side (smallest p 7e-7), enough to flag a
10% slowdown through a few overlapping samples. The suite's time: 8 TrainStep parameters x 2
rounds x at most ~10 s (plus set-up) per commit."""


@functools.cache
def load_split(folder: str) -> Split:
    """The prepared split, loaded once per process (asv re-runs ``setup`` between samples)."""
    return Split.load(Path(folder))


def import_tensorflow_quietly() -> None:
    """Import TensorFlow without its start-up lines on stderr (``vaecf.tfenv.load_tensorflow``)."""
    try:
        from vaecf.tfenv import load_tensorflow
    except ImportError:  # a commit before it (asv history): TF_CPP_MIN_LOG_LEVEL (benchmarks/__init__) alone
        return
    load_tensorflow()
