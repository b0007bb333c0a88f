"""Reading the ratings: one reader per file format, over archives, files and folders.

What the datasets are (addresses, checksums, scales) is ``vaecf.data.registry``.

Every reader returns a DataFrame with columns ``user`` (int64), ``item`` (int64) and
``rating`` (float32) in file order. Files are parsed in blocks of whole lines by pandas' C
parser with cheap whole-block checks (the fields add up, ids are non-negative, ratings lie on
the dataset's published scale); only a block that fails them is scanned line by line, to name
the first bad line in the DataError.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import IO, NamedTuple

import numpy as np
import pandas as pd

from vaecf.data.download import checksum_mismatches, fetch
from vaecf.data.registry import DATASETS, NETFLIX_HELP, Archive, Dataset, Scale
from vaecf.errors import DataError
from vaecf.progress import MB, Counted, Phase

_BLOCK = 16 << 20  # bytes per parse: big enough to amortise pandas' per-call cost, small to rescan
_COLUMNS = (("user", np.int64), ("item", np.int64), ("rating", np.float32))
_Columns = tuple[np.ndarray, np.ndarray, np.ndarray]
_I32 = np.iinfo(np.int32)
_LINES_EVERY_S = 5.0  # a plain progress line at most this often while reading (a log, not a terminal)


EXTRACTED = "no published checksum for an extracted file"
"""What ``Loaded.verified`` says of an extracted ratings file (``Dataset.unverifiable`` of a dataset)."""


class Loaded(NamedTuple):
    """A dataset's ratings, the files they came from (to fingerprint), and how far to trust them."""

    ratings: pd.DataFrame
    files: list[Path]
    verified: bool | str
    """True: the archive matches its published checksum; False: not checked (verify=False);
    a string: why no check was possible."""


def load_ratings(name: str, source: Path | None, cache_dir: Path,
                 progress: bool | None = None, verify: bool = True) -> Loaded:
    """The ratings of dataset ``name``, the files they were read from, and their verification.

    For MovieLens, ``source`` may be the zip, the extracted ratings file or the extracted
    folder; without it the zip is downloaded into ``cache_dir`` and verified. A given zip is
    checked against the published checksum unless ``verify`` is False. Netflix needs
    ``source`` (see NETFLIX_HELP). ``progress``: reading (and downloading) shows progress: None on
    the command's setting (a bar on a terminal, lines elsewhere), True or False to force it.
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    dataset = DATASETS[name]
    archive = dataset.archive
    if archive is None:  # Netflix: only the user's own copy
        if source is None:
            raise DataError(NETFLIX_HELP)
        files = _netflix_files(Path(source))
        return Loaded(_read_netflix_files(files, str(source), progress), files, dataset.unverifiable or False)
    if source is None:
        path = fetch(archive.url, Path(cache_dir) / f"{name}.zip", md5=archive.md5,
                     sha256=archive.sha256, progress=progress)
    else:
        path = _ml_source_file(name, archive, Path(source))
    if not (path.suffix == ".zip" or zipfile.is_zipfile(path)):
        return Loaded(read_file(name, path, progress), [path], EXTRACTED)
    if source is not None and verify:
        _check_archive(name, archive, path)
    # fetch() has checked a download already.
    return Loaded(_read_archive(path, archive.member, _reader(dataset), progress), [path], source is None or verify)


def _check_archive(name: str, archive: Archive, path: Path) -> None:
    """Raise a DataError unless a user-given zip matches the published checksum(s)."""
    expected = {algo: value for algo, value in (("md5", archive.md5), ("sha256", archive.sha256)) if value}
    wrong = checksum_mismatches(path, expected)
    if wrong:
        raise DataError(f"{path}: not the published {name}.zip ("
                        + "; ".join(f"{algo} {actual}, published {exp}" for algo, exp, actual in wrong)
                        + "): damaged or another version. Download it again (or leave out --source to "
                        "have it fetched), or pass --no-verify to use it as it is")


def read_file(name: str, path: Path, progress: bool | None = False) -> pd.DataFrame:
    """The ratings in one extracted file (or, for Netflix, folder) of dataset ``name``, checked line by line.

    MovieLens 20M ``ratings.csv`` (header ``userId,movieId,rating,timestamp``, half-star ratings),
    1M ``ratings.dat`` (``user::item::rating::timestamp``), 100K ``u.data`` (tab-separated, no
    header); Netflix Prize ``training_set/`` (mv_*.txt), a folder of Kaggle's combined_data_*.txt,
    or one such file: ``MovieID:`` header lines, each followed by that movie's
    ``CustomerID,Rating,Date`` lines (users are customers, items are movies).
    """
    dataset = DATASETS[name]
    if dataset.sep is None:
        return _read_netflix_files(_netflix_files(Path(path)), str(path), progress)
    return _read_file(path, _reader(dataset), progress)


# --- Line layouts: what a good line looks like, and what is wrong with a bad one -------------

_INT = r"\d{1,18}"  # no sign: ids are never negative
_NUMBER = r"\d+(?:\.\d*)?|\.\d+"
_Field = tuple[str, str, str]  # name, pattern, what the value must be
_RATING: _Field = ("rating", _NUMBER, "a number")
_ID = "a non-negative integer of at most 18 digits"
_ML_FIELDS: tuple[_Field, ...] = (("user id", _INT, _ID), ("item id", _INT, _ID), _RATING,
                                  ("timestamp", _INT, _ID))


@dataclass(frozen=True)
class _Layout:
    """The lines of one file format, for finding and explaining a bad line."""

    regex: str
    """A well-formed non-blank line, without its line end."""
    problem: Callable[[str], str]
    """What is wrong with a line that does not match ``regex``."""
    value_problem: Callable[[str], str | None]
    """What is wrong with the values of a well-formed line, or None."""


def _rating_problem(scale: Scale, rating: str) -> str | None:
    # float32, as the block parser reads it, so that both agree on which ratings are off.
    if scale.off(np.array(rating, dtype=np.float32)):
        return f"rating {rating} is off the scale: allowed {scale}"
    return None


def _delimited(sep: str, fields: Sequence[_Field], scale: Scale) -> _Layout:
    def problem(line: str) -> str:
        values = line.split(sep)
        if len(values) != len(fields):
            return f"expected {len(fields)} fields separated by {sep!r}, found {len(values)} in {line!r}"
        for (name, pattern, kind), value in zip(fields, values, strict=True):
            if not re.fullmatch(pattern, value):
                return f"{name} {value!r} is not {kind}"
        return f"cannot parse {line!r}"

    rating = fields.index(_RATING)
    return _Layout(re.escape(sep).join(f"(?:{pattern})" for _, pattern, _ in fields), problem,
                   lambda line: _rating_problem(scale, line.split(sep)[rating]))


_NETFLIX_ROW = _delimited(",", (("customer id", _INT, _ID), _RATING,
                                ("date", r"\d{4}-\d{2}-\d{2}", "a YYYY-MM-DD date")), DATASETS["netflix"].scale)


def _netflix_problem(line: str) -> str:
    if line.endswith(":"):
        return f"movie header {line!r} is not a non-negative integer id followed by ':'"
    return _NETFLIX_ROW.problem(line)


def _netflix_value_problem(line: str) -> str | None:
    return None if line.endswith(":") else _NETFLIX_ROW.value_problem(line)


_NETFLIX = _Layout(rf"{_INT}:|{_NETFLIX_ROW.regex}", _netflix_problem, _netflix_value_problem)


class _BlockError(Exception):
    """A block failed the fast checks; the message says which check."""


# (label, lines before it in its file, block): consecutive whole lines of one file
_Segment = tuple[str, int, bytes]


def _malformed(segments: Sequence[_Segment], layout: _Layout, reason: str) -> DataError:
    """The DataError for blocks that failed the fast checks, naming the first bad line."""
    texts = [(label, first_line, pd.Series(block.decode("utf-8", "replace").split("\n"), dtype=object))
             for label, first_line, block in segments]
    # First the first malformed line (vectorised), else the first well-formed line with a bad value.
    for label, first_line, lines in texts:
        good = lines.str.fullmatch(f"(?:{layout.regex}| *)\r?").to_numpy(dtype=bool)
        bad = np.flatnonzero(~good)
        if len(bad):
            line = lines[int(bad[0])].removesuffix("\r")
            return DataError(f"{label}:{first_line + int(bad[0]) + 1}: {layout.problem(line)}")
    for label, first_line, lines in texts:
        for number, line in enumerate(lines, first_line + 1):
            line = line.rstrip("\r")
            if line.strip(" ") and (problem := layout.value_problem(line)):
                return DataError(f"{label}:{number}: {problem}")
    # Every line looks right, yet the block failed: a case the patterns do not foresee.
    label, first_line, _ = segments[0]
    return DataError(f"{label}:{first_line + 1}: cannot parse the lines from here on ({reason})")


# --- Block parsing --------------------------------------------------------------------------

def _count(block: bytes | bytearray, char: str) -> int:
    """Occurrences of one ASCII character: numpy is about 4 times faster than bytes.count."""
    return int(np.count_nonzero(np.frombuffer(block, np.uint8) == ord(char)))


def _blocks(stream: Counted) -> Iterator[tuple[int, bytes]]:
    """(number of lines before it, block) for consecutive blocks of whole lines."""
    lines_before, rest = 0, b""
    while chunk := stream.read(_BLOCK):
        data = rest + chunk
        cut = data.rfind(b"\n") + 1
        block, rest = data[:cut], data[cut:]
        if block:
            yield lines_before, block
            lines_before += _count(block, "\n")
    if rest:
        yield lines_before, rest + b"\n"


def _read_csv(block: bytes | bytearray, sep: str, dtype: Mapping[str, object]) -> pd.DataFrame:
    try:
        with warnings.catch_warnings():
            # pandas warns when it drops extra fields of a block's first line; callers count separators.
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            return pd.read_csv(io.BytesIO(block), sep=sep, header=None, names=list(dtype), dtype=dtype,
                               index_col=False, quoting=csv.QUOTE_NONE, engine="c")
    except (ValueError, OverflowError) as exc:  # pandas' ParserError is a ValueError
        raise _BlockError(str(exc)) from exc


def _narrow(ids: np.ndarray) -> np.ndarray:
    """An int32 copy when the ids fit (always, for real data): half the memory until the end."""
    if ids.size and (ids.min() < _I32.min or ids.max() > _I32.max):
        return ids
    return ids.astype(np.int32)


_ML_DTYPES = {"user": np.int64, "item": np.int64, "rating": np.float32, "timestamp": np.int64}


def _check_values(ids: Sequence[np.ndarray], rating: np.ndarray, scale: Scale) -> None:
    """Raise _BlockError unless every id is non-negative and every rating on the scale."""
    if any(len(column) and column.min() < 0 for column in ids):
        raise _BlockError("a negative id")
    if scale.off(rating).any():
        raise _BlockError(f"a rating off the scale {scale}")


def _parse_ml_block(block: bytes, sep: str, scale: Scale) -> _Columns:
    """Parse ``user sep item sep rating sep timestamp`` lines, or raise _BlockError."""
    if len(sep) > 1:  # the C parser takes a one-character separator: ml-1m's '::' becomes a tab
        block, sep = block.replace(sep.encode(), b"\t"), "\t"
    frame = _read_csv(block, sep, _ML_DTYPES)
    # Short lines leave NaN, which the integer dtypes refuse; long lines raise in pandas, except
    # on a block's first line whose extra fields it drops: counting separators catches that.
    if _count(block, sep) != 3 * len(frame):
        raise _BlockError("a line has more than 4 fields")
    rating = frame["rating"].to_numpy()
    if not np.isfinite(rating).all():
        raise _BlockError("a rating is missing or not finite")
    user, item = frame["user"].to_numpy(), frame["item"].to_numpy()
    _check_values((user, item), rating, scale)
    return _narrow(user), _narrow(item), rating


def _read_ml(stream: Counted, label: str, *, sep: str, scale: Scale, header: str | None = None) -> pd.DataFrame:
    """Read MovieLens ``user sep item sep rating sep timestamp`` lines, after ``header`` if given."""
    layout = _delimited(sep, _ML_FIELDS, scale)
    parts: list[_Columns] = []
    for first_line, block in _blocks(stream):
        if header is not None and first_line == 0:
            line, _, block = block.partition(b"\n")
            found = line.decode("utf-8", "replace").removesuffix("\r")
            if found != header:
                raise DataError(f"{label}:1: expected the header {header!r}, found {found!r}")
            first_line = 1
        try:
            parts.append(_parse_ml_block(block, sep, scale))
        except _BlockError as exc:
            raise _malformed([(label, first_line, block)], layout, str(exc)) from None
    return _frame(parts, label)


def _reader(dataset: Dataset) -> Callable[[Counted, str], pd.DataFrame]:
    """The parser of a MovieLens ratings file: its separator, header and scale from the registry."""
    assert dataset.sep is not None, dataset.name  # Netflix has its own reader
    return partial(_read_ml, sep=dataset.sep, scale=dataset.scale, header=dataset.header)


def _parse_netflix_block(block: bytearray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, ratings, is_header) of one block; header rows hold the movie id in ``ids``."""
    buf = np.frombuffer(block, np.uint8)
    ends = np.flatnonzero(buf == ord("\n"))
    # The last character of each line, before any '\r'. For an empty first line this index is
    # negative and lands on the block's final '\n', which is never ':' either.
    last = ends - 1 - (buf[ends - 1] == ord("\r"))
    colons = last[buf[last] == ord(":")]
    # 'MovieID:' becomes 'MovieID,' so that one C-parser pass reads headers and rating rows
    # alike: a header is then a row without rating and date.
    buf[colons] = ord(",")
    # The date is read as a category (no string per row) only to check that it is there.
    frame = _read_csv(block, ",", {"id": np.int64, "rating": np.float32, "date": "category"})
    rating = frame["rating"].to_numpy()
    is_header = np.isnan(rating)
    # Exactly the header lines lack a rating and a date, and the commas add up (2 per rating
    # row, 1 per header): together these catch short and long lines that pandas pads or
    # (on the first line) truncates.
    if (is_header.sum() != len(colons) or (frame["date"].isna().to_numpy() != is_header).any()
            or _count(block, ",") != 2 * len(frame) - len(colons)
            or not np.isfinite(rating[~is_header]).all()):
        raise _BlockError("a line is neither 'MovieID:' nor 'CustomerID,Rating,Date'")
    ids = frame["id"].to_numpy()
    _check_values((ids,), rating[~is_header], DATASETS["netflix"].scale)
    return ids, rating, is_header


def _netflix_segments(files: Sequence[Path], phase: Phase) -> Iterator[_Segment]:
    """The non-blank blocks of the files, after checking that each file opens with a header."""
    for path in files:
        label, started = str(path), False
        with _open(path) as stream:
            for first_line, block in _blocks(Counted(stream, phase)):
                if not started:
                    start = len(block) - len(block.lstrip())
                    if start == len(block):
                        continue
                    # Each file must open with a header, which also makes it safe to parse the
                    # end of one file and the start of the next in one block.
                    if not block[start:block.index(b"\n", start)].rstrip().endswith(b":"):
                        line = first_line + block.count(b"\n", 0, start) + 1
                        raise DataError(f"{label}:{line}: a rating row before any 'MovieID:' header")
                    started = True
                yield label, first_line, block
        if not started:
            raise DataError(f"{label}: empty file")


def _batches(segments: Iterator[_Segment]) -> Iterator[list[_Segment]]:
    """Group segments into batches of about _BLOCK bytes: training_set/ has 17,770 small files."""
    batch: list[_Segment] = []
    size = 0
    for segment in segments:
        batch.append(segment)
        size += len(segment[2])
        if size >= _BLOCK:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _read_netflix_files(files: Sequence[Path], label: str, progress: bool | None) -> pd.DataFrame:
    with _reading(label, sum(path.stat().st_size for path in files), progress) as phase:
        return _parse_netflix_files(files, label, phase)


def _parse_netflix_files(files: Sequence[Path], label: str, phase: Phase) -> pd.DataFrame:
    parts: list[_Columns] = []
    movie = -1  # the header in force, carried across batches; every file opens with one
    for batch in _batches(_netflix_segments(files, phase)):
        try:
            ids, rating, is_header = _parse_netflix_block(bytearray().join(block for _, _, block in batch))
        except _BlockError as exc:
            raise _malformed(batch, _NETFLIX, str(exc)) from None
        # Forward-fill each row with the id of the last header at or above it.
        last_header = np.where(is_header, np.arange(len(ids)), -1)
        np.maximum.accumulate(last_header, out=last_header)
        movies = np.where(last_header >= 0, ids[np.maximum(last_header, 0)], movie)
        keep = ~is_header
        parts.append((_narrow(ids[keep]), _narrow(movies[keep]), rating[keep]))
        if len(ids) and last_header[-1] >= 0:
            movie = int(ids[last_header[-1]])
    return _frame(parts, label)


def _frame(parts: list[_Columns], label: str) -> pd.DataFrame:
    if sum(len(rating) for _, _, rating in parts) == 0:
        raise DataError(f"{label}: empty, no ratings")
    # Concatenating straight into the final dtype avoids an int64 copy of every block.
    columns = {name: np.concatenate([part[i] for part in parts], dtype=dtype)
               for i, (name, dtype) in enumerate(_COLUMNS)}
    return pd.DataFrame(columns, copy=False)


# --- Files and archives ---------------------------------------------------------------------

def _open(path: Path) -> IO[bytes]:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise DataError(f"{path}: cannot open ({exc.strerror})") from exc


def _reading(label: str, size: int, progress: bool | None) -> Phase:
    """The phase of reading ``size`` bytes of ratings (``progress`` as in ``load_ratings``)."""
    return Phase(size / MB, f"reading {label}", unit="MB", quiet=None if progress is None else not progress,
                 every_s=_LINES_EVERY_S)


def _read_file(path: Path, read: Callable[[Counted, str], pd.DataFrame], progress: bool | None) -> pd.DataFrame:
    with _open(Path(path)) as stream, _reading(str(path), Path(path).stat().st_size, progress) as phase:
        return read(Counted(stream, phase), str(path))


def _read_archive(path: Path, member: str, read: Callable[[Counted, str], pd.DataFrame],
                  progress: bool | None) -> pd.DataFrame:
    """Read ``member`` straight from the zip, turning archive damage into a DataError."""
    try:
        with zipfile.ZipFile(path) as archive:
            try:
                info = archive.getinfo(member)
            except KeyError:
                raise DataError(f"{path}: the archive has no member {member}") from None
            with archive.open(info) as stream, _reading(f"{path}/{member}", info.file_size, progress) as phase:
                try:
                    return read(Counted(stream, phase), f"{path}/{member}")
                except DataError:
                    # A bad line can be a symptom of a damaged archive; reading on to the end of
                    # the member runs the CRC check, which then reports the damage instead.
                    while stream.read(_BLOCK):
                        pass
                    raise
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise DataError(f"{path}: corrupt or truncated archive ({exc}); delete it and fetch it anew") from exc


def _ml_source_file(name: str, archive: Archive, source: Path) -> Path:
    """The zip or ratings file that a user-given MovieLens ``source`` stands for."""
    if source.is_dir():
        member = PurePosixPath(archive.member)
        for candidate in (source / member.name, source / member, source / f"{name}.zip"):
            if candidate.is_file():
                return candidate
        raise DataError(f"{source}: holds neither {member.name}, {member} nor {name}.zip")
    if not source.exists():
        raise DataError(f"{source}: no such file or folder (a {name} source is its .zip, "
                        f"its extracted {PurePosixPath(archive.member).name} or the extracted folder)")
    return source


def _netflix_files(source: Path) -> list[Path]:
    """The ratings files of a Netflix source, in movie order."""
    if source.is_file():
        return [source]
    if source.is_dir():
        for folder in (source, source / "training_set"):
            for pattern in ("mv_*.txt", "combined_data_*.txt"):
                files = sorted(folder.glob(pattern), key=_file_number)
                if files:
                    return files
        raise DataError(f"{source}: no mv_*.txt or combined_data_*.txt files. {NETFLIX_HELP}")
    raise DataError(f"{source}: no such file or folder. {NETFLIX_HELP}")


def _file_number(path: Path) -> tuple[int, str]:
    # Numeric order, so that combined_data_10 (were there one) would follow combined_data_9.
    numbers = re.findall(r"\d+", path.name)
    return (int(numbers[-1]) if numbers else -1, path.name)
