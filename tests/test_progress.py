"""Progress with an ETA: plain lines where stdout is not a terminal, a tqdm bar on a pseudo-terminal, nothing quiet."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from vaecf import progress
from vaecf.progress import Phase, clock

ROOT = Path(__file__).resolve().parents[1]


def test_clock() -> None:
    assert [clock(s) for s in (0, 59.6, 65, 3600 + 9)] == ["0:00", "1:00", "1:05", "1:00:09"]


def test_eta_is_the_rate_so_far_counted_down(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    out = io.StringIO()
    phase = Phase(10, "speed", "windows", stream=out, interval=3600, done=2)
    assert phase.eta_s() is None  # nothing done in this process yet: no rate (the 2 resumed windows had none)
    now[0] = 130.0
    phase.advance(3, "round 1")  # 3 windows in 30 s: 5 left take 50 s
    assert phase.eta_s() == pytest.approx(50.0)
    now[0] = 150.0
    assert phase.eta_s() == pytest.approx(30.0)
    now[0] = 250.0
    assert phase.eta_s() == 0.0  # late: never negative
    phase.advance(1, eta_s=40.0)  # the caller knows better (the speed windows' own durations)
    now[0] = 260.0
    assert phase.eta_s() == pytest.approx(30.0)
    phase.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "speed: 2 of 10 windows (20%), elapsed 0:00, ETA after the first part"
    assert lines[1] == "speed: 5 of 10 windows (50%), elapsed 0:30, ETA 0:50 - round 1"
    assert lines[-1] == "speed: done in 2:40"


def test_expected_time_before_the_first_part() -> None:
    out = io.StringIO()
    with Phase(4, "epochs", "epochs", stream=out, expected_s=125.0) as phase:
        assert phase.eta_s() == pytest.approx(125.0, abs=1.0)
    assert "ETA 2:0" in out.getvalue().splitlines()[0]


def test_lines_come_periodically_between_parts() -> None:
    out = io.StringIO()
    with Phase(2, "quality", stream=out, interval=0.05):
        time.sleep(0.3)
    lines = out.getvalue().splitlines()
    assert len(lines) >= 4 and all(line.startswith("quality: ") for line in lines)


def test_quiet_writes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    with Phase(3, "speed", stream=out, quiet=True) as phase:
        phase.advance(1)
    monkeypatch.setattr(progress, "QUIET", True)
    with Phase(3, "speed", stream=out, interval=0.01) as phase:
        phase.advance(1)
        time.sleep(0.05)
    assert out.getvalue() == ""


def test_a_terminal_gets_a_tqdm_bar() -> None:
    """On a pseudo-terminal: a bar redrawn in place (carriage returns), with the elapsed time and ETA."""
    code = ("import time; from vaecf.progress import Phase\n"
            "with Phase(4, 'speed', 'windows') as p:\n"
            "    for k in range(4):\n        time.sleep(0.05); p.advance(1, f'window {k}')\n")
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a 120-column terminal
    child = subprocess.Popen([sys.executable, "-c", code], stdout=follower, stderr=follower, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert child.wait(timeout=60) == 0
    os.close(leader)
    text = b"".join(chunks).decode()
    assert "\r" in text and "|" in text and "speed:" in text
    assert "4 of 4 windows (100%), elapsed" in text and "ETA 0:00" in text and "done in 0:00" in text
    assert "\nspeed: 1 of 4 windows" not in text  # no plain lines


def test_a_phase_that_advances_often_writes_spaced_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bytes read advance a phase hundreds of times: off a terminal a line every ``every_s``, and the last."""
    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    out = io.StringIO()
    with Phase(100, "reading", "MB", stream=out, interval=3600, every_s=5.0) as phase:
        for _ in range(100):
            now[0] += 0.5
            phase.advance(1)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("reading: 0 of 100 MB (0%)")
    assert [line.split(" (")[0] for line in lines[1:-1]] == [f"reading: {n} of 100 MB" for n in range(10, 101, 10)]
    assert lines[-1] == "reading: done in 0:50"


def test_counted_advances_by_the_bytes_read() -> None:
    out = io.StringIO()
    with Phase(3, "reading", "MB", stream=out, interval=3600) as phase:
        stream = progress.Counted(io.BytesIO(b"x" * 3_000_000), phase)
        assert len(stream.read(2_000_000)) == 2_000_000
        assert phase.done == pytest.approx(2.0)
        assert len(stream.read()) == 1_000_000 and stream.read() == b""
        assert phase.done == pytest.approx(3.0)
