"""The public API: light to import, and the README's example runs as written."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

import vaecf

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_public_name_resolves() -> None:
    for name in vaecf.__all__:
        assert getattr(vaecf, name) is not None
    module = importlib.import_module("vaecf.recommend")  # the submodule of that name does not shadow it
    assert vaecf.recommend is module.recommend
    with pytest.raises(AttributeError, match="no attribute 'nosuch'"):
        vaecf.nosuch  # noqa: B018


@pytest.mark.slow
def test_the_documented_example_runs(capsys) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) == 1
    exec(compile(blocks[0], str(README), "exec"), {})  # noqa: S102
    out = capsys.readouterr().out
    assert re.search(r"best epoch [01], test NDCG@100 0\.\d{3}", out)
    recommended = re.search(r"recommended: \[(.*)\]", out)
    assert recommended is not None and len(recommended.group(1).split(",")) == 10
