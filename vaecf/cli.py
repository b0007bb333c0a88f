"""The ``vaecf`` command line: prepare data, train, evaluate, recommend, compare, benchmark.

All argument parsing lives here. The parser is built from modules that do not import
TensorFlow (``--help`` and ``data prepare`` stay fast); each command imports what it needs and
calls a typed library function.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from vaecf.config import (
    PRESETS,
    WARMUP_STEPS,
    Engine,
    InputKind,
    ModelConfig,
    ModelKind,
    Pipeline,
    Precision,
    RunConfig,
    TrainConfig,
    field_types,
)
from vaecf.errors import ConfigError, VaecfError, exit_code
from vaecf.io import check_apart
from vaecf.rundir import RunDir
from vaecf.tfenv import load_tensorflow as _load_tensorflow

if TYPE_CHECKING:  # TensorFlow loads only for the commands that need it
    from vaecf.data.split import Split
    from vaecf.train import Trainer

TRAIN_SWITCHES = ("batch_size", "lr", "epochs", "seed", "eval_every", "input", "pipeline", "precision",
                  "xla", "workers", "engine")
"""TrainConfig fields with their own option (``--batch-size``); every field is also ``--set FIELD=VALUE``."""
Command = Callable[[argparse.Namespace, list[str]], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code (2 for a user's mistake, printed as one line)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a parse error (2, already printed)
        return int(e.code or 0)
    if getattr(args, "quiet", False):
        from vaecf.progress import set_quiet

        set_quiet(True)
    if args.needs_tensorflow:
        _load_tensorflow(args.verbose)
    return exit_code("vaecf", lambda: args.handler(args, argv),
                     "finished epochs are kept and the run resumes with the same command")


# -- the parser ---------------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """A parse error is one line (``vaecf train: error: ...``), like every other error of the CLI."""

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Help(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the help already says it.

    ``{datasets}`` and the like in a help text are filled in only when the help is shown: the
    lists live in modules that take a second to import (pandas, scipy), which parsing should not.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if not action.option_strings or "default" in text or action.default in (None, argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"

    def _expand_help(self, action: argparse.Action) -> str:
        text = super()._expand_help(action)
        for name, fill in _LATER.items():
            if "{" + name + "}" in text:
                text = text.replace("{" + name + "}", fill())
        return text


def _datasets() -> str:
    from vaecf.data.prepare import DATASET_CHOICES

    return ", ".join(DATASET_CHOICES)


def _models() -> str:
    from vaecf.compare import MODELS

    return ",".join(MODELS)


def _default_models() -> str:
    from vaecf.compare import DEFAULT_MODELS

    return ",".join(DEFAULT_MODELS)


_LATER: dict[str, Callable[[], str]] = {"datasets": _datasets, "models": _models, "default_models": _default_models}


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; imports nothing that loads TensorFlow."""
    p = _Parser(prog="vaecf", description=__doc__.splitlines()[0], formatter_class=_Help)
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's C++ start-up logging")
    sub = p.add_subparsers(required=True, metavar="COMMAND")
    for add in (_add_data, _add_train, _add_evaluate, _add_recommend, _add_compare, _add_bench, _add_doctor):
        add(sub)
    return p


def _command(sub: Any, name: str, help: str, run: Command, tensorflow: bool = True) -> argparse.ArgumentParser:
    """Register one command: ``run(args, argv)`` runs it, after TensorFlow is loaded if it needs it."""
    p: argparse.ArgumentParser = sub.add_parser(name, help=help, description=help, formatter_class=_Help)
    p.set_defaults(handler=run, needs_tensorflow=tensorflow)
    return p


def _add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress (a bar on a terminal, lines with the "
                                                        "elapsed time and ETA elsewhere)")


def _add_data(sub: Any) -> None:
    data = sub.add_parser("data", help="prepare datasets").add_subparsers(required=True, metavar="ACTION")
    p = _command(data, "prepare", "apply the paper's protocol and write the split", _cmd_prepare, tensorflow=False)
    p.add_argument("dataset", help="{datasets}")
    p.add_argument("--source", type=Path, help="local archive, ratings file or Netflix folder "
                                               "(default: download, where the dataset can be downloaded)")
    p.add_argument("--heldout-users", type=int, help="N validation and N test users (default: the dataset's)")
    p.add_argument("--out", type=Path, required=True, help="folder for the split")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="accept a --source archive whose checksum differs from the published one "
                        "(recorded in stats.json as source_verified: false; default: refuse it)")
    _add_quiet(p)


def _add_train(sub: Any) -> None:
    p = _command(sub, "train", "train Mult-VAE or Mult-DAE on a prepared split", _cmd_train)
    p.add_argument("--data", type=Path, required=True, help="a prepared split (vaecf data prepare)")
    p.add_argument("--out", type=Path, required=True, help="run folder; the same command again resumes it")
    p.add_argument("--model", choices=get_args(ModelKind), default="vae", help="architecture")
    _add_train_options(p)
    _add_quiet(p)
    p.add_argument("--hosts", help="multi-host Horovod, e.g. host1:4,host2:4 (default: this host only)")


def _add_evaluate(sub: Any) -> None:
    p = _command(sub, "evaluate", "NDCG@100, Recall@20, Recall@50 of a run's best epoch", _cmd_evaluate)
    p.add_argument("run", type=Path, help="a finished training run folder")
    p.add_argument("--split", choices=("validation", "test"), default="test", help="which heldout users")
    p.add_argument("--json", action="store_true", help="one JSON object instead of key=value")
    _add_run_data(p)


def _add_recommend(sub: Any) -> None:
    p = _command(sub, "recommend", "top-k items for a history of item ids", _cmd_recommend)
    p.add_argument("run", type=Path, help="a finished training run folder")
    p.add_argument("--items", required=True, help="the history: comma-separated original item ids")
    p.add_argument("-k", type=_at_least(1), default=20, help="how many items to recommend")
    _add_run_data(p)


def _add_run_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, help="the run's prepared split (default: the folder it was trained on)")


def _add_compare(sub: Any) -> None:
    p = _command(sub, "compare", "test quality of Mult-VAE, Mult-DAE and baselines over seeds", _cmd_compare)
    p.add_argument("--data", type=Path, required=True, help="a prepared split")
    p.add_argument("--models", type=_split, help="comma-separated, from {models} (default: {default_models})")
    p.add_argument("--seeds", type=_at_least(1), default=5,
                   help="seeds per neural model, counting up from --seed")
    p.add_argument("--precisions", type=_choice_list(get_args(Precision)), metavar="P,P,...",
                   help="train the neural models once per precision, at the same seeds, and compare their "
                   "validation NDCG@100 (default: --precision alone)")
    p.add_argument("--out", type=Path, required=True, help="JSON record; a .md table is written beside it")
    _add_train_options(p)
    _add_quiet(p)


def _add_bench(sub: Any) -> None:
    p = _command(sub, "bench", "throughput and MFU, dense vs sparse, at given batch sizes", _cmd_bench)
    p.add_argument("--dataset", help="prepared (and cached) if --data is absent (default: ML-20M's shape, "
                   "vaecf.workload: synthetic:ml-20m)")
    p.add_argument("--data", type=Path, help="an already prepared split (default: --dataset, prepared)")
    p.add_argument("--cache", type=Path, default=Path(".cache/bench-data"), help="where --dataset is prepared")
    p.add_argument("--batch-sizes", type=_int_list, metavar="B,B,...",
                   default=f"{PRESETS['paper'].batch_size},{PRESETS['nvidia'].batch_size}",
                   help="comma-separated, each >= 1")
    p.add_argument("--inputs", type=_choice_list(get_args(InputKind)), default="sparse,dense",
                   metavar="I,I,...", help="comma-separated, from " + ",".join(get_args(InputKind)))
    p.add_argument("--pipeline", choices=get_args(Pipeline), default="tfdata", help="input pipeline")
    p.add_argument("--precision", choices=get_args(Precision), default="float32", help="compute precision")
    p.add_argument("--xla", action="store_true", help="compile the step with XLA")
    p.add_argument("--warmup", type=_at_least(0), default=WARMUP_STEPS, help="untimed steps first")
    p.add_argument("--steps", type=_at_least(1), default=10, help="timed steps")
    p.add_argument("--breakdown", action="store_true",
                   help="also time the step's parts on one batch (vaecf/breakdown.py): where the time goes")
    p.add_argument("--workers", type=_at_least(2), help="also compare 1 against N data-parallel workers, "
                   "Horovod where installed and tf.distribute (default: not compared)")
    p.add_argument("--serving", action="store_true", help="measure evaluation users/s against the forward GEMM, "
                   "recommend latency and validation's share of an epoch instead of training rows "
                   "(default: training rows)")
    p.add_argument("--requests", type=_at_least(1), default=1000, help="timed recommend requests with --serving")
    p.add_argument("-k", type=_at_least(1), default=20, help="items per recommend request with --serving")
    p.add_argument("--out", type=Path, help="the record (default: results/<machine>/bench-<time>.json)")
    _add_quiet(p)


def _add_doctor(sub: Any) -> None:
    p = _command(sub, "doctor", "what TensorFlow sees here (GPUs, CUDA, Horovod, CPU flags) and what a ladder "
                 "would run here", _cmd_doctor, tensorflow=False)
    p.add_argument("--ladder", help="also say which steps of this ladder (ablations/ladders) run as written, "
                   "which are substituted and which skipped; exit 2 if it needs a GPU and none is seen "
                   "(default: no ladder)")
    p.add_argument("--budget", default="quick", help="the ladder's budget (quick, smoke, full)")


def _add_train_options(p: argparse.ArgumentParser) -> None:
    """Training switches shared by ``train`` and ``compare``; their defaults come from the preset."""
    p.add_argument("--preset", choices=sorted(PRESETS), default="paper", help="hyper-parameter set")
    options: dict[str, dict[str, Any]] = {
        "epochs": {"type": int}, "seed": {"type": int}, "batch_size": {"type": int}, "lr": {"type": float},
        "eval_every": {"type": int, "help": "validate every this many epochs"},
        "input": {"choices": get_args(InputKind)}, "pipeline": {"choices": get_args(Pipeline)},
        "precision": {"choices": get_args(Precision)},
        "xla": {"action": argparse.BooleanOptionalAction, "help": "compile the step with XLA"},
        "workers": {"type": int, "help": "data-parallel worker processes"},
        "engine": {"choices": get_args(Engine), "help": "data-parallel engine; auto: Horovod where installed, "
                   "else tf-distribute"},
    }
    for name in TRAIN_SWITCHES:
        spec = options[name]
        help_text = spec.pop("help", name.replace("_", " "))
        p.add_argument("--" + name.replace("_", "-"), **spec, help=f"{help_text} ({_preset_defaults(name)})")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", dest="sets",
                   help="any TrainConfig field, e.g. --set total_anneal_steps=15000 (repeatable; default: none)")


def _preset_defaults(field: str) -> str:
    """``default: from --preset (paper: 500, nvidia: 24576)``: the values config.py gives."""
    values = ", ".join(f"{name}: {getattr(train, field)}" for name, train in sorted(PRESETS.items()))
    return f"default: from --preset ({values})"


def _at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{text} must be >= {low}")
        return value
    parse.__name__ = f"integer >= {low}"
    return parse


def _int_list(text: str) -> list[int]:
    """``"500,24576"`` -> ``[500, 24576]``, each >= 1."""
    return [_at_least(1)(part) for part in _split(text)]


def _choice_list(choices: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        unknown = [part for part in _split(text) if part not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(map(repr, unknown))}; "
                                             f"choose from {', '.join(choices)}")
        return _split(text)
    return parse


def _split(text: str) -> list[str]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return parts


# -- from options to typed configuration -------------------------------------------------------------

def run_config(args: argparse.Namespace, model: ModelKind | None = None) -> RunConfig:
    """The preset, overridden by every switch and ``--set`` given; a bad value names its option."""
    switches = {k: getattr(args, k) for k in TRAIN_SWITCHES if getattr(args, k, None) is not None}
    sets = parse_sets(args.sets)
    try:
        train = PRESETS[args.preset].with_overrides(**{**switches, **{k: v for k, (v, _) in sets.items()}})
    except ConfigError as e:
        if e.field in sets:
            where = f"--set {sets[e.field][1]}"
        elif e.field in switches:
            where = f"--{e.field.replace('_', '-')} {switches[e.field]}"
        else:
            where = f"--preset {args.preset}"
        raise VaecfError(f"{where}: {e.rule}") from e
    return RunConfig(model=ModelConfig.for_kind(model or args.model, train.batch_size), train=train)


def parse_sets(items: Sequence[str]) -> dict[str, tuple[Any, str]]:
    """``["batch_size=2500", "xla=true"]`` -> ``{field: (typed value, the item as given)}``."""
    types = field_types(TrainConfig)
    out: dict[str, tuple[Any, str]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or key not in types:
            raise VaecfError(f"--set {item}: expected FIELD=VALUE with FIELD one of {', '.join(types)}")
        out[key] = (_typed(key, raw, types[key], item), item)
    return out


def _typed(key: str, raw: str, kind: Any, item: str) -> Any:
    """``raw`` as the field's type; Literal fields stay strings (TrainConfig checks their choices)."""
    try:
        if kind is bool:
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError("true or false")
            return raw.lower() in ("true", "1")
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
    except ValueError:
        allowed = {bool: "true or false", int: "an integer", float: "a number"}[kind]
        raise VaecfError(f"--set {item}: {ConfigError(key, raw, allowed).rule}") from None
    return raw


def _protocol(dataset: str, heldout_users: int | None) -> Any:
    """The dataset's protocol (an unknown dataset or spec is a DataError listing what is known)."""
    from vaecf.data.prepare import default_protocol

    try:
        return default_protocol(dataset, heldout_users)
    except ConfigError as e:
        raise VaecfError(f"--heldout-users {heldout_users}: {e.rule}") from e


def _out_folder(out: Path) -> Path:
    """``--out`` as a folder: refused now if it is a file or cannot be written, rather than after the work."""
    if out.exists() and not out.is_dir():
        raise VaecfError(f"--out {out}: is a file; a folder is needed")
    return _writable(out)


def _out_file(out: Path) -> Path:
    if out.is_dir():
        raise VaecfError(f"--out {out}: is a folder; a file name is needed")
    return _writable(out)


def _writable(out: Path) -> Path:
    """``out``, after checking that it, or the nearest folder above it that exists, can be written."""
    existing = next(p for p in (out, *out.absolute().parents) if p.exists())
    if existing != out and not existing.is_dir():
        raise VaecfError(f"--out {out}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK):
        raise VaecfError(f"--out {out}: {existing} is not writable")
    return out


# -- the commands --------------------------------------------------------------------------------------

def _cmd_prepare(args: argparse.Namespace, argv: list[str]) -> int:
    from vaecf.data.prepare import prepare

    protocol = _protocol(args.dataset, args.heldout_users)
    split = prepare(args.dataset, _out_folder(args.out), source=args.source, protocol=protocol, verify=args.verify)
    print(json.dumps(split.stats, indent=2))
    return 0


def _cmd_train(args: argparse.Namespace, argv: list[str]) -> int:
    config = run_config(args)
    if args.hosts:  # checked before the run folder is made
        from vaecf.launch import horovod_hosts, is_worker

        if config.train.workers == 1:
            raise VaecfError(f"--hosts {args.hosts} needs --workers N (the slots of all hosts together)")
        if not is_worker():
            horovod_hosts(args.hosts, config.train.workers)
    out = _out_folder(args.out)
    check_apart(out, f"--out {args.out}", args.data, f"--data {args.data}")
    if config.train.workers > 1:
        from vaecf.launch import is_worker, launch_workers, world_from_env

        if not is_worker():
            return launch_workers(argv, config.train.workers, config.train.engine, args.hosts)
        world = world_from_env(config.train.engine, config.train.compression)
    else:
        world = None
    from vaecf.data.split import Split
    from vaecf.train import Trainer

    split = Split.load(args.data)
    trainer = Trainer(split.n_items, config, world=world)
    if world is None:
        result = trainer.fit(split, out=out, data_dir=args.data)
    else:
        from vaecf.distributed import PEER_ERRORS, lost_peer

        try:
            result = trainer.fit(split, out=out, data_dir=args.data)
        except PEER_ERRORS as e:
            raise lost_peer(e) from None
    if trainer.world.rank == 0:
        print(json.dumps(result.summary))
    return 0


def _load_run(path: Path, data: Path | None) -> tuple[Trainer, Split]:
    """A finished run's model at its best epoch (every file checked first) and its split."""
    from vaecf.train import Trainer

    return Trainer.from_run(path), RunDir(path).load_split(data)


def _cmd_evaluate(args: argparse.Namespace, argv: list[str]) -> int:
    trainer, split = _load_run(args.run, args.data)
    result = trainer.evaluate(split, args.split).to_dict()
    if args.json:
        print(json.dumps({"split": args.split, **result}))
    else:
        print(f"{args.split}: " + "  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                            for k, v in result.items()))
    return 0


def _cmd_recommend(args: argparse.Namespace, argv: list[str]) -> int:
    from vaecf.recommend import recommend
    from vaecf.serving import SingleUserScorer

    try:
        ids = [int(s) for s in args.items.split(",") if s.strip()]
    except ValueError as e:
        raise VaecfError(f"--items {args.items}: must be comma-separated integer item ids ({e})") from e
    trainer, split = _load_run(args.run, args.data)
    try:
        result = recommend(SingleUserScorer(trainer), split, ids, args.k)
    except ConfigError as e:
        raise VaecfError(f"-k {args.k}: {e.rule}") from e
    for note in result.notes:
        print(f"vaecf: note: {note}", file=sys.stderr)
    print(",".join(map(str, result.items)))
    return 0


def _cmd_compare(args: argparse.Namespace, argv: list[str]) -> int:
    from vaecf.compare import DEFAULT_MODELS, compare, markdown_table

    base = run_config(args, model="vae")
    try:
        record = compare(args.data, args.models or DEFAULT_MODELS, args.seeds, base, _out_file(args.out),
                         args.precisions or ())
    except ConfigError as e:
        if e.field != "models":
            raise
        raise VaecfError(f"--models {','.join(args.models)}: {e.rule}") from e
    print(markdown_table(record))
    return 0


def _cmd_doctor(args: argparse.Namespace, argv: list[str]) -> int:
    from vaecf.doctor import doctor

    doctor(args.ladder, args.budget)
    return 0


def _cmd_bench(args: argparse.Namespace, argv: list[str]) -> int:
    from dataclasses import replace

    from vaecf.bench import BenchSpec, bench_serving, bench_training, bench_workers

    spec = BenchSpec(data=args.data, cache=args.cache, warmup=args.warmup, steps=args.steps,
                     out=None if args.out is None else _out_file(args.out), argv=tuple(argv),
                     **({} if args.dataset is None else {"dataset": args.dataset}))
    if args.serving:
        out = bench_serving(spec, args.requests, args.k)
    else:
        out = bench_training(spec, args.batch_sizes, args.inputs, args.pipeline, args.precision, args.xla,
                             args.breakdown)
        if args.workers is not None:
            out = bench_workers(replace(spec, out=out), args.workers, args.batch_sizes[0])
    print(f"wrote {out}")
    return 0
