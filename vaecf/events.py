"""TensorBoard event files of scalars, written without TensorFlow (``tensorboard --logdir`` reads them).

The ladder's parent process and ``python -m ablations report`` never import TensorFlow, and the
``tensorboard`` package is not a dependency, so the few bytes of the format are written here:
a TFRecord file (each record: length, masked CRC-32C of the length, the bytes, their masked
CRC-32C) of ``Event`` protocol buffers, the first naming the file version, then one per point
with its wall time, step and ``Summary.Value(tag, simple_value)``. A file is written whole and
atomically from the records it shows, so redrawing it from the same records gives the same bytes
and a resumed run never doubles its points: the name is fixed and the wall times are *training
seconds* (TensorBoard's "relative" axis then reads training time, validation excluded; its
"wall" axis, counted from 1970, means nothing here).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from vaecf.io import atomic_write

FILE_VERSION = b"brain.Event:2"
FILE_NAME = "events.out.tfevents.0.vaecf"
"""TensorBoard reads files whose name holds ``tfevents``; one fixed name per folder (see above)."""


@dataclass(frozen=True)
class Point:
    """Scalars at one step (updates, epochs, a ladder step's index)."""

    step: int
    seconds: float
    """Training seconds at this step (written as the event's wall time)."""
    values: Mapping[str, float]


def write_events(folder: Path, points: Iterable[Point]) -> Path:
    """``folder/events.out.tfevents.0.vaecf`` holding ``points``; its path. Replaces that file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FILE_NAME
    records = [_event(0.0, 0, version=FILE_VERSION)]
    records += [_event(p.seconds, p.step, values=p.values) for p in points]
    data = b"".join(_record(r) for r in records)
    atomic_write(path, lambda tmp: tmp.write_bytes(data))
    return path


def _event(wall_time: float, step: int, version: bytes | None = None,
           values: Mapping[str, float] | None = None) -> bytes:
    out = _key(1, 1) + struct.pack("<d", wall_time) + _key(2, 0) + _varint(step)
    if version is not None:
        out += _field(3, version)
    if values is not None:
        summary = b"".join(_field(1, _field(1, tag.encode()) + _key(2, 5) + struct.pack("<f", value))
                           for tag, value in values.items())
        out += _field(5, summary)
    return out


def _key(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (strings, bytes, nested messages)."""
    return _key(number, 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _record(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", _masked(length)) + data + struct.pack("<I", _masked(data))


def _table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1  # CRC-32C (Castagnoli), reflected
        table.append(c)
    return table


_CRC = _table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
