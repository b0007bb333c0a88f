"""Resumable, checksum-verified downloads (stdlib ``urllib`` only) and file fingerprints."""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from vaecf import progress as progress_module
from vaecf.errors import DownloadError

CHUNK = 1 << 20  # 1 MiB: large enough for throughput, small enough for a lively progress bar


def fetch(url: str, dest: Path, *, md5: str | None = None, sha256: str | None = None,
          progress: bool | None = None, timeout: float = 60) -> Path:
    """Download ``url`` to ``dest`` unless a verified copy is already there; return ``dest``.

    The transfer goes to ``dest`` + ``.part``, which a later call resumes with an HTTP ``Range``
    request after a network error. The file is renamed into place only once the given
    checksum(s) match; on a mismatch the partial file is deleted and DownloadError raised.
    ``progress=None`` shows a bar only when stderr is a terminal and the command is not ``--quiet``.
    """
    dest = Path(dest)
    expected = {algo: value.lower() for algo, value in (("md5", md5), ("sha256", sha256)) if value}
    if dest.is_file() and not checksum_mismatches(dest, expected):
        return dest
    part = dest.with_suffix(dest.suffix + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    show = sys.stderr.isatty() and not progress_module.QUIET if progress is None else progress
    _transfer(url, part, dest.name, show, timeout)
    wrong = checksum_mismatches(part, expected)
    if wrong:
        part.unlink()
        raise DownloadError(f"{dest}: checksum mismatch for the download from {url}: "
                            + "; ".join(f"expected {algo} {exp}, got {act}" for algo, exp, act in wrong)
                            + " (the partial file was deleted)")
    os.replace(part, dest)
    return dest


def file_digest(path: Path, algo: str) -> str:
    """Hex digest of a file's contents, read in 1 MiB chunks."""
    return _digests(Path(path), [algo])[algo]


def fingerprint(paths: Sequence[Path]) -> str:
    """SHA-256 over the files' contents in sorted path order: the key of a cached split.

    Each file's size goes in before its contents, so moving bytes across a file boundary
    changes the key. Names do not, so the same data in another folder keeps its key.
    """
    h = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        h.update(path.stat().st_size.to_bytes(8, "big"))
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
    return h.hexdigest()


def _digests(path: Path, algos: Sequence[str]) -> dict[str, str]:
    # One pass over the file for all algorithms: archives are hundreds of MB.
    hashers = {algo: hashlib.new(algo, usedforsecurity=False) for algo in algos}
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            for h in hashers.values():
                h.update(chunk)
    return {algo: h.hexdigest() for algo, h in hashers.items()}


def checksum_mismatches(path: Path, expected: dict[str, str]) -> list[tuple[str, str, str]]:
    """(algo, expected, actual) for each checksum that ``path`` fails; one pass over the file."""
    if not expected:
        return []
    actual = _digests(path, list(expected))
    return [(algo, value, actual[algo]) for algo, value in expected.items() if actual[algo] != value]


def _transfer(url: str, part: Path, name: str, show: bool, timeout: float) -> None:
    """Fetch ``url`` into ``part``, continuing after the bytes it already holds."""
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if response.status == 206:
                start, total = _content_range(url, response.headers.get("Content-Range", ""))
                if start != offset:
                    part.unlink()
                    raise DownloadError(f"downloading {url}: asked to resume at byte {offset}, the server "
                                        f"answered from byte {start}; deleted {part}, run again to restart")
            else:
                # A server that ignores Range sends the whole file: start over.
                offset, total = 0, _int_or_none(response.headers.get("Content-Length"))
            with open(part, "ab" if offset else "wb") as out, \
                    tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                         desc=name, disable=not show, file=sys.stderr) as bar:
                _copy(response, out, bar)
                size = out.tell()
                out.flush()
                os.fsync(out.fileno())
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            _check_complete(url, part, offset, exc.headers.get("Content-Range", ""))
            return
        raise DownloadError(f"downloading {url} failed: HTTP {exc.code} {exc.reason}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise DownloadError(f"downloading {url} failed ({exc}); {part} is kept and the next "
                            f"attempt resumes it") from exc
    if total is not None and size < total:
        # http.client's read(n) returns b"" on a connection closed early instead of raising.
        raise DownloadError(f"downloading {url}: the connection closed after {size} of {total} bytes; "
                            f"{part} is kept and the next attempt resumes it")


def _copy(response: BinaryIO, out: BinaryIO, bar: tqdm) -> None:
    while chunk := response.read(CHUNK):
        out.write(chunk)
        bar.update(len(chunk))


def _check_complete(url: str, part: Path, offset: int, content_range: str) -> None:
    """After 416 (range not satisfiable) the .part should already hold the whole file."""
    match = re.fullmatch(r"bytes \*/(\d+)", content_range.strip())
    if match and int(match.group(1)) != offset:
        part.unlink()
        raise DownloadError(f"downloading {url}: {part} holds {offset} bytes but the file has "
                            f"{match.group(1)}; deleted it, run again to restart")


def _content_range(url: str, value: str) -> tuple[int, int | None]:
    """(first byte, total size or None) from ``bytes START-END/TOTAL``."""
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", value.strip())
    if not match:
        raise DownloadError(f"downloading {url}: the server answered 206 with an unreadable "
                            f"Content-Range {value!r}")
    return int(match.group(1)), _int_or_none(match.group(2))


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None
