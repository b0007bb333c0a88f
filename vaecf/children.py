"""Child processes that die with their parent.

A runner that is killed (even with SIGKILL, which it cannot catch) must not leave a training
child behind to finish a step nobody records, or to compete for the cores with the rerun. On
Linux the kernel can do this for us: ``PR_SET_PDEATHSIG`` asks it to send the child SIGTERM when
the thread that started it exits. Ctrl-C reaches children of the foreground group by itself.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from vaecf import gpus

_PR_SET_PDEATHSIG = 1
TIMED_OUT = 124
"""The exit code of a world stopped at its timeout (as coreutils' ``timeout``)."""


def die_with_parent() -> None:
    """``preexec_fn``: this (forked, not yet exec'd) child gets SIGTERM when its parent dies."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def popen(command: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen`` whose child dies with this process."""
    return subprocess.Popen(list(command), preexec_fn=die_with_parent, **kwargs)  # noqa: PLW1509


def run(command: Sequence[str], log: Path | None = None, **kwargs: Any) -> int:
    """Run ``command`` to the end (output appended to ``log`` when given); its exit code.

    If this process is interrupted meanwhile, the child is terminated before the exception goes on.
    """
    stdout: IO[Any] | None = open(log, "a") if log is not None else None  # noqa: SIM115
    try:
        child = popen(command, stdout=stdout, stderr=subprocess.STDOUT if stdout else None, **kwargs)
        try:
            return child.wait()
        except BaseException:
            child.terminate()
            child.wait()
            raise
    finally:
        if stdout is not None:
            stdout.close()


COLLECTIVE_TIMEOUT_S = 1800
"""A collective (all-reduce, all-gather) that takes longer than this is a hang: tf.distribute raises
(``DeadlineExceeded``) and Horovod shuts the stalled job down, so the worker exits with one error
rather than waiting forever. Long enough for rank 0's validation, which the others wait out in
their next all-reduce."""
WORLD_TIMEOUT_ENV = "VAECF_WORLD_TIMEOUT_S"
WORLD_TIMEOUT_S = 12 * 3600.0
"""A data-parallel world still running after this long is stopped (exit 124): the last guard against a
hang that no collective's own timeout caught (``COLLECTIVE_TIMEOUT_S``)."""


def world_timeout() -> float:
    """Seconds a world may run: $VAECF_WORLD_TIMEOUT_S, else ``WORLD_TIMEOUT_S``."""
    return float(os.environ.get(WORLD_TIMEOUT_ENV, WORLD_TIMEOUT_S))


def run_workers(command: Sequence[str], workers: int, engine: str, log: Path | None = None) -> int:
    """``run(command)`` on the first GPU, or, with ``workers > 1``, ``command`` as a data-parallel world
    (``vaecf.launch``) stopped after ``world_timeout()`` seconds (exit 124).

    The world's launcher is itself a child (``python -m vaecf.launch``), so that the workers'
    output goes to ``log`` and they all go down with this process.
    """
    if workers == 1:
        return run(command, log, env=gpus.first(os.environ, 1))
    return run([sys.executable, "-m", "vaecf.launch", str(workers), engine, str(world_timeout()), *command], log)
