"""Developer tasks. `nox` alone runs the test suite; `nox -s ablate` runs the main job."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = os.environ.get("VAECF_NOX_PYTHON", "3")
HOROVOD_TF = "tensorflow-cpu==2.18.1"
"""Horovod 0.28.1 builds against TensorFlow 2.15-2.18 only (its XLA op needs headers 2.19 dropped)."""
HOROVOD_BUILD_ENV = {
    "HOROVOD_WITH_TENSORFLOW": "1", "HOROVOD_WITH_GLOO": "1", "HOROVOD_WITHOUT_MPI": "1",
    "HOROVOD_WITHOUT_PYTORCH": "1", "HOROVOD_WITHOUT_MXNET": "1",
}


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite (slow tests included) on current TensorFlow."""
    session.install("-e", ".[test]")
    session.run("pytest", "-q", *session.posargs)


@nox.session(python=PYTHON)
def horovod(session: nox.Session) -> None:
    """Multi-process tests with Horovod (Gloo) on TensorFlow 2.18; builds Horovod (5-8 min)."""
    session.install(HOROVOD_TF, "cmake<4", "packaging", "wheel", "setuptools")
    session.install("--no-build-isolation", "horovod==0.28.1", env=HOROVOD_BUILD_ENV)
    session.install("-e", ".[test]")
    session.run("pytest", "-q", "-m", "multiprocess", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "vaecf", "ablations", "benchmarks", "tests", "noxfile.py")
