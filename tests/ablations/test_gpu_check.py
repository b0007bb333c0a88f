"""The gpu-check ladder end to end on a CPU (``--allow-cpu``): every GPU code path of the ladder runs.

float16 with loss scaling, the sparse large-batch recipe and a 2-worker world all train and are
timed, records and charts are written and each substitution is named, at the smoke budget. The
runner's own process never imports TensorFlow: only its children touch a device.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = """
import sys
from ablations.__main__ import main
code = main({argv!r})
print("PARENT_TF", sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow")[:1])
sys.exit(code)
"""


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_gpu_check_ladder_runs_every_step_on_a_cpu(tmp_path: Path) -> None:
    argv = ["run", "--ladder", "gpu-check", "--budget", "smoke", "--allow-cpu", "--results", str(tmp_path / "results"),
            "--out", str(tmp_path / "run")]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": "-1"}
    out = subprocess.run([sys.executable, "-c", RUN.format(argv=argv)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=1400)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "PARENT_TF []" in out.stdout  # the parent never loaded TensorFlow, so never initialised a device

    run_dir = tmp_path / "run"
    run = json.loads((run_dir / "run.json").read_text())
    steps = {s["name"]: s for s in run["steps"]}
    assert list(steps) == ["baseline", "sparse large batch", "float16", "2 GPUs"]
    assert all(s["skip"] is None for s in steps.values())  # every step ran
    assert steps["float16"]["train"]["precision"] == "mixed_float16"
    assert any("float16 run on the CPU as written" in n for n in steps["float16"]["notes"])
    assert steps["2 GPUs"]["train"]["workers"] == 2
    if run["machine"]["versions"]["horovod"] is None:
        assert "Horovod not installed: tf.distribute instead" in steps["2 GPUs"]["notes"]
    windows = json.loads((run_dir / "speed.json").read_text())["windows"]
    assert all(len(windows[s["speed_key"]]) >= 3 for s in steps.values())  # every step timed in every round
    trained = {slug for p in (run_dir / "quality").glob("*.json") for slug in json.loads(p.read_text())["steps"]}
    assert trained == {s["slug"] for s in steps.values()}  # every step has a quality curve (its own or shared)
    for name in ("table.md", "ladder.svg", "quality_vs_time.svg", "time_to_target.svg"):
        assert (run_dir / name).is_file(), name
    table = (run_dir / "table.md").read_text()
    assert "float16" in table and "2 GPUs" in table

