"""Open a run's HTML page in headless Chromium: does every image render, does it load anything?

    python -m ablations.browser results/<machine>/<run>/report.html [--screenshot docs/img/report.png]

A local HTTP server on 127.0.0.1 serves the page and a harness page that loads it in a frame and
reports each image's natural width back to the server. The page is served with a content
security policy that allows inline styles and ``data:`` images only and reports every other
load it blocks (any URL, any host) to the server: a self-contained page causes no report.
Chromium is also given that server as its proxy, so nothing reaches the network; requests that
name our pages as their referrer are recorded too (Chromium's own background requests, which
name none, are not the page's). ``--screenshot`` keeps a picture of the page's top (``WINDOW``).

Needs Chromium (Debian: ``apt-get install chromium``); without it, one line saying so.
"""

from __future__ import annotations

import argparse
import http.server
import json
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; report-uri /csp"
"""What a self-contained page needs, and where Chromium reports anything else it tried to load."""
WINDOW = (1280, 2000)
BUDGET_MS = 10_000
"""Virtual page time for loading; data-URI images decode in well under a second of it."""
TIMEOUT_S = 120

HARNESS = """<!doctype html><html><head><link rel="icon" href="data:,"></head><body>
<iframe id="page" src="/page.html" style="width:1200px;height:900px"></iframe>
<script>
document.getElementById("page").addEventListener("load", function () {
  var doc = this.contentDocument, imgs = Array.prototype.slice.call(doc.images);
  var result = imgs.map(function (i) { return {alt: i.alt, width: i.naturalWidth, complete: i.complete}; });
  var report = new Image(); report.src = "/result?" + encodeURIComponent(JSON.stringify(result));
});
</script></body></html>"""


class BrowserError(Exception):
    """No Chromium, or Chromium that failed: one line."""


@dataclass
class Check:
    """What Chromium saw: each image's (alt, natural width), and every request besides the test's own."""

    images: list[dict[str, object]] | None = None
    requests: list[str] = field(default_factory=list)
    server: str = ""
    """host:port the page was served from."""


def find_chromium(given: str | None = None) -> str:
    found = shutil.which(given) if given else next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
    if not found:
        raise BrowserError(f"Chromium not found ({given or ' or '.join(CHROMIUM_NAMES)}): apt-get install chromium")
    return found


@contextmanager
def serve(page: Path, check: Check) -> Iterator[str]:
    """The page and the harness on 127.0.0.1; every other request (as a proxy, too) recorded in ``check``."""
    own = {"/page.html": page.read_bytes(), "/harness.html": HARNESS.encode()}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            url = urlsplit(self.path)
            local = url.hostname in (None, "127.0.0.1")
            if local and url.path == "/result":
                check.images = json.loads(unquote(url.query))
                return self._answer(204, b"")
            if local and url.path == "/csp":
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                report = json.loads(body or b"{}").get("csp-report", {})
                check.requests.append(f"blocked {report.get('blocked-uri')} ({report.get('violated-directive')})")
                return self._answer(204, b"")
            if local and url.path in own:
                return self._answer(200, own[url.path], url.path == "/page.html")
            if self.headers.get("Referer"):  # the page's (the browser's own requests name no referrer)
                check.requests.append(f"{self.command} {self.path}")
            self._answer(404, b"")

        do_POST = do_HEAD = do_CONNECT = do_GET  # noqa: N815 - https through the proxy arrives as CONNECT

        def _answer(self, code: int, body: bytes, policy: bool = False) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            if policy:
                self.send_header("Content-Security-Policy", POLICY)
            self.end_headers()
            if body:
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with loopback(Handler) as port:
        yield f"127.0.0.1:{port}"


@contextmanager
def loopback(handler: Callable[..., http.server.BaseHTTPRequestHandler]) -> Iterator[int]:
    """An HTTP server on 127.0.0.1 at a free port (the OS picks it), in a daemon thread for the block;
    yields the port. The one server behind this module's check and tools/asv_screenshot.py."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def chromium_command(chromium: str, server: str, profile: Path, action: list[str], url: str) -> list[str]:
    return [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--proxy-server=http://{server}", "--proxy-bypass-list=<-loopback>", f"--user-data-dir={profile}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--virtual-time-budget={BUDGET_MS}", *action, url]


def check_page(page: Path, screenshot: Path | None = None, chromium: str | None = None) -> Check:
    """Open ``page`` through the harness (images, requests) and, with ``screenshot``, take its picture."""
    binary = find_chromium(chromium)
    check = Check()
    with serve(page, check) as server, tempfile.TemporaryDirectory() as tmp:
        check.server = server
        runs = [(["--dump-dom"], "harness.html")]
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            runs.append(([f"--screenshot={screenshot.resolve()}"], "page.html"))
        for k, (action, path) in enumerate(runs):
            command = chromium_command(binary, server, Path(tmp) / f"profile{k}", action, f"http://{server}/{path}")
            done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
            if done.returncode != 0:
                raise BrowserError(f"Chromium exited {done.returncode}: {done.stderr.strip()[-300:]}")
    return check


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ablations.browser", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("page", type=Path, help="a run's report.html")
    p.add_argument("--screenshot", type=Path, help="where to keep a PNG of the page")
    p.add_argument("--chromium", help="the browser's name or path (default: the first of "
                                      + ", ".join(CHROMIUM_NAMES) + " on PATH)")
    args = p.parse_args(argv)
    try:
        if not args.page.is_file():
            raise BrowserError(f"{args.page}: no such file (python -m ablations report RUN writes it)")
        check = check_page(args.page, args.screenshot, args.chromium)
    except (BrowserError, subprocess.TimeoutExpired) as e:
        print(f"browser: error: {e}", file=sys.stderr)
        return 2
    broken = [i for i in check.images or [] if not i["width"]]
    print(f"images: {len(check.images or [])} ({len(broken)} not rendered); requests: {len(check.requests)}"
          + "".join(f"\n  {r}" for r in check.requests))
    return 0 if check.images and not broken and not check.requests else 1


if __name__ == "__main__":
    sys.exit(main())
