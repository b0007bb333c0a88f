"""Progress of a long command's phases, with elapsed time and an ETA (no TensorFlow here).

A phase has a total amount of work in any unit (epochs, timing windows, projected training
seconds) and advances as parts of it finish. Its ETA is the phase's elapsed time scaled by the
work left: ``elapsed x (total - done) / done``, counted down between updates, so a phase whose
parts are minutes apart still shows time passing. Until the first part finishes, the ETA is
``expected_s`` when the caller has an estimate, else unknown.

Progress goes to stderr, so that what a command prints on stdout (a JSON summary, a table) stays
its answer. On a terminal (stderr is a TTY) each phase is a tqdm bar; elsewhere (CI logs, nohup,
pipes) it is a plain line at each update and every ``interval`` seconds between them, which a
log keeps readable (``every_s`` spaces the lines of a phase that advances often, such as bytes
read). ``quiet`` turns both off. A daemon thread refreshes the bar or writes the periodic lines;
it ends with the phase. ``Counted`` advances a phase by the bytes a stream hands out.
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import IO, BinaryIO

from tqdm import tqdm

INTERVAL_S = 30.0
"""Seconds between plain lines while no part of a phase finishes."""
QUIET = False
"""Set once by a command's ``--quiet`` (``set_quiet``): every phase of that command is silent."""


def set_quiet(quiet: bool) -> None:
    global QUIET
    QUIET = quiet


def clock(seconds: float) -> str:
    """``1:05:09`` or ``4:07``: hours only when there are any."""
    s = max(0, round(seconds))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class Phase:
    """One phase of a command: ``with Phase(total, "speed") as p: ...; p.advance(1, "round 1 done")``."""

    def __init__(self, total: float, name: str, unit: str = "", quiet: bool | None = None, done: float = 0.0,
                 expected_s: float | None = None, stream: IO[str] | None = None, interval: float = INTERVAL_S,
                 tty: bool | None = None, every_s: float = 0.0) -> None:
        self.total, self.name, self.unit = float(total), name, unit
        self.every_s = every_s
        self._shown = -float("inf")
        self.stream = stream or sys.stderr
        self.start = self._last = time.monotonic()
        self.initial = self.done = float(done)  # work done before this process (a resumed run) has no rate
        self.expected_s = expected_s
        self.note = ""
        self._eta_at_last: float | None = expected_s
        self.tty = self.stream.isatty() if tty is None else tty
        self.quiet = QUIET if quiet is None else quiet
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.bar: tqdm | None = None
        if self.quiet:
            return
        if self.tty:
            self.bar = tqdm(total=self.total, initial=self.done, desc=name, file=self.stream, leave=True,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}", dynamic_ncols=True)
        self._show(force=True)
        self._ticker = threading.Thread(target=self._tick, args=(interval if not self.tty else 1.0,), daemon=True)
        self._ticker.start()

    def eta_s(self) -> float | None:
        """Seconds left in this phase: the rate so far, counted down since the last update."""
        with self._lock:
            if self._eta_at_last is None:
                return None
            return max(0.0, self._eta_at_last - (time.monotonic() - self._last))

    def advance(self, amount: float = 1.0, note: str = "", eta_s: float | None = None) -> None:
        """``amount`` more work done; ``note`` says what (shown until the next update). ``eta_s``: the
        caller's own estimate of the time left, when it knows better than the average rate."""
        now = time.monotonic()
        with self._lock:
            self.done = min(self.total, self.done + amount)
            self.note = note or self.note
            worked = self.done - self.initial
            if eta_s is not None:
                self._eta_at_last, self._last = eta_s, now
            elif worked > 0:
                self._eta_at_last = (now - self.start) * (self.total - self.done) / worked
                self._last = now
        if self.bar is not None:
            self.bar.update(self.done - self.bar.n)
        self._show(force=now - self._shown >= self.every_s or (amount > 0 and self.done >= self.total))

    def line(self) -> str:
        """``speed: 2 of 6 windows (33%), elapsed 1:10, ETA 2:21 - note``."""
        eta = self.eta_s()
        unit = f" {self.unit}" if self.unit else ""
        amount = f"{self.done:.0f} of {self.total:.0f}{unit} " if self.unit else ""
        share = self.done / self.total if self.total else 1.0
        text = (f"{amount}({share:.0%}), elapsed {clock(time.monotonic() - self.start)}, ETA "
                + (clock(eta) if eta is not None else "after the first part"))
        return text + (f" - {self.note}" if self.note else "")

    def _show(self, force: bool = False) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(self.line(), refresh=True)
        elif force:
            self._shown = time.monotonic()
            self.stream.write(f"{self.name}: {self.line()}\n")
            self.stream.flush()

    def _tick(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self._show(force=True)

    def close(self) -> None:
        if self.quiet or self._stop.is_set():
            return
        self._stop.set()
        self._ticker.join()
        if self.bar is not None:
            self.bar.set_postfix_str(f"done in {clock(time.monotonic() - self.start)}", refresh=True)
            self.bar.close()
        else:
            self.stream.write(f"{self.name}: done in {clock(time.monotonic() - self.start)}\n")
            self.stream.flush()

    def __enter__(self) -> Phase:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


MB = 1e6
"""The unit of phases that count bytes (``Counted``)."""


class Counted:
    """A binary stream that advances ``phase`` by each read's size in MB (reading a large file)."""

    def __init__(self, stream: BinaryIO | IO[bytes], phase: Phase) -> None:
        self.stream, self.phase = stream, phase

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.phase.advance(len(data) / MB)
        return data
