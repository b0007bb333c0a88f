"""tools/asv_screenshot.py without Chromium or npm: URLs, the staged site, the server, its errors."""

from __future__ import annotations

import inspect
import json
import urllib.request
from pathlib import Path
from urllib.parse import unquote

import pytest

from tools import asv_screenshot as shot

USERS = "bench_train.TrainThroughput.track_users_per_s"
NDCG = "bench_eval.Quality.track_validation_ndcg"
ASV_PREFIXES = ("time_", "timeraw_", "mem_", "peakmem_", "track_")


def published_site(folder: Path, precisions: tuple[str, ...] = ("float32", "mixed_bfloat16")) -> Path:
    """The parts of an `asv publish` site the script reads: index.json's benchmarks, an index.html."""
    folder.mkdir(parents=True)
    benchmarks = {
        USERS: {"params": [["'dense'", "'sparse'"], ["'feed'", "'tfdata'"]], "param_names": ["input", "pipeline"]},
        NDCG: {"params": [[repr(p) for p in precisions]], "param_names": ["precision"]},
    }
    (folder / "index.json").write_text(json.dumps({"benchmarks": benchmarks}))
    jquery = "https://code.jquery.com/jquery-3.3.1.min.js"
    css = "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/css/bootstrap.min.css"
    (folder / "index.html").write_text(
        f'<script src="{jquery}" integrity="sha256-x" crossorigin="anonymous" onerror="f()"></script>\n'
        f'<link rel="stylesheet" href="{css}" integrity="sha256-y" crossorigin="anonymous">\n'
        '<a href="https://github.com/airspeed-velocity/asv/">asv</a><script src="asv.js"></script>\n')
    return folder


def local_libs(folder: Path) -> Path:
    """What fetch_libs leaves in its cache: every CDN file's copy."""
    for package, file in shot.CDN_FILES.values():
        (folder / package / file).parent.mkdir(parents=True, exist_ok=True)
        (folder / package / file).write_text(f"/* {package} {file} */")
    return folder


def test_fragment_is_asvs_own_link_to_a_graph() -> None:
    assert shot.fragment(shot.Graph("a.png", USERS)) == f"#{USERS}"
    link = shot.fragment(shot.Graph("b.png", NDCG, {"precision": ["float32", "mixed_bfloat16"]},
                                    {"y-axis-scale": "log"}))
    location, query = link[1:].split("?")
    assert location == NDCG
    # asv's parse_hash_string: split on & and =, then decodeURIComponent; values are Python reprs
    assert [tuple(unquote(s) for s in part.split("=")) for part in query.split("&")] == [
        ("p-precision", "'float32'"), ("p-precision", "'mixed_bfloat16'"), ("y-axis-scale", "log")]


def test_the_pictures_show_users_per_s_and_ndcg() -> None:
    assert [(g.file, g.benchmark) for g in shot.GRAPHS] == [("asv-users-per-s.png", USERS), ("asv-ndcg.png", NDCG)]


def test_check_site_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(shot.ScreenshotError, match="nox -s bench -- history"):
        shot.check_site(tmp_path / "html", shot.GRAPHS)
    site = published_site(tmp_path / "site", precisions=("mixed_bfloat16",))
    shot.check_site(site, shot.GRAPHS[:1])
    with pytest.raises(shot.ScreenshotError, match="precision has no value 'float32'"):
        shot.check_site(site, shot.GRAPHS)
    with pytest.raises(shot.ScreenshotError, match="bench_x.Nothing.track_it has no results"):
        shot.check_site(site, [shot.Graph("c.png", "bench_x.Nothing.track_it")])


def test_missing_site_is_one_line_that_names_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert shot.main(["--html", str(tmp_path / "html"), "--out", str(tmp_path / "img")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("asv_screenshot: error: no published asv site") and "nox -s bench -- history" in err
    assert not (tmp_path / "img").exists()


def test_missing_chromium_is_one_line_that_names_the_install(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    site = published_site(tmp_path / "site")
    argv = ["--html", str(site), "--out", str(tmp_path / "img"), "--chromium", str(tmp_path / "no-chromium")]
    assert shot.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "apt-get install chromium" in err


def test_libs_in_the_cache_need_no_npm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shot.shutil, "which", lambda name: None)
    libs = local_libs(tmp_path / "libs")
    assert shot.fetch_libs(libs) == libs
    next(iter((libs / "jquery@3.3.1").rglob("*.js"))).unlink()
    with pytest.raises(shot.ScreenshotError, match="npm not found: apt-get install npm"):
        shot.fetch_libs(libs)


def test_staged_page_loads_the_local_copies(tmp_path: Path) -> None:
    site = published_site(tmp_path / "site")
    staged = shot.stage_site(site, local_libs(tmp_path / "libs"), tmp_path / "staged")
    page = (staged / "index.html").read_text()
    assert 'src="_vendor/jquery@3.3.1/dist/jquery.min.js"' in page
    assert 'href="_vendor/bootstrap@3.1.1/dist/css/bootstrap.min.css"' in page
    assert "integrity" not in page and "crossorigin" not in page
    assert 'onerror="f()"' in page and '<script src="asv.js">' in page
    assert "https://github.com/airspeed-velocity/asv/" in page  # a link, not loaded: left alone
    assert (staged / "_vendor" / "jquery@3.3.1" / "dist" / "jquery.min.js").is_file()
    assert (staged / "index.json").read_text() == (site / "index.json").read_text()
    assert "integrity" in (site / "index.html").read_text()  # the published site is not touched


def test_a_cdn_file_without_a_local_copy_is_refused(tmp_path: Path) -> None:
    site = published_site(tmp_path / "site")
    page = site / "index.html"
    page.write_text(page.read_text() + '<script src="https://cdn.example.org/new.js"></script>\n')
    with pytest.raises(shot.ScreenshotError, match="loads https://cdn.example.org/new.js"):
        shot.stage_site(site, local_libs(tmp_path / "libs"), tmp_path / "staged")


def test_serve_answers_on_localhost(tmp_path: Path) -> None:
    (tmp_path / "index.json").write_text('{"ok": true}')
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with shot.serve(tmp_path) as base:
        assert base.startswith("http://127.0.0.1:")
        with no_proxy.open(base + "index.json", timeout=10) as response:
            assert json.load(response) == {"ok": True}


def test_chromium_command_is_headless_and_isolated(tmp_path: Path) -> None:
    command = shot.chromium_command("chromium", "http://127.0.0.1:1/index.html#x", tmp_path / "a.png",
                                    tmp_path / "profile", window=(800, 600), budget_ms=5000)
    assert command[0] == "chromium" and command[-1] == "http://127.0.0.1:1/index.html#x"
    for flag in ("--headless", "--no-sandbox", "--disable-background-networking", "--window-size=800,600",
                 "--virtual-time-budget=5000", f"--screenshot={tmp_path / 'a.png'}",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        assert flag in command


def test_the_module_defines_no_asv_benchmarks() -> None:
    """asv imports every module in benchmarks/ and collects these prefixes, in modules and classes."""
    names = [name for name, _ in inspect.getmembers(shot)]
    names += [name for _, cls in inspect.getmembers(shot, inspect.isclass) for name in vars(cls)]
    assert not [name for name in names if name.startswith(ASV_PREFIXES)]
