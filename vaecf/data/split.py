"""The prepared split: CSR matrices, id maps and statistics, saved to and loaded from a folder."""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp

from vaecf.errors import DataError
from vaecf.integrity import entry, read_checked, verify
from vaecf.io import write_json

MATRICES = ("train", "validation_foldin", "validation_target", "test_foldin", "test_target")
IDS = "ids.npz"
IDS_KEYS = ("item_ids", "train_user_ids", "validation_user_ids", "test_user_ids")
FILES = (*(f"{name}.npz" for name in MATRICES), IDS)
"""The split's data files, each listed with its size and sha256 in stats.json's manifest."""
STATS = "stats.json"
LEFTOVER_AGE_S = 3600
"""A save's hidden sibling folder this old is a leftover whatever its owner: saving takes seconds."""


@dataclass
class Split:
    """Train users x items, plus fold-in and target matrices for validation and test users.

    Columns are items in the order the protocol numbers them (``item_ids[j]`` is column j's
    original id); rows of each heldout matrix are that part's users in permutation order.
    """

    train: sp.csr_matrix
    validation_foldin: sp.csr_matrix
    validation_target: sp.csr_matrix
    test_foldin: sp.csr_matrix
    test_target: sp.csr_matrix
    item_ids: np.ndarray
    train_user_ids: np.ndarray
    validation_user_ids: np.ndarray
    test_user_ids: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def n_items(self) -> int:
        return int(self.train.shape[1])

    def heldout(self, part: str) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(fold-in, targets) of ``part``: 'validation' or 'test'."""
        if part not in ("validation", "test"):
            raise ValueError(f"split part must be 'validation' or 'test', not {part!r}")
        return getattr(self, f"{part}_foldin"), getattr(self, f"{part}_target")

    def save(self, folder: Path) -> None:
        """Write the split to ``folder``, whole or not at all.

        The files go to a hidden sibling folder that is renamed into place once complete (an
        old split there is moved aside first, then deleted), so a killed save leaves the old
        split or none, never a mix. ``stats.json`` records every file's size and sha256.
        Such folders that earlier, hard-killed saves left are deleted first (remove_leftovers).
        """
        folder = Path(folder).absolute()  # '.' has no name to put beside it
        _check_replaceable(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(folder)
        partial = Path(tempfile.mkdtemp(prefix=_sibling_prefix(folder, "partial"), dir=folder.parent))
        try:
            for name in MATRICES:
                _save_npz(partial / f"{name}.npz", getattr(self, name))
            _savez(partial / IDS, {key: getattr(self, key) for key in IDS_KEYS})
            manifest = {name: entry(partial / name) for name in FILES}
            write_json(partial / STATS, {**self.stats, "manifest": manifest})
            _swap_in(partial, folder)
        finally:
            shutil.rmtree(partial, ignore_errors=True)  # gone already when the swap succeeded

    @staticmethod
    def load(folder: Path, expected_key: str | None = None) -> Split:
        """Load the split in ``folder`` after checking every file against the manifest.

        With ``expected_key``, refuse a split whose ``cache_key`` (its source and settings) differs.
        """
        folder = Path(folder)
        stats = _read_stats(folder)
        fix = f"run 'vaecf data prepare {stats.get('dataset', 'DATASET')} --out {folder}' again"
        if expected_key is not None and stats.get("cache_key") != expected_key:
            raise DataError(f"{folder} holds data prepared with other settings (cache key "
                            f"{stats.get('cache_key')}, the run expects {expected_key}): prepare it again "
                            "with the run's settings or point --data at the folder the run was trained on")
        manifest = stats.pop("manifest", None)
        if (not isinstance(manifest, dict) or set(manifest) != set(FILES)
                or not all(isinstance(entry, dict) for entry in manifest.values())):
            raise DataError(f"{folder}: prepared by an older vaecf or by hand (stats.json lists no "
                            f"manifest of the split's files), so it cannot be checked; {fix}")
        for name in FILES:
            verify(folder / name, manifest[name], fix, "the prepared split")
        matrices = {name: _read(folder / f"{name}.npz", fix, lambda path: sp.load_npz(path).tocsr())
                    for name in MATRICES}
        maps = _read(folder / IDS, fix, _load_arrays)
        return Split(**matrices, **maps, stats=stats)


def _check_replaceable(folder: Path) -> None:
    """Refuse to replace a folder that holds anything besides a prepared split."""
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{folder}: is a file, not a folder for a prepared split; choose another --out")
    if folder.is_dir():
        # atomic_write's leftovers (.NAME.*.tmp) may lie in a folder prepared by an older vaecf.
        foreign = sorted(p.name for p in folder.iterdir()
                         if p.name not in (*FILES, STATS) and not (p.name.startswith(".") and p.name.endswith(".tmp")))
        if foreign:
            raise DataError(f"{folder}: holds files that are not part of a prepared split "
                            f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}), which preparing "
                            "would delete; choose another --out or empty it")


def _sibling_prefix(folder: Path, kind: str) -> str:
    """``.NAME.KIND-HOST-PID-``: the hidden sibling of ``folder`` that this process is writing.

    The host and process id let a later save tell a hard-killed save's leftover from a save
    that is still running, and so delete the leftover at once rather than after an hour.
    """
    return f".{folder.name}.{kind}-{socket.gethostname()}-{os.getpid()}-"


def remove_leftovers(folder: Path) -> list[Path]:
    """Delete the ``.NAME.partial-*`` and ``.NAME.old-*`` siblings that killed saves left; return them.

    Only a save that is surely over: its process, on this host, no longer runs, or the folder is
    older than LEFTOVER_AGE_S (this covers other hosts sharing the file system, a reused process
    id and the names of older vaecf versions, which carry no owner). A save still running is left
    alone, so two prepares into one folder cannot delete each other's work.
    """
    pattern = re.compile(rf"\.{re.escape(folder.name)}\.(?:partial|old)-(?:(?P<host>.+)-(?P<pid>\d+)-)?[^-]+")
    removed = []
    for path in folder.parent.iterdir():
        match = pattern.fullmatch(path.name)
        if match and path.is_dir() and not path.is_symlink() and _abandoned(path, match["host"], match["pid"]):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _abandoned(path: Path, host: str | None, pid: str | None) -> bool:
    """Whether the save that made ``path`` is over (see remove_leftovers)."""
    try:
        info = path.stat()
    except OSError:  # deleted meanwhile, by its owner or a concurrent save
        return False
    # ctime too: moving the old split aside (a rename) updates it, not the old split's mtime.
    if time.time() - max(info.st_mtime, info.st_ctime) > LEFTOVER_AGE_S:
        return True
    if host != socket.gethostname() or pid is None or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):  # another user's process; a pid beyond any the OS gives
        pass
    return False


def _swap_in(partial: Path, folder: Path) -> None:
    """Rename ``partial`` to ``folder``, moving any old split aside and deleting it after."""
    try:
        if not folder.exists():
            os.rename(partial, folder)
            return
        old = Path(tempfile.mkdtemp(prefix=_sibling_prefix(folder, "old"), dir=folder.parent))
        os.replace(folder, old)  # onto the empty folder just made: POSIX allows it
    except OSError as exc:
        raise DataError(f"{folder}: cannot move the old split aside ({exc})") from exc
    try:
        os.rename(partial, folder)
    except OSError as exc:
        os.rename(old, folder)
        raise DataError(f"{folder}: cannot move the prepared split into place ({exc})") from exc
    shutil.rmtree(old, ignore_errors=True)


def _read_stats(folder: Path) -> dict[str, Any]:
    path = folder / STATS
    if not path.is_file():
        raise DataError(f"{folder}: no prepared split here (stats.json missing); "
                        f"run 'vaecf data prepare DATASET --out {folder}' first")
    return dict(read_checked(path, f"run 'vaecf data prepare DATASET --out {folder}' again"))


_T = TypeVar("_T")


def _read(path: Path, fix: str, load: Callable[[Path], _T]) -> _T:
    """``load(path)``, with any failure to read it as a DataError naming the file."""
    try:
        return load(path)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: unreadable ({exc}); {fix}") from exc


def _load_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as arrays:
        return {key: arrays[key] for key in IDS_KEYS}


def _save_npz(path: Path, matrix: sp.csr_matrix) -> None:
    with open(path, "wb") as f:
        sp.save_npz(f, matrix, compressed=False)


def _savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as its allow_pickle
