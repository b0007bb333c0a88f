"""``vaecf compare``: test-set quality of Mult-VAE, Mult-DAE and the baselines on one split.

Neural models are trained once per seed and evaluated at their best validation epoch; the
table reports the mean over seeds with its standard error. EASE picks its lambda on the
validation users. On synthetic data the oracle (ranking by the true probabilities) closes the
table. The record (JSON, with the full configuration) is rewritten after every finished model
and seed, so an interrupted comparison resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vaecf.baselines import Popularity, select_ease
from vaecf.config import ModelConfig, ModelKind, Precision, RunConfig
from vaecf.data.split import Split
from vaecf.errors import ConfigError
from vaecf.integrity import read_record, write_record
from vaecf.io import atomic_write, check_apart
from vaecf.metrics import evaluate
from vaecf.progress import Phase
from vaecf.provenance import header

TABLE_METRICS = ("ndcg@100", "recall@20", "recall@50")
NEURAL: tuple[ModelKind, ...] = ("vae", "dae")
BASELINES = ("ease", "popularity")
MODELS = (*NEURAL, *BASELINES)
DEFAULT_MODELS = ("vae", "ease", "popularity")


def compare(data: Path, models: Sequence[str], seeds: int, base: RunConfig, out: Path,
            precisions: Sequence[Precision] = ()) -> dict[str, Any]:
    """Train and test each of ``models`` on the split in ``data``; the record, also written to ``out``.

    Neural models train ``seeds`` times, with seeds counting up from ``base.train.seed``, with
    ``base``'s training settings and the paper's architecture of each kind; with several
    ``precisions``, once per precision at the same seeds (results ``"vae mixed_bfloat16"``...).
    A record already at ``out`` is resumed: finished runs are kept, missing ones are added; one
    made with other settings, or damaged since it was written (its sha256), is refused, and so
    is an ``out`` inside ``data``.
    """
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ConfigError("models", unknown, "from " + ", ".join(MODELS))
    if seeds < 1:
        raise ConfigError("seeds", seeds, ">= 1")
    precisions = tuple(precisions) or (base.train.precision,)
    check_apart(out, f"--out {out}", data, f"the data folder {data}")
    split = Split.load(data)
    record = read_record(out, "delete it (and its .md table) to start the comparison again") if out.is_file() \
        else {"machine": header(), "data": split.stats, "results": {}}
    if record["data"]["cache_key"] != split.stats["cache_key"]:
        raise ConfigError("out", str(out), f"a record of the split in {data} (it holds another split's)")
    made_at, now = record.get("machine", {}).get("git_sha"), header()["git_sha"]
    if made_at is not None and made_at != now:  # one record, one code: resume it at its own commit
        raise ConfigError("out", str(out), f"a record made at this code ({now}; it was made at {made_at})")
    neural = [m for m in models if m in NEURAL]
    names = [m if len(precisions) == 1 else f"{m} {p}" for m in neural for p in precisions]
    trained = sum(min(seeds, len(record["results"].get(name, {}).get("runs", []))) for name in names)
    with Phase(len(neural) * len(precisions) * seeds, "compare", "trainings", done=trained) as phase:
        for model in models:
            if model not in NEURAL:
                done = record["results"].setdefault(model, {"runs": []})
                if not done["runs"]:
                    done["runs"].append(_baseline(model, split))
                    _save(out, record)
                continue
            for precision in precisions:
                name = model if len(precisions) == 1 else f"{model} {precision}"
                done = record["results"].setdefault(name, {"runs": []})
                _check_resumable(out, name, done, _seeded(base, model, base.train.seed, precision))
                for k in range(len(done["runs"]), seeds):
                    config = _seeded(base, model, base.train.seed + k, precision)
                    done["config"] = _as_recorded(config)
                    done["runs"].append({"seed": config.train.seed, **_train_and_test(split, config)})
                    _save(out, record)
                    phase.advance(1, f"{name}, seed {config.train.seed}")
    return record


def _check_resumable(out: Path, name: str, done: dict[str, Any], config: RunConfig) -> None:
    """Refuse to add runs of ``config`` to recorded runs of other settings (the seed aside)."""
    if "config" not in done:
        return
    # Through RunConfig: a setting added since the record was made reads as its default.
    ours, theirs = _as_recorded(config), _as_recorded(RunConfig.from_dict(done["config"]))
    differ = sorted(f"{part}.{k}" for part in ("model", "train") for k in ours[part]
                    if k != "seed" and theirs.get(part, {}).get(k) != ours[part][k])
    if differ:
        raise ConfigError("out", str(out), "a record of the same settings", rule=f"{out} holds {name!r} runs "
                          f"with other settings ({', '.join(differ)} differ); use a new --out")


def _as_recorded(config: RunConfig) -> dict[str, Any]:
    """``config`` as its JSON record reads back (tuples become lists), so the two compare equal."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _seeded(base: RunConfig, kind: ModelKind, seed: int, precision: Precision) -> RunConfig:
    """``base`` with the paper's architecture of ``kind``, another seed and ``precision``."""
    return RunConfig(model=ModelConfig.for_kind(kind, base.train.batch_size),
                     train=base.train.with_overrides(seed=seed, precision=precision))


def _train_and_test(split: Split, config: RunConfig) -> dict[str, Any]:
    from vaecf.log import EpochLog
    from vaecf.train import Trainer

    trainer = Trainer(split.n_items, config)
    result = trainer.fit(split, log=EpochLog(None), show_progress=False)  # the comparison's own progress
    curve = {h["epoch"]: h["val_ndcg@100"] for h in result.history if "val_ndcg@100" in h}
    return {"best_epoch": result.best_epoch, "validation": result.best, "validation_ndcg_by_epoch": curve,
            "test": trainer.evaluate(split, "test").metrics, "train_s": result.train_seconds}


def _baseline(model: str, split: Split) -> dict[str, Any]:
    test_foldin, test_target = split.heldout("test")
    if model == "popularity":
        scorer = Popularity.fit(split.train)
        return {"test": evaluate(scorer.score, test_foldin, test_target).metrics}
    if model == "ease":
        ease, by_lambda = select_ease(split.train, split.validation_foldin, split.validation_target)
        return {"lambda": ease.lam, "validation_by_lambda": {str(k): v for k, v in by_lambda.items()},
                "test": evaluate(ease.score, test_foldin, test_target).metrics}
    raise ConfigError("model", model, "one of " + ", ".join(BASELINES))


def seed_summary(runs: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """Per metric: mean over runs and its standard error (0 for a single run)."""
    out = {}
    for m in TABLE_METRICS:
        v = np.array([r["test"][m] for r in runs])
        se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else 0.0
        out[m] = (float(v.mean()), se)
    return out


def markdown_table(record: dict[str, Any]) -> str:
    lines = ["| model | runs | " + " | ".join(TABLE_METRICS) + " |", "|---|---|" + "---|" * len(TABLE_METRICS)]
    for model, res in record["results"].items():
        if not res["runs"]:
            continue
        stats = seed_summary(res["runs"])
        cells = [f"{m:.4f} ± {se:.4f}" if len(res["runs"]) > 1 else f"{m:.4f}" for m, se in stats.values()]
        lines.append(f"| {model} | {len(res['runs'])} | " + " | ".join(cells) + " |")
    oracle = record["data"].get("oracle_test")  # synthetic data: ranking by the true probabilities
    if oracle:
        lines.append("| oracle | - | " + " | ".join(f"{oracle[m]:.4f}" for m in TABLE_METRICS) + " |")
    return "\n".join(lines + precision_lines(record))


def precision_lines(record: dict[str, Any]) -> list[str]:
    """Validation NDCG@100 of each precision against the first one, beside twice the seed noise.

    Seed noise is the standard deviation over seeds, pooled over the precisions compared. Runs
    share their seeds, so the difference is also given seed by seed (its mean and spread).
    """
    lines: list[str] = []
    for model in NEURAL:
        named = [(name.split(" ", 1)[1], res["runs"]) for name, res in record["results"].items()
                 if name.startswith(model + " ") and res["runs"]]
        if len(named) < 2:
            continue
        first, first_runs = named[0]
        base = np.array([r["validation"]["ndcg@100"] for r in first_runs])
        lines += ["", f"{model}: validation NDCG@100 by precision (mean ± sd over seeds; difference to {first} "
                  "at equal seeds)", "", "| precision | runs | validation ndcg@100 | difference | 2 x seed sd | "
                  "within seed noise |", "|---|---|---|---|---|---|"]
        for precision, runs in named:
            v = np.array([r["validation"]["ndcg@100"] for r in runs])
            n = min(v.size, base.size)
            diff = v[:n] - base[:n]
            sd = float(np.sqrt((v.var(ddof=1) + base.var(ddof=1)) / 2)) if min(v.size, base.size) > 1 else math.nan
            within = "-" if precision == first or math.isnan(sd) else ("yes" if abs(diff.mean()) <= 2 * sd else "NO")
            lines.append(f"| {precision} | {v.size} | {v.mean():.4f} ± {_sd(v):.4f} | {diff.mean():+.4f} ± "
                         f"{_sd(diff):.4f} | {'-' if math.isnan(sd) else f'{2 * sd:.4f}'} | {within} |")
    return lines


def _sd(v: np.ndarray) -> float:
    return float(v.std(ddof=1)) if v.size > 1 else 0.0


def _save(out: Path, record: dict[str, Any]) -> None:
    write_record(out, record)
    table = markdown_table(record) + "\n"

    def write_table(tmp: Path) -> None:
        tmp.write_text(table)

    atomic_write(out.with_suffix(".md"), write_table)
