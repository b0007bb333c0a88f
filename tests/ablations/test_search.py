"""Leave-one-out starts from the fastest configuration measured, and reports a switch that slows down."""

from ablations import search, speed
from ablations.ladder import BUDGETS, Hardware, Ladder

CPU2 = Hardware(gpus=0, cores=2, horovod=False)


def test_start_is_the_fastest_measured_and_a_slowing_switch_is_reported_off(tmp_path, monkeypatch) -> None:
    # Invented speeds: every switch helps except XLA, which costs a factor 3 (as on a CPU where its
    # first layer falls back to an embedding-bag).
    def users_per_s(train) -> float:
        rate = 100.0
        rate *= 3.0 if train.input == "sparse" else 1.0
        rate *= 1.2 if train.pipeline == "tfdata" else 1.0
        rate *= 1.5 if train.precision != "float32" else 1.0
        rate *= 1.3 if train.batch_size > 500 else 1.0
        rate *= 1 / 3 if train.xla else 1.0
        rate *= 0.7 if train.workers > 1 else 1.0
        return rate

    measured: list[int] = []

    def measure(steps: list, *args: object, **kwargs: object) -> dict:
        measured.append(len(steps))
        return {}

    monkeypatch.setattr(speed, "time_windows", measure)
    monkeypatch.setattr(speed, "speed_summary", lambda record, step: {"users_per_s": users_per_s(step.train)})
    steps, record = search.search(Ladder.load("leave-one-out"), CPU2, BUDGETS["quick"], 200_000, tmp_path,
                                  tmp_path, log=lambda *a: None)
    start = steps[0].train
    assert (start.input, start.pipeline, start.precision, start.xla, start.workers) == \
        ("sparse", "tfdata", "mixed_bfloat16", False, 1)
    assert start.batch_size == 24_576 and start.lr > 1e-3  # the larger batch with its recipe
    names = [s.name for s in steps[1:]]
    assert "with XLA (off in the fastest)" in names and "with data parallel (off in the fastest)" in names
    assert "without sparse input" in names and "without larger batch" in names
    for step in steps[1:]:  # each one switch away from the start
        diff = [f for f in ("input", "pipeline", "precision", "batch_size", "xla", "workers")
                if getattr(step.train, f) != getattr(start, f)]
        assert len(diff) == 1, step.name
    assert record["start"] == sorted(["input", "pipeline", "precision", "batch_size"])
    assert len(record["rounds"]) >= 2  # it had to move away from "every switch on"


def test_data_parallelism_is_a_switch_only_where_two_workers_fit() -> None:
    ladder = Ladder.load("leave-one-out")
    assert "workers" in search.switches(ladder, CPU2)
    assert "workers" not in search.switches(ladder, Hardware(gpus=0, cores=1, horovod=False))
