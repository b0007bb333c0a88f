"""``vaecf compare`` end to end on tiny synthetic data: the table, the oracle row, resuming."""

import dataclasses
import json

import pytest

from vaecf.cli import main
from vaecf.compare import _check_resumable, precision_lines, seed_summary
from vaecf.config import ModelConfig, RunConfig, TrainConfig
from vaecf.errors import ConfigError


def test_summarise_gives_mean_and_standard_error() -> None:
    runs = [{"test": {"ndcg@100": v, "recall@20": v, "recall@50": v}} for v in (0.1, 0.2, 0.3)]
    mean, se = seed_summary(runs)["ndcg@100"]
    assert mean == pytest.approx(0.2) and se == pytest.approx(0.1 / 3**0.5)
    assert seed_summary(runs[:1])["recall@20"] == (0.1, 0.0)


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


def _runs(values: list[float]) -> dict:
    return {"runs": [{"seed": k, "validation": {"ndcg@100": v}} for k, v in enumerate(values)]}


def test_precision_lines_compare_at_equal_seeds_against_twice_the_seed_noise() -> None:
    record = {"results": {"vae float32": _runs([0.40, 0.42, 0.44]),
                          "vae mixed_bfloat16": _runs([0.41, 0.43, 0.45]),  # +0.01, sd 0.02: within
                          "vae mixed_float16": _runs([0.50, 0.52, 0.54])}}  # +0.10: beyond
    lines = precision_lines(record)
    rows = {line.split(" | ")[0].strip("| "): line for line in lines if line.startswith("| mixed")}
    assert "| +0.0100 ± 0.0000 | 0.0400 | yes |" in rows["mixed_bfloat16"]
    assert rows["mixed_float16"].endswith("| NO |")
    assert precision_lines({"results": {"vae": _runs([0.4, 0.5])}}) == []  # one precision: no section


def test_resuming_with_other_settings_is_refused(tmp_path) -> None:
    config = RunConfig(model=ModelConfig(), train=TrainConfig(seed=5))
    done = {"runs": [{}], "config": json.loads(json.dumps(dataclasses.asdict(config)))}
    _check_resumable(tmp_path / "q.json", "vae", done, RunConfig(model=ModelConfig(), train=TrainConfig(seed=6)))
    with pytest.raises(ConfigError, match=r"'vae' runs with other settings \(train.lr differ\)"):
        _check_resumable(tmp_path / "q.json", "vae", done,
                         RunConfig(model=ModelConfig(), train=TrainConfig(seed=5, lr=0.01)))


@pytest.mark.slow
def test_compare_trains_each_precision_at_the_same_seeds(tmp_path) -> None:
    data, out = tmp_path / "data", tmp_path / "precision.json"
    assert main(["data", "prepare", "synthetic:tiny", "--out", str(data)]) == 0
    assert main(["compare", "--data", str(data), "--models", "vae", "--seeds", "2", "--epochs", "1",
                 "--batch-size", "50", "--precisions", "float32,mixed_bfloat16", "--out", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    assert sorted(results) == ["vae float32", "vae mixed_bfloat16"]
    assert results["vae mixed_bfloat16"]["config"]["train"]["precision"] == "mixed_bfloat16"
    seeds = {name: [r["seed"] for r in res["runs"]] for name, res in results.items()}
    assert seeds["vae mixed_bfloat16"] == seeds["vae float32"] == [98765, 98766]
    assert "| mixed_bfloat16 | 2 |" in out.with_suffix(".md").read_text()
    # Resuming into the same record with another learning rate would mix settings: refused.
    assert main(["compare", "--data", str(data), "--models", "vae", "--seeds", "2", "--epochs", "1", "--lr", "0.01",
                 "--batch-size", "50", "--precisions", "float32,mixed_bfloat16", "--out", str(out)]) == 2
