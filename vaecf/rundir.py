"""A training run's folder: the one place that knows its files.

``config.json``: the full configuration, the data's statistics (with its cache key) and where
the data is, relative to the run folder so that the two can move together. ``history.json``:
one record per finished epoch, each naming its checkpoint. ``ckpt/state-E``: the latest
state, for resuming. ``best/weights``: the best validation epoch's weights. ``result.json``:
the summary ``vaecf train`` prints. The trainer writes through it, the command line reads
through it; nothing else opens these files by name.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaecf.config import RunConfig
from vaecf.errors import TrainingError, VaecfError
from vaecf.io import read_json, write_json


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def best_weights(self) -> Path:
        return self.path / "best" / "weights"

    def state(self, name: str) -> Path:
        """A checkpoint named in the history (``ckpt/state-E``)."""
        return self.path / name

    # -- configuration -----------------------------------------------------------------------------
    def start(self, config: RunConfig, data_stats: dict[str, Any], data_dir: Path | None) -> list[dict[str, Any]]:
        """Record a run's configuration and data; the history of a run being resumed ([] if new).

        Refuses a folder that holds a run of another configuration.
        """
        history = self.history()
        if history and self.config() != json.loads(json.dumps(config.to_dict())):  # tuples come back as lists
            raise TrainingError(f"{self.path} holds a run with another configuration; use a new --out folder")
        record: dict[str, Any] = {"config": config.to_dict(), "data": data_stats}
        if data_dir is not None:
            record["data_dir"] = os.path.relpath(Path(data_dir).resolve(), self.path.resolve())
        write_json(self.path / "config.json", record)
        return history

    def config(self) -> dict[str, Any]:
        return dict(read_json(self.path / "config.json")["config"])

    def run_config(self) -> RunConfig:
        return RunConfig.from_dict(self.config())

    # -- progress ----------------------------------------------------------------------------------
    def history(self) -> list[dict[str, Any]]:
        path = self.path / "history.json"
        return list(read_json(path)) if path.is_file() else []

    def checkpointed(self, history: list[dict[str, Any]], write_state: Any) -> None:
        """Save the state under a per-epoch name, then the history naming it, then drop older states.

        A kill at any point leaves a history whose last record names a complete checkpoint.
        ``write_state(prefix)`` writes the checkpoint (TensorFlow's, so this module needs none).
        """
        epoch = history[-1]["epoch"]
        history[-1]["ckpt"] = f"ckpt/state-{epoch}"
        write_state(str(self.state(history[-1]["ckpt"])))
        write_json(self.path / "history.json", history)
        for old in (self.path / "ckpt").glob("state-*"):
            if not old.name.startswith(f"state-{epoch}."):
                old.unlink()

    def write_result(self, summary: dict[str, Any]) -> None:
        write_json(self.path / "result.json", summary)

    # -- a finished run ----------------------------------------------------------------------------
    def require_finished(self) -> None:
        if not (self.path / "config.json").is_file() or not self.best_weights.with_suffix(".index").is_file():
            raise VaecfError(f"{self.path}: not a finished training run (config.json or best/weights missing)")

    def data_folder(self, override: Path | None = None) -> Path:
        """Where the run's data is: ``override``, else the folder the run recorded (relative to itself)."""
        if override is not None:
            return override
        saved = read_json(self.path / "config.json")
        if "data_dir" not in saved:
            raise VaecfError(f"{self.path}: the run does not say where its data is; pass --data")
        return self.path / saved["data_dir"]  # an old absolute path stays absolute

    def check_data(self, folder: Path, stats: dict[str, Any]) -> None:
        """Refuse a split other than the one the run was trained on (another cache key or item count)."""
        trained = read_json(self.path / "config.json").get("data", {})
        keys = (trained.get("cache_key"), stats.get("cache_key"))
        items = (trained.get("items"), stats.get("items"))
        if keys[0] != keys[1] or items[0] != items[1]:
            protocol = trained.get("protocol", {})
            raise VaecfError(
                f"{folder} is not the data {self.path} was trained on (cache key {keys[1]}, {items[1]} items; the "
                f"run's: {keys[0]}, {items[0]} items): pass --data with the run's folder, or prepare it again with "
                f"the run's settings: vaecf data prepare {trained.get('dataset', 'DATASET')} "
                f"--heldout-users {protocol.get('heldout_users', 'N')} --out DIR")
