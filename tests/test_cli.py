"""The command line end to end on tiny synthetic data, and its errors (one line, exit 2)."""

import json

import pytest

from vaecf.cli import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    assert main(["data", "prepare", "synthetic:tiny", "--out", str(root / "data")]) == 0
    assert main(["train", "--data", str(root / "data"), "--out", str(root / "run"), "--epochs", "2",
                 "--batch-size", "50", "--set", "total_anneal_steps=100"]) == 0
    return root


@pytest.mark.slow
def test_train_writes_a_run_that_evaluates_and_recommends(run, capsys) -> None:
    result = json.loads((run / "run" / "result.json").read_text())
    assert result["best_epoch"] in (0, 1) and result["users_per_s"]["median"] > 0
    config = json.loads((run / "run" / "config.json").read_text())
    assert config["config"]["train"]["total_anneal_steps"] == 100

    capsys.readouterr()
    assert main(["evaluate", str(run / "run"), "--split", "test", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert set(metrics) >= {"ndcg@100", "recall@20", "recall@50"} and 0 < metrics["ndcg@100"] <= 1

    stats = json.loads((run / "data" / "stats.json").read_text())
    assert stats["oracle_test"]["ndcg@100"] > 0
    assert main(["recommend", str(run / "run"), "--items", "1,2,3", "-k", "5"]) == 0
    top = [int(i) for i in capsys.readouterr().out.strip().split(",")]
    assert len(top) == 5 and not {1, 2, 3} & set(top)


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    (["recommend", "RUN", "--items", "999999"], "not in this model's catalogue: 999999"),
    (["recommend", "RUN", "--items", "a,b"], "comma-separated integer item ids"),
    (["evaluate", "NOWHERE"], "not a finished training run"),
    (["train", "--data", "NOWHERE", "--out", "X"], "no prepared split here"),
    (["train", "--data", "DATA", "--out", "X", "--set", "batchsize=5"], "expected FIELD=VALUE"),
    (["train", "--data", "DATA", "--out", "X", "--set", "xla=maybe"], "not a boolean"),
])
def test_user_mistakes_are_one_clear_line(run, tmp_path, capsys, args, message) -> None:
    paths = {"RUN": str(run / "run"), "DATA": str(run / "data"), "NOWHERE": str(tmp_path / "nowhere"),
             "X": str(tmp_path / "x")}
    assert main([paths.get(a, a) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vaecf: error: ") and message in err and "Traceback" not in err


def test_bench_measures_timed_steps_after_warmup(tiny_split) -> None:
    from vaecf.bench import measure
    from vaecf.config import TrainConfig

    row = measure(tiny_split, TrainConfig(batch_size=20), warmup=2, steps=4, parts=True)
    assert row["users_per_s"]["steps"] >= 4 and row["users_per_s"]["median"] > 0
    assert row["breakdown_s"]["step"] > 0 and row["breakdown_s"]["first_layer"] > 0
    assert row["flops_per_user"] > 0


@pytest.mark.slow
def test_bench_keeps_finished_rows_and_reruns_a_killed_one(run, tmp_path, capsys) -> None:
    out = tmp_path / "bench.json"
    args = ["bench", "--data", str(run / "data"), "--batch-sizes", "20", "--inputs", "sparse,dense",
            "--warmup", "1", "--steps", "2", "--out", str(out)]
    assert main(args) == 0
    first = json.loads(out.read_text())
    assert [(r["input"], r["status"]) for r in first["rows"]] == [("sparse", "done"), ("dense", "done")]
    # What a process killed during the dense row leaves behind.
    killed = {**first, "rows": [first["rows"][0], {**{k: first["rows"][1][k] for k in
                                                        ("batch_size", "input", "pipeline", "precision", "xla")},
                                                     "status": "started"}]}
    out.write_text(json.dumps(killed))
    capsys.readouterr()
    assert main(args) == 0
    assert "input=dense: did not finish last time" in capsys.readouterr().err
    again = json.loads(out.read_text())
    assert again["rows"][0] == first["rows"][0]  # kept, not measured again
    assert again["rows"][1]["status"] == "done" and again["rows"][1]["mfu"] > 0

    other = json.loads(out.read_text())
    other["data"]["cache_key"] = "another"
    out.write_text(json.dumps(other))
    assert main(args) == 2
    assert "holds results for another data set" in capsys.readouterr().err
