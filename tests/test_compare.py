"""``vaecf compare`` end to end on tiny synthetic data: the table, the oracle row, resuming."""

import json

import pytest

from vaecf.cli import main
from vaecf.compare import summarise


def test_summarise_gives_mean_and_standard_error() -> None:
    runs = [{"test": {"ndcg@100": v, "recall@20": v, "recall@50": v}} for v in (0.1, 0.2, 0.3)]
    mean, se = summarise(runs)["ndcg@100"]
    assert mean == pytest.approx(0.2) and se == pytest.approx(0.1 / 3**0.5)
    assert summarise(runs[:1])["recall@20"] == (0.1, 0.0)


@pytest.mark.slow
def test_compare_tabulates_models_with_the_oracle_and_resumes(tmp_path, capsys) -> None:
    data, out = tmp_path / "data", tmp_path / "quality.json"
    assert main(["data", "prepare", "synthetic:tiny", "--out", str(data)]) == 0
    args = ["compare", "--data", str(data), "--models", "vae,popularity", "--seeds", "2", "--epochs", "1",
            "--batch-size", "50", "--out", str(out)]
    assert main(args) == 0
    record = json.loads(out.read_text())
    assert [r["seed"] for r in record["results"]["vae"]["runs"]] == [98765, 98766]
    assert list(record["results"]["vae"]["runs"][0]["validation_ndcg_by_epoch"]) == ["0"]  # one epoch
    table = out.with_suffix(".md").read_text()
    oracle = json.loads((data / "stats.json").read_text())["oracle_test"]["ndcg@100"]
    assert "| vae | 2 |" in table and "| popularity | 1 |" in table
    assert f"| oracle | - | {oracle:.4f} |" in table

    # Asking for a third seed trains only that one; the first two runs are kept as they were.
    assert main([*args[:6], "3", *args[7:]]) == 0
    again = json.loads(out.read_text())["results"]["vae"]["runs"]
    assert again[:2] == record["results"]["vae"]["runs"] and again[2]["seed"] == 98767
