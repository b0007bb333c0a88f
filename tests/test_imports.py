"""Light commands never import TensorFlow: each runs in a fresh interpreter that then lists its modules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["", "data", "data prepare", "train", "evaluate", "recommend", "compare", "bench", "doctor"]
PROBE = """
import sys
from {module} import main
try:
    code = main({argv!r})
except SystemExit as e:
    code = e.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
print(code, heavy[:3])
"""


def _modules_after(module: str, argv: list[str], cwd: Path) -> str:
    run = subprocess.run([sys.executable, "-c", PROBE.format(module=module, argv=argv)], cwd=cwd,
                         env={"PYTHONPATH": str(ROOT), "PATH": ""}, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip().splitlines()[-1]  # after the help text


@pytest.mark.parametrize("command", COMMANDS)
def test_help_does_not_import_tensorflow(command: str, tmp_path: Path) -> None:
    assert _modules_after("vaecf.cli", [*command.split(), "--help"], tmp_path) == "0 []"


def test_data_prepare_does_not_import_tensorflow(tmp_path: Path) -> None:
    assert _modules_after("vaecf.cli", ["data", "prepare", "synthetic:tiny", "--out", "tmp"], tmp_path) == "0 []"
    assert (tmp_path / "tmp" / "stats.json").is_file()


def test_import_vaecf_does_not_import_tensorflow(tmp_path: Path) -> None:
    probe = "import sys, vaecf; print(sorted(m for m in sys.modules if m.startswith('tensorflow'))[:3])"
    run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "[]", run.stderr


@pytest.mark.parametrize("argv", [["plot", "--help"], ["list"], ["--help"], ["project", "--help"]])
def test_ablations_light_commands_do_not_import_tensorflow(argv: list[str], tmp_path: Path) -> None:
    assert _modules_after("ablations.__main__", argv, tmp_path) == "0 []"


def test_library_modules_do_not_import_the_command_line(tmp_path: Path) -> None:
    probe = "import sys, vaecf.compare, vaecf.recommend, vaecf.launch; print('vaecf.cli' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "False", run.stderr


def test_ablations_report_does_not_import_tensorflow(tmp_path: Path) -> None:
    """The whole page, charts and TensorBoard files of the committed default run, from its records alone."""
    import shutil

    run = tmp_path / "results" / "cpu2-epyc-avx2" / "attribution-quick"
    shutil.copytree(ROOT / "results" / "cpu2-epyc-avx2" / "attribution-quick", run)
    shutil.copytree(ROOT / "results" / "calibration", tmp_path / "results" / "calibration")
    argv = ["report", str(run), "--out", str(tmp_path / "page.html")]
    assert _modules_after("ablations.__main__", argv, tmp_path) == "0 []"
    assert (tmp_path / "page.html").read_text().startswith("<!doctype html>")
    assert next((run / "tensorboard" / "00-baseline").glob("events.out.tfevents*")).stat().st_size > 0


def test_the_cost_model_and_projections_do_not_import_tensorflow(tmp_path: Path) -> None:
    probe = ("import sys, vaecf.costmodel, ablations.project, ablations.rates; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))[:3])")
    run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "[]", run.stderr
