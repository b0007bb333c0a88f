"""fetch() against a real HTTP server on 127.0.0.1 that honours Range requests."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import socket
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from vaecf.data import registry, sources
from vaecf.data.download import fetch, file_digest, fingerprint
from vaecf.errors import DataError, DownloadError


@dataclass
class Server:
    base: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    truncate: dict[str, int] = field(default_factory=dict)
    """path -> bytes to send of the next response before closing the connection."""
    ignore_range: bool = False
    ranges: list[str | None] = field(default_factory=list)
    """The Range header of each request, in order."""

    def url(self, path: str) -> str:
        return self.base + path


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0 (the default): the connection closes after each response, so a truncated
    # body ends the transfer early.

    def do_GET(self) -> None:
        state: Server = self.server.state  # type: ignore[attr-defined]
        requested = self.headers.get("Range")
        state.ranges.append(requested)
        body = state.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        if requested and not state.ignore_range:
            offset = re.fullmatch(r"bytes=(\d+)-", requested)
            assert offset is not None, requested
            start = int(offset.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        cut = state.truncate.pop(self.path, len(payload))
        self.wfile.write(payload[:cut])

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    state = Server()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.state = state
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def fake_ml100k(n: int = 400) -> tuple[bytes, np.ndarray]:
    """A zip laid out like ml-100k.zip whose u.data holds ``n`` random ratings."""
    rng = np.random.default_rng(7)
    rows = np.column_stack([rng.integers(1, 50, n), rng.integers(1, 80, n), rng.integers(1, 6, n),
                            rng.integers(874724710, 893286638, n)])
    text = "".join("\t".join(map(str, row)) + "\n" for row in rows.tolist())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("ml-100k/README", "fake MovieLens 100K for tests\n")
        archive.writestr("ml-100k/u.data", text)
    return buffer.getvalue(), rows


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _serve_as_ml100k(monkeypatch: pytest.MonkeyPatch, url: str, md5: str) -> None:
    """Register ``url`` as ml-100k's download, with ``md5`` as its published checksum."""
    archive = registry.Archive(url=url, md5=md5, member="ml-100k/u.data")
    ml100k = dataclasses.replace(registry.DATASETS["ml-100k"], archive=archive)
    monkeypatch.setitem(registry.DATASETS, "ml-100k", ml100k)


@pytest.fixture
def served_ml100k(server: Server, monkeypatch: pytest.MonkeyPatch) -> tuple[Server, bytes, np.ndarray]:
    """The fake archive served at /ml-100k.zip and registered as ml-100k's download."""
    data, rows = fake_ml100k()
    server.files["/ml-100k.zip"] = data
    _serve_as_ml100k(monkeypatch, server.url("/ml-100k.zip"), md5(data))
    return server, data, rows


def test_good_archive_downloads_verifies_and_loads(served_ml100k, tmp_path: Path) -> None:
    server, data, rows = served_ml100k
    frame, files, verified = sources.load_ratings("ml-100k", None, tmp_path / "cache", progress=False)
    dest = tmp_path / "cache" / "ml-100k.zip"
    assert files == [dest]
    assert verified is True
    assert dest.read_bytes() == data
    assert not dest.with_suffix(".zip.part").exists()
    assert server.ranges == [None]
    np.testing.assert_array_equal(frame["user"], rows[:, 0])
    np.testing.assert_array_equal(frame["item"], rows[:, 1])
    np.testing.assert_array_equal(frame["rating"], rows[:, 2].astype(np.float32))


def test_verified_copy_is_not_downloaded_again(served_ml100k, tmp_path: Path) -> None:
    server, data, _ = served_ml100k
    sources.load_ratings("ml-100k", None, tmp_path, progress=False)
    sources.load_ratings("ml-100k", None, tmp_path, progress=False)
    assert len(server.ranges) == 1


def test_stale_copy_is_replaced(server: Server, tmp_path: Path) -> None:
    server.files["/f.zip"] = data = b"the real archive"
    dest = tmp_path / "f.zip"
    dest.write_bytes(b"an older archive")
    fetch(server.url("/f.zip"), dest, md5=md5(data), progress=False)
    assert dest.read_bytes() == data


def test_wrong_checksum_raises_and_leaves_nothing(server: Server, tmp_path: Path) -> None:
    server.files["/f.zip"] = data = b"some bytes" * 100
    dest = tmp_path / "f.zip"
    wrong = "0" * 32
    with pytest.raises(DownloadError) as caught:
        fetch(server.url("/f.zip"), dest, md5=wrong, progress=False)
    message = str(caught.value)
    assert str(dest) in message and wrong in message and md5(data) in message
    assert not dest.exists()
    assert not dest.with_suffix(".zip.part").exists()


def test_sha256_is_checked_too(server: Server, tmp_path: Path) -> None:
    server.files["/f.zip"] = data = b"some bytes"
    with pytest.raises(DownloadError, match="sha256"):
        fetch(server.url("/f.zip"), tmp_path / "f.zip", md5=md5(data), sha256="f" * 64, progress=False)
    good = fetch(server.url("/f.zip"), tmp_path / "f.zip", md5=md5(data),
                 sha256=hashlib.sha256(data).hexdigest(), progress=False)
    assert good.read_bytes() == data


def test_truncated_transfer_resumes_with_range(server: Server, tmp_path: Path) -> None:
    data, _ = fake_ml100k()
    server.files["/ml-100k.zip"] = data
    server.truncate["/ml-100k.zip"] = 1000
    dest = tmp_path / "ml-100k.zip"
    part = tmp_path / "ml-100k.zip.part"
    with pytest.raises(DownloadError, match="1000 of"):
        fetch(server.url("/ml-100k.zip"), dest, md5=md5(data), progress=False)
    assert part.read_bytes() == data[:1000]
    assert not dest.exists()

    fetch(server.url("/ml-100k.zip"), dest, md5=md5(data), progress=False)
    assert server.ranges == [None, "bytes=1000-"]
    assert file_digest(dest, "md5") == md5(data)
    assert not part.exists()


def test_server_ignoring_range_restarts_from_scratch(server: Server, tmp_path: Path) -> None:
    server.files["/f.zip"] = data = bytes(range(256)) * 40
    server.ignore_range = True
    dest = tmp_path / "f.zip"
    (tmp_path / "f.zip.part").write_bytes(b"junk that is not a prefix")
    fetch(server.url("/f.zip"), dest, md5=md5(data), progress=False)
    assert server.ranges == ["bytes=25-"]
    assert dest.read_bytes() == data


def test_complete_part_answered_416_is_verified_and_kept(server: Server, tmp_path: Path) -> None:
    server.files["/f.zip"] = data = b"complete already" * 10
    dest = tmp_path / "f.zip"
    (tmp_path / "f.zip.part").write_bytes(data)
    fetch(server.url("/f.zip"), dest, md5=md5(data), progress=False)
    assert server.ranges == [f"bytes={len(data)}-"]
    assert dest.read_bytes() == data


def test_corrupt_archive_with_matching_checksum_is_a_data_error(
        served_ml100k, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    server, data, _ = served_ml100k
    corrupt = bytearray(data)
    start = data.index(b"ml-100k/u.data") + len("ml-100k/u.data") + 200  # inside u.data's deflate stream
    corrupt[start:start + 16] = bytes(b ^ 0xFF for b in corrupt[start:start + 16])
    server.files["/ml-100k.zip"] = bytes(corrupt)
    _serve_as_ml100k(monkeypatch, server.url("/ml-100k.zip"), md5(bytes(corrupt)))
    with pytest.raises(DataError, match="corrupt") as caught:
        sources.load_ratings("ml-100k", None, tmp_path, progress=False)
    assert str(tmp_path / "ml-100k.zip") in str(caught.value)


def test_404_is_a_download_error(server: Server, tmp_path: Path) -> None:
    url = server.url("/missing.zip")
    with pytest.raises(DownloadError, match="404") as caught:
        fetch(url, tmp_path / "missing.zip", progress=False)
    assert url in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_network_error_names_url_and_keeps_part(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port that nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/f.zip"
    part = tmp_path / "f.zip.part"
    part.write_bytes(b"first half")
    with pytest.raises(DownloadError) as caught:
        fetch(url, tmp_path / "f.zip", progress=False, timeout=2)
    assert url in str(caught.value)
    assert part.read_bytes() == b"first half"


def test_progress_bar_goes_to_stderr(server: Server, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    server.files["/f.zip"] = b"x" * 5000
    fetch(server.url("/f.zip"), tmp_path / "f.zip", progress=True)
    assert "f.zip" in capsys.readouterr().err
    fetch(server.url("/f.zip"), tmp_path / "g.zip", progress=False)
    assert capsys.readouterr().err == ""


def test_file_digest_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"a" * (3 << 20) + b"tail")  # spans several 1 MiB chunks
    content = path.read_bytes()
    assert file_digest(path, "md5") == hashlib.md5(content).hexdigest()
    assert file_digest(path, "sha256") == hashlib.sha256(content).hexdigest()


def test_fingerprint_follows_contents_in_sorted_order(tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_bytes(b"ab")
    b.write_bytes(b"c")
    key = fingerprint([a, b])
    assert len(key) == 64
    assert fingerprint([b, a]) == key  # the order given does not matter
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "a.txt").write_bytes(b"ab")
    (moved / "b.txt").write_bytes(b"c")
    assert fingerprint([moved / "a.txt", moved / "b.txt"]) == key  # nor does the folder
    a.write_bytes(b"a")
    b.write_bytes(b"bc")
    assert fingerprint([a, b]) != key  # same bytes, other file boundary
    assert fingerprint([a]) != fingerprint([a, b])
