"""A training run's folder: the one place that knows its files.

``config.json``: the full configuration, the data's statistics (with its cache key) and where
the data is, relative to the run folder so that the two can move together. ``history.json``:
one record per finished epoch, each naming its checkpoint. ``ckpt/state-E``: the latest
state, for resuming. ``best/weights-E``: the best validation epoch's weights. ``result.json``:
the summary of a finished ``fit``. ``manifest.json``: the size and sha256 of each of these
files (``vaecf.integrity``, as a prepared split's), and how many epochs of the history are
committed; it is rewritten last at each checkpoint, so it names a complete checkpoint at every
instant, and whoever reads the run checks every file against it first. The trainer writes
through this class, ``Trainer.from_run`` and the command line read through it; nothing else
opens these files by name.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaecf.config import RunConfig
from vaecf.data.split import Split
from vaecf.errors import DataError, TrainingError, VaecfError
from vaecf.integrity import digest, entry, read_checked, verify
from vaecf.io import check_apart, read_json, write_json

CONFIG, HISTORY, RESULT, MANIFEST = "config.json", "history.json", "result.json", "manifest.json"
READ_FIX = "copy the run folder again, or train it again into a new folder (vaecf train --out NEW)"
RESUME_FIX = "the run cannot resume from it: train into a new --out folder (or delete this one to start over)"


@dataclass(frozen=True)
class RunDir:
    path: Path

    def best_prefix(self, epoch: int) -> Path:
        """Where epoch ``epoch``'s weights go when it is the best so far (``best/weights-E``)."""
        return self.path / "best" / f"weights-{epoch}"

    def best_weights(self, history: list[dict[str, Any]]) -> Path | None:
        """The best validated epoch's weights as of the last record of ``history``; None before any validation."""
        epoch = history[-1].get("best_epoch", -1) if history else -1
        return self.best_prefix(epoch) if isinstance(epoch, int) and epoch >= 0 else None

    def state(self, name: str) -> Path:
        """A checkpoint named in the history (``ckpt/state-E``)."""
        return self.path / name

    # -- configuration -----------------------------------------------------------------------------
    def start(self, config: RunConfig, data_stats: dict[str, Any], data_dir: Path | None) -> list[dict[str, Any]]:
        """Record a run's configuration and data; the history of a run being resumed ([] if new).

        Refuses a folder that holds a run of another configuration, or one whose files do not
        match its manifest, and ``data_dir`` when the run folder is it, lies in it or holds it.
        A checkpoint that a killed run left half-made is dropped: the run resumes from the one
        before it, and says so on stderr.
        """
        if data_dir is not None:
            check_apart(self.path, f"--out {self.path}", Path(data_dir), f"the data folder {data_dir}")
        fresh = not (self.path / MANIFEST).is_file() and not (self.path / HISTORY).is_file()
        history = [] if fresh else self.verified(RESUME_FIX)
        uncommitted = len(self._history_file(RESUME_FIX)) - len(history) if not fresh else 0
        if uncommitted > 0:
            print(f"vaecf: note: {self.path}: the checkpoint of epoch {len(history)} was not completed (the run "
                  f"was stopped while writing it); resuming from the checkpoint before it", file=sys.stderr)
            write_json(self.path / HISTORY, history)  # its committed epochs, which the manifest names
        # Through RunConfig: a field added since the run was made reads as its default; tuples come back as lists.
        stored = json.loads(json.dumps(RunConfig.from_dict(self.config()).to_dict())) if history else None
        if history and stored != json.loads(json.dumps(config.to_dict())):
            raise TrainingError(f"{self.path} holds a run with another configuration; use a new --out folder")
        record: dict[str, Any] = {"config": config.to_dict(), "data": data_stats}
        if data_dir is not None:
            record["data_dir"] = os.path.relpath(Path(data_dir).resolve(), self.path.resolve())
        if fresh or read_checked(self.path / CONFIG, RESUME_FIX) != json.loads(json.dumps(record)):
            write_json(self.path / CONFIG, record)
            files = {} if fresh else self._manifest(RESUME_FIX)["files"]
            self._commit(history, {**files, CONFIG: entry(self.path / CONFIG)})
        return history

    def config(self) -> dict[str, Any]:
        return dict(read_json(self.path / CONFIG)["config"])

    def n_items(self) -> int:
        """The catalogue size the run was trained on (its data's statistics)."""
        items = read_json(self.path / CONFIG).get("data", {}).get("items")
        if not isinstance(items, int):
            raise DataError(f"{self.path / CONFIG}: names no item count of the run's data; {READ_FIX}")
        return items

    def run_config(self) -> RunConfig:
        return RunConfig.from_dict(self.config())

    # -- progress ----------------------------------------------------------------------------------
    def history(self) -> list[dict[str, Any]]:
        """The committed epochs (unchecked: for workers other than rank 0, which checks them in ``start``)."""
        path = self.path / HISTORY
        if not path.is_file():
            return []
        history = list(read_json(path))
        manifest = self.path / MANIFEST
        return history[: read_json(manifest)["history"]["epochs"]] if manifest.is_file() else history

    def checkpointed(self, history: list[dict[str, Any]], write_state: Any) -> None:
        """Save the state under a per-epoch name, then the history naming it, then the manifest, then drop older states.

        A kill at any point leaves a manifest that commits a history whose last record names a
        complete checkpoint. ``write_state(prefix)`` writes the checkpoint (TensorFlow's, so this
        module needs none); the best weights are written beforehand to ``best_prefix(epoch)``.
        The manifest: the new state's files are read back for it (the best weights' too, when
        this epoch wrote them), and the files it no longer names go only after it is in place.
        """
        epoch = history[-1]["epoch"]
        history[-1]["ckpt"] = f"ckpt/state-{epoch}"
        write_state(str(self.state(history[-1]["ckpt"])))
        before = self._manifest(RESUME_FIX)["files"] if (self.path / MANIFEST).is_file() else {}
        files = {name: before[name] for name in (CONFIG, RESULT) if name in before}
        files.update({name: entry(self.path / name) for name in self._written(self.state(history[-1]["ckpt"]))})
        best = self.best_weights(history)
        if best is not None:  # unchanged weights keep their entry: damage since is not blessed
            files.update({name: before.get(name) or entry(self.path / name) for name in self._written(best)})
        write_json(self.path / HISTORY, history)
        self._commit(history, files)
        for old in [*(self.path / "ckpt").glob("state-*"), *(self.path / "best").glob("weights*")]:
            if old.relative_to(self.path).as_posix() not in files:
                old.unlink()

    def write_result(self, summary: dict[str, Any]) -> None:
        write_json(self.path / RESULT, summary)
        manifest = self._manifest(READ_FIX)
        files = {**manifest["files"], RESULT: entry(self.path / RESULT)}
        write_json(self.path / MANIFEST, {**manifest, "files": files})

    # -- the manifest ------------------------------------------------------------------------------
    def verified(self, fix: str = READ_FIX) -> list[dict[str, Any]]:
        """The committed history, after checking every file the manifest lists; a DataError naming the first that fails.

        The manifest commits a number of epochs: history.json may hold one more (a run stopped
        between writing its history and its manifest), which is not part of the run.
        """
        manifest = self._manifest(fix)
        files, committed = manifest.get("files"), manifest.get("history")
        if not isinstance(files, dict) or not isinstance(committed, dict) or CONFIG not in files:
            raise DataError(f"{self.path / MANIFEST}: damaged (it lists no files or history); {fix}")
        for name, expected in files.items():
            verify(self.path / name, expected, fix, f"the run folder {self.path}")
        history = self._history_file(fix)
        epochs = committed.get("epochs")
        if not isinstance(epochs, int) or len(history) < epochs or digest(history[:epochs]) != committed.get("sha256"):
            raise DataError(f"{self.path / HISTORY}: truncated or altered (its first {epochs} epochs differ from "
                            f"what the manifest records); {fix}")
        history = history[:epochs]
        needed = [self.state(history[-1].get("ckpt", "")), self.best_weights(history)] if history else []
        for prefix in needed:
            if prefix is not None and prefix.relative_to(self.path).as_posix() + ".index" not in files:
                raise DataError(f"{self.path / MANIFEST}: does not list {prefix}.index, which the history names; {fix}")
        return history

    def _manifest(self, fix: str) -> dict[str, Any]:
        path = self.path / MANIFEST
        if not path.is_file():
            raise DataError(f"{path}: missing, so the run's files cannot be checked (a damaged copy, or a run "
                            f"made by vaecf before run folders had a manifest); {fix}")
        return dict(read_checked(path, fix))

    def _history_file(self, fix: str) -> list[dict[str, Any]]:
        path = self.path / HISTORY
        if not path.is_file():
            return []
        history = read_checked(path, fix, list)
        if not all(isinstance(h, dict) for h in history):
            raise DataError(f"{path}: not a list of epoch records; {fix}")
        return history

    def _commit(self, history: list[dict[str, Any]], files: dict[str, Any]) -> None:
        """Write the manifest: ``files`` (name -> size and sha256) and the first ``len(history)`` epochs' sha256."""
        write_json(self.path / MANIFEST, {"history": {"epochs": len(history), "sha256": digest(history)},
                                          "files": files})

    def _written(self, prefix: Path) -> list[str]:
        """The files of the TensorFlow checkpoint at ``prefix`` (its .index and data shards), relative to the run."""
        return sorted(p.relative_to(self.path).as_posix() for p in prefix.parent.glob(prefix.name + ".*")
                      if not p.name.endswith(".tmp") and "tempstate" not in p.name)

    # -- a finished run ----------------------------------------------------------------------------
    def finished(self) -> Path:
        """The best epoch's weights of a finished run, after checking every file of the run (``verified``)."""
        if not (self.path / MANIFEST).is_file() and not (self.path / CONFIG).is_file():
            raise VaecfError(f"{self.path}: not a finished training run (no manifest.json or config.json here)")
        best = self.best_weights(self.verified(READ_FIX))
        if best is None:
            raise VaecfError(f"{self.path}: not a finished training run (no epoch validated yet); finish it with "
                             "the vaecf train command that started it")
        return best

    def data_folder(self, override: Path | None = None) -> Path:
        """Where the run's data is: ``override``, else the folder the run recorded (relative to itself)."""
        if override is not None:
            return override
        saved = read_json(self.path / CONFIG)
        if "data_dir" not in saved:
            raise VaecfError(f"{self.path}: the run does not say where its data is; pass --data")
        return self.path / saved["data_dir"]  # an old absolute path stays absolute

    def load_split(self, override: Path | None = None) -> Split:
        """The run's split (``override``, else the folder it was trained on); refused if it is another split."""
        folder = self.data_folder(override)
        split = Split.load(folder)
        self.check_data(folder, split.stats)
        return split

    def check_data(self, folder: Path, stats: dict[str, Any]) -> None:
        """Refuse a split other than the one the run was trained on (another cache key or item count)."""
        trained = read_json(self.path / CONFIG).get("data", {})
        keys = (trained.get("cache_key"), stats.get("cache_key"))
        items = (trained.get("items"), stats.get("items"))
        if keys[0] != keys[1] or items[0] != items[1]:
            protocol = trained.get("protocol", {})
            raise VaecfError(
                f"{folder} is not the data {self.path} was trained on (cache key {keys[1]}, {items[1]} items; the "
                f"run's: {keys[0]}, {items[0]} items): pass --data with the run's folder, or prepare it again with "
                f"the run's settings: vaecf data prepare {trained.get('dataset', 'DATASET')} "
                f"--heldout-users {protocol.get('heldout_users', 'N')} --out DIR")
