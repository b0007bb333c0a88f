"""Pictures of asv's published graphs for docs/asv.md (issue #11): users/s and NDCG@100 over commits.

    python tools/asv_screenshot.py [--html .asv/html] [--out docs/img] [--chromium PATH]

1. Copies the site ``asv publish`` wrote (``.asv/html``) to a temporary folder, its page pointed
   at local copies of the libraries it loads from CDNs (jQuery, flot, Bootstrap, ...): the copies
   come from the npm registry through ``npm pack`` once and are kept in ``.cache/asv-www/``, so the
   pictures need no access to the CDNs (this VM has none).
2. Serves that copy with Python's http.server on 127.0.0.1, at a free port, in a thread: asv's
   pages fetch their JSON, which browsers refuse over file://.
3. For each graph in ``GRAPHS``, runs headless Chromium on asv's graph page for that benchmark,
   the lines chosen in the URL fragment (``#BENCHMARK?p-PARAM='value'``, as asv's own links do),
   and lets it run ``--virtual-time-budget`` ms of page time (paused while the page's requests are
   outstanding) before it writes the screenshot, so the graph is drawn, not loading.
4. Writes ``docs/img/asv-users-per-s.png`` and ``docs/img/asv-ndcg.png``.

Needs Chromium and npm (Debian: ``apt-get install chromium npm``) and a published site
(``python3 -m nox -s bench -- history``). This module runs nothing on import and defines no
benchmarks: asv, which imports every module in ``benchmarks/``, finds none in it.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: ablations from this checkout
from ablations.browser import CHROMIUM_NAMES, loopback  # noqa: E402

HTML = REPO / ".asv" / "html"
OUT = REPO / "docs" / "img"
LIBS = REPO / ".cache" / "asv-www"
WINDOW = (1280, 820)
"""Wide enough for asv's parameter sidebar beside a readable graph."""
BUDGET_MS = 20_000
"""Virtual page time before the screenshot: asv draws once its JSON has arrived, long before this."""
PUBLISH_HINT = "run `python3 -m nox -s bench -- history` (or `asv publish` after `asv run`) first"
VENDOR = "_vendor"
"""Folder of the staged site that holds the local copies of the CDN files."""

CDN_FILES = {
    "https://code.jquery.com/jquery-3.3.1.min.js": ("jquery@3.3.1", "dist/jquery.min.js"),
    # cdnjs minified flot 0.8.3 itself; npm has the same release unminified.
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.min.js": ("flot@0.8.3", "jquery.flot.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.time.min.js": ("flot@0.8.3", "jquery.flot.time.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.selection.min.js":
        ("flot@0.8.3", "jquery.flot.selection.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.categories.min.js":
        ("flot@0.8.3", "jquery.flot.categories.js"),
    "https://cdn.jsdelivr.net/npm/flot-orderbars@1.0.0/js/jquery.flot.orderBars.js":
        ("flot-orderbars@1.0.0", "js/jquery.flot.orderBars.js"),
    # 1.0.1 was never published to npm; only the benchmark list's table sorting uses it.
    "https://cdnjs.cloudflare.com/ajax/libs/stupidtable/1.0.1/stupidtable.min.js":
        ("stupid-table-plugin@1.1.3", "stupidtable.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/blueimp-md5/2.19.0/js/md5.min.js": ("blueimp-md5@2.19.0", "js/md5.min.js"),
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/js/bootstrap.min.js":
        ("bootstrap@3.1.1", "dist/js/bootstrap.min.js"),
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/css/bootstrap.min.css":
        ("bootstrap@3.1.1", "dist/css/bootstrap.min.css"),
}
"""Each file asv 0.6's index.html loads from a CDN -> (npm package@version, the file inside it)."""
LOADED_FROM_WEB = re.compile(r'<(?:script|link)\b[^>]*?(?:src|href)="(https?://[^"]+)"')
INTEGRITY = re.compile(r'\s(?:integrity|crossorigin|referrerpolicy)="[^"]*"')


class ScreenshotError(Exception):
    """A missing prerequisite or a failed step, said in one line naming what to run."""


@dataclass(frozen=True)
class Graph:
    """One picture: a benchmark's graph page with the chosen parameter values as its lines."""

    file: str
    benchmark: str
    params: dict[str, list[str]] = field(default_factory=dict)
    """Parameter name -> values to draw (as the benchmark spells them); unnamed parameters: all."""
    settings: dict[str, str] = field(default_factory=dict)
    """asv's plot settings as its links carry them, e.g. ``{"y-axis-scale": "log"}``."""


GRAPHS = (
    Graph("asv-users-per-s.png", "bench_train.TrainThroughput.track_users_per_s"),
    # float32 only: the history run measures that precision alone (bfloat16 is emulated on AVX2 CPUs
    # and would triple a commit's quality training), and float16 is skipped without a GPU. A log axis:
    # asv's linear one spans exactly the values' range, so a line that never moves (training is
    # deterministic) sits on the frame's bottom edge; on the log axis (0.1 to 1) it is drawn inside.
    Graph("asv-ndcg.png", "bench_eval.Quality.track_validation_ndcg", {"precision": ["float32"]},
          {"y-axis-scale": "log"}),
)


def fragment(graph: Graph) -> str:
    """asv's URL fragment for ``graph``: ``#name?p-param='value'&setting=value`` (see asv's www/asv.js).

    asv keeps parameter values as their Python repr, so a string value is quoted in the fragment.
    """
    query = [f"p-{quote(name)}={quote(repr(value))}" for name, values in graph.params.items() for value in values]
    query += [f"{quote(name)}={quote(value)}" for name, value in graph.settings.items()]
    return f"#{graph.benchmark}" + (f"?{'&'.join(query)}" if query else "")


def check_site(html: Path, graphs: Sequence[Graph]) -> None:
    """The published site exists and lists every benchmark in ``graphs``, with these parameter values."""
    index = html / "index.json"
    if not index.is_file():
        raise ScreenshotError(f"no published asv site at {html} ({index.name} missing): {PUBLISH_HINT}")
    benchmarks = json.loads(index.read_text())["benchmarks"]
    for graph in graphs:
        if graph.benchmark not in benchmarks:
            raise ScreenshotError(f"{graph.benchmark} has no results in {html}: {PUBLISH_HINT}")
        info = benchmarks[graph.benchmark]
        for name, values in graph.params.items():
            known = info["params"][info["param_names"].index(name)] if name in info["param_names"] else []
            missing = [v for v in values if repr(v) not in known]
            if missing:
                raise ScreenshotError(f"{graph.benchmark}: parameter {name} has no value {missing[0]!r} "
                                      f"(asv knows {', '.join(known) or 'none'})")


def find_program(given: str | None, names: Sequence[str], install: str) -> str:
    """``given`` when set, else the first of ``names`` on PATH; a one-line error naming ``install``."""
    for name in ([given] if given else names):
        path = shutil.which(name)
        if path:
            return path
    raise ScreenshotError(f"{given or ' / '.join(names)} not found: {install}")


def fetch_libs(cache: Path, npm: str | None = None) -> Path:
    """Local copies of ``CDN_FILES`` under ``cache`` (``<package@version>/<file>``), packed by npm once."""
    for package, file in sorted(set(CDN_FILES.values())):
        target = cache / package / file
        if target.is_file():
            continue
        npm = npm or find_program(None, ("npm",), "apt-get install npm (it fetches the libraries asv's page loads)")
        with tempfile.TemporaryDirectory(prefix="asv-www-") as tmp:
            run = subprocess.run([npm, "pack", "--silent", "--pack-destination", tmp, package],
                                 capture_output=True, text=True, timeout=300)
            tarballs = list(Path(tmp).glob("*.tgz"))
            if run.returncode != 0 or not tarballs:
                last = (run.stderr.strip().splitlines() or ["no output"])[-1]
                raise ScreenshotError(f"npm pack {package} failed: {last}")
            with tarfile.open(tarballs[0]) as tar:  # npm tarballs keep a package's files under package/
                member = tar.extractfile(f"package/{file}")
                if member is None:
                    raise ScreenshotError(f"npm's {package} has no file {file}")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(member.read())
    return cache


def stage_site(html: Path, libs: Path, dest: Path) -> Path:
    """A copy of ``html`` in ``dest`` whose index.html loads the CDN files from ``libs``' copies."""
    shutil.copytree(html, dest, dirs_exist_ok=True)
    shutil.copytree(libs, dest / VENDOR, dirs_exist_ok=True)
    page = (html / "index.html").read_text()
    unknown = sorted(set(LOADED_FROM_WEB.findall(page)) - set(CDN_FILES))
    if unknown:
        raise ScreenshotError(f"{html / 'index.html'} loads {unknown[0]}, which has no local copy here "
                              "(another asv version?): add it to CDN_FILES in tools/asv_screenshot.py")
    for url, (package, file) in CDN_FILES.items():
        page = page.replace(f'"{url}"', f'"{VENDOR}/{package}/{file}"')
    # The hashes pin the CDNs' builds; the npm copies are the same releases, not always the same bytes.
    (dest / "index.html").write_text(INTEGRITY.sub("", page))
    return dest


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002  # the base class's name
        """No line per request: the page fetches dozens of JSON files."""


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """``folder`` over HTTP on 127.0.0.1 at a free port, in a daemon thread; yields the base URL."""
    with loopback(functools.partial(_QuietHandler, directory=str(folder))) as port:
        yield f"http://127.0.0.1:{port}/"


def chromium_command(chromium: str, url: str, png: Path, profile: Path,
                     window: tuple[int, int] = WINDOW, budget_ms: int = BUDGET_MS) -> list[str]:
    """Headless Chromium that loads ``url`` and writes its screenshot to ``png``."""
    return [
        chromium, "--headless", "--disable-gpu", "--hide-scrollbars",
        "--no-sandbox",  # Chromium refuses to start as root with its sandbox on
        # Only the page's own requests: with Chromium's background connections on, its connections
        # were refused on this VM.
        "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}",  # a fresh profile: no cached JSON from an older site
        f"--window-size={window[0]},{window[1]}", f"--virtual-time-budget={budget_ms}",
        f"--screenshot={png}", url,
    ]


def screenshot(chromium: str, url: str, png: Path, timeout_s: float = 120) -> None:
    """One screenshot of ``url`` into ``png``; a one-line error when Chromium writes none."""
    png.unlink(missing_ok=True)  # an old picture left in place would pass for a new one
    with tempfile.TemporaryDirectory(prefix="asv-screenshot-") as profile:
        run = subprocess.run(chromium_command(chromium, url, png, Path(profile)),
                             capture_output=True, text=True, timeout=timeout_s)
    if run.returncode != 0 or not png.is_file():
        last = (run.stderr.strip().splitlines() or ["no output"])[-1]
        raise ScreenshotError(f"Chromium exited {run.returncode} without writing {png}: {last}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", type=Path, default=HTML, help="the site `asv publish` wrote")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the PNGs")
    parser.add_argument("--chromium", help="Chromium executable (default: chromium on PATH)")
    args = parser.parse_args(argv)
    try:
        check_site(args.html, GRAPHS)
        chromium = find_program(args.chromium, CHROMIUM_NAMES, "apt-get install chromium, or pass --chromium PATH")
        libs = fetch_libs(LIBS)
        args.out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="asv-site-") as tmp, \
                serve(stage_site(args.html, libs, Path(tmp))) as base:
            for graph in GRAPHS:
                png = args.out / graph.file
                screenshot(chromium, base + "index.html" + fragment(graph), png.resolve())
                print(f"wrote {png}")
    except (ScreenshotError, OSError, subprocess.TimeoutExpired) as e:
        print(f"asv_screenshot: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
