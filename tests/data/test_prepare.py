"""prepare() and default_protocol(): input checks, the prepared folder, the cache."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.factories import random_ratings
from vaecf.config import ProtocolConfig
from vaecf.data import split as split_module
from vaecf.data import synthetic
from vaecf.data.prepare import default_protocol, prepare
from vaecf.data.split import FILES, Split
from vaecf.errors import ConfigError, DataError

KNOWN = r"known: ml-20m, ml-1m, ml-100k, netflix, synthetic\[:preset\|key=value,...\]$"


@pytest.mark.parametrize("name", ["ml-10m", "movielens", ""])
def test_unknown_dataset_lists_the_known_ones(tmp_path: Path, name: str) -> None:
    with pytest.raises(DataError, match=f"unknown dataset '{name}'; {KNOWN}"):
        prepare(name, tmp_path / "out")
    with pytest.raises(DataError, match=f"unknown dataset '{name}'; {KNOWN}"):
        default_protocol(name)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("n", [0, -5])
def test_heldout_users_below_one_is_refused_before_any_work(tmp_path: Path, n: int) -> None:
    # a ProtocolConfig cannot hold it (a negative N used to invent users), so no prepare can start with it
    with pytest.raises(ConfigError, match=f"heldout_users must be >= 1, not {n}"):
        default_protocol("ml-100k", n)
    with pytest.raises(ConfigError, match=f"heldout_users must be >= 1, not {n}"):
        ProtocolConfig(heldout_users=n)


def test_bad_synthetic_spec_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown synthetic field 'colour'.*known: clusters, count_sigma"):
        prepare("synthetic:tiny,colour=3", tmp_path / "out")


# --- The prepared folder: written whole or not at all, checked against its manifest -------------

TINY = "synthetic:tiny"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("prepared") / "tiny"
    prepare(TINY, folder)
    return folder


@pytest.fixture
def folder(prepared: Path, tmp_path: Path) -> Path:
    """A fresh copy of the prepared tiny split, free to damage."""
    return Path(shutil.copytree(prepared, tmp_path / "tiny"))


def stats_of(folder: Path) -> dict:
    return json.loads((folder / "stats.json").read_text())


def no_generation(cfg):  # noqa: ANN001, ANN201 - stands in for synthetic.generate
    raise AssertionError("prepared again although the cache was valid")


def test_manifest_lists_every_file_and_the_cache_is_reused(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = stats_of(folder)["manifest"]
    assert set(manifest) == set(FILES)
    for name, entry in manifest.items():
        data = (folder / name).read_bytes()
        assert entry == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert sorted(p.name for p in folder.parent.iterdir()) == ["tiny"]  # no partial or old folder left
    monkeypatch.setattr(synthetic, "generate", no_generation)
    assert "manifest" not in prepare(TINY, folder).stats


def test_a_killed_prepare_leaves_the_old_split_whole(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    written: list[Path] = []

    def dies_on_the_third_file(path: Path, matrix) -> None:  # noqa: ANN001
        if len(written) == 2:
            raise KeyboardInterrupt  # as a kill would, part-way through the files
        written.append(path)
        save_npz(path, matrix)

    save_npz = split_module._save_npz
    monkeypatch.setattr(split_module, "_save_npz", dies_on_the_third_file)
    other = ProtocolConfig(heldout_users=50)
    with pytest.raises(KeyboardInterrupt):
        prepare(TINY, folder, protocol=other)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in folder.parent.iterdir()) == ["tiny"]
    written.clear()
    with pytest.raises(KeyboardInterrupt):
        prepare(TINY, folder.parent / "new", protocol=other)
    assert not (folder.parent / "new").exists()
    monkeypatch.undo()
    assert prepare(TINY, folder, protocol=other).stats["test_users"] == 50
    assert stats_of(folder)["test_users"] == 50


def test_a_mixed_folder_is_not_taken_for_a_cache(folder: Path, prepared: Path, tmp_path: Path) -> None:
    # What a prepare killed by the old, file-by-file save left: the new settings' first matrix
    # beside the previous split, whose stats.json (written last) still names the old settings.
    prepare(TINY, tmp_path / "other", protocol=ProtocolConfig(heldout_users=50))
    shutil.copy(tmp_path / "other" / "train.npz", folder / "train.npz")
    with pytest.raises(DataError, match=r"train.npz: (truncated or altered|corrupt)"):
        Split.load(folder)
    prepare(TINY, folder)
    for name in FILES:
        assert (folder / name).read_bytes() == (prepared / name).read_bytes(), name


def test_a_folder_without_manifest_is_stale(folder: Path) -> None:
    stats = stats_of(folder)
    del stats["manifest"]
    (folder / "stats.json").write_text(json.dumps(stats))
    with pytest.raises(DataError, match=f"older vaecf.*run 'vaecf data prepare {TINY} --out {folder}' again"):
        Split.load(folder)
    prepare(TINY, folder)
    assert "manifest" in stats_of(folder)
    Split.load(folder)


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def garbage_listed_in_the_manifest(path: Path) -> None:
    path.write_bytes(b"not a zip at all")
    stats = stats_of(path.parent)
    stats["manifest"][path.name] = {"bytes": 16, "sha256": hashlib.sha256(b"not a zip at all").hexdigest()}
    (path.parent / "stats.json").write_text(json.dumps(stats))


@pytest.mark.parametrize(("name", "damage", "words"), [
    ("train.npz", flip_a_byte, "corrupt"),
    ("ids.npz", lambda p: p.write_bytes(p.read_bytes()[:-100]), "truncated or altered"),
    ("test_target.npz", Path.unlink, "missing"),
    ("validation_foldin.npz", garbage_listed_in_the_manifest, "unreadable"),
])
def test_a_damaged_file_is_named_with_the_fix(folder: Path, name: str, damage, words: str) -> None:
    damage(folder / name)
    with pytest.raises(DataError) as caught:
        Split.load(folder)
    message = str(caught.value)
    assert message.startswith(f"{folder / name}: {words}")
    assert message.endswith(f"run 'vaecf data prepare {TINY} --out {folder}' again")
    prepare(TINY, folder)  # the fix works
    Split.load(folder)


def test_load_refuses_a_split_with_another_cache_key(folder: Path) -> None:
    key = stats_of(folder)["cache_key"]
    assert Split.load(folder, expected_key=key).stats["cache_key"] == key
    with pytest.raises(DataError, match=f"{folder} holds data prepared with other settings "
                                        f"\\(cache key {key}, the run expects 0123abcd\\): prepare it again"):
        Split.load(folder, expected_key="0123abcd")


def test_prepare_will_not_delete_other_files(folder: Path) -> None:
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match=r"holds files that are not part of a prepared split \(notes.txt\)"):
        prepare(TINY, folder, protocol=ProtocolConfig(heldout_users=50))
    assert (folder / "notes.txt").read_text() == "mine"


# --- What stats.json says of the source ---------------------------------------------------------

def ml100k_files(tmp_path: Path) -> tuple[Path, Path]:
    """(u.data, a zip holding it) with clustered random ratings in ML-100K's format."""
    ratings = random_ratings()
    text = "".join(f"{u}\t{i}\t{r:g}\t0\n" for u, i, r in ratings.itertuples(index=False))
    extracted = tmp_path / "u.data"
    extracted.write_text(text)
    zipped = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("ml-100k/u.data", text)
    return extracted, zipped


def test_stats_say_whether_the_source_was_verified(tmp_path: Path) -> None:
    extracted, zipped = ml100k_files(tmp_path)
    protocol = ProtocolConfig(heldout_users=30)
    prepare("ml-100k", tmp_path / "a", source=extracted, protocol=protocol)
    assert stats_of(tmp_path / "a")["source_verified"] == "no published checksum for an extracted file"
    with pytest.raises(DataError, match=f"{zipped}: not the published ml-100k.zip"):
        prepare("ml-100k", tmp_path / "b", source=zipped, protocol=protocol)
    assert not (tmp_path / "b").exists()
    prepare("ml-100k", tmp_path / "b", source=zipped, protocol=protocol, verify=False)
    assert stats_of(tmp_path / "b")["source_verified"] is False


def test_real_ml100k_u_data_prepares_with_an_honest_verification(tmp_path: Path, ml100k_file: Path) -> None:
    split = prepare("ml-100k", tmp_path / "ml-100k", source=ml100k_file)
    assert (split.stats["users"], split.stats["items"]) == (938, 1415)
    assert Split.load(tmp_path / "ml-100k").stats["source_verified"] == "no published checksum for an extracted file"


# --- Leftovers of hard-killed saves ----------------------------------------------------------

def leftover(parent: Path, name: str) -> Path:
    path = parent / name
    path.mkdir()
    (path / "train.npz").write_bytes(b"half a file")
    return path


def finished_pid() -> int:
    """The id of a process that has ended (and, in the instant that follows, not been reused)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_leftovers_of_killed_saves_go_and_running_saves_stay(folder: Path) -> None:
    host, parent = socket.gethostname(), folder.parent
    dead = [leftover(parent, f".tiny.partial-{host}-{finished_pid()}-abc_1234"),
            leftover(parent, f".tiny.old-{host}-{finished_pid()}-xyz98765")]
    running = [leftover(parent, f".tiny.partial-{host}-{os.getppid()}-abc_1234"),  # our parent: alive
               leftover(parent, f".tiny.partial-{host}-{os.getpid()}-def_5678"),  # this process
               leftover(parent, f".tiny.partial-other-host-{finished_pid()}-abc_1234"),  # cannot tell
               leftover(parent, ".tiny.old-abcd_123")]  # an older vaecf's name: no owner to ask
    unrelated = [leftover(parent, f".other.partial-{host}-{finished_pid()}-abc_1234"),
                 leftover(parent, "tiny.partial-abc")]
    not_a_folder = parent / f".tiny.partial-{host}-{finished_pid()}-file1234"
    not_a_folder.write_text("a file, not a save's folder")

    prepare(TINY, folder, protocol=ProtocolConfig(heldout_users=50))

    assert not any(path.exists() for path in dead)
    assert all(path.exists() for path in [*running, *unrelated, not_a_folder])
    assert stats_of(folder)["test_users"] == 50


def test_leftovers_older_than_an_hour_go_whoever_made_them(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = socket.gethostname()
    paths = [leftover(folder.parent, f".tiny.partial-{host}-{os.getppid()}-abc_1234"),
             leftover(folder.parent, f".tiny.old-other-host-{finished_pid()}-abc_1234"),
             leftover(folder.parent, ".tiny.old-abcd_123")]
    # The folders cannot be made old (a rename or chmod resets ctime), so "an hour" shrinks instead.
    monkeypatch.setattr(split_module, "LEFTOVER_AGE_S", -1)
    assert sorted(split_module.remove_leftovers(folder)) == sorted(paths)
    assert sorted(p.name for p in folder.parent.iterdir()) == ["tiny"]


def test_prepare_shows_reading_and_protocol_progress(tmp_path: Path) -> None:
    """Off a terminal: lines with the amount read and the protocol's stages; ``--quiet``: nothing."""
    extracted, _ = ml100k_files(tmp_path)
    command = [sys.executable, "-m", "vaecf", "data", "prepare", "ml-100k", "--source", str(extracted),
               "--heldout-users", "30"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    shown = subprocess.run([*command, "--out", str(tmp_path / "a")], capture_output=True, text=True, env=env,
                           check=True)
    lines = shown.stderr.splitlines()
    size = extracted.stat().st_size / 1e6
    assert lines[0] == f"reading {extracted}: 0 of {size:.0f} MB (0%), elapsed 0:00, ETA after the first part"
    assert any(line.startswith(f"reading {extracted}: {size:.0f} of {size:.0f} MB (100%)") for line in lines)
    assert [line.split(" - ")[-1] for line in lines if line.startswith("protocol: ") and " - " in line] == [
        "positives kept", "users split", "items numbered", "training matrix", "validation targets drawn",
        "test targets drawn", f"saved to {tmp_path / 'a'}"]
    assert json.loads(shown.stdout)["users"] > 0  # stdout stays the answer
    quiet = subprocess.run([*command, "--out", str(tmp_path / "b"), "--quiet"], capture_output=True, text=True,
                           env=env, check=True)
    assert quiet.stderr == "" and json.loads(quiet.stdout) == json.loads(shown.stdout)
