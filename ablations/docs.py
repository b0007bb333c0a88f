"""Tables in the README and docs/ that come from records: ``python -m ablations docs`` refreshes them.

A page marks each such table with the file it copies::

    <!-- include: results/<machine>/<run>/table.md -->
    ...the file's text, kept in sync...
    <!-- end include -->

so a number on a page is never typed by hand, and ``tests/test_docs.py`` fails when a page and
its records disagree. A sentence about a run comes from its record the same way: the report
writes ``verdicts.md`` in parts (``<!-- part: SLUG -->`` ... ``<!-- end part -->``, one per
step), and ``<!-- include: results/<machine>/<run>/verdicts.md#SLUG -->`` copies one part, so a
rerun that flips a verdict changes the sentence on the page; ``summary.md`` (``ablations.summary``) holds
the sentences about the run as a whole (which run, T and the target, which step came first) the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from vaecf.errors import VaecfError
from vaecf.io import atomic_write

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("README.md", "docs/*.md")
_BLOCK = re.compile(r"(<!-- include: (?P<path>\S+) -->\n)(?P<body>.*?)(<!-- end include -->)", re.S)


def pages(root: Path = ROOT) -> list[Path]:
    return sorted(p for pattern in PAGES for p in root.glob(pattern))


def render(page: Path, root: Path = ROOT) -> str:
    """The page's text with every include block replaced by its file's current text."""
    def fill(match: re.Match[str]) -> str:
        path, _, part = match["path"].partition("#")
        source = root / path
        if not source.is_file():
            raise VaecfError(f"{page}: includes {path}, which does not exist")
        text = source.read_text()
        if part:
            found = re.search(rf"<!-- part: {re.escape(part)} -->\n(.*?)<!-- end part -->", text, re.S)
            if found is None:
                raise VaecfError(f"{page}: includes part {part!r} of {path}, which has no such part")
            text = found.group(1)
        return match.group(1) + text + match.group(4)

    return _BLOCK.sub(fill, page.read_text())


def sync(root: Path = ROOT) -> list[Path]:
    """Rewrite the pages whose include blocks are out of date; the pages changed."""
    changed = []
    for page in pages(root):
        text = render(page, root)
        if text != page.read_text():
            atomic_write(page, _writer(text))
            changed.append(page)
    return changed


def _writer(text: str) -> Callable[[Path], int]:
    return lambda tmp: tmp.write_text(text)
