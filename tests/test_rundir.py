"""The run folder: one owner of its files; a run moves with its data; another configuration is refused."""

import json
import shutil
from pathlib import Path

import pytest

from vaecf.config import RunConfig, TrainConfig
from vaecf.errors import DataError, TrainingError, VaecfError
from vaecf.integrity import entry
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
    assert [h["epoch"] for h in run.verified()] == [0, 1]


def _write_state(prefix: str, content: bytes = b"state") -> None:
    Path(prefix).parent.mkdir(parents=True, exist_ok=True)
    for suffix in (".index", ".data-00000-of-00001"):
        Path(prefix + suffix).write_bytes(content)


def test_the_manifest_names_every_file_and_damage_is_one_error_naming_it(tmp_path) -> None:
    run = RunDir(tmp_path)
    run.start(RunConfig(), STATS, None)
    _write_state(str(run.best_prefix(0)))
    run.checkpointed([{"epoch": 0, "best_epoch": 0}], _write_state)
    assert run.finished() == run.best_prefix(0)
    (tmp_path / "best" / "weights-0.index").write_bytes(b"stat")
    with pytest.raises(DataError, match=r"weights-0.index: truncated or altered \(4 bytes"):
        run.finished()
    (tmp_path / "best" / "weights-0.index").write_bytes(b"stbte")
    with pytest.raises(DataError, match="weights-0.index: corrupt"):
        run.finished()
    (tmp_path / "best" / "weights-0.index").unlink()
    with pytest.raises(DataError, match="weights-0.index: missing from the run folder"):
        run.finished()


def test_a_checkpoint_stopped_before_its_manifest_is_dropped_and_the_one_before_kept(tmp_path, capsys) -> None:
    run = RunDir(tmp_path)
    run.start(RunConfig(), STATS, None)
    run.checkpointed([{"epoch": 0}], _write_state)
    # epoch 1: its state and history written, then killed before the manifest
    _write_state(str(run.state("ckpt/state-1")), b"half")
    (tmp_path / "history.json").write_text(json.dumps([{"epoch": 0, "ckpt": "ckpt/state-0"},
                                                       {"epoch": 1, "ckpt": "ckpt/state-1"}]))
    assert [h["epoch"] for h in run.start(RunConfig(), STATS, None)] == [0]
    assert "checkpoint of epoch 1 was not completed" in capsys.readouterr().err
    assert (tmp_path / "ckpt" / "state-0.index").is_file() and [h["epoch"] for h in run.verified()] == [0]


def test_a_run_folder_without_its_manifest_or_with_a_damaged_history_is_refused(tmp_path) -> None:
    run = RunDir(tmp_path)
    run.start(RunConfig(), STATS, None)
    run.checkpointed([{"epoch": 0, "loss": 1.5}], _write_state)
    (tmp_path / "history.json").write_text((tmp_path / "history.json").read_text().replace("1.5", "2.5"))
    with pytest.raises(DataError, match="history.json: truncated or altered"):
        run.start(RunConfig(), STATS, None)
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(DataError, match="manifest.json: missing"):
        run.start(RunConfig(), STATS, None)


@pytest.mark.parametrize("out", ["data", "data/run", "."])
def test_a_run_folder_that_is_inside_or_holds_its_data_is_refused(tmp_path, out) -> None:
    (tmp_path / "data").mkdir()
    with pytest.raises(VaecfError, match="the two must be separate folders"):
        RunDir(tmp_path / out).start(RunConfig(), STATS, tmp_path / "data")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["data"]


def test_resuming_with_another_configuration_is_refused(tmp_path) -> None:
    run = RunDir(tmp_path)
    run.start(RunConfig(), STATS, None)
    run.checkpointed([{"epoch": 0}], _write_state)
    with pytest.raises(TrainingError, match="another configuration"):
        run.start(RunConfig(train=TrainConfig(lr=0.5)), STATS, None)


def test_a_run_made_before_a_setting_existed_resumes_with_its_default(tmp_path) -> None:
    run = RunDir(tmp_path)
    run.start(RunConfig(), STATS, None)
    run.checkpointed([{"epoch": 0}], _write_state)
    record = json.loads((tmp_path / "config.json").read_text())
    del record["config"]["train"]["compression"]  # as written before TrainConfig had it
    (tmp_path / "config.json").write_text(json.dumps(record))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["files"]["config.json"] = entry(tmp_path / "config.json")
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert [h["epoch"] for h in run.start(RunConfig(), STATS, None)] == [0]


def test_other_data_and_unfinished_runs_are_refused_with_the_fix(tmp_path) -> None:
    run = RunDir(tmp_path)
    with pytest.raises(VaecfError, match="not a finished training run"):
        run.finished()
    run.start(RunConfig(), STATS, None)
    with pytest.raises(VaecfError, match="pass --data"):
        run.data_folder()
    with pytest.raises(VaecfError, match="vaecf data prepare synthetic:tiny --heldout-users 30"):
        run.check_data(tmp_path / "d", {**STATS, "cache_key": "other"})
    run.check_data(tmp_path / "d", STATS)
