"""The Netflix- and ML-20M-shaped files that benchmarks/prepare_scale.py writes, on a small scale."""

from __future__ import annotations

import dataclasses
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from benchmarks import prepare_scale
from vaecf.data.protocol import repeated_pairs
from vaecf.data.sources import read_file


def test_lines_match_python_formatting() -> None:
    values = np.array([0, 7, 10, 99, 123_456, 2_649_429])
    text, lengths = prepare_scale.lines([values, b",", prepare_scale._strings(["a", "b"])[values % 2], b"\n"])
    expected = [f"{v},{'ab'[v % 2]}\n" for v in values.tolist()]
    assert text.decode() == "".join(expected)
    assert lengths.tolist() == [len(line) for line in expected]


@pytest.mark.parametrize(("name", "read"), [("netflix", partial(read_file, "netflix")),
                                           ("ml-20m", partial(read_file, "ml-20m"))])
def test_a_small_shape_is_written_exactly_and_read_back(tmp_path: Path, name: str, read) -> None:  # noqa: ANN001
    shape = dataclasses.replace(prepare_scale.SHAPES[name], rows=20_000, users=600, items=300)
    folder, seconds = prepare_scale.ensure_source(tmp_path, shape)
    assert seconds is not None
    ratings = read(folder / ("training_set" if name == "netflix" else "ratings.csv"))
    assert len(ratings) == shape.rows
    assert ratings["user"].nunique() == shape.users
    assert ratings["item"].nunique() == shape.items
    assert not repeated_pairs(ratings["user"].to_numpy(), ratings["item"].to_numpy()).any()
    assert ratings.groupby("user").size().min() >= shape.min_per_user
    assert prepare_scale.ensure_source(tmp_path, shape) == (folder, None)  # kept for the next run
