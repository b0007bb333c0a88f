"""``python -m benchmarks.allocator``: the summary and table of the malloc / BFC comparison."""

from __future__ import annotations

import pytest

from benchmarks.allocator import PRECISIONS, allocator_summary, markdown_table


def _bench_record(rows: dict[int, tuple[float, float]]) -> dict:
    """A ``vaecf bench`` record with, per batch size, (median, p10) users/s."""
    return {"machine": {}, "rows": [{"batch_size": b, "users_per_s": {"median": m, "p10": p, "p90": m},
                                     "breakdown_s": {"output": 3.0 / m, "output_gemms": 1.0 / m}}
                                    for b, (m, p) in rows.items()]}


def test_allocator_summary_takes_medians_over_rounds_and_ratios_per_round() -> None:
    # Round 2 is slower for both (a busy machine): the ratio is taken within each round.
    rounds = [{p: {"malloc": _bench_record({500: (100.0, 90.0)}), "bfc": _bench_record({500: (150.0, 120.0)})}
               for p in PRECISIONS},
              {p: {"malloc": _bench_record({500: (50.0, 45.0)}), "bfc": _bench_record({500: (100.0, 100.0)})}
               for p in PRECISIONS}]
    row = allocator_summary(rounds)[0]
    assert row["malloc"] == pytest.approx({"users_per_s": 75.0, "p10_over_median": 0.9,
                                           "output_outside_gemms_s": 0.03})  # median of 2/100 and 2/50 s
    assert row["bfc"]["p10_over_median"] == pytest.approx(0.9)  # median of 0.8 and 1.0
    assert row["bfc_over_malloc"] == pytest.approx(1.75)  # median of 1.5 and 2.0, not 125 / 75
    table = markdown_table({"rounds": rounds, "summary": allocator_summary(rounds)})
    assert "| float32 | 500 | 75 | 0.90 | 30 ms | 125 | 0.90 | 17 ms | 1.75x |" in table
