"""``python -m ablations project`` on a tiny fake run, its refusals, and the held-out check's inputs."""

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from ablations import project
from ablations.__main__ import main
from ablations.ladder import Step
from vaecf.config import TrainConfig
from vaecf.io import write_json

STEPS = [Step(0, "baseline", "", TrainConfig(input="dense", pipeline="feed", batch_size=100)),
         Step(1, "sparse input", "", TrainConfig(input="sparse", pipeline="feed", batch_size=100)),
         Step(2, "four workers", "", TrainConfig(input="sparse", batch_size=100, workers=4, batch_scope="worker"))]
CPU = {"cpu": "a fake CPU", "cpu_flags": ["avx2"], "cores": 2}
HEADER = {"machine_name": "fake", **CPU}
RATES: dict[str, Any] = {"machine": HEADER, "items": 20_108, "mean_items": 73.0, "overhead_s": 0.001,
         "memory_bw": 1e10,
         "host_prep_s": {"dense,100": 0.05, "sparse,100": 0.002},
         "gemm_flops": {"100,float32": 1e11},
         "worlds": {"4": {"gemm_flops": {"100,float32": 2e10}, "memory_bw": 4e9, "allreduce_bw": 1e9}}}
OLD_SHAPE = {**{k: v for k, v in RATES.items() if k not in ("machine", "worlds")}, "machine": "fake",
             "provenance": CPU}
"""A probe as committed before 2026-12-06: the header under provenance, the machine's bare name under machine."""


def fake_run(folder: Path, rates: dict | None = RATES) -> Path:
    steps: list[dict[str, Any]] = [{"index": s.index, "name": s.name, "change": "", "skip": None, "notes": [],
                                    "train": dataclasses.asdict(s.train)} for s in STEPS]
    ladder = {"name": "attribution", "reference": "case-study"}
    write_json(folder / "run.json", {"machine": {"hostname": "vm", **CPU}, "ladder": ladder, "steps": steps})
    window = {"peak_rss_bytes": None, "device_peak_bytes": None}
    write_json(folder / "speed.json", {
        "windows": {s.speed_key: {"0": {"users_per_s": [u], "users_per_s_median": u, **window}}
                    for s, u in zip(STEPS, (100.0, 300.0, 900.0))},
        "ceilings": {}, "workload": {"items": 20_108, "mean_items": 73.0}, "machine": {"gpu_count": 0}})
    if rates is not None:
        write_json(folder / "rates.json", rates)
    return folder


def test_project_writes_a_labelled_table_and_chart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = fake_run(tmp_path)
    assert main(["project", str(run), "--onto", "v100x4"]) == 0
    table = (run / "projection-v100x4.md").read_text()
    assert "projected onto v100x4 (specs only)" in table
    assert (run / "projection-v100x4.png").stat().st_size > 0 and (run / "projection-v100x4.svg").is_file()
    proj = project.project_run(run, "v100x4")
    rows = proj["rows"]
    assert [r["measured_users_per_s"] for r in rows] == [100.0, 300.0, 900.0]
    # The dense step feeds 100 x 20,108 float32 over PCIe and prepares it on the host: slower than sparse.
    assert rows[0]["projected_users_per_s"] < rows[1]["projected_users_per_s"]
    assert rows[2]["global_batch"] == 400 and rows[2]["parts_s"]["allreduce"] > 0
    assert main(["project", str(run), "--onto", "v100x1"]) == 0
    assert "needs 4 GPUs" in (run / "projection-v100x1.md").read_text()


def test_project_onto_here_predicts_from_the_probe(tmp_path: Path) -> None:
    proj = project.project_run(fake_run(tmp_path), "here")
    # Sparse, batch 100, feed, on a CPU: every part is added.
    row = proj["rows"][1]
    assert row["projected_s"] == pytest.approx(sum(row["parts_s"].values()))
    assert row["parts_s"]["transfer"] == 0.0 and row["parts_s"]["host"] == 0.002
    # Four workers: each worker's GEMMs at the rate its world measured (5x slower than one process's
    # here), the all-reduce of 4-byte gradients at the world's effective bandwidth, no latency term.
    four = proj["rows"][2]
    assert four["parts_s"]["gemm"] == pytest.approx(row["parts_s"]["gemm"] * 5)
    parameters = four["parts_s"]["adam"] * 4e9 / 28
    assert four["parts_s"]["allreduce"] == pytest.approx(2 * 3 / 4 * 4 * parameters / 1e9)
    assert four["note"] == "rates of a world of 4 workers"  # the fake world records no load


def test_here_refuses_a_probe_without_a_world_of_the_steps_workers(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    rates = {**RATES, "worlds": {}}
    assert main(["project", str(fake_run(tmp_path, rates)), "--onto", "here"]) == 2
    err = capsys.readouterr().err
    assert "has no figure for 4 workers' GEMM 100,float32" in err and len(err.strip().splitlines()) == 1


def test_a_probe_of_the_old_shape_is_read(tmp_path: Path) -> None:
    proj = project.project_run(fake_run(tmp_path, OLD_SHAPE), "v100x4")
    assert proj["probe_machine"] == "fake" and proj["rows"][1]["projected_users_per_s"] > 0


def test_project_a_ladder_with_no_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rates = {**OLD_SHAPE, "host_prep_s": {"dense,500": 0.06, "sparse,24576": 0.12}}
    write_json(tmp_path / "rates.json", rates)
    stem = tmp_path / "out" / "case-study-v100x4"
    argv = ["project", "--ladder", "case-study", "--onto", "v100x4", "--probe", str(tmp_path / "rates.json")]
    assert main([*argv, "--out", str(stem)]) == 0
    record = json.loads(stem.with_suffix(".json").read_text())
    assert record["machine"]["git_sha"] and record["run"] is None  # the standard header, and no run
    assert [r["name"] for r in record["rows"]] == ["baseline", "sparse input", "tf.data pipeline",
                                                   "automatic mixed precision", "horovod 4 workers"]
    assert record["published"] == [1.0, 12.5, 22.6, 41.5, 145.3]  # the talk's, step by step
    assert record["rows"][1]["global_batch"] == 24_576 and record["rows"][4]["global_batch"] == 4 * 24_576
    table = stem.with_suffix(".md").read_text()
    assert "projected onto v100x4 (specs only)" in table and "measured" not in table.split("\n")[0]
    assert stem.with_suffix(".png").stat().st_size > 0
    capsys.readouterr()
    assert main(argv[:5]) == 2  # no probe named
    assert "--ladder case-study: a ladder with no run has no probe of its own" in capsys.readouterr().err
    assert main(["project", str(tmp_path), *argv[1:]]) == 2  # a run and a ladder
    assert "not both" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--onto", "v100x3"], "--onto 'v100x3': unknown hardware; known: a100x1"),
    (["--onto", "tpu"], "--onto 'tpu': unknown hardware"),
])
def test_project_refuses_an_unknown_hardware_name(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  argv: list[str], message: str) -> None:
    assert main(["project", str(fake_run(tmp_path)), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_project_refuses_a_run_without_a_probe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["project", str(fake_run(tmp_path, rates=None)), "--onto", "a100x8"]) == 2
    err = capsys.readouterr().err
    assert "no probe" in err and "python -m ablations rates" in err and len(err.strip().splitlines()) == 1


def test_project_refuses_a_probe_without_the_steps_shapes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rates = {**RATES, "host_prep_s": {"sparse,100": 0.002}}
    assert main(["project", str(fake_run(tmp_path, rates)), "--onto", "a100x8"]) == 2
    assert "no host figure for 'dense,100'" in capsys.readouterr().err


def test_here_refuses_a_probe_of_another_machine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = {**RATES, "machine": {**HEADER, "cpu": "another CPU"}}
    assert main(["project", str(fake_run(tmp_path, other)), "--onto", "here"]) == 2
    assert "the probe was made on {'cpu': 'another CPU'" in capsys.readouterr().err


def test_heldout_covers_nvidias_rows_and_the_talks_steps() -> None:
    rates = {**RATES, "host_prep_s": {"dense,500": 0.06, "sparse,3072": 0.018, "sparse,24576": 0.12}}
    record = project.heldout(rates, "rates.json")
    assert len(record["nvidia"]) == 8 and [f["step"] for f in record["talk"]] == [
        "sparse input", "tf.data pipeline", "automatic mixed precision", "horovod 4 GPUs"]
    assert all(e["source"] for device in record["parameters"].values() for e in device.values())
    assert "| v100x8 | 8 | amp | 3,072 |" in project.heldout_table(record)


def test_the_cpu_check_table_has_residuals(tmp_path: Path) -> None:
    proj = project.project_run(fake_run(tmp_path), "here")
    table = project.projection_table(proj)
    predicted = proj["rows"][0]["projected_users_per_s"]
    assert f"| {predicted / 100.0 - 1:+.0%} |" in table


def test_summary_line_names_the_machine_the_ends_and_the_bound(tmp_path: Path) -> None:
    line = project.summary_line(project.project_run(fake_run(tmp_path), "v100x4"))
    assert line.startswith("projected onto v100x4 (specs only): baseline ")
    assert "-> four workers" in line and "the last bound by" in line and "\n" not in line
    assert "no step fits (needs 4 GPUs)" in project.summary_line(
        {**project.project_run(tmp_path, "h100x1"), "rows": [{"name": "x", "skip": "needs 4 GPUs"}]})


def test_a_ladder_run_ends_with_one_line_per_projected_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    # What nox -s ablate prints after the run's table (the run itself replaced by a finished fake one).
    from ablations import runner

    run = fake_run(tmp_path)
    (run / "table.md").write_text("| the run's table |\n")
    monkeypatch.setattr(runner, "run_ladder", lambda *a, **k: run)
    assert main(["run"]) == 0  # not --quiet: it would leave vaecf.progress quiet for the tests after
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines[-len(project.PROJECTED):]] == [
        f"projected onto {hw} (specs only)" for hw in ("v100x4", "a100x8", "h100x1")]
