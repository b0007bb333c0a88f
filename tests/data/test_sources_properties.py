"""Property-based tests of the ratings readers: whatever valid file hypothesis writes parses to
exactly its rows, and one corrupted line anywhere is a DataError naming that line."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaecf.data import sources
from vaecf.data.registry import DATASETS
from vaecf.data.sources import read_file
from vaecf.errors import DataError

read_ml100k_data = partial(read_file, "ml-100k")
read_ml1m_dat = partial(read_file, "ml-1m")
read_ml20m_csv = partial(read_file, "ml-20m")
read_netflix = partial(read_file, "netflix")

# tmp_path is shared by a test's examples: each example overwrites the one file it reads.
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

IDS = st.integers(0, 10**18 - 1)  # the readers take ids of up to 18 digits
# Default-sized blocks, and tiny ones that cut files into many blocks, mid-file and mid-movie.
BLOCKS = st.sampled_from([sources._BLOCK, 8, 32, 100])
NEWLINES = st.sampled_from(["\n", "\r\n"])
OFF_SCALE = {"integers": ["0", "6", "2.5", "10", "-1", "1e3"], "halves": ["0", "0.0", "5.5", "3.25", "7", "-0.5"]}
GARBAGE = st.text(st.sampled_from("abcxyz ,:;\t-_"), min_size=1, max_size=12).filter(
    lambda s: any(c.isalpha() for c in s))


@dataclass(frozen=True)
class Format:
    """One ratings file format: its reader, file name, separator and header."""

    read: Callable[[Path], pd.DataFrame]
    name: str
    sep: str
    header: str | None
    dataset: str


ML = [Format(read_ml100k_data, "u.data", "\t", None, "ml-100k"),
      Format(read_ml1m_dat, "ratings.dat", "::", None, "ml-1m"),
      Format(read_ml20m_csv, "ratings.csv", ",", "userId,movieId,rating,timestamp", "ml-20m")]


def ratings_on(dataset: str) -> st.SearchStrategy[tuple[float, str]]:
    """(value, as written) of a rating on the dataset's scale, in any of its usual spellings."""
    scale = DATASETS[dataset].scale
    values = np.arange(scale.low, scale.high + scale.step / 2, scale.step).tolist()
    return st.sampled_from(values).flatmap(
        lambda v: st.sampled_from(sorted({f"{v:g}", f"{v:.1f}"})).map(lambda text: (v, text)))


def ml_rows(fmt: Format) -> st.SearchStrategy[list[tuple[int, int, tuple[float, str], int]]]:
    return st.lists(st.tuples(IDS, IDS, ratings_on(fmt.dataset), st.integers(0, 10**10)), min_size=1, max_size=25)


def ml_lines(fmt: Format, rows: list[tuple[int, int, tuple[float, str], int]]) -> list[str]:
    return [fmt.sep.join(map(str, (user, item, text, ts))) for user, item, (_, text), ts in rows]


def frame(users: list[int], items: list[int], ratings: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"user": np.array(users, np.int64), "item": np.array(items, np.int64),
                         "rating": np.array(ratings, np.float32)})


def write(path: Path, header: str | None, lines: list[str], newline: str) -> Path:
    path.write_text("".join(f"{line}{newline}" for line in ([header] if header else []) + lines), newline="")
    return path


# --- Valid files parse to exactly their rows ----------------------------------------------------

@SETTINGS
@given(data=st.data(), block=BLOCKS, newline=NEWLINES)
def test_valid_movielens_files_parse_to_their_rows(tmp_path: Path, data: st.DataObject, block: int,
                                                   newline: str) -> None:
    fmt = data.draw(st.sampled_from(ML))
    rows = data.draw(ml_rows(fmt))
    path = write(tmp_path / fmt.name, fmt.header, ml_lines(fmt, rows), newline)
    with mock.patch.object(sources, "_BLOCK", block):
        result = fmt.read(path)
    expected = frame([r[0] for r in rows], [r[1] for r in rows], [r[2][0] for r in rows])
    pd.testing.assert_frame_equal(result, expected)


NETFLIX_MOVIES = st.lists(st.tuples(IDS, st.lists(st.tuples(IDS, ratings_on("netflix")), max_size=6)),
                          min_size=1, max_size=6).filter(lambda movies: any(rows for _, rows in movies))


def netflix_lines(movies: list[tuple[int, list[tuple[int, tuple[float, str]]]]]) -> list[str]:
    return [line for movie, rows in movies
            for line in [f"{movie}:", *(f"{customer},{text},2005-09-06" for customer, (_, text) in rows)]]


@SETTINGS
@given(movies=NETFLIX_MOVIES, block=BLOCKS, newline=NEWLINES)
def test_valid_netflix_files_parse_to_their_rows(tmp_path: Path, movies, block: int, newline: str) -> None:
    path = write(tmp_path / "combined_data_1.txt", None, netflix_lines(movies), newline)
    with mock.patch.object(sources, "_BLOCK", block):
        result = read_netflix(path)
    rows = [(customer, movie, value) for movie, ratings in movies for customer, (value, _) in ratings]
    pd.testing.assert_frame_equal(result, frame(*(list(column) for column in zip(*rows))))


# --- One corrupted line is named -----------------------------------------------------------------

def corrupt_ml_line(data: st.DataObject, fmt: Format, line: str) -> str:
    """The line with a negative id, a rating off the scale, a missing field, or garbage instead."""
    fields = line.split(fmt.sep)
    kind = data.draw(st.sampled_from(["negative id", "off scale", "missing field", "garbage"]))
    if kind == "negative id":
        column = data.draw(st.sampled_from([0, 1]))
        fields[column] = f"-{max(int(fields[column]), 1)}"
    elif kind == "off scale":
        fields[2] = data.draw(st.sampled_from(OFF_SCALE["halves" if fmt.dataset == "ml-20m" else "integers"]))
    elif kind == "missing field":
        del fields[data.draw(st.integers(0, len(fields) - 1))]
    else:
        return data.draw(GARBAGE)
    return fmt.sep.join(fields)


def assert_names_line(path: Path, read: Callable[[Path], pd.DataFrame], block: int, line_number: int) -> None:
    with mock.patch.object(sources, "_BLOCK", block):
        try:
            read(path)
        except DataError as exc:
            assert f"{path}:{line_number}: " in str(exc), str(exc)
        else:
            raise AssertionError(f"line {line_number} of {path} was corrupted, yet the file was accepted")


@SETTINGS
@given(data=st.data(), block=BLOCKS, newline=NEWLINES)
def test_one_corrupted_movielens_line_is_named(tmp_path: Path, data: st.DataObject, block: int,
                                               newline: str) -> None:
    fmt = data.draw(st.sampled_from(ML))
    lines = ml_lines(fmt, data.draw(ml_rows(fmt)))
    bad = data.draw(st.integers(0, len(lines) - 1))
    lines[bad] = corrupt_ml_line(data, fmt, lines[bad])
    path = write(tmp_path / fmt.name, fmt.header, lines, newline)
    assert_names_line(path, fmt.read, block, bad + 1 + (fmt.header is not None))


def corrupt_netflix_line(data: st.DataObject, line: str) -> str:
    """A header gets a negative id or garbage; a rating row also a bad rating or a missing field."""
    if line.endswith(":"):
        kinds = ["negative id", "garbage"]
    else:
        kinds = ["negative id", "off scale", "missing field", "garbage"]
    kind = data.draw(st.sampled_from(kinds))
    if kind == "garbage":
        return data.draw(GARBAGE)
    fields = line.split(",")
    if kind == "negative id":  # of the movie or the customer; -0 would still be 0
        return f"-{max(int(fields[0].rstrip(':')), 1)}{line[len(fields[0].rstrip(':')):]}"
    if kind == "off scale":
        fields[1] = data.draw(st.sampled_from(OFF_SCALE["integers"]))
    else:
        del fields[data.draw(st.integers(0, len(fields) - 1))]
    return ",".join(fields)


@SETTINGS
@given(data=st.data(), movies=NETFLIX_MOVIES, block=BLOCKS, newline=NEWLINES)
def test_one_corrupted_netflix_line_is_named(tmp_path: Path, data: st.DataObject, movies, block: int,
                                            newline: str) -> None:
    lines = netflix_lines(movies)
    bad = data.draw(st.integers(0, len(lines) - 1))
    lines[bad] = corrupt_netflix_line(data, lines[bad])
    path = write(tmp_path / "combined_data_1.txt", None, lines, newline)
    assert_names_line(path, read_netflix, block, bad + 1)
