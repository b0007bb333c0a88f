"""tools/asv_check.py without asv: reading asv compare's table, the verdicts, and that the plant still fits."""

from __future__ import annotations

from pathlib import Path

from tools import asv_check

ROOT = Path(__file__).resolve().parents[1]
COMPARE = """
Benchmarks that have stayed the same:

| Change | Before [593e431a] | After [5d1c2b7e] | Ratio | Benchmark (Parameter) |
|---|---|---|---------|---|
| | 1.52±0.1s | 2.84±0.2s | ~1.87 | bench_train.TrainStep.time_step('sparse', 'float32', 2000) |
| | 310±4ms | 312±5ms | 1.01 | bench_train.TrainStep.time_step('sparse', 'mixed_bfloat16', 500) |
| | n/a | n/a | n/a | bench_train.TrainStep.time_step('dense', 'mixed_float16', 500) |

Benchmarks that have got worse:

| Change | Before [593e431a] | After [5d1c2b7e] |   Ratio | Benchmark (Parameter) |
|---|---|---|---------|---|
| + | 402±7ms | 583±10ms |    1.45 | bench_train.TrainStep.time_step('dense', 'float32', 500) |
"""


def test_every_row_of_both_tables_is_read_with_its_mark_and_ratio() -> None:
    rows = {r["benchmark"].split("(")[1]: r for r in asv_check.parse_compare(COMPARE)}
    assert len(rows) == 4
    assert rows["'dense', 'float32', 500)"] == {
        "benchmark": "bench_train.TrainStep.time_step('dense', 'float32', 500)", "before": "402±7ms",
        "after": "583±10ms", "ratio": 1.45, "mark": "+", "flagged": True, "insignificant": False}
    slow = rows["'sparse', 'float32', 2000)"]
    assert (slow["ratio"], slow["flagged"], slow["insignificant"]) == (1.87, False, True)
    assert rows["'dense', 'mixed_float16', 500)"]["ratio"] is None


def test_planted_passes_only_with_every_float32_row_flagged_and_unchanged_only_with_none() -> None:
    rows = asv_check.parse_compare(COMPARE)
    ok, why = asv_check.verdict("planted", rows)
    assert not ok and "'sparse', 'float32', 2000" in why
    assert asv_check.verdict("planted", [r for r in rows if r["flagged"]])[0]
    assert not asv_check.verdict("unchanged", rows)[0]
    assert asv_check.verdict("unchanged", [r for r in rows if not r["flagged"]]) == (True, "no row flagged")
    assert asv_check.verdict("unchanged", []) == (False, "asv compare listed no rows")


def test_the_plant_still_fits_the_model() -> None:
    source = (ROOT / asv_check.PLANT_FILE).read_text()
    assert source.count(asv_check.PLANT_ANCHOR) == 1
    planted = source.replace(asv_check.PLANT_ANCHOR, asv_check.PLANT)
    compile(planted, asv_check.PLANT_FILE, "exec")  # still Python
    assert "_planted_nll" in planted and planted.count("tf.matmul(") == source.count("tf.matmul(") + 1
