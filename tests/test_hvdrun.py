"""horovodrun's failures told in one line (``vaecf/hvdrun.py``); the real one is in tests/test_multihost.py."""

from __future__ import annotations

import pytest

from vaecf.hvdrun import describe, host_of

HOROVODRUN_ERROR = ("Horovod detected that one or more processes exited with non-zero status, thus causing the job "
                    "to be terminated. The first process to do so was:\nProcess name: 3\nExit code: 255\n")


@pytest.mark.parametrize("rank, hosts, host", [(0, "h1:2,h2:2", "h1"), (1, "h1:2,h2:2", "h1"),
                                               (2, "h1:2,h2:2", "h2"), (3, "a:1,b:1,c:2", "c"),
                                               (0, None, "localhost")])
def test_ranks_fill_hosts_in_order(rank: int, hosts: str | None, host: str) -> None:
    assert host_of(rank, hosts) == host


def test_the_first_failed_worker_is_named_with_its_host_and_why() -> None:
    line = describe(HOROVODRUN_ERROR, "h1:2,h2:2")
    assert "\n" not in line
    assert line.startswith("data-parallel worker 3 on h2 stopped first, exit code 255 (its ssh session ended without")
    assert "the same command resumes" in line


def test_any_other_horovodrun_error_is_its_first_line() -> None:
    assert describe("could not connect to some hosts via ssh\nmore", "h1:1") == (
        "horovodrun: could not connect to some hosts via ssh")
