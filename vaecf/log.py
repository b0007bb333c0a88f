"""Logging: one parseable ``key=value`` line per epoch, a progress bar only on a terminal."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import IO, Any

from tqdm import tqdm


def format_record(record: Mapping[str, Any]) -> str:
    """``epoch=3 loss=512.31 ...``: floats with 6 significant digits, nested values skipped."""
    parts = []
    for key, value in record.items():
        if isinstance(value, float):
            parts.append(f"{key}={value:.6g}")
        elif isinstance(value, (int, str)):
            parts.append(f"{key}={value}")
    return " ".join(parts)


class EpochLog:
    """Writes each epoch record as one line to ``stream`` (nothing when ``stream`` is None)."""

    def __init__(self, stream: IO[str] | None = sys.stdout) -> None:
        self.stream = stream

    def epoch(self, record: Mapping[str, Any]) -> None:
        if self.stream is not None:
            self.stream.write(format_record({k: v for k, v in record.items() if k != "ckpt"}) + "\n")
            self.stream.flush()


def interactive() -> bool:
    return sys.stderr.isatty()


def progress(total: int, desc: str, show: bool | None = None) -> tqdm:
    """A step progress bar on stderr when it is a terminal (or when ``show`` forces it)."""
    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr, unit="step",
                disable=not (interactive() if show is None else show))
