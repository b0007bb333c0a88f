"""The asv suites run: one parametrisation of every benchmark, on a tiny synthetic data set."""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterator

import pytest

from benchmarks import bench_data, bench_eval, bench_train, common

TINY = "synthetic:tiny,users=6000"
"""300 items keep steps instant; 6,000 users give epoch 0 full batches of 500 past the warm-up."""
PREFIXES = ("time_", "peakmem_", "track_")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """What asv's ``setup_cache`` returns, made in a folder standing in for asv's cache (the cwd)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(common, "SPEC", TINY)
        mp.chdir(tmp_path_factory.mktemp("asv-cache"))
        yield common.prepare_data()


def suites() -> list[type]:
    return [cls for module in (bench_data, bench_train, bench_eval)
            for _, cls in inspect.getmembers(module, inspect.isclass)
            if cls.__module__ == module.__name__]


def first_params(suite: type) -> list:
    """The first value of each parameter (float32 and batch 500 lead, so nothing is skipped)."""
    return [values[0] for values in getattr(suite, "params", [])]


@pytest.mark.parametrize("suite", suites(), ids=lambda s: s.__name__)
def test_suite_runs(suite: type, data: str) -> None:
    bench = suite()
    args = ([data] if hasattr(suite, "setup_cache") else []) + first_params(suite)
    if hasattr(bench, "setup"):
        bench.setup(*args)
    try:
        for name in dir(bench):
            if not name.startswith(PREFIXES):
                continue
            value = getattr(bench, name)(*args)
            if name == "track_ndcg_below_oracle":  # may dip below 0 on a small sample, never far
                assert -0.1 < value < 1.0, f"{suite.__name__}.{name} gave {value}"
            elif name.startswith("track_"):
                assert math.isfinite(value) and value > 0, f"{suite.__name__}.{name} gave {value}"
                if getattr(suite, "unit", None) == "NDCG@100":
                    assert value <= 1.0
    finally:
        if hasattr(bench, "teardown"):
            bench.teardown()


def test_quality_is_trained_once_and_turned_for_asv(data: str, monkeypatch: pytest.MonkeyPatch) -> None:
    bench = bench_eval.Quality()
    ndcg = bench.track_validation_ndcg(data, "float32")  # trains, or reads what test_suite_runs trained
    monkeypatch.setattr(bench_eval, "fresh_trainer", None)  # a second training would fail here
    oracle = common.load_split(data).stats["oracle_validation"]["ndcg@100"]
    assert bench.track_ndcg_below_oracle(data, "float32") == pytest.approx(oracle - ndcg)


def test_suites_cover_every_kind() -> None:
    names = {name.split("_")[0] for suite in suites() for name in dir(suite) if name.startswith(PREFIXES)}
    assert names == {"time", "peakmem", "track"}
    units = {suite.unit for suite in suites() if hasattr(suite, "unit")}
    assert units == {"users/s", "NDCG@100"}


def test_suites_share_one_setup_cache() -> None:
    """One shared function means asv prepares the data once per run, not once per suite."""
    caches = {suite.setup_cache for suite in suites() if hasattr(suite, "setup_cache")}
    assert caches == {common.prepare_data}
