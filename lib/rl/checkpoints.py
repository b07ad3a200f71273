"""Rotated training checkpoints: the model and, for DQN, its replay buffer, saved every few steps.

A run saves one every `checkpoint_every` steps and at the end (also on Ctrl-C and SIGTERM) and
keeps the newest `keep_checkpoints`; `resume=True` continues from the newest complete one.

Why a manifest: a kill while a checkpoint is written must never leave a set that resumes from a
truncated file, and a DQN set whose replay buffer is gone must not resume silently with an empty
buffer. So every file is written to a temporary name, fsynced and renamed; then `step_<n>.json`
names the set's files and sizes. Only a set with its manifest, every file present at its size,
counts; resume takes the newest such set and says which (and why newer ones were skipped).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from stable_baselines3 import DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from lib.obs.events import emit

MANIFEST_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint cannot be resumed from; the message names the set, the reason and the fix."""


class Checkpoints:
    """Rotated checkpoint sets in one folder: step_<n>.zip (+ step_<n>_replay.pkl for DQN) and
    the manifest step_<n>.json written last."""

    def __init__(self, folder: Path, keep: int) -> None:
        self.folder, self.keep = folder, keep
        self.skipped: list[str] = []  # why newer sets were passed over by the last `latest()`

    def manifests(self) -> list[Path]:
        return sorted(self.folder.glob("step_*[0-9].json"))

    def latest(self) -> Path | None:
        """The model file of the newest complete set; `skipped` says what was passed over."""
        self.skipped = []
        for manifest in reversed(self.manifests()):
            problem = _incomplete(manifest)
            if problem is None:
                return manifest.with_suffix(".zip")
            self.skipped.append(f"{manifest.stem}: {problem}")
        return None

    @staticmethod
    def replay_path(path: Path) -> Path:
        return path.with_name(path.stem + "_replay.pkl")

    def save(self, model: BaseAlgorithm) -> Path:
        """Write a complete set at the model's step count, emit `checkpoint`, rotate old sets."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"step_{model.num_timesteps:09d}.zip"
        files = {"model": _atomic(path, model.save)}
        if getattr(model, "replay_buffer", None) is not None:
            files["replay"] = _atomic(self.replay_path(path), model.save_replay_buffer)
        manifest = {"version": MANIFEST_VERSION, "steps": int(model.num_timesteps), "files": files}
        _atomic(path.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps(manifest, indent=1)))
        emit("checkpoint", path=str(path), steps=int(model.num_timesteps), files=sorted(files))
        self._rotate()
        return path

    def load(self, path: Path, algorithm: str, env: VecEnv, device: str,
             without_replay: bool = False) -> BaseAlgorithm:
        """The model saved at `path` (its step counter intact), attached to `env`, with its replay
        buffer; a DQN set without one is a CheckpointError unless `without_replay`."""
        model = (DQN if algorithm == "dqn" else PPO).load(path, env=env, device=device)
        replay = self.replay_path(path)
        if getattr(model, "replay_buffer", None) is None:
            return model
        if replay.exists() and _manifest_files(path.with_suffix(".json")).get("replay"):
            model.load_replay_buffer(replay)
        elif not without_replay:
            raise CheckpointError(
                f"checkpoint {path.name} has no replay buffer ({replay.name} was not saved or is gone): "
                "DQN would resume with an empty buffer and relearn from scratch. Pass "
                "resume_without_replay=True to continue without it, or start a new run.")
        return model

    def _rotate(self) -> None:
        """Keep the newest `keep` complete sets; remove older sets and leftovers of killed writes."""
        complete = [m for m in self.manifests() if _incomplete(m) is None]
        kept = {m.stem for m in complete[-self.keep:]}
        newest = complete[-1].stem if complete else ""
        for item in self.folder.iterdir():
            stem = item.name.lstrip(".").split(".")[0].removesuffix("_replay")
            if stem.startswith("step_") and stem not in kept and stem <= newest:
                item.unlink(missing_ok=True)


def _atomic(path: Path, write: Any) -> dict[str, Any]:
    """Write `path` through `write(tmp)`, fsync it, rename it into place: never half a file."""
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    write(tmp)
    with tmp.open("rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return {"name": path.name, "bytes": path.stat().st_size}


def _manifest_files(manifest: Path) -> dict[str, Any]:
    try:
        data = json.loads(manifest.read_text())
        files = data["files"]
        return files if isinstance(files, dict) else {}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _incomplete(manifest: Path) -> str | None:
    """Why the set of `manifest` cannot be resumed from, or None when it is whole.

    A replay file that is gone is reported by `load` (with the fix) rather than here, so a set
    that lost only its buffer is not silently replaced by an older one."""
    files = _manifest_files(manifest)
    model = files.get("model")
    if not isinstance(model, dict):
        return "its manifest is unreadable"
    for role, entry in files.items():
        target = manifest.with_name(str(entry.get("name", ""))) if isinstance(entry, dict) else None
        if target is None or (role == "replay" and not target.exists()):
            continue
        if not target.is_file() or target.stat().st_size != entry.get("bytes"):
            return f"{target.name} is missing or not the size its manifest records"
    return None
