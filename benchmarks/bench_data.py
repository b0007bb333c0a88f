"""Data preparation: peak memory of generating and splitting the benchmark data set."""

from __future__ import annotations

import tempfile
from pathlib import Path

from vaecf.data.prepare import prepare

from . import common


class PrepareData:
    """Peak resident memory of ``prepare(common.SPEC)`` into an empty folder (no TensorFlow loaded)."""

    timeout = 600

    def setup(self) -> None:
        self.out = tempfile.TemporaryDirectory()

    def teardown(self) -> None:
        self.out.cleanup()

    def peakmem_prepare(self) -> None:
        prepare(common.SPEC, out=Path(self.out.name))
