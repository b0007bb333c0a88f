"""Ratings readers: tiny files in each format, malformed lines, archives, the real u.data."""

from __future__ import annotations

import dataclasses
import hashlib
import zipfile
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vaecf.data import registry, sources
from vaecf.data.sources import load_ratings, read_file
from vaecf.errors import DataError

read_ml100k_data = partial(read_file, "ml-100k")
read_ml1m_dat = partial(read_file, "ml-1m")
read_ml20m_csv = partial(read_file, "ml-20m")
read_netflix = partial(read_file, "netflix")


def _with_archive(**changes: str) -> registry.Dataset:
    """ML-100K's record with its archive's published checksums changed."""
    ml100k = registry.DATASETS["ml-100k"]
    assert ml100k.archive is not None
    return dataclasses.replace(ml100k, archive=dataclasses.replace(ml100k.archive, **changes))


def frame(users: list[int], items: list[int], ratings: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"user": np.array(users, np.int64), "item": np.array(items, np.int64),
                         "rating": np.array(ratings, np.float32)})


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode())
    return path


# --- Each reader on a tiny good file ---------------------------------------------------------

ML100K = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n"
ML100K_FRAME = frame([196, 186, 22], [242, 302, 377], [3, 3, 1])


def test_read_ml100k_data(tmp_path: Path) -> None:
    result = read_ml100k_data(write(tmp_path / "u.data", ML100K))
    pd.testing.assert_frame_equal(result, ML100K_FRAME)


def test_read_ml1m_dat(tmp_path: Path) -> None:
    path = write(tmp_path / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n"
                                           "2::1357::5::978298709\n")
    pd.testing.assert_frame_equal(read_ml1m_dat(path), frame([1, 1, 2], [1193, 661, 1357], [5, 3, 5]))


def test_read_ml20m_csv(tmp_path: Path) -> None:
    path = write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n"
                                           "1,2,3.5,1112486027\n1,29,4.0,1112484676\n138493,131262,0.5,1\n")
    expected = frame([1, 1, 138493], [2, 29, 131262], [3.5, 4.0, 0.5])
    pd.testing.assert_frame_equal(read_ml20m_csv(path), expected)


def test_crlf_line_ends_and_blank_lines_are_accepted(tmp_path: Path) -> None:
    text = ML100K.replace("\n", "\r\n") + "\r\n\n"
    pd.testing.assert_frame_equal(read_ml100k_data(write(tmp_path / "u.data", text)), ML100K_FRAME)


# --- Netflix: both layouts, one file, blocks smaller than a file ------------------------------

MOVIES = {
    1: "1488844,3,2005-09-06\n822109,5,2005-05-13\n",
    2: "2059652,4,2005-09-05\n",
    3: "1488844,1,2004-01-01\n30878,4,2005-12-26\n1488844,2,2003-01-01\n",
}
NETFLIX_FRAME = frame([1488844, 822109, 2059652, 1488844, 30878, 1488844], [1, 1, 2, 3, 3, 3],
                      [3, 5, 4, 1, 4, 2])


@pytest.fixture
def netflix_layouts(tmp_path: Path) -> dict[str, Path]:
    for movie, rows in MOVIES.items():
        write(tmp_path / "nf_prize_dataset" / "training_set" / f"mv_{movie:07d}.txt", f"{movie}:\n{rows}")
    kaggle = tmp_path / "kaggle"
    write(kaggle / "combined_data_1.txt", "".join(f"{m}:\n{MOVIES[m]}" for m in (1, 2)))
    write(kaggle / "combined_data_2.txt", f"3:\n{MOVIES[3]}")
    write(kaggle / "probe.txt", "1:\n30878\n")  # same folder in the Kaggle mirror; not ratings
    return {"training_set": tmp_path / "nf_prize_dataset" / "training_set",
            "parent of training_set": tmp_path / "nf_prize_dataset", "kaggle": kaggle}


@pytest.mark.parametrize("layout", ["training_set", "parent of training_set", "kaggle"])
def test_netflix_layouts_give_the_same_frame(netflix_layouts: dict[str, Path], layout: str) -> None:
    pd.testing.assert_frame_equal(read_netflix(netflix_layouts[layout]), NETFLIX_FRAME)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_netflix_single_file(tmp_path: Path, newline: str) -> None:
    text = "".join(f"{m}:\n{rows}" for m, rows in MOVIES.items()).replace("\n", newline)
    path = write(tmp_path / "combined_data_1.txt", text)
    pd.testing.assert_frame_equal(read_netflix(path), NETFLIX_FRAME)


@pytest.mark.parametrize("block", [8, 30, 64])
def test_results_do_not_depend_on_block_size(netflix_layouts: dict[str, Path], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch, block: int) -> None:
    # Small blocks split files mid-way (the movie id carries over) and batch several files.
    monkeypatch.setattr(sources, "_BLOCK", block)
    for layout in ("training_set", "kaggle"):
        pd.testing.assert_frame_equal(read_netflix(netflix_layouts[layout]), NETFLIX_FRAME)
    path = write(tmp_path / "u.data", ML100K * 5)
    pd.testing.assert_frame_equal(read_ml100k_data(path), pd.concat([ML100K_FRAME] * 5, ignore_index=True))


def test_netflix_files_are_read_in_numeric_order(tmp_path: Path) -> None:
    for movie in (2, 10):
        write(tmp_path / f"mv_{movie}.txt", f"{movie}:\n7,4,2005-01-01\n")
    assert read_netflix(tmp_path)["item"].tolist() == [2, 10]


# --- Malformed input names the file and the line ---------------------------------------------

MALFORMED = [
    # reader, file name, text, bad line, words in the message
    (read_ml100k_data, "u.data", "1\t2\t3\t4\n1\t2\t3\n", 2, "expected 4 fields"),
    (read_ml100k_data, "u.data", "1\t2\t3\t4\t5\n1\t2\t3\t4\n", 1, "found 5"),  # pandas drops it silently
    (read_ml100k_data, "u.data", "1\t2\t3\t4\n5\t6\t7\t8\t9\n", 2, "found 5"),
    (read_ml100k_data, "u.data", "1\t2\t3\t4\n1\t2\tgood\t4\n", 2, "rating 'good' is not a number"),
    (read_ml100k_data, "u.data", "1\t2\t3\t4\n\n1\t2\t\t4\n", 3, "rating '' is not a number"),
    (read_ml100k_data, "u.data", "1\t2\tnan\t4\n", 1, "rating 'nan' is not a number"),
    (read_ml100k_data, "u.data", "1\tx\t3\t4\n", 1, "item id 'x' is not a non-negative integer"),
    (read_ml100k_data, "u.data", "1\t2\t3\t4\n12345678901234567890\t2\t3\t4\n", 2, "at most 18 digits"),
    (read_ml100k_data, "u.data", "1\t2\t3\t4\n-7\t2\t3\t4\n", 2, "user id '-7' is not a non-negative integer"),
    (read_ml100k_data, "u.data", "1\t-2\t3\t4\n", 1, "item id '-2' is not a non-negative integer"),
    (read_ml100k_data, "u.data", "1\t2\t3\t4\n\n1\t2\t6\t4\n", 3, "rating 6 is off the scale: allowed integers 1..5"),
    (read_ml100k_data, "u.data", "1\t2\t0\t4\n", 1, "rating 0 is off the scale: allowed integers 1..5"),
    (read_ml100k_data, "u.data", "1\t2\t3.5\t4\n", 1, "rating 3.5 is off the scale: allowed integers 1..5"),
    (read_ml1m_dat, "ratings.dat", "1::2::3::4\n1::2:3::4\n", 2, "expected 4 fields separated by '::'"),
    (read_ml1m_dat, "ratings.dat", "1::2::3::4\n1::2::4.5::4\n", 2, "rating 4.5 is off the scale"),
    (read_ml1m_dat, "ratings.dat", "1::2::3::4\n-1::2::3::4\n", 2, "user id '-1' is not a non-negative"),
    (read_ml20m_csv, "ratings.csv", "userId,movieId,rating,timestamp\n1,2,3.5,4\n1,2,3.5\n", 3,
     "expected 4 fields"),
    (read_ml20m_csv, "ratings.csv", "1,2,3.5,4\n", 1, "expected the header"),
    (read_ml20m_csv, "ratings.csv", "userId,movieId,rating,timestamp\n1,2,3.5,4\n1,2,3.25,4\n", 3,
     "rating 3.25 is off the scale: allowed 0.5..5.0 in steps of 0.5"),
    (read_ml20m_csv, "ratings.csv", "userId,movieId,rating,timestamp\n1,2,0.0,4\n", 2,
     "rating 0.0 is off the scale: allowed 0.5..5.0 in steps of 0.5"),
    (read_ml20m_csv, "ratings.csv", "userId,movieId,rating,timestamp\n1,2,5.5,4\n", 2, "rating 5.5 is off"),
    (read_ml20m_csv, "ratings.csv", "userId,movieId,rating,timestamp\n1,-2,5,4\n", 2, "item id '-2'"),
    (read_netflix, "mv_0000001.txt", "1488844,3,2005-09-06\n", 1, "before any 'MovieID:' header"),
    (read_netflix, "mv_0000001.txt", "\n\n1488844,3,2005-09-06\n", 3, "before any 'MovieID:' header"),
    (read_netflix, "mv_0000001.txt", "1:\n1,3,2005-09-06\nx1:\n", 3, "movie header 'x1:'"),
    (read_netflix, "mv_0000001.txt", "1:\n1,3,2005-09-06\n2,4\n", 3, "expected 3 fields"),
    (read_netflix, "mv_0000001.txt", "1:\n1,3,2005-09-06,9\n", 2, "expected 3 fields"),
    (read_netflix, "mv_0000001.txt", "1:\n1,three,2005-09-06\n", 2, "rating 'three' is not a number"),
    (read_netflix, "mv_0000001.txt", "1:\n1,,2005-09-06\n", 2, "rating '' is not a number"),
    (read_netflix, "mv_0000001.txt", "1:\n1,3,\n", 2, "date '' is not a YYYY-MM-DD date"),
    (read_netflix, "mv_0000001.txt", "1:\n1,3,2005-09-06\n-4,3,2005-09-06\n", 3, "customer id '-4' is not a non-neg"),
    (read_netflix, "mv_0000001.txt", "1:\n1,3,2005-09-06\n-2:\n1,3,2005-09-06\n", 3,
     "movie header '-2:' is not a non-negative integer id"),
    (read_netflix, "mv_0000001.txt", "1:\n1,3,2005-09-06\n2:\n1,9,2005-09-06\n", 4,
     "rating 9 is off the scale: allowed integers 1..5"),
]


@pytest.mark.parametrize(("read", "name", "text", "line", "words"), MALFORMED)
def test_malformed_line_names_file_and_line(tmp_path: Path, read, name: str, text: str, line: int,
                                            words: str) -> None:
    path = write(tmp_path / name, text)
    with pytest.raises(DataError) as caught:
        read(path)
    assert f"{path}:{line}:" in str(caught.value)
    assert words in str(caught.value)


def test_line_numbers_count_across_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "_BLOCK", 40)
    path = write(tmp_path / "u.data", ML100K * 20 + "1\t2\t3\n")
    with pytest.raises(DataError, match=f"u.data:{61}: expected 4 fields"):
        read_ml100k_data(path)
    files = [write(tmp_path / "nf" / f"mv_{m}.txt", f"{m}:\n" + "5,3,2005-01-01\n" * 9) for m in (1, 2)]
    write(files[1], files[1].read_text() + "5,3\n")
    with pytest.raises(DataError, match="mv_2.txt:11: expected 3 fields"):
        read_netflix(tmp_path / "nf")


def test_long_line_opening_a_block_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # pandas silently drops the extra fields of a block's first line; the comma count must not.
    monkeypatch.setattr(sources, "_BLOCK", len("1:\n5,3,2005-01-01\n"))
    path = write(tmp_path / "mv_1.txt", "1:\n5,3,2005-01-01\n5,3,2005-01-01,9\n")
    with pytest.raises(DataError, match="mv_1.txt:3: expected 3 fields"):
        read_netflix(path)


@pytest.mark.parametrize(("read", "text"), [
    *((read, text) for read in (read_ml100k_data, read_ml1m_dat, read_netflix) for text in ("", "\n \n")),
    (read_ml20m_csv, ""),
])
def test_empty_file_is_a_data_error(tmp_path: Path, read, text: str) -> None:
    path = write(tmp_path / "combined_data_1.txt", text)
    with pytest.raises(DataError, match=f"{path}: empty"):
        read(path)


def test_header_only_is_a_data_error(tmp_path: Path) -> None:
    path = write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n")
    with pytest.raises(DataError, match=f"{path}: empty, no ratings"):
        read_ml20m_csv(path)


# --- load_ratings: sources, archives, names ---------------------------------------------------

def make_zip(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_ml_source_may_be_zip_file_or_folder(tmp_path: Path) -> None:
    zipped = make_zip(tmp_path / "ml-100k.zip", {"ml-100k/u.data": ML100K.encode()})
    extracted = write(tmp_path / "ml-100k" / "u.data", ML100K)
    renamed = tmp_path / "download"
    renamed.write_bytes(zipped.read_bytes())
    for source, read, verified in [(zipped, zipped, False), (renamed, renamed, False),
                                   (extracted, extracted, sources.EXTRACTED),
                                   (tmp_path / "ml-100k", extracted, sources.EXTRACTED),
                                   (tmp_path, extracted, sources.EXTRACTED)]:
        ratings, files, how = load_ratings("ml-100k", source, tmp_path / "cache", verify=False)
        pd.testing.assert_frame_equal(ratings, ML100K_FRAME)
        assert files == [read]
        assert how == verified
    assert not (tmp_path / "cache").exists()  # nothing was fetched


def test_a_given_zip_is_checked_against_the_published_checksums(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    zipped = make_zip(tmp_path / "ml-100k.zip", {"ml-100k/u.data": ML100K.encode()})
    md5 = hashlib.md5(zipped.read_bytes()).hexdigest()
    published = registry.DATASETS["ml-100k"].archive.md5  # type: ignore[union-attr]
    with pytest.raises(DataError, match=f"{zipped}: not the published ml-100k.zip \\(md5 {md5}, published "
                                        f"{published}\\): damaged.*--no-verify"):
        load_ratings("ml-100k", zipped, tmp_path)
    assert load_ratings("ml-100k", zipped, tmp_path, verify=False).verified is False
    monkeypatch.setitem(registry.DATASETS, "ml-100k", _with_archive(md5=md5))
    ratings, _, verified = load_ratings("ml-100k", zipped, tmp_path)
    pd.testing.assert_frame_equal(ratings, ML100K_FRAME)
    assert verified is True
    sha256 = hashlib.sha256(b"another archive").hexdigest()
    monkeypatch.setitem(registry.DATASETS, "ml-100k", _with_archive(sha256=sha256))
    with pytest.raises(DataError, match=f"sha256 [0-9a-f]{{64}}, published {sha256}"):
        load_ratings("ml-100k", zipped, tmp_path)


def test_archive_without_the_member(tmp_path: Path) -> None:
    zipped = make_zip(tmp_path / "ml-1m.zip", {"ml-1m/movies.dat": b"1::Toy Story (1995)::Animation\n"})
    with pytest.raises(DataError, match=f"{zipped}: the archive has no member ml-1m/ratings.dat"):
        load_ratings("ml-1m", zipped, tmp_path, verify=False)


def test_truncated_archive(tmp_path: Path) -> None:
    zipped = make_zip(tmp_path / "ml-100k.zip", {"ml-100k/u.data": ML100K.encode() * 50})
    zipped.write_bytes(zipped.read_bytes()[:-40])  # cut into the central directory
    with pytest.raises(DataError, match=f"{zipped}: corrupt or truncated archive"):
        load_ratings("ml-100k", zipped, tmp_path, verify=False)


def test_crc_damage_is_reported_rather_than_the_bad_line_it_causes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Stored (uncompressed), a flipped digit reads as a bad rating; the CRC, checked at the end
    # of the member (zipfile reads ahead 4 KiB: make it longer), tells the real story.
    monkeypatch.setattr(sources, "_BLOCK", 16)
    zipped = make_zip(tmp_path / "ml-100k.zip", {"ml-100k/u.data": ML100K.encode() * 200}, zipfile.ZIP_STORED)
    damaged = zipped.read_bytes().replace(b"\t3\t881250949", b"\tx\t881250949", 1)
    zipped.write_bytes(damaged)
    with pytest.raises(DataError, match=f"{zipped}: corrupt.*CRC"):
        load_ratings("ml-100k", zipped, tmp_path, verify=False)


def test_error_inside_archive_names_archive_member_and_line(tmp_path: Path) -> None:
    zipped = make_zip(tmp_path / "ml-100k.zip", {"ml-100k/u.data": (ML100K + "1\t2\n").encode()})
    with pytest.raises(DataError, match=f"{zipped}/ml-100k/u.data:4: expected 4 fields"):
        load_ratings("ml-100k", zipped, tmp_path, verify=False)


def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or folder"):
        load_ratings("ml-1m", tmp_path / "nowhere.zip", tmp_path)
    with pytest.raises(DataError, match="holds neither ratings.dat, ml-1m/ratings.dat nor ml-1m.zip"):
        load_ratings("ml-1m", tmp_path, tmp_path)


def test_netflix_needs_a_source(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no longer distributes.*training_set.*combined_data"):
        load_ratings("netflix", None, tmp_path)
    with pytest.raises(DataError, match="no mv_\\*.txt or combined_data_\\*.txt"):
        load_ratings("netflix", tmp_path, tmp_path)


def test_netflix_load_returns_the_files_read(netflix_layouts: dict[str, Path], tmp_path: Path) -> None:
    ratings, files, verified = load_ratings("netflix", netflix_layouts["kaggle"], tmp_path)
    pd.testing.assert_frame_equal(ratings, NETFLIX_FRAME)
    assert verified == "no published checksum for the Netflix Prize data"
    assert [f.name for f in files] == ["combined_data_1.txt", "combined_data_2.txt"]


def test_unknown_name_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown dataset 'ml-10m'; known: ml-20m, ml-1m, ml-100k, netflix$"):
        load_ratings("ml-10m", None, tmp_path)


# --- The real MovieLens 100K ------------------------------------------------------------------

def test_real_ml100k_u_data(ml100k_file: Path) -> None:
    ratings = read_ml100k_data(ml100k_file)
    assert len(ratings) == 100_000
    assert ratings["user"].nunique() == 943
    assert ratings["item"].nunique() == 1682
    assert ratings.dtypes.astype(str).tolist() == ["int64", "int64", "float32"]
    assert sorted(ratings["rating"].unique().tolist()) == [1, 2, 3, 4, 5]
    assert ratings.iloc[0].tolist() == [196, 242, 3]  # file order
