"""The one-file report of a run: complete from its records, self-contained, and rendered by a real browser."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from ablations import browser, page
from ablations.report import derive, load_run, to_markdown

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "results" / "cpu2-epyc-avx2" / "attribution-quick"
"""The committed default run: its records and charts make the page."""
NO_CHROMIUM = "Chromium not installed (apt-get install chromium; nox -s tests installs it where it can)"


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    derived = derive(load_run(RUN))
    out = tmp_path_factory.mktemp("page") / "report.html"
    out.write_text(page.render(RUN, derived, to_markdown(derived)))
    return out


def test_page_has_every_step_verdict_machine_and_command(report_html: Path) -> None:
    text = report_html.read_text()
    derived = derive(load_run(RUN))
    for row in derived["rows"]:
        assert text.count(f"<b>{row['name']}</b>:") >= 1  # its verdict
        assert f"<td>{row['name']}</td>" in text  # its table row
    assert text.count('<img src="data:image/png;base64,') == len(page.CHARTS)
    assert "no GPU: float16 replaced by precision=mixed_bfloat16" in text  # a substitution
    sha = derived["run"]["machine"]["git_sha"]
    assert sha in text and f"git checkout {sha[:12]}" in text
    assert "VAECF_MACHINE=cpu2-epyc-avx2 python -m ablations run --ladder attribution --budget quick\n" in text
    assert not re.search(r'(?:src|href)="(?!data:)', text)  # nothing to load


def test_the_machine_is_the_one_the_record_names(tmp_path: Path) -> None:
    """A run made with --out elsewhere (``/tmp/run``) is named after its record's machine, not the folder it is
    in; a run whose header predates the machine's name, after the folder above it (``results/<machine>/``)."""
    run = derive(load_run(RUN))["run"]
    named = {**run, "machine": {**run["machine"], "machine_name": "cpu2-xeon-amx"}}
    assert page.machine_of(tmp_path / "run", named) == "cpu2-xeon-amx"
    assert "VAECF_MACHINE=cpu2-xeon-amx python" in page.reproduce_command(tmp_path / "run", named)
    assert page.machine_of(RUN, run) == "cpu2-epyc-avx2"


def test_markdown_table_becomes_html() -> None:
    html = page.markdown_table("| a | b |\n|---|---|\n| 1 | <x> |\n\nT = 3 s.\n")
    assert html == ("<table><thead><tr><th>a</th><th>b</th></tr></thead><tbody>\n"
                    "<tr><td>1</td><td>&lt;x&gt;</td></tr>\n</tbody></table><p>T = 3 s.</p>")
    two = page.markdown_table("| a |\n|---|\n| 1 |\n\nVerdicts:\n\n| b |\n|---|\n| 2 |\n")
    assert two == ("<table><thead><tr><th>a</th></tr></thead><tbody>\n<tr><td>1</td></tr>\n</tbody></table>"
                   "<p>Verdicts:</p><table><thead><tr><th>b</th></tr></thead><tbody>\n<tr><td>2</td></tr>\n"
                   "</tbody></table>")  # the verdicts' table stays a table of its own


@pytest.mark.skipif(shutil.which("chromium") is None and shutil.which("chromium-browser") is None,
                    reason=NO_CHROMIUM)
def test_chromium_renders_every_image_and_the_page_requests_nothing(report_html: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    check = browser.check_page(report_html, shot)
    assert check.images is not None and len(check.images) == len(page.CHARTS)
    assert all(int(str(image["width"])) > 0 for image in check.images)
    assert check.requests == []
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000


@pytest.mark.skipif(shutil.which("chromium") is None and shutil.which("chromium-browser") is None,
                    reason=NO_CHROMIUM)
def test_the_check_sees_broken_images_and_requests(tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text('<!doctype html><link rel="icon" href="data:,"><img src="https://example.org/x.png" alt="far">'
                   '<img src="missing.png" alt="near"><link rel="stylesheet" href="http://cdn.example.com/a.css">')
    check = browser.check_page(bad)
    assert check.images is not None and [i["width"] for i in check.images] == [0, 0]
    assert sorted(check.requests) == sorted([
        "blocked http://cdn.example.com/a.css (style-src-elem)", "blocked https://example.org/x.png (img-src)",
        f"blocked http://{check.server}/missing.png (img-src)"])


def test_no_chromium_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.html").write_text("<p>x</p>")
    assert browser.main([str(tmp_path / "p.html"), "--chromium", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "apt-get install chromium" in err
