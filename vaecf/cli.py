"""The ``vaecf`` command line: prepare data, train, evaluate, recommend, compare, benchmark."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: its start-up chatter is not ours

from typing import TYPE_CHECKING

from vaecf.config import PRESETS, ModelConfig, RunConfig, TrainConfig
from vaecf.errors import VaecfError

if TYPE_CHECKING:  # TensorFlow loads only for the commands that need it
    from vaecf.data.split import Split
    from vaecf.train import Trainer

TRAIN_SWITCHES = ("batch_size", "lr", "epochs", "seed", "eval_every", "input", "pipeline", "precision",
                  "xla", "workers", "engine")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args, argv) or 0)
    except VaecfError as e:
        print(f"vaecf: error: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"vaecf: error: {e.filename}: no such file or folder", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vaecf: interrupted; finished epochs are kept and the run resumes with the same command",
              file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vaecf", description=__doc__)
    sub = p.add_subparsers(required=True, metavar="COMMAND")

    data = sub.add_parser("data", help="prepare datasets").add_subparsers(required=True, metavar="ACTION")
    prep = data.add_parser("prepare", help="apply the paper's protocol and write the split")
    prep.add_argument("dataset", help="ml-20m, ml-1m, ml-100k, netflix, synthetic[:preset|key=value,...]")
    prep.add_argument("--source", type=Path, help="local archive, ratings file or Netflix folder")
    prep.add_argument("--heldout-users", type=int, help="N validation and N test users")
    prep.add_argument("--out", type=Path, required=True)
    prep.set_defaults(func=_cmd_prepare)

    train = sub.add_parser("train", help="train Mult-VAE or Mult-DAE on a prepared split")
    train.add_argument("--data", type=Path, required=True)
    train.add_argument("--out", type=Path, required=True)
    add_train_options(train)
    train.add_argument("--hosts", help="multi-host Horovod, e.g. host1:4,host2:4")
    train.set_defaults(func=_cmd_train)

    ev = sub.add_parser("evaluate", help="NDCG@100, Recall@20, Recall@50 of a run's best epoch")
    ev.add_argument("run", type=Path)
    ev.add_argument("--split", choices=("validation", "test"), default="test")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=_cmd_evaluate)

    rec = sub.add_parser("recommend", help="top-k items for a history of item ids")
    rec.add_argument("run", type=Path)
    rec.add_argument("--items", required=True, help="comma-separated original item ids")
    rec.add_argument("-k", type=int, default=20)
    rec.set_defaults(func=_cmd_recommend)

    from vaecf.compare import add_compare_parser
    add_compare_parser(sub)
    from vaecf.bench import add_bench_parser
    add_bench_parser(sub)
    return p


def add_train_options(p: argparse.ArgumentParser) -> None:
    """Model and training switches shared by ``train`` and ``compare``; defaults come from the preset."""
    p.add_argument("--model", choices=("vae", "dae"), default="vae")
    p.add_argument("--preset", choices=sorted(PRESETS), default="paper")
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--eval-every", type=int)
    p.add_argument("--input", choices=("dense", "sparse"))
    p.add_argument("--pipeline", choices=("feed", "tfdata"))
    p.add_argument("--precision", choices=("float32", "mixed_float16", "mixed_bfloat16"))
    p.add_argument("--xla", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--workers", type=int)
    p.add_argument("--engine", choices=("horovod", "tf-distribute"))
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", dest="sets",
                   help="any TrainConfig field, e.g. --set total_anneal_steps=15000 (repeatable)")


def run_config(args: argparse.Namespace) -> RunConfig:
    """The preset, overridden by every switch given on the command line."""
    overrides = {k: getattr(args, k) for k in TRAIN_SWITCHES if getattr(args, k, None) is not None}
    overrides.update(parse_sets(getattr(args, "sets", [])))
    train = PRESETS[args.preset].with_overrides(**overrides)
    return RunConfig(model=ModelConfig.for_kind(args.model, train.batch_size), train=train)


def parse_sets(items: Sequence[str]) -> dict[str, object]:
    """``["batch_size=2500", "xla=true"]`` -> typed TrainConfig overrides."""
    types = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    out: dict[str, object] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or key not in types:
            raise VaecfError(f"--set {item!r}: expected FIELD=VALUE with FIELD one of {', '.join(types)}")
        kind = types[key]
        try:
            if kind == "bool":
                if raw.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(f"{raw!r} is not a boolean")
                out[key] = raw.lower() in ("true", "1")
            elif kind in ("int", "float"):
                out[key] = {"int": int, "float": float}[kind](raw)
            else:
                out[key] = raw
        except ValueError as e:
            raise VaecfError(f"--set {item!r}: {e}") from e
    return out


def _cmd_prepare(args: argparse.Namespace, argv: list[str]) -> int:
    from vaecf.data.prepare import default_protocol, prepare

    protocol = default_protocol(args.dataset, args.heldout_users)
    split = prepare(args.dataset, args.out, source=args.source, protocol=protocol)
    print(json.dumps(split.stats, indent=2))
    return 0


def _cmd_train(args: argparse.Namespace, argv: list[str]) -> int:
    config = run_config(args)
    if config.train.workers > 1:
        from vaecf.launch import is_worker, launch_workers, world_from_env

        if not is_worker():
            return launch_workers(argv, config.train.workers, config.train.engine, args.hosts)
        world = world_from_env(config.train.engine)
    else:
        world = None
    from vaecf.data.split import Split
    from vaecf.io import write_json
    from vaecf.perf import device_peak_bytes, peak_rss_bytes
    from vaecf.train import Trainer

    split = Split.load(args.data)
    trainer = Trainer(split.n_items, config, world=world)
    result = trainer.fit(split, out=args.out, meta={"data_dir": str(args.data.resolve())})
    if trainer.world.rank == 0:
        summary = {"best_epoch": result.best_epoch, "validation": result.best, "users_per_s": result.throughput,
                   "train_s": result.train_seconds, "workers": trainer.world.size,
                   "peak_rss_bytes": peak_rss_bytes(), "device_peak_bytes": device_peak_bytes()}
        write_json(args.out / "result.json", summary)
        print(json.dumps(summary))
    return 0


def load_run(run: Path) -> tuple[Trainer, Split]:
    """Rebuild a finished run's model with its best weights, and its split."""
    from vaecf.data.split import Split
    from vaecf.io import read_json
    from vaecf.train import Trainer

    if not (run / "config.json").is_file() or not (run / "best" / "weights.index").is_file():
        raise VaecfError(f"{run}: not a finished training run (config.json or best/weights missing)")
    saved = read_json(run / "config.json")
    split = Split.load(Path(saved["data_dir"]))
    trainer = Trainer(split.n_items, RunConfig.from_dict(saved["config"]))
    trainer.restore_best(run)
    return trainer, split


def _cmd_evaluate(args: argparse.Namespace, argv: list[str]) -> int:
    trainer, split = load_run(args.run)
    result = trainer.evaluate(split, args.split).to_dict()
    if args.json:
        print(json.dumps({"split": args.split, **result}))
    else:
        print(f"{args.split}: " + "  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                            for k, v in result.items()))
    return 0


def _cmd_recommend(args: argparse.Namespace, argv: list[str]) -> int:
    import numpy as np
    import scipy.sparse as sp

    from vaecf.metrics import mask_foldin, top_k

    trainer, split = load_run(args.run)
    column = {int(item): j for j, item in enumerate(split.item_ids)}
    try:
        ids = [int(s) for s in args.items.split(",") if s.strip()]
    except ValueError as e:
        raise VaecfError(f"--items must be comma-separated integer item ids ({e})") from e
    unknown = [i for i in ids if i not in column]
    if unknown:
        raise VaecfError(f"item id(s) not in this model's catalogue: {', '.join(map(str, unknown))}")
    history = sp.csr_matrix((np.ones(len(ids), np.float32), ([0] * len(ids), [column[i] for i in ids])),
                            shape=(1, split.n_items))
    scores = mask_foldin(trainer.scores(history), history)
    print(",".join(str(split.item_ids[j]) for j in top_k(scores, args.k)[0]))
    return 0
