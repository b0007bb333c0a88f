"""The command line end to end on tiny synthetic data, and its errors (one line, exit 2)."""

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from vaecf.cli import build_parser, main


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
    (["train", "--data", "DATA", "--out", "X", "--set", "xla=maybe"], "xla must be true or false"),
    (["recommend", "RUN", "--items", "1", "-k", "100000"], "-k 100000: k must be in 1.."),
    (["recommend", "RUN", "--items", ","], "the history is empty"),
])
def test_user_mistakes_are_one_clear_line(run, tmp_path, capsys, args, message) -> None:
    paths = {"RUN": str(run / "run"), "DATA": str(run / "data"), "NOWHERE": str(tmp_path / "nowhere"),
             "X": str(tmp_path / "x")}
    assert main([paths.get(a, a) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vaecf: error: ") and message in err and "Traceback" not in err


@pytest.mark.slow
def test_a_run_refuses_other_data_and_moves_with_its_own(run, tmp_path, capsys) -> None:
    other = tmp_path / "other"
    assert main(["data", "prepare", "synthetic:tiny", "--heldout-users", "20", "--out", str(other)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run / "run"), "--data", str(other)]) == 2
    err = capsys.readouterr().err
    heldout = json.loads((run / "data" / "stats.json").read_text())["protocol"]["heldout_users"]
    assert err.count("\n") == 1 and "is not the data" in err and f"--heldout-users {heldout} " in err

    # The run records its data folder relative to itself: both moved together still evaluate.
    moved = tmp_path / "moved"
    for name in ("run", "data"):
        shutil.copytree(run / name, moved / name)
    assert json.loads((moved / "run" / "config.json").read_text())["data_dir"] == "../data"
    assert main(["evaluate", str(moved / "run")]) == 0


def _bad(tmp_path, *args: str) -> list[str]:
    return [a.replace("FILE", str(tmp_path / "file")).replace("DIR", str(tmp_path / "dir")) for a in args]


TRAIN = ("train", "--data", "DIR", "--out", "DIR")


@pytest.mark.parametrize("args, names", [
    ((*TRAIN, "--batch-size", "0"), "--batch-size 0: batch_size must be >= 1"),
    ((*TRAIN, "--eval-every", "0"), "--eval-every 0: eval_every must be >= 1"),
    ((*TRAIN, "--epochs", "0"), "--epochs 0: epochs must be >= 1"),
    ((*TRAIN, "--epochs", "-1"), "--epochs -1: epochs must be >= 1"),
    ((*TRAIN, "--lr", "-1"), "--lr -1.0: lr must be > 0"),
    ((*TRAIN, "--workers", "0"), "--workers 0: workers must be >= 1"),
    ((*TRAIN, "--set", "batch_size=x"), "--set batch_size=x: batch_size must be an integer"),
    ((*TRAIN, "--set", "nosuch=1"), "--set nosuch=1: expected FIELD=VALUE"),
    ((*TRAIN, "--set", "batch_scope=each"), "--set batch_scope=each: batch_scope must be one of global, worker"),
    (("train", "--data", "DIR", "--out", "FILE"), "is a file; a folder is needed"),
    (("data", "prepare", "synthetic:tiny", "--heldout-users", "0", "--out", "DIR"),
     "--heldout-users 0: heldout_users must be >= 1"),
    (("data", "prepare", "synthetic:tiny", "--heldout-users", "-5", "--out", "DIR"),
     "--heldout-users -5: heldout_users must be >= 1"),
    (("data", "prepare", "synthetic:tiny", "--out", "FILE"), "is a file; a folder is needed"),
    (("data", "prepare", "synthetic:tiny", "--out", "FILE/data"), "file is a file, not a folder"),
    (("data", "prepare", "ml-10m", "--out", "DIR"), "unknown dataset 'ml-10m'; known: ml-20m"),
    (("data", "prepare", "synthetic:tiny,users=0", "--out", "DIR"), "synthetic:tiny,users=0"),
    (("data", "prepare", "synthetic:huge", "--out", "DIR"), "unknown synthetic preset 'huge'"),
    (("recommend", "DIR", "--items", "1", "-k", "-3"), "argument -k: -3 must be >= 1"),
    (("recommend", "DIR", "--items", "1", "-k", "0"), "argument -k: 0 must be >= 1"),
    (("compare", "--data", "DIR", "--out", "DIR", "--models", "vae,nosuch"), "--models vae,nosuch"),
    (("compare", "--data", "DIR", "--out", "x.json", "--seeds", "0"), "argument --seeds: 0 must be >= 1"),
    (("bench", "--batch-sizes", "500,0"), "argument --batch-sizes: 0 must be >= 1"),
    (("bench", "--inputs", "sparse,csr"), "argument --inputs: unknown 'csr'"),
])
def test_a_bad_value_is_refused_in_one_line_naming_it(tmp_path, capsys, args, names) -> None:
    (tmp_path / "file").write_text("")
    assert main(_bad(tmp_path, *args)) == 2
    err = capsys.readouterr().err
    assert err.startswith("vaecf") and err.count("\n") == 1 and "Traceback" not in err
    assert names in err


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _parsers(child)


def test_every_option_states_its_default() -> None:
    for parser in _parsers(build_parser()):
        help_of = parser.formatter_class(prog=parser.prog)._get_help_string
        for action in parser._actions:
            if action.option_strings and action.dest != "help" and not action.required:
                assert "default" in (help_of(action) or ""), f"{parser.prog} {action.option_strings[0]}"


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


def test_single_host_workers_name_only_loopback_addresses() -> None:
    from vaecf.launch import _free_ports, tf_configs

    ports = _free_ports(3)
    configs = [json.loads(c) for c in tf_configs(ports)]
    assert [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in range(3)]
    assert all(c["cluster"] == {"worker": [f"127.0.0.1:{p}" for p in ports]} for c in configs)
    assert len(set(ports)) == 3


@pytest.mark.parametrize("installed, chosen", [(True, "horovod"), (False, "tf-distribute")])
def test_engine_auto_is_horovod_where_installed(monkeypatch, installed: bool, chosen: str) -> None:
    from vaecf import launch

    monkeypatch.setattr(launch, "horovod_installed", lambda: installed)
    assert launch.resolve_engine("auto") == chosen
    assert launch.resolve_engine("tf-distribute") == "tf-distribute"


@pytest.mark.slow
def test_tensorflow_start_up_logging_is_silent_unless_verbose(run) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    quiet = subprocess.run([sys.executable, "-m", "vaecf", "evaluate", str(run / "run")], env=env,
                           capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0 and quiet.stderr == ""
    loud = subprocess.run([sys.executable, "-m", "vaecf", "--verbose", "evaluate", str(run / "run")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert loud.returncode == 0 and loud.stderr != ""


def test_a_local_archive_is_checked_and_no_verify_is_recorded(ml100k_file, tmp_path, capsys) -> None:
    import zipfile

    archive = tmp_path / "ml-100k.zip"  # the real ratings, but not the published archive's bytes
    with zipfile.ZipFile(archive, "w") as z:
        z.write(ml100k_file, "ml-100k/u.data")
    args = ["data", "prepare", "ml-100k", "--source", str(archive), "--out", str(tmp_path / "data")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not the published ml-100k.zip" in err and "--no-verify" in err
    assert main([*args, "--no-verify"]) == 0
    assert json.loads((tmp_path / "data" / "stats.json").read_text())["source_verified"] is False


@pytest.mark.parametrize("hosts, workers, message", [
    ("h1,h2", "3", "--hosts h1,h2: 3 workers do not divide among 2 hosts"),
    ("h1:2,h2:2", "3", "--hosts h1:2,h2:2 has 4 slots for 3 workers"),
    ("h1:1,h9:1", "2", "--hosts h1:1,h9:1: unknown host 'h9'"),
    ("h1:1,h1:1", "2", "a host named twice"),
    ("h1:0,h2:2", "2", "each item is HOST or HOST:SLOTS with SLOTS >= 1"),
    ("h1:1,h2:1", None, "--hosts h1:1,h2:1 needs --workers N"),
])
def test_bad_hosts_are_one_line_before_anything_is_made(tmp_path, capsys, monkeypatch, hosts, workers,
                                                        message) -> None:
    import socket

    def resolve(name, *args, **kwargs):  # h1 and h2 exist; nothing goes to a name server
        if name in ("h1", "h2"):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.77.0.1", 0))]
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    monkeypatch.delenv("VAECF_WORKER", raising=False)
    out = tmp_path / "run"
    args = ["train", "--data", str(tmp_path), "--out", str(out), "--hosts", hosts,
            *(["--workers", workers] if workers else [])]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("vaecf: error: ") and err.count("\n") == 1 and message in err
    assert not out.exists()
