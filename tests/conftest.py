"""Shared fixtures: a tiny split made on the spot, and the real ML-100K ratings when present."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from tests.factories import random_ratings
from vaecf import progress
from vaecf.config import ProtocolConfig
from vaecf.data.protocol import apply_protocol
from vaecf.data.split import Split

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(autouse=True)
def _progress_as_commands_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """A command's ``--quiet`` sets a process-wide switch (``progress.set_quiet``): a test that runs a
    command's ``main`` in this process must not silence the progress of the tests after it."""
    monkeypatch.setattr(progress, "QUIET", False)


def shared_data_dir() -> Path:
    """$VAECF_DATA_DIR, else the ``shared/data`` folder beside the repository (as noxfile.py's _prepare_ml100k)."""
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    return Path(os.environ.get("VAECF_DATA_DIR", default))


@pytest.fixture(scope="session")
def ml100k_file() -> Path:
    """The real MovieLens-100K ratings file (u.data); the test is skipped where it is absent."""
    path = shared_data_dir() / "ml-100k" / "u.data"
    if not path.is_file():
        pytest.skip(f"real MovieLens-100K ratings not found at {path} (set VAECF_DATA_DIR)")
    return path


@pytest.fixture(scope="session")
def ml100k_ratings(ml100k_file: Path) -> pd.DataFrame:
    return pd.read_csv(ml100k_file, sep="\t", names=["user", "item", "rating", "ts"])


@pytest.fixture(scope="session")
def ml100k_split(ml100k_ratings: pd.DataFrame) -> Split:
    return apply_protocol(ml100k_ratings, ProtocolConfig(heldout_users=100))


@pytest.fixture(scope="session")
def tiny_split() -> Split:
    return apply_protocol(random_ratings(), ProtocolConfig(heldout_users=30))
