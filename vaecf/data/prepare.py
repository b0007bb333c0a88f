"""From a dataset name to a prepared split on disk, cached by source fingerprint and settings.

``prepare("ml-100k", out=DIR)`` reads (or downloads) the ratings, applies the protocol and
writes the split to DIR, whole or not at all (see Split.save). DIR/stats.json records a cache
key: the hash of the source files' contents, the dataset spec and the protocol settings.
Preparing again into the same folder with the same key, and every file intact, returns at once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

from vaecf.config import ProtocolConfig
from vaecf.data import synthetic
from vaecf.data.download import fingerprint
from vaecf.data.protocol import STAGES, apply_protocol
from vaecf.data.registry import DATASETS
from vaecf.data.sources import load_ratings
from vaecf.data.split import Split
from vaecf.errors import DataError
from vaecf.progress import Phase

PROTOCOL_VERSION = 1
"""Bump when a change to the protocol code changes its output, so caches are rebuilt."""

DATASET_CHOICES = (*DATASETS, "synthetic[:preset|key=value,...]")
"""What ``prepare`` accepts, as the command line lists it."""


def cache_dir() -> Path:
    """Where downloads are kept: $VAECF_CACHE, else ~/.cache/vaecf."""
    return Path(os.environ.get("VAECF_CACHE", Path.home() / ".cache" / "vaecf"))


def folder_name(dataset: str) -> str:
    """A file-system-safe name for a dataset spec: ``synthetic:small,users=6000`` -> ``synthetic_small_users-6000``."""
    return dataset.replace(":", "_").replace(",", "_").replace("=", "-")


def check_dataset(dataset: str) -> None:
    """Refuse a name that is neither a known dataset nor a synthetic spec."""
    if not dataset.startswith("synthetic") and dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}; known: {', '.join(DATASET_CHOICES)}")


def default_protocol(dataset: str, heldout_users: int | None = None) -> ProtocolConfig:
    """The protocol for ``dataset``: the paper's settings, with N from the dataset unless given."""
    check_dataset(dataset)
    if heldout_users is None:
        if dataset.startswith("synthetic"):
            heldout_users = synthetic.heldout_users_for(synthetic.parse_spec(dataset))
        else:
            heldout_users = DATASETS[dataset].heldout
    return ProtocolConfig(heldout_users=heldout_users)  # checked when made: a ConfigError names the value


def prepare(dataset: str, out: Path, source: Path | None = None,
            protocol: ProtocolConfig | None = None, progress: bool | None = None, verify: bool = True) -> Split:
    """Prepare ``dataset`` into ``out`` (or load it from there when the cache key matches).

    ``verify=False`` uses a given MovieLens zip that does not match its published checksum;
    stats.json's ``source_verified`` then says false. ``progress``: the reading and the protocol
    show progress (None: on the command's setting; True or False to force it).
    """
    out = Path(out)
    check_dataset(dataset)
    protocol = protocol or default_protocol(dataset)
    if dataset.startswith("synthetic"):
        cfg = synthetic.parse_spec(dataset)
        key = _key(dataset, json.dumps(dataclasses.asdict(cfg), sort_keys=True), protocol)
        if (cached := _cached(out, key)) is not None:
            return cached
        ratings, truth = synthetic.generate(cfg)
        source_stats: dict[str, object] = {}
    else:
        ratings, files, verified = load_ratings(dataset, source, cache_dir(), progress=progress, verify=verify)
        key = _key(dataset, fingerprint(files), protocol)
        if (cached := _cached(out, key)) is not None:
            return cached
        source_stats = {"source_verified": verified}
    with Phase(STAGES + 1, "protocol", unit="stages", quiet=None if progress is None else not progress) as phase:
        split = apply_protocol(ratings, protocol, lambda stage: phase.advance(1, stage))
        if dataset.startswith("synthetic"):
            split.stats["synthetic"] = dataclasses.asdict(cfg)
            split.stats["oracle_validation"] = synthetic.oracle_metrics(truth, split, "validation")
            split.stats["oracle_test"] = synthetic.oracle_metrics(truth, split, "test")
        split.stats = {"dataset": dataset, "cache_key": key, "protocol": dataclasses.asdict(protocol),
                       **source_stats, **split.stats}
        split.save(out)
        phase.advance(1, f"saved to {out}")
    return split


def _key(dataset: str, source_id: str, protocol: ProtocolConfig) -> str:
    blob = json.dumps([PROTOCOL_VERSION, dataset, source_id, dataclasses.asdict(protocol)], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _cached(out: Path, key: str) -> Split | None:
    """The split in ``out`` when it was prepared with ``key`` and passes its manifest, else None.

    Anything else (no split, other settings, an older folder without a manifest, a damaged
    file) is a stale cache: preparing again replaces it.
    """
    try:
        return Split.load(out, expected_key=key)
    except DataError:
        return None
