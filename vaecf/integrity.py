"""How a folder or a record proves it is whole: sizes and sha256 of files, a sha256 over a record.

A prepared split (the manifest in ``stats.json``) and a training run (``manifest.json``) list
every file they wrote with its size and sha256 (``entry``); whoever reads them checks each file
first (``verify``), so a partial copy or a disk error is one line naming the file rather than a
failure deep inside numpy or TensorFlow. A JSON record that a command resumes or redraws
(``vaecf compare``'s record, a ladder run's records) is one file wherever the user puts it, so it
carries the sha256 of its own contents instead (``write_record``, ``read_record``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from vaecf.data.download import file_digest
from vaecf.errors import DataError
from vaecf.io import jsonable, read_json, write_json

RECORD_KEY = "record_sha256"
"""The key under which a record carries the sha256 of the rest of itself."""


def entry(path: Path) -> dict[str, Any]:
    """A manifest's line for one file: its size and sha256."""
    return {"bytes": path.stat().st_size, "sha256": file_digest(path, "sha256")}


def verify(path: Path, expected: Any, fix: str, where: str) -> None:
    """Raise a DataError naming ``path`` unless its size and sha256 match the manifest's ``expected``.

    ``where`` names what the file belongs to (``the prepared split``), ``fix`` what to do.
    """
    if not path.is_file():
        raise DataError(f"{path}: missing from {where}; {fix}")
    if not isinstance(expected, dict):
        raise DataError(f"{path}: its manifest entry is damaged; {fix}")
    size = path.stat().st_size
    if size != expected.get("bytes"):
        raise DataError(f"{path}: truncated or altered ({size} bytes, the manifest says "
                        f"{expected.get('bytes')}); {fix}")
    if file_digest(path, "sha256") != expected.get("sha256"):
        raise DataError(f"{path}: corrupt (its sha256 differs from the manifest's); {fix}")


def digest(obj: Any) -> str:
    """sha256 of ``obj`` as JSON with sorted keys: the same before writing and after reading back."""
    text = json.dumps(json.loads(json.dumps(obj, default=jsonable, allow_nan=False)), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def write_record(path: Path, record: dict[str, Any]) -> None:
    """Write ``record`` atomically as strict JSON, with the sha256 of its contents under RECORD_KEY."""
    write_json(path, {**record, RECORD_KEY: digest(record)})


def read_record(path: Path, fix: str) -> dict[str, Any]:
    """The record at ``path``, checked against the sha256 it was written with; a DataError naming it if not.

    A record without RECORD_KEY was written before records carried one and is taken as it is.
    """
    if not path.is_file():
        raise DataError(f"{path}: missing; {fix}")
    record = read_checked(path, fix)
    if RECORD_KEY in record and record.pop(RECORD_KEY) != digest(record):
        raise DataError(f"{path}: corrupt (its contents differ from the sha256 it was written with); {fix}")
    return record



def read_checked(path: Path, fix: str, kind: type = dict) -> Any:
    """The JSON file at ``path``, which must hold a ``kind`` (an object, a list); a DataError naming it if not."""
    try:
        value = read_json(path)
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise DataError(f"{path}: unreadable ({exc}); {fix}") from exc
    if not isinstance(value, kind):
        raise DataError(f"{path}: not a JSON {'object' if kind is dict else kind.__name__}; {fix}")
    return value
