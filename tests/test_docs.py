"""Every table the README and docs/ copy from a record matches that record."""

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
