"""The run folder: one owner of its files; a run moves with its data; another configuration is refused."""

import shutil

import pytest

from vaecf.config import RunConfig, TrainConfig
from vaecf.errors import TrainingError, VaecfError
from vaecf.rundir import RunDir

STATS = {"cache_key": "abc", "items": 40, "dataset": "synthetic:tiny", "protocol": {"heldout_users": 30}}


def test_a_run_records_its_data_relative_to_itself_and_moves_with_it(tmp_path) -> None:
    (tmp_path / "project" / "data").mkdir(parents=True)
    run = RunDir(tmp_path / "project" / "runs" / "a")
    assert run.start(RunConfig(), STATS, tmp_path / "project" / "data") == []
    shutil.move(tmp_path / "project", tmp_path / "elsewhere")
    moved = RunDir(tmp_path / "elsewhere" / "runs" / "a")
    assert moved.data_folder().resolve() == (tmp_path / "elsewhere" / "data").resolve()
    assert moved.data_folder(tmp_path / "given") == tmp_path / "given"
    assert moved.run_config() == RunConfig()


def test_checkpoints_keep_only_the_last_state_named_by_the_history(tmp_path) -> None:
    run = RunDir(tmp_path)
    run.start(RunConfig(), STATS, None)

    def write_state(prefix: str) -> None:
        (tmp_path / "ckpt").mkdir(exist_ok=True)
        for suffix in (".index", ".data-00000-of-00001"):
            open(prefix + suffix, "w").close()

    history = [{"epoch": 0}]
    run.checkpointed(history, write_state)
    history.append({"epoch": 1})
    run.checkpointed(history, write_state)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["state-1.data-00000-of-00001", "state-1.index"]
    assert [h["ckpt"] for h in run.history()] == ["ckpt/state-0", "ckpt/state-1"]


def test_resuming_with_another_configuration_is_refused(tmp_path) -> None:
    run = RunDir(tmp_path)
    run.start(RunConfig(), STATS, None)
    run.checkpointed([{"epoch": 0}], lambda prefix: None)
    with pytest.raises(TrainingError, match="another configuration"):
        run.start(RunConfig(train=TrainConfig(lr=0.5)), STATS, None)


def test_other_data_and_unfinished_runs_are_refused_with_the_fix(tmp_path) -> None:
    run = RunDir(tmp_path)
    with pytest.raises(VaecfError, match="not a finished training run"):
        run.require_finished()
    run.start(RunConfig(), STATS, None)
    with pytest.raises(VaecfError, match="pass --data"):
        run.data_folder()
    with pytest.raises(VaecfError, match="vaecf data prepare synthetic:tiny --heldout-users 30"):
        run.check_data(tmp_path / "d", {**STATS, "cache_key": "other"})
    run.check_data(tmp_path / "d", STATS)
