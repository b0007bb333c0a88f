"""TensorBoard event files written without TensorFlow, read back by TensorFlow's and TensorBoard's readers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ablations.report import TENSORBOARD, derive, load_run, write_events_of
from vaecf.events import Point, crc32c, write_events

RUN = Path(__file__).resolve().parents[1] / "results" / "cpu2-epyc-avx2" / "attribution-quick"


def read_back(path: Path) -> list[tuple[int, float, dict[str, float], str]]:
    """Every event through TensorFlow's record reader (which checks both CRCs of every record)."""
    tf = pytest.importorskip("tensorflow")
    return [(e.step, e.wall_time, {v.tag: v.simple_value for v in e.summary.value}, e.file_version)
            for e in tf.compat.v1.train.summary_iterator(str(path))]


def test_crc32c_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C catalogue's check value


def test_points_come_back(tmp_path: Path) -> None:
    path = write_events(tmp_path / "run", [Point(10, 1.5, {"a": 0.25, "b/c": 3.0}), Point(20, 3.0, {"a": 0.5})])
    assert read_back(path) == [(0, 0.0, {}, "brain.Event:2"), (10, 1.5, {"a": 0.25, "b/c": 3.0}, ""),
                               (20, 3.0, {"a": 0.5}, "")]
    before = path.read_bytes()
    write_events(tmp_path / "run", [Point(10, 1.5, {"a": 0.25, "b/c": 3.0}), Point(20, 3.0, {"a": 0.5})])
    assert path.read_bytes() == before  # redrawn from the same records: the same bytes, not a second file
    assert [p.name for p in (tmp_path / "run").iterdir()] == [path.name]


def test_ladder_run_has_one_tensorboard_run_per_step(tmp_path: Path) -> None:
    run_dir = tmp_path / "cpu2-epyc-avx2" / "attribution-quick"
    shutil.copytree(RUN, run_dir)
    shutil.copytree(RUN.parents[1] / "calibration", tmp_path / "calibration")
    derived = derive(load_run(run_dir))
    write_events_of(run_dir, derived)
    done = [r for r in derived["rows"] if r["status"] == "done"]
    assert sorted(p.name for p in (run_dir / TENSORBOARD).iterdir()) == sorted(r["slug"] for r in done)
    for index, row in enumerate(derived["rows"]):
        events = read_back(next((run_dir / TENSORBOARD / row["slug"]).glob("events.out.tfevents*")))
        curve = [e for e in events if "validation/ndcg@100" in e[2]]
        assert [e[0] for e in curve] == [p["updates"] for p in row["curve"]]
        assert [e[1] for e in curve] == pytest.approx([p["t"] for p in row["curve"]])
        assert [e[2]["validation/ndcg@100"] for e in curve] == pytest.approx([p["ndcg"] for p in row["curve"]])
        assert [e[2]["validation/recall@20"] for e in curve] == pytest.approx([p["recall@20"] for p in row["curve"]])
        speed = [e for e in events if "speed/users_per_s" in e[2]]
        assert [(e[0], e[2]["speed/users_per_s"]) for e in speed] == [(index, pytest.approx(row["users_per_s"]))]


def test_tensorboards_own_reader(tmp_path: Path) -> None:
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                                      reason="the tensorboard package is not installed (TensorFlow's reader "
                                             "is tested above)")
    write_events(tmp_path, [Point(k, 2.0 * k, {"validation/ndcg@100": 0.1 * k}) for k in (1, 2, 3)])
    acc = accumulator.EventAccumulator(str(tmp_path))
    acc.Reload()
    scalars = acc.Scalars("validation/ndcg@100")
    assert [(s.step, s.wall_time) for s in scalars] == [(1, 2.0), (2, 4.0), (3, 6.0)]
    assert [s.value for s in scalars] == pytest.approx([0.1, 0.2, 0.3])


@pytest.mark.slow  # two epochs of training
def test_a_training_run_folder_has_its_curves(tiny_split, tmp_path: Path) -> None:
    from vaecf.config import RunConfig, TrainConfig
    from vaecf.log import EpochLog
    from vaecf.train import EVENT_KEYS, Trainer

    config = RunConfig(train=TrainConfig(epochs=2, batch_size=50, eval_every=1))
    result = Trainer(tiny_split.n_items, config).fit(tiny_split, out=tmp_path / "run", log=EpochLog(None),
                                                     show_progress=False)
    events = [e for e in read_back(tmp_path / "run" / "tensorboard" / "events.out.tfevents.0.vaecf") if e[2]]
    assert [(e[0], e[1]) for e in events] == [(h["epoch"], pytest.approx(h["train_s"])) for h in result.history]
    for event, h in zip(events, result.history):
        assert set(event[2]) == set(EVENT_KEYS)
        assert event[2]["loss"] == pytest.approx(h["loss"], rel=1e-6)
        assert event[2]["val_ndcg@100"] == pytest.approx(h["val_ndcg@100"], rel=1e-6)
