"""Committed records are strict JSON, made from a clean tree at a named commit, and redraw as committed."""

import json
import re
from pathlib import Path

import pytest

from ablations import summary, verdicts
from ablations.report import derive, load_run, to_csv, to_markdown
from vaecf.provenance import header_of

RESULTS = Path(__file__).resolve().parents[1] / "results"
RUNS = sorted(p.parent for p in RESULTS.glob("*/*/run.json"))


def _refuse(constant: str) -> None:
    raise AssertionError(f"bare {constant}: records are strict JSON")


@pytest.mark.parametrize("path", sorted(RESULTS.rglob("*.json")), ids=lambda p: str(p.relative_to(RESULTS)))
def test_records_are_strict_json(path: Path) -> None:
    json.loads(path.read_text(), parse_constant=_refuse)


@pytest.mark.parametrize("run", RUNS, ids=lambda p: str(p.relative_to(RESULTS)))
def test_committed_runs_come_from_a_clean_tree_and_their_table_is_their_records(run: Path) -> None:
    records = load_run(run)
    for sha in (header_of(records["run"])["git_sha"], header_of(records["calibration"])["git_sha"]):
        assert sha and len(sha) == 40, f"{run}: made at {sha!r}, not at a clean commit"
    derived = derive(records)
    assert (run / "table.md").read_text() == to_markdown(derived)
    assert (run / "table.csv").read_text() == to_csv(derived)  # the CSV went stale unnoticed once
    # the sentences the README and docs/ include: python -m ablations plot RUN, then python -m ablations docs
    assert (run / "verdicts.md").read_text() == verdicts.markdown(derived)
    assert (run / "summary.md").read_text() == summary.markdown(run, derived)


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*/*/agree.md")), ids=lambda p: str(p.relative_to(RESULTS)))
def test_a_committed_agreement_is_its_two_runs_records(path: Path) -> None:
    """agree.md (``python -m ablations agree A B --out``, included by docs/ladder.md) names both runs: redone."""
    found = re.match(r"<!-- part: answer -->\n`python -m ablations agree (\S+) (\S+)`", path.read_text())
    assert found, f"{path}: does not name the runs it compares"
    runs = [RESULTS.parent / name for name in found.groups()]
    assert path.read_text() == summary.agreement([Path(name) for name in found.groups()],
                                                 [derive(load_run(run)) for run in runs])
