"""horovodrun, with a failed job told in one line that names the worker: how vaecf starts Horovod.

``python -m vaecf.hvdrun ARGS`` is ``horovodrun ARGS``. horovodrun ends a job in which a worker
failed (a crash, a kill, a host cut off: its ssh session ends with 255) by stopping the others and
raising a ``RuntimeError`` that names the first process to exit non-zero by its rank, as a Python
traceback. Here that becomes one line naming the rank, its host (``-H`` gives ranks host by host,
in order) and its exit code, exit status 1.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence

LOST = re.compile(r"Process name: (\d+)\s+Exit code: (-?\d+)")
EXIT_MEANINGS = {255: "its ssh session ended without an exit status: the worker was killed or its host cut off",
                 137: "killed (SIGKILL)", -9: "killed (SIGKILL)", 143: "terminated (SIGTERM)",
                 -15: "terminated (SIGTERM)"}


def host_of(rank: int, hosts: str | None) -> str:
    """The host of ``rank`` in a ``-H host1:2,host2:2`` layout (``localhost`` without one)."""
    if not hosts:
        return "localhost"
    first = 0
    for item in hosts.split(","):
        name, _, slots = item.partition(":")
        first += int(slots or 1)
        if rank < first:
            return name
    return "?"


def describe(error: str, hosts: str | None) -> str:
    """horovodrun's error as one line, naming the first failed worker where it says which."""
    match = LOST.search(error)
    if match is None:
        return f"horovodrun: {error.strip().splitlines()[0] if error.strip() else 'failed'}"
    rank, code = int(match[1]), int(match[2])
    meaning = f" ({EXIT_MEANINGS[code]})" if code in EXIT_MEANINGS else ""
    return (f"data-parallel worker {rank} on {host_of(rank, hosts)} stopped first, exit code {code}{meaning}; "
            "horovodrun stopped the others. Finished epochs are kept: the same command resumes the run")


def main(argv: Sequence[str]) -> int:
    from vaecf.tfenv import LOG_LEVEL, load_tensorflow

    before = os.environ.get(LOG_LEVEL)
    load_tensorflow()  # horovodrun's imports load TensorFlow: quietly, as vaecf's own commands do
    from horovod.runner.launch import run_commandline

    if before is None:  # the workers inherit this environment: their own --verbose decides for them
        os.environ.pop(LOG_LEVEL, None)

    args = list(argv)
    hosts = args[args.index("-H") + 1] if "-H" in args[:-1] else None
    sys.argv = ["horovodrun", *args]
    try:
        run_commandline()
    except (RuntimeError, ValueError) as e:
        print(f"vaecf: error: {describe(str(e), hosts)}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
