"""The earlier system's human-readable log lines, read for lib/runlog/analysis.py.

Its Kaggle logs had no events: builds show as `[NETWORK BUILD] Creating` lines, GPU allocations
as `GPU memory allocated`, training as SB3's tables and `Eval num_timesteps=` lines. Phases are
inferred from those markers and Kaggle's time stamps.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any

from lib.runlog.values import Bounded, Interval, difference, number_text, ratio, rounded

BUILD_LINES = 40

_BUILD = re.compile(r"\[NETWORK BUILD\] Creating (\d+) segments and (\d+) nodes")
_MEMORY = re.compile(r"GPU memory allocated:\s*([\d.]+)\s*MB")
_SB3_ROW = re.compile(r"\|\s*([^|]*?)\s*\|\s*([^|]*?)\s*\|\s*$")
_SB3_RULE = re.compile(r"-{5,}\s*$")
_EVAL = re.compile(r"Eval num_timesteps=(\d+), episode_reward=([-+\d.eE]+|nan) \+/- ([-+\d.eE]+|nan)")
_TRAIN_DONE = re.compile(r"Training completed in ([\d.]+) minutes \(([\d.]+)s\)")


class Legacy:
    """The earlier system's human-readable lines: builds, allocations, SB3 tables, Eval lines.

    A build runs from its `[NETWORK BUILD] Creating` line to its `GPU memory allocated` line (or
    the next marker, or BUILD_LINES lines); the lines inside it are not context for later builds.
    """

    def __init__(self) -> None:
        self.seen = False
        self.builds = Bounded()
        self.building: dict[str, Any] | None = None
        self.building_lines = 0
        self.memory = {"allocations": 0, "total_mb": 0.0}
        self.sb3 = {"rows": 0, "tables": 0, "fps": None, "total_timesteps": None}
        self.in_table = False
        self.evals = Bounded()
        self.train_start: float | None = None
        self.train_done: dict[str, Any] | None = None
        self.evaluating: float | None = None

    def feed(self, text: str, at: float | None, context: deque[str]) -> bool:
        """Record `text` when it is a legacy line; True when it is no context (a marker or in a build)."""
        if "[NETWORK BUILD] Creating" in text and (match := _BUILD.search(text)):
            self._build(match, at, list(context))
            return True
        if "GPU memory allocated" in text and (match := _MEMORY.search(text)):
            self._memory(float(match.group(1)), at)
            return True
        if text.startswith("|") and self._sb3(text):
            return True
        if self.in_table and _SB3_RULE.match(text):
            self.in_table = False
            return True
        if self._markers(text, at):
            self.building = None
            return False
        return self._inside_build(at)

    def _inside_build(self, at: float | None) -> bool:
        if self.building is None:
            return False
        self.building["end"] = at
        self.building_lines += 1
        if self.building_lines >= BUILD_LINES:
            self.building = None
        return True

    def _markers(self, text: str, at: float | None) -> bool:
        """Training and evaluation markers; True when `text` was one."""
        if "Eval num_timesteps=" in text and (match := _EVAL.search(text)):
            num, reward, std = match.groups()
            self.evals.add({"num_timesteps": int(num), "reward": float(reward), "std": float(std), "at": at})
        elif "Training completed in" in text and (match := _TRAIN_DONE.search(text)):
            self.train_done = {"minutes": float(match.group(1)), "seconds": float(match.group(2)), "at": at}
        elif "Training started" in text and self.train_start is None:
            self.train_start = at
        elif "Evaluating" in text and self.train_done is not None and self.evaluating is None:
            self.evaluating = at
        else:
            return False
        self.seen = True
        return True

    def _build(self, match: re.Match[str], at: float | None, context: list[str]) -> None:
        self.seen = True
        self.building = {
            "n": self.builds.total + 1, "at": at, "end": at, "seconds": None,
            "segments": int(match.group(1)), "nodes": int(match.group(2)), "memory_mb": None,
            "phase": self.phase_now(), "context": context,
        }
        self.building_lines = 0
        self.builds.add(self.building)

    def _memory(self, mb: float, at: float | None) -> None:
        self.seen = True
        self.memory["allocations"] += 1
        self.memory["total_mb"] = round(self.memory["total_mb"] + mb, 3)
        if self.building is not None:
            self.building["memory_mb"] = mb
            self.building["end"] = at
            self.building["seconds"] = rounded(difference(at, self.building["at"]))
            self.building = None

    def _sb3(self, text: str) -> bool:
        match = _SB3_ROW.match(text)
        if match is None:
            return False
        self.seen = True
        self.sb3["rows"] += 1
        if not self.in_table:
            self.sb3["tables"] += 1
            self.in_table = True
        key, value = match.group(1).strip(), number_text(match.group(2))
        if key in ("fps", "total_timesteps") and value is not None:
            self.sb3[key] = value
        return True

    def phase_now(self) -> str:
        """The inferred phase at this point of the log, from the training markers seen so far."""
        if self.train_done is not None:
            return "eval"
        return "train" if self.train_start is not None else "setup"

    def intervals(self, end: float) -> list[Interval]:
        """Phases inferred from markers: setup until the first build or training, builds, train, eval."""
        out: list[Interval] = []
        train = self._train_span(end)
        starts = [b["at"] for b in self.builds if b["at"] is not None] + ([train[0]] if train else [])
        if starts:
            out.append(("setup", 0.0, min(starts), False))
        out += [("build", b["at"], b["end"], False) for b in self.builds if b["at"] is not None]
        if train:
            out.append(("train", train[0], train[1], self.train_done is None))
        done_at = self.train_done["at"] if self.train_done else None
        eval_start = self.evaluating if self.evaluating is not None else done_at
        if eval_start is not None and end > eval_start:
            out.append(("eval", eval_start, end, True))
        return out

    def _train_span(self, end: float) -> tuple[float, float] | None:
        done = self.train_done
        if done is not None and done["at"] is not None:
            start = self.train_start if self.train_start is not None else done["at"] - done["seconds"]
            return start, done["at"]
        if self.train_start is not None:
            return self.train_start, end
        return None

    def throughput(self) -> dict[str, Any]:
        seconds = self.train_done["seconds"] if self.train_done else None
        steps = self.sb3["total_timesteps"]
        return {
            "train_steps": steps,
            "train_s": seconds,
            "steps_per_s": ratio(steps, seconds),
            "reported_fps": self.sb3["fps"],
            "eval_lines": self.evals.total,
        }

    def metrics(self) -> dict[str, dict[str, Any]]:
        if not self.evals:
            return {}
        last = self.evals[-1]
        agent = {"mean_reward": last["reward"], "reward_std": last["std"], "steps": last["num_timesteps"]}
        return {"agent": agent}

    def result(self) -> dict[str, Any]:
        return {
            "gpu_memory": self.memory,
            "sb3": self.sb3,
            "eval_lines": self.evals,
            "training_completed": self.train_done,
        }
