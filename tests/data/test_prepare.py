"""prepare() and default_protocol(): input checks, the prepared folder, the cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from vaecf.config import ProtocolConfig
from vaecf.data.prepare import default_protocol, prepare
from vaecf.errors import DataError

KNOWN = r"known: ml-20m, ml-1m, ml-100k, netflix, synthetic\[:preset\|key=value,...\]$"


@pytest.mark.parametrize("name", ["ml-10m", "movielens", ""])
def test_unknown_dataset_lists_the_known_ones(tmp_path: Path, name: str) -> None:
    with pytest.raises(DataError, match=f"unknown dataset '{name}'; {KNOWN}"):
        prepare(name, tmp_path / "out")
    with pytest.raises(DataError, match=f"unknown dataset '{name}'; {KNOWN}"):
        default_protocol(name)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("n", [0, -5])
def test_heldout_users_below_one_is_refused_before_any_work(tmp_path: Path, n: int) -> None:
    with pytest.raises(DataError, match=f"heldout_users={n}: must be an integer >= 1"):
        default_protocol("ml-100k", n)
    with pytest.raises(DataError, match=f"heldout_users={n}"):
        prepare("synthetic:tiny", tmp_path / "out", protocol=ProtocolConfig(heldout_users=n))
    assert not (tmp_path / "out").exists()


def test_bad_synthetic_spec_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown synthetic field 'colour'.*known: clusters, count_sigma"):
        prepare("synthetic:tiny,colour=3", tmp_path / "out")
