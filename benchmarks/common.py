"""The benchmark data set, prepared once per `asv run` and shared by every suite.

This module does not import TensorFlow, so the data-preparation memory benchmark measures
preparation alone, not TensorFlow's own footprint.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from vaecf.data.prepare import prepare
from vaecf.data.split import Split
from vaecf.workload import spec as workload_spec

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


@functools.cache
def load_split(folder: str) -> Split:
    """The prepared split, loaded once per process (asv re-runs ``setup`` between samples)."""
    return Split.load(Path(folder))
