"""Damaged run folders and records, property-based: every command that reads one either gives the
answer it gives on the intact folder or one line and a non-zero exit; never a traceback, never
another answer with exit 0.

One tiny run is trained, one comparison made and one committed ladder run copied, once per
module; each generated case damages one file of a copy (truncated, one bit flipped, or removed)
and runs every command that reads it in-process (``main(argv)``); a few cases go through a
subprocess to show that nothing else reaches stderr.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from itertools import count
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ablations.charts
from ablations.__main__ import main as ablations_main
from vaecf.cli import main
from vaecf.errors import DataError
from vaecf.integrity import RECORD_KEY, read_record, write_record
from vaecf.io import read_json

ROOT = Path(__file__).resolve().parents[1]
LADDER = ROOT / "results" / "cpu2-epyc-avx2" / "attribution-quick"
TRAIN = ["--epochs", "2", "--batch-size", "50", "--set", "total_anneal_steps=100"]
COMPARE = ["--models", "vae,popularity", "--seeds", "1", "--epochs", "1", "--batch-size", "50"]
OPS = ("truncate", "flip", "remove")
CASES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _run(command: Callable[[list[str]], int], argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = command(argv)
    return code, out.getvalue(), err.getvalue()


def _damage(path: Path, op: str, where: int) -> None:
    """Truncate ``path`` (to ``where`` modulo its size), flip one of its bits, or remove it."""
    data = path.read_bytes()
    path.unlink()  # the copy may share its inode with the original (hard links)
    if op == "truncate":
        path.write_bytes(data[: where % max(len(data), 1)])
    elif op == "flip" and data:
        i = where % (8 * len(data))
        path.write_bytes(data[: i // 8] + bytes([data[i // 8] ^ (1 << i % 8)]) + data[i // 8 + 1:])


def _check(prog: str, result: tuple[int, str, str], intact: str, answer: Callable[[str], object] = str) -> None:
    """Exit 0 with the intact answer, or a non-zero exit with one error line (notes aside), no traceback."""
    code, out, err = result
    if code == 0:
        assert answer(out) == answer(intact), err
        return
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err, err
    assert [ln for ln in lines if not ln.startswith(f"{prog}: note: ")] == [lines[-1]], err
    assert lines[-1].startswith(f"{prog}: error: "), err


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A prepared split, a trained run and a finished comparison of it (the originals: never damaged)."""
    root = tmp_path_factory.mktemp("made")
    data, run, record = root / "data", root / "run", root / "compare.json"
    assert _run(main, ["data", "prepare", "synthetic:tiny", "--out", str(data)])[0] == 0
    assert _run(main, ["train", "--data", str(data), "--out", str(run), *TRAIN])[0] == 0
    code, table, err = _run(main, ["compare", "--data", str(data), "--out", str(record), *COMPARE])
    assert code == 0, err
    (root / "table.txt").write_text(table)  # what a resumed, finished comparison prints
    return {"root": root, "data": data, "run": run, "record": record, "table": root / "table.txt"}


def _commands(made: dict[str, Path], run: Path) -> dict[str, list[str]]:
    """Every command that reads a training run."""
    return {"evaluate": ["evaluate", str(run), "--json"],
            "recommend": ["recommend", str(run), "--items", "1,2,3", "-k", "5"],
            "train": ["train", "--data", str(made["data"]), "--out", str(run), *TRAIN]}


def _summary(out: str) -> object:
    """What a resumed, finished run reports that does not depend on this process (memory, speed)."""
    import json

    summary = json.loads(out)
    return summary["best_epoch"], summary["validation"]


@pytest.fixture(scope="module")
def intact(made: dict[str, Path]) -> dict[str, str]:
    answers = {}
    for name, argv in _commands(made, _copy(made["run"])).items():
        code, out, err = _run(main, argv)
        assert code == 0, err
        answers[name] = out
    return answers


_cases = count()


def _copy(folder: Path) -> Path:
    """A copy of ``folder`` beside it (the run finds its data at the same relative place), hard-linked."""
    copy = folder.with_name(f"{folder.name}-case{next(_cases)}")
    shutil.copytree(folder, copy, copy_function=os.link)
    return copy


@CASES
@given(pick=st.integers(0, 10**6), op=st.sampled_from(OPS), where=st.integers(0, 10**9))
def test_a_damaged_run_folder_gives_the_same_answer_or_one_line(made, intact, pick, op, where) -> None:
    run = _copy(made["run"])
    files = sorted(p for p in run.rglob("*") if p.is_file())
    _damage(files[pick % len(files)], op, where)
    for name, argv in _commands(made, run).items():
        _check("vaecf", _run(main, argv), intact[name], _summary if name == "train" else str)
    shutil.rmtree(run)


@settings(CASES, max_examples=70)
@given(md=st.booleans(), op=st.sampled_from(OPS), where=st.integers(0, 10**9))
def test_a_damaged_comparison_record_resumes_unchanged_or_gives_one_line(made, md, op, where) -> None:
    record = made["root"] / f"compare-case{next(_cases)}.json"
    for suffix in (".json", ".md"):
        shutil.copy(made["record"].with_suffix(suffix), record.with_suffix(suffix))
    if not md and op == "remove":
        op = "flip"  # without its record, compare starts a new comparison: nothing damaged is read
    _damage(record.with_suffix(".md" if md else ".json"), op, where)
    _check("vaecf", _run(main, ["compare", "--data", str(made["data"]), "--out", str(record), *COMPARE]),
           made["table"].read_text())


@pytest.fixture(scope="module")
def ladder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A committed ladder run with its calibration, its records rewritten as the runner now writes them."""
    root = tmp_path_factory.mktemp("ladder")
    shutil.copytree(LADDER.parents[1] / "calibration", root / "calibration")
    run = root / "machine" / LADDER.name
    shutil.copytree(LADDER, run)
    for path in [*run.rglob("*.json"), *(root / "calibration").glob("*.json")]:
        write_record(path, read_json(path))
    code, out, err = _run(ablations_main, ["plot", str(run)])  # the table as today's code draws it
    assert code == 0, err
    return run


@pytest.fixture
def no_charts(monkeypatch: pytest.MonkeyPatch) -> None:
    """plot's answer is its table: the charts drawn from the same rows take seconds each."""
    monkeypatch.setattr(ablations.charts, "draw", lambda run_dir, derived: None)


@CASES
@given(pick=st.integers(0, 10**6), op=st.sampled_from(OPS), where=st.integers(0, 10**9))
def test_a_damaged_ladder_run_redraws_the_same_table_or_gives_one_line(ladder, no_charts, pick, op, where) -> None:
    run = _copy(ladder)
    files = sorted(p for p in run.rglob("*") if p.is_file()) + sorted((run.parents[1] / "calibration").glob("*"))
    target = files[pick % len(files)]
    calibration = target.parent.name == "calibration"
    if calibration:  # shared by every copy: damage a copy of it, named as the run names it
        shutil.copy(target, target.with_suffix(".saved"))
    try:
        _damage(target, op, where)
        code, out, err = _run(ablations_main, ["plot", str(run)])
        table = (run / "table.md").read_text() if code == 0 else ""
        _check("ablations", (code, table, err), (ladder / "table.md").read_text())
    finally:
        if calibration:
            os.replace(target.with_suffix(".saved"), target)
    shutil.rmtree(run)


def _subprocess(module: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """``python -m module argv`` as a user runs it (TensorFlow's logging level left to the command line)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-m", module, *argv], env={**env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["evaluate", "recommend"])
def test_a_damaged_checkpoint_reaches_stderr_as_one_line_from_a_subprocess(made, command) -> None:
    run = _copy(made["run"])
    _damage(next((run / "best").glob("*.data-*")), "truncate", 100)
    done = _subprocess("vaecf", command, str(run), *(["--items", "1"] if command == "recommend" else []))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"vaecf: error: {run}/best/weights-") and done.stderr.count("\n") == 1, done.stderr
    assert "truncated or altered (100 bytes" in done.stderr


def test_a_damaged_ladder_record_reaches_stderr_as_one_line_from_a_subprocess(ladder) -> None:
    copy = _copy(ladder)
    _damage(copy / "speed.json", "flip", 8 * 300)
    done = _subprocess("ablations", "plot", str(copy))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"ablations: error: {copy}/speed.json: "), done.stderr


def test_a_record_carries_the_sha256_of_its_contents(tmp_path) -> None:
    path = tmp_path / "r.json"
    write_record(path, {"a": [1.5, 2], "b": {"c": None}})
    assert RECORD_KEY in read_json(path) and read_record(path, "fix") == {"a": [1.5, 2], "b": {"c": None}}
    path.write_text(path.read_text().replace("1.5", "1.6"))
    with pytest.raises(DataError, match="r.json: corrupt .*; fix"):
        read_record(path, "fix")
    path.write_text('{"a": 1}')  # written before records carried their sha256: taken as it is
    assert read_record(path, "fix") == {"a": 1}


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "DATA", "--out", "DATA"], "--out DATA: is --data DATA"),
    (["train", "--data", "DATA", "--out", "DATA/run"], "--out DATA/run: lies inside --data DATA"),
    (["train", "--data", "DATA", "--out", "."], "--out .: holds --data DATA"),
    (["compare", "--data", "DATA", "--out", "DATA/compare.json"], "lies inside the data folder"),
])
def test_overlapping_folders_are_refused_before_any_work(tmp_path, monkeypatch, argv, message) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "DATA").mkdir()
    (tmp_path / "DATA" / "stats.json").write_text("{}")
    code, out, err = _run(main, argv)
    assert code == 2 and message in err and "separate folders" in err and err.count("\n") == 1, err
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["DATA", "DATA/stats.json"]


def test_the_runner_refuses_an_out_that_holds_or_is_its_data_cache(tmp_path) -> None:
    from ablations.runner import run_ladder
    from vaecf.errors import VaecfError

    for out in (tmp_path, tmp_path / "cache", tmp_path / "cache" / "run"):
        with pytest.raises(VaecfError, match="the data cache .*separate folders"):
            run_ladder("attribution", "quick", data_cache=tmp_path / "cache", out=out)
    assert list(tmp_path.iterdir()) == []
