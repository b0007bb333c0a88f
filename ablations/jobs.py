"""The runner's children: a JSON job in, a JSON result out, through a child process or a world.

``python -m ablations.speed JOB OUT`` and ``python -m ablations.quality JOB OUT`` read their job
and write their result (rank 0 of a world; a record with its sha256, ``vaecf.integrity``);
``run_job`` writes the job, runs the child (dying with this process), and returns the result, or
raises with the log to read.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from vaecf import children
from vaecf.errors import VaecfError
from vaecf.integrity import read_record
from vaecf.io import write_json

REDO = "remove it and run the ladder again with the same command: what is missing is measured again"
"""What to do about a damaged record of a ladder run: the runner redoes only what no record holds."""


def run_job(module: str, job: dict[str, Any], work: Path, workers: int, engine: str, log: Path,
            what: str) -> dict[str, Any]:
    """Run ``python -m module`` on ``job`` (files ``work``.job.json and .out.json); its result."""
    job_file, out = work.with_name(work.name + ".job.json"), work.with_name(work.name + ".out.json")
    out.unlink(missing_ok=True)
    write_json(job_file, job)
    code = children.run_workers([sys.executable, "-m", module, str(job_file), str(out)], workers, engine, log)
    if code == children.TIMED_OUT:
        raise VaecfError(f"{what} timed out after {children.world_timeout():.0f} s (a hung collective? set "
                         f"{children.WORLD_TIMEOUT_ENV} for longer worlds); its log: {log}; a rerun resumes")
    if code != 0 or not out.is_file():
        raise VaecfError(f"{what} failed (exit {code}); its log: {log}; what finished is kept and a rerun resumes")
    result = read_record(out, f"{what} left a damaged result; its log: {log}")
    out.unlink()
    job_file.unlink()
    return result

