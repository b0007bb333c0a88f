"""Atomic file writes: a killed process leaves either the old file or the new one, never half."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vaecf.errors import VaecfError


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented, strict JSON (no NaN or Infinity), atomically.

    A non-finite number in a record is a measurement that went wrong: it is refused here rather
    than written as the bare ``NaN`` that other JSON readers reject. Missing values are ``None``.
    """
    try:
        text = json.dumps(obj, indent=2, sort_keys=False, default=jsonable, allow_nan=False) + "\n"
    except ValueError as e:
        raise ValueError(f"{path}: refusing to write a non-finite number into a record ({e})") from e
    atomic_write(path, lambda tmp: tmp.write_text(text))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def jsonable(obj: Any) -> Any:
    """numpy scalars and paths show up in records; everything else is a bug worth seeing."""
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def check_apart(out: Path, out_name: str, other: Path, other_name: str) -> None:
    """Refuse an output folder that is ``other``, lies inside it or holds it (``--out`` and ``--data``).

    Writing there would mix one command's files into another's folder, or replace a folder
    that a later write would take for its own. ``out_name`` and ``other_name`` say where the
    two came from (``--out runs/a``).
    """
    a, b = Path(out).resolve(), Path(other).resolve()
    if a == b:
        where = "is"
    elif b in a.parents:
        where = "lies inside"
    elif a in b.parents:
        where = "holds"
    else:
        return
    raise VaecfError(f"{out_name}: {where} {other_name}; the two must be separate folders: "
                     f"choose another {out_name.split()[0]}")
