"""Layering: light commands never import TensorFlow (each runs in a fresh interpreter that then lists its
modules), library modules never import the command line, and no module imports itself through others."""

from __future__ import annotations

import ast
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


@pytest.mark.parametrize("argv", [["plot", "--help"], ["list"], ["--help"], ["project", "--help"], ["run", "--help"]])
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


# -- no import cycles ----------------------------------------------------------------------------------

PACKAGES = ("vaecf", "ablations", "benchmarks", "tools")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth (a function's lazy import is still an edge), but those under
    ``if TYPE_CHECKING:``, which never run."""
    guards = [node for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)]
    skipped = {id(n) for guard in guards for stmt in guard.body for n in ast.walk(stmt)}
    return [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) and id(n) not in skipped]


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports, read from the source (nothing is imported)."""
    files = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _runtime_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
                continue
            base = node.module or ""
            if node.level:  # relative: from .common import x
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *filter(None, [base])])
            targets.update(f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names)
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (its modules in order, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_import_graph_of_every_package_has_no_cycle() -> None:
    graph = import_graph()
    assert {"vaecf.bench", "vaecf.serving", "ablations.report", "benchmarks.common"} <= set(graph)
    assert "vaecf.serving" in graph["vaecf.bench"] and "benchmarks.common" in graph["benchmarks.bench_train"]
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_planted_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    graph["c"] = {"d"}
    assert find_cycle(graph) is None
