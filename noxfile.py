"""Developer tasks. `nox` alone runs the test suite; `nox -s ablate` runs the main job."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = os.environ.get("VAECF_NOX_PYTHON", "3")
HOROVOD_TF = "tensorflow==2.18.1"
"""Horovod 0.28.1 builds against TensorFlow 2.15-2.18 only (its XLA op needs headers 2.19 dropped).

The `tensorflow` distribution, not `tensorflow-cpu`: vaecf requires `tensorflow`, and pip would install a
second, newer copy over the first one's files when only `tensorflow-cpu` is present (broken kernels)."""
HOROVOD_BUILD_ENV = {
    "HOROVOD_WITH_TENSORFLOW": "1", "HOROVOD_WITH_GLOO": "1", "HOROVOD_WITHOUT_MPI": "1",
    "HOROVOD_WITHOUT_PYTORCH": "1", "HOROVOD_WITHOUT_MXNET": "1",
}


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite (slow tests included) on current TensorFlow; `-- fast` leaves out the slow tests.

    Arguments go to pytest (after `fast`, if given), e.g. `nox -s tests -- fast -k cli`.
    """
    session.install("-e", ".[test]")
    install_chromium(session)
    lane, *rest = session.posargs or [""]
    args = ["-m", "not slow", *rest] if lane == "fast" else list(session.posargs)
    session.run("pytest", "-q", *args)


def install_chromium(session: nox.Session) -> None:
    """The report test opens a run's page in headless Chromium: installed where this session may (root and
    apt-get, as on CI); elsewhere that test is skipped and says why."""
    if not any(shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")):
        apt_install(session, "chromium", "the report's browser test will be skipped")


def apt_install(session: nox.Session, package: str, otherwise: str) -> None:
    """Install a Debian package where this session may (root and apt-get, as on CI); else log ``otherwise``."""
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        session.run("apt-get", "update", "-qq", external=True)
        session.run("apt-get", "install", "-y", "-qq", "--no-install-recommends", package, external=True)
    else:
        session.log(f"{package} not installed and no root apt-get here: {otherwise}")


def horovod_build_env() -> dict[str, str]:
    """Gloo always; NCCL for GPU tensors where there is a GPU to build for, so GPUs all-reduce on the GPUs.

    A GPU means nvidia-smi lists one and nvcc is here: a CUDA compiler alone (CI machines have one)
    lacks the runtime libraries, and Horovod's CMake then fails to find the CUDA toolkit.
    """
    env = dict(HOROVOD_BUILD_ENV)
    if shutil.which("nvcc") and _gpus_listed():
        env["HOROVOD_GPU_OPERATIONS"] = "NCCL"
    return env


def _gpus_listed() -> bool:
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


@nox.session(python=PYTHON)
def horovod(session: nox.Session) -> None:
    """Multi-process tests with Horovod on TensorFlow 2.18; builds Horovod (5-8 min), with NCCL where CUDA is."""
    install_horovod(session)
    session.run("pytest", "-q", "-m", "multiprocess", *session.posargs, env={"VAECF_REQUIRE_HOROVOD": "1"})


def install_horovod(session: nox.Session) -> None:
    """TensorFlow 2.18, Horovod built against it (pip keeps the wheel it built: later sessions reuse it), vaecf."""
    session.install(HOROVOD_TF, "cmake<4", "packaging", "wheel", "setuptools")
    session.install("--no-build-isolation", "horovod==0.28.1", env=horovod_build_env())
    session.install("-e", ".[test]")


@nox.session(python=PYTHON)
def multihost(session: nox.Session) -> None:
    """Training across hosts made of network namespaces (tools/hosts.py): Horovod through `vaecf train --hosts`
    over ssh, tf.distribute by TF_CONFIG, a host cut off mid-run and resumed, tear-down after SIGKILL.

    Needs root and iproute2 (as on CI); elsewhere the tests skip and say why.
    """
    install_horovod(session)
    install_sshd(session)
    session.run("pytest", "-q", "tests/test_hosts.py", "tests/test_multihost.py",
                *session.posargs, env={"VAECF_MULTIHOST": "1", "VAECF_REQUIRE_HOROVOD": "1"})


def install_sshd(session: nox.Session) -> None:
    """Horovod reaches the namespaces' hosts by ssh: Debian's openssh-server, installed where this session may
    (root and apt-get, as on CI); tools/hosts.py runs one sshd per namespace on its own configuration."""
    if not Path("/usr/sbin/sshd").exists():
        apt_install(session, "openssh-server", "the tests that need ssh will be skipped")


@nox.session(python=PYTHON)
def ablate(session: nox.Session) -> None:
    """The main job: replay the speed-up ladder with quality beside every step.

    Default: the 'attribution' ladder, quick budget: speed at ML-20M's shape, quality on small synthetic
    data (no download). The real thing: nox -s ablate -- --ladder case-study --budget full
    """
    session.install("-e", ".")
    session.run("python", "-m", "ablations", "run", *session.posargs)


@nox.session(python=PYTHON, name="gpu-check")
def gpu_check(session: nox.Session) -> None:
    """On a machine with a GPU: a short ladder (baseline, sparse large batch, float16, 2 GPUs) with quality.

    Installs TensorFlow with its CUDA libraries (the `gpu` extra: only the NVIDIA driver is needed), says
    what TensorFlow sees (`vaecf doctor`), then runs; refuses to run where TensorFlow sees no GPU
    (docs/gpu.md). Not yet run by the authors on a GPU; CI runs the same ladder on CPU (--allow-cpu).
    """
    session.install("-e", ".[gpu]")
    session.run("python", "-m", "vaecf", "doctor", "--ladder", "gpu-check", success_codes=[0, 2])  # the run refuses
    session.run("python", "-m", "ablations", "run", "--ladder", "gpu-check", *session.posargs)


@nox.session(python=PYTHON)
def plots(session: nox.Session) -> None:
    """Redraw every recorded run's tables and charts from its records (no training), then the docs' tables."""
    session.install("-e", ".")
    runs = session.posargs or sorted(str(p.parent) for p in Path("results").glob("*/*/run.json"))
    session.run("python", "-m", "ablations", "plot", *runs)
    session.run("python", "-m", "ablations", "docs")


def _prepare_ml100k(session: nox.Session) -> str:
    """ML-100K with 100 + 100 heldout users, from $VAECF_DATA_DIR (default: the ``shared/data`` folder
    beside the repository, as tests/conftest.py) when there, else downloaded; the prepared folder."""
    source = Path(os.environ.get("VAECF_DATA_DIR", "../shared/data")) / "ml-100k" / "u.data"
    data = ".cache/data/ml-100k-h100"
    session.run("python", "-m", "vaecf", "data", "prepare", "ml-100k", "--heldout-users", "100", "--out", data,
                *(["--source", str(source)] if source.is_file() else []))
    return data


@nox.session(python=PYTHON)
def quality(session: nox.Session) -> None:
    """README quality table: ML-100K (100/100 heldout users), Mult-VAE over 5 seeds, EASE, popularity.

    Reads $VAECF_DATA_DIR/ml-100k/u.data when present, else downloads ml-100k.zip (checksum verified).
    """
    session.install("-e", ".")
    data = _prepare_ml100k(session)
    session.run("python", "-m", "vaecf", "compare", "--data", data, "--models", "vae,ease,popularity",
                "--seeds", "5", "--batch-size", "100", "--out", "results/quality/ml-100k.json", *session.posargs)


@nox.session(python=PYTHON, name="quality-synthetic")
def quality_synthetic(session: nox.Session) -> None:
    """README: Mult-VAE, EASE and popularity against the oracle on ML-20M-shaped synthetic data (~55 min).

    One seed, 20 epochs of the paper's recipe (the paper trains 200), no download.
    """
    session.install("-e", ".")
    data = ".cache/data/synthetic_ml-20m"
    session.run("python", "-m", "vaecf", "data", "prepare", "synthetic:ml-20m", "--out", data)
    session.run("python", "-m", "vaecf", "compare", "--data", data, "--models", "vae,ease,popularity",
                "--seeds", "1", "--epochs", "20", "--out", "results/quality/synthetic-ml-20m.json", *session.posargs)


@nox.session(python=PYTHON)
def precision(session: nox.Session) -> None:
    """bfloat16 against float32: Mult-VAE's validation NDCG@100 at equal seeds (docs/quality.md; ~35 min).

    ML-100K (5 seeds, as the quality table) and the quick ladder's synthetic data (3 seeds, 30
    epochs: its calibration converges within ~25).
    """
    session.install("-e", ".")
    ml100k, synthetic = _prepare_ml100k(session), ".cache/data/synthetic_small_items-2000_mean_items-40"
    session.run("python", "-m", "vaecf", "data", "prepare", "synthetic:small,items=2000,mean_items=40",
                "--out", synthetic)
    both = ("--models", "vae", "--precisions", "float32,mixed_bfloat16")
    session.run("python", "-m", "vaecf", "compare", "--data", ml100k, *both, "--seeds", "5", "--batch-size", "100",
                "--out", "results/quality/precision-ml-100k.json", *session.posargs)
    session.run("python", "-m", "vaecf", "compare", "--data", synthetic, *both, "--seeds", "3", "--epochs", "30",
                "--out", "results/quality/precision-synthetic-small.json", *session.posargs)


@nox.session(python=PYTHON, name="serving-agreement")
def serving_agreement(session: nox.Session) -> None:
    """The serving copy (vaecf recommend) against TensorFlow's scores of a trained Mult-VAE: test metrics and
    top-k agreement on ML-100K and the quick ladder's synthetic data (results/quality/serving-*.json)."""
    session.install("-e", ".")
    ml100k, synthetic = _prepare_ml100k(session), ".cache/data/synthetic_small_items-2000_mean_items-40"
    session.run("python", "-m", "vaecf", "data", "prepare", "synthetic:small,items=2000,mean_items=40",
                "--out", synthetic)
    session.run("python", "benchmarks/serving_agreement.py", "--data", ml100k, "--epochs", "20", "--batch-size",
                "100", "--out", "results/quality/serving-ml-100k.json")
    session.run("python", "benchmarks/serving_agreement.py", "--data", synthetic, "--epochs", "30", "--batch-size",
                "500", "--out", "results/quality/serving-synthetic-small.json")


@nox.session(python=PYTHON)
def float16(session: nox.Session) -> None:
    """float16 (loss-scaled) against float32: Mult-VAE's validation NDCG@100 at equal seeds on ML-100K.

    The GPU's precision, run on the CPU (its float16 kernels are slower there than float32's); ML-100K as
    the quality table, 3 seeds. Written beside the bfloat16 comparison, not over it (docs/quality.md).
    """
    session.install("-e", ".")
    source = Path(os.environ.get("VAECF_DATA_DIR", "../shared/data")) / "ml-100k" / "u.data"
    ml100k = ".cache/data/ml-100k-h100"
    session.run("python", "-m", "vaecf", "data", "prepare", "ml-100k", "--heldout-users", "100", "--out", ml100k,
                *(["--source", str(source)] if source.is_file() else []))
    session.run("python", "-m", "vaecf", "compare", "--data", ml100k, "--models", "vae",
                "--precisions", "float32,mixed_float16", "--seeds", "3", "--batch-size", "100",
                "--out", "results/quality/float16-ml-100k.json", *session.posargs)


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy on vaecf (settings in pyproject.toml)."""
    session.install("-e", ".[typecheck]")
    session.run("mypy", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "vaecf", "ablations", "benchmarks", "tools", "tests", "noxfile.py")


HISTORY_SINCE = "a59ea46"
"""Oldest commit of main the suites in benchmarks/ can measure. asv runs today's suites on every commit,
and they import vaecf.config.WARMUP_STEPS, which a59ea46 added: on the 37 commits before it, back to the
suites' own 654d265, setup_cache fails with an ImportError and asv skips every benchmark."""
HISTORY_STEPS = 10
"""Commits the history run measures, spread evenly by asv (--steps); 3 min 22 s each on the 2-core VM."""
HISTORY_BENCHMARKS = r"TrainThroughput|track_validation_ndcg\('float32'\)"
"""What docs/asv.md's pictures show: training users/s (input x pipeline), validation NDCG@100 (float32)."""

BENCH_ACTIONS: dict[str, list[list[str]]] = {
    # Every benchmark once on HEAD, in asv's own virtualenv: a smoke test with rough figures.
    "quick": [["asv", "run", "--quick", "--show-stderr", "HEAD^!"]],
    # The full measurement of HEAD (about 10 minutes on 2 cores), raw samples kept for compare.
    "run": [["asv", "run", "--show-stderr", "--record-samples", "HEAD^!"]],
    # Measure main and HEAD side by side now; fails when a benchmark got >10% worse.
    "continuous": [["asv", "continuous", "--show-stderr", "--factor", "1.1", "main", "HEAD"]],
    # Table of the results already recorded for main and HEAD (runs nothing).
    "compare": [["asv", "compare", "--split", "main", "HEAD"]],
    # Every recorded result as a static site in .asv/html (view with `asv preview`).
    "publish": [["asv", "publish"]],
    # CI: the suite is well-formed and each benchmark runs once in this environment; no results kept.
    "check": [["asv", "check", "--python=same"],
              ["asv", "run", "--python=same", "--quick", "--dry-run", "--show-stderr"]],
    # users/s and float32 NDCG@100 on HISTORY_STEPS commits spread over main since HISTORY_SINCE, commits
    # already measured skipped, then the site (about 35 minutes on 2 cores; docs/asv.md, History).
    "history": [["asv", "run", "--show-stderr", "--skip-existing-commits", "--steps", str(HISTORY_STEPS),
                 "-b", HISTORY_BENCHMARKS, f"{HISTORY_SINCE}^..main"],
                ["asv", "publish"]],
    # docs/img/asv-*.png from the published site (headless Chromium; tools/asv_screenshot.py).
    "screenshot": [["python", "tools/asv_screenshot.py"]],
    # Does asv flag what it measures? One extra output-size GEMM per step planted on a scratch commit
    # over HEAD, asv continuous --factor 1.1 on the training step; passes when every float32 row is
    # flagged (tools/asv_check.py; record results/<machine>/asv-check-planted.json).
    "planted": [["python", "tools/asv_check.py", "planted"]],
    # The same with nothing changed (HEAD against an empty commit over it): passes when no row is flagged.
    "unchanged": [["python", "tools/asv_check.py", "unchanged"]],
}


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """asv regression tracking: nox -s bench -- [quick|run|continuous|compare|publish|check|history|screenshot|
    planted|unchanged] [args].

    Arguments after the action go to its `asv run`, else to its last command, e.g. `-- quick -b TrainStep`.
    """
    action, *extra = session.posargs or ["quick"]
    if action not in BENCH_ACTIONS:
        session.error(f"unknown bench action {action!r}; one of: {', '.join(BENCH_ACTIONS)}")
    # 'check' benchmarks this environment, so it needs vaecf itself; the other actions build each
    # commit into asv's own virtualenv under .asv/env.
    session.install("-e", ".[bench]")
    if not (Path.home() / ".asv-machine.json").is_file():
        session.run("asv", "machine", "--yes")  # asv asks about the machine once; take its defaults
    commands = BENCH_ACTIONS[action]
    runs = [i for i, command in enumerate(commands) if command[:2] == ["asv", "run"]]
    # `history -- --steps 30` means the run, not the publish that follows it.
    target = runs[-1] if runs else len(commands) - 1
    for i, command in enumerate(commands):
        session.run(*command, *(extra if i == target else []))
