"""Every table the README and docs/ copy from a record matches that record."""

import re

import pytest

from ablations import docs
from vaecf.errors import VaecfError


@pytest.mark.parametrize("page", docs.pages(), ids=lambda p: p.name)
def test_page_tables_match_their_records(page) -> None:
    assert docs.render(page) == page.read_text(), f"{page} is out of date: run python -m ablations docs"


def test_an_include_is_replaced_by_its_file_and_a_missing_file_is_named(tmp_path) -> None:
    (tmp_path / "table.md").write_text("| a |\n")
    page = tmp_path / "README.md"
    page.write_text("x\n<!-- include: table.md -->\nold\n<!-- end include -->\ny\n")
    assert docs.sync(tmp_path) == [page]
    assert page.read_text() == "x\n<!-- include: table.md -->\n| a |\n<!-- end include -->\ny\n"
    assert docs.sync(tmp_path) == []
    page.write_text("<!-- include: gone.md -->\n<!-- end include -->\n")
    with pytest.raises(VaecfError, match="gone.md"):
        docs.render(page, tmp_path)


def test_a_part_of_a_file_is_included_by_its_name_and_a_missing_part_is_named(tmp_path) -> None:
    (tmp_path / "verdicts.md").write_text("<!-- part: 00-a -->\n- **a**: faster.\n<!-- end part -->\n"
                                          "<!-- part: 01-b -->\n- **b**: later.\n<!-- end part -->\n")
    page = tmp_path / "README.md"
    page.write_text("Step b:\n<!-- include: verdicts.md#01-b -->\nsooner, by hand\n<!-- end include -->\n")
    assert docs.sync(tmp_path) == [page]
    assert page.read_text() == "Step b:\n<!-- include: verdicts.md#01-b -->\n- **b**: later.\n<!-- end include -->\n"
    page.write_text("<!-- include: verdicts.md#02-c -->\n<!-- end include -->\n")
    with pytest.raises(VaecfError, match="part '02-c' of verdicts.md"):
        docs.render(page, tmp_path)


FIGURE = re.compile(r"\d+(?:[.,]\d+)*\s?(?:x|users/s|s|min|ms|%)(?![\w/])|\b0\.\d{2,}")
"""A figure a rerun would change: a factor (2.55x, 1.5 x), a speed, a time, a share, an NDCG (0.4378)."""

RUN_SECTIONS = {"README.md": ("## The ladder, measured here",),
                "docs/ladder.md": ("## What it measured here: the attribution ladder",
                                   "## Leave-one-out: what each switch is worth in the fastest configuration")}
"""The sections that say what a committed run measured: every figure in them comes from its records."""


def typed_figures(text: str, heading: str) -> list[str]:
    """The lines of the section under ``heading`` (to the next heading of its level) with a figure outside
    include blocks and code."""
    assert heading in text, f"no section {heading!r}"
    section = text.split(heading + "\n", 1)[1]
    level = heading.split(" ", 1)[0] + " "
    section = re.split(rf"^{level}", section, maxsplit=1, flags=re.M)[0]
    section = re.sub(r"^```.*?^```", "", docs._BLOCK.sub("", section), flags=re.S | re.M)
    return [line for line in section.splitlines() if FIGURE.search(line)]


@pytest.mark.parametrize("name", RUN_SECTIONS)
def test_what_a_run_measured_is_included_from_its_records_not_typed(name) -> None:
    text = (docs.ROOT / name).read_text()
    for heading in RUN_SECTIONS[name]:
        assert typed_figures(text, heading) == [], f"{name}, {heading}: figures typed by hand; include them " \
                                                   "from the run's summary.md, verdicts.md or table.md"


def test_a_figure_outside_an_include_block_is_found_and_one_inside_is_not() -> None:
    page = ("## Run\nIntro, batch 2,100 at commit a0f408d on cpu2-epyc-avx2, 2 workers.\n"
            "<!-- include: r/verdicts.md#01-a -->\n- **a**: 786 users/s, 1.68x: faster.\n<!-- end include -->\n"
            "```bash\nsleep 5 s\n```\n## Next\nOutside the section: 2.55x.\n")
    assert typed_figures(page, "## Run") == []
    for typed in ("sparse input is 1.68x faster", "1.5 x what", "469 users/s", "83 s against 140 s", "11 min",
                  "95% of", "NDCG@100 0.4378"):
        assert typed_figures(page.replace("2 workers.", typed), "## Run") == [f"Intro, batch 2,100 at commit "
                                                                            f"a0f408d on cpu2-epyc-avx2, {typed}"]
