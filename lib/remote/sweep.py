"""Sweeps: one run per combination of settings, as Kaggle sessions or here, tracked in a manifest.

    python push_kernel.py --sweep seed=0,1,2 --sweep env.demand_scale=0.6,1.0,1.4 --steps 20000
    python fetch_logs.py --sweep NAME

A claim needs several training seeds and demand levels, and the user's machine for that is Kaggle:
many notebook sessions. A sweep is the cartesian product of the values given per setting, on top
of the settings every run shares. Each combination becomes one notebook with a slug of its own
(`<name>-<nn>`, also its run id). The manifest, runs/sweeps/<name>/manifest.json, records every
combination and its state; running the same command again refreshes the states and pushes the
next combinations as the concurrency limit allows. Kaggle is the engine users grow into: there is
no scheduler of our own, only this bookkeeping.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib.config import did_you_mean
from lib.remote.settings import run_options, setting_name, typed

MANIFEST = "manifest.json"
ACTIVE = ("queued", "running")
ENDED = ("complete", "error", "cancelled")
KAGGLE_STATES = {"QUEUED": "queued", "RUNNING": "running", "COMPLETE": "complete", "ERROR": "error",
                 "CANCEL_REQUESTED": "running", "CANCEL_ACKNOWLEDGED": "cancelled"}
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,40}[a-z0-9]$")
# A free Kaggle account runs few GPU sessions at once; 2 is this project's stated assumption.
DEFAULT_MAX_CONCURRENT = 2
# A rough cost model of one session (docs/kaggle.md): start-up (image, bootstrap, imports, kernel
# compile), training at an assumed rate, and every controller's evaluation episodes.
STARTUP_S = 120.0
ASSUMED_TRAIN_STEPS_PER_S = 500.0
EVAL_S_PER_CONTROLLER_EPISODE = 2.0
CONTROLLERS_EVALUATED = 6


class SweepError(ValueError):
    """A sweep cannot be planned or continued (a usage error: exit code 2); the message says why
    and what to do."""

    exit_code = 2


@dataclass
class Combination:
    """One run of a sweep: the swept values, its slug, and how far it has got."""

    index: int
    slug: str
    values: dict[str, Any]
    state: str = "pending"
    ref: str | None = None  # OWNER/SLUG once pushed
    version: int | None = None
    message: str | None = None
    folder: str | None = None  # its outputs, once run here or downloaded


@dataclass
class Sweep:
    name: str
    folder: Path
    target: str
    grid: dict[str, list[Any]]
    base: dict[str, Any]
    combinations: list[Combination] = field(default_factory=list)

    def settings_of(self, combination: Combination) -> dict[str, Any]:
        """The run settings of one combination: the shared ones, its values, its run id."""
        return {**self.base, **combination.values, "run_id": combination.slug}

    def with_state(self, *states: str) -> list[Combination]:
        return [c for c in self.combinations if c.state in states]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.combinations:
            out[c.state] = out.get(c.state, 0) + 1
        return out

    def save(self) -> Path:
        """Write the manifest atomically (a reader never sees half of it)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        record = {"name": self.name, "target": self.target, "grid": self.grid, "base": self.base,
                  "combinations": [dataclasses.asdict(c) for c in self.combinations]}
        path = self.folder / MANIFEST
        partial = path.with_suffix(".json.partial")
        partial.write_text(json.dumps(record, indent=1, default=list) + "\n")
        partial.replace(path)
        return path


# --------------------------------------------------------------------------- planning


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """`["seed=0,1,2", "env.demand-scale=0.6,1.4"]` -> {"seed": [0, 1, 2], "env.demand_scale": [0.6, 1.4]},
    each value typed as its setting's command-line option would be."""
    known = run_options()
    grid: dict[str, list[Any]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = setting_name(name)
        if not sep or not values.strip():
            raise SweepError(f"--sweep {item!r}: write NAME=V1,V2,... (e.g. --sweep seed=0,1,2)")
        if name not in known:
            raise SweepError(f"--sweep {item!r}: unknown setting '{name}'.{did_you_mean(name, known)}")
        if name in grid:
            raise SweepError(f"--sweep names '{name}' twice: give all its values in one --sweep")
        grid[name] = [typed(v.strip(), known[name]) for v in _split_values(values)]
    return grid


def _split_values(text: str) -> list[str]:
    """Split on commas outside brackets, so a tuple value such as [0.9,1.1] stays whole."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [p for p in [*parts, current] if p.strip()]


def default_name(grid: Mapping[str, list[Any]], base: Mapping[str, Any]) -> str:
    """Named after what it sweeps, plus a hash of the grid and shared settings (a sweep of other
    settings never reuses another's slugs): `seed-demand-scale-3fa2c1`."""
    keys = "-".join(k.rsplit(".", 1)[-1].replace("_", "-") for k in grid)[:30].strip("-")
    digest = hashlib.sha256(json.dumps([grid, sorted(base.items())], default=list).encode()).hexdigest()
    return f"{keys}-{digest[:6]}"


def plan(runs_dir: Path, grid: dict[str, list[Any]], base: dict[str, Any], target: str,
         name: str | None = None) -> Sweep:
    """The sweep `name` under runs_dir/sweeps: continued when its manifest exists (it must be the
    same grid and shared settings), else planned anew with every combination pending."""
    if not grid:
        raise SweepError("a sweep needs at least one --sweep NAME=V1,V2,...")
    name = name or default_name(grid, base)
    if not NAME_PATTERN.match(name):
        raise SweepError(f"sweep name {name!r}: use 3-42 lowercase letters, digits and '-' (it starts every "
                         "combination's Kaggle slug)")
    folder = runs_dir / "sweeps" / name
    if (folder / MANIFEST).exists():
        sweep = load(runs_dir, name)
        if sweep.target != target:
            raise SweepError(f"the sweep {name!r} runs on {sweep.target}, not {target}: pass --target "
                             f"{sweep.target} to continue it, or --sweep-name for a new sweep")
        if json.loads(json.dumps([sweep.grid, sweep.base], default=list)) != json.loads(
                json.dumps([grid, base], default=list)):
            raise SweepError(f"a sweep named {name!r} exists with other settings ({folder / MANIFEST}); "
                             "give the same options to continue it, or --sweep-name for a new one")
        return sweep
    names = list(grid)
    combinations = [
        Combination(i, f"{name}-{i:02d}", dict(zip(names, values, strict=True)))
        for i, values in enumerate(itertools.product(*grid.values()))
    ]
    return Sweep(name, folder, target, grid, base, combinations)


def load(runs_dir: Path, name: str) -> Sweep:
    """A sweep from its manifest; a clear error when there is none."""
    path = runs_dir / "sweeps" / name / MANIFEST
    if not path.is_file():
        known = sorted(p.parent.name for p in (runs_dir / "sweeps").glob(f"*/{MANIFEST}"))
        raise SweepError(f"no sweep named {name!r} ({path} is missing); sweeps here: "
                         f"{', '.join(known) or 'none'}")
    try:
        record = json.loads(path.read_text())
        combos = [Combination(**c) for c in record["combinations"]]
        return Sweep(record["name"], path.parent, record["target"], record["grid"], record["base"], combos)
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise SweepError(f"{path} is not a sweep manifest ({type(exc).__name__}: {exc})") from None


def estimate_seconds(settings: Mapping[str, Any]) -> float:
    """Rough seconds of one session with these settings (the cost model above; an estimate)."""
    from lib.rl.run_config import RunConfig

    config = RunConfig.from_dict(settings)
    evaluation = CONTROLLERS_EVALUATED * config.eval_episodes * EVAL_S_PER_CONTROLLER_EPISODE
    return STARTUP_S + config.steps / ASSUMED_TRAIN_STEPS_PER_S + evaluation


# --------------------------------------------------------------------------- Kaggle


def versioned_ref(c: Combination) -> str:
    """OWNER/SLUG/VERSION of a pushed combination (OWNER/SLUG when Kaggle gave no version)."""
    return f"{c.ref}/{c.version}" if c.version else str(c.ref)


def refresh(sweep: Sweep, status_of: Callable[[str], tuple[str, str | None]]) -> None:
    """Ask Kaggle how each pushed, unfinished combination is doing."""
    for c in sweep.with_state(*ACTIVE):
        status, message = status_of(versioned_ref(c))
        c.state = KAGGLE_STATES.get(status, c.state)
        c.message = message if status in KAGGLE_STATES else f"Kaggle reports an unknown status {status!r}"


def push_next(
    sweep: Sweep, push_one: Callable[[Combination], tuple[str, int | None]], max_concurrent: int
) -> list[Combination]:
    """Push pending combinations while fewer than `max_concurrent` are queued or running. A push
    that fails stops the round (the rest stay pending, the next call tries again)."""
    pushed = []
    room = max_concurrent - len(sweep.with_state(*ACTIVE))
    for c in sweep.with_state("pending")[: max(room, 0)]:
        try:
            c.ref, c.version = push_one(c)
        except Exception as exc:  # noqa: BLE001 - kept in the manifest, reported, retried next time
            c.message = f"push failed: {exc}"
            break
        c.state, c.message = "queued", None
        pushed.append(c)
        sweep.save()
    return pushed


# --------------------------------------------------------------------------- here


def run_here(sweep: Sweep, command_for: Callable[[Combination], list[str]], jobs: int,
             on_done: Callable[[Combination], None] | None = None) -> None:
    """Run every pending combination here, `jobs` at a time, each as its own process (its output in
    <sweep>/<slug>.out); the manifest is updated as each one ends."""
    todo = sweep.with_state("pending", "error")
    for c in todo:
        c.state, c.message = "running", None
    sweep.save()

    def one(c: Combination) -> tuple[Combination, int, str]:
        out = sweep.folder / f"{c.slug}.out"
        with out.open("w") as handle:
            done = subprocess.run(command_for(c), stdout=handle, stderr=subprocess.STDOUT, check=False)
        return c, done.returncode, _reason(out.read_text(errors="replace"))

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for future in as_completed([pool.submit(one, c) for c in todo]):
            c, code, tail = future.result()
            c.state = "complete" if code == 0 else "error"
            c.message = None if code == 0 else f"exit {code}: {tail[:200]}"
            c.folder = str(sweep.folder / c.slug)
            sweep.save()
            if on_done is not None:
                on_done(c)


def _reason(output: str) -> str:
    """The line of a run's output that says why it failed (else its last line)."""
    lines = [line.strip() for line in output.splitlines() if line.strip().strip("=")]
    said = [line for line in lines if "FAILED" in line or "error" in line.lower()]
    return (said or lines or [""])[-1]


def option_args(settings: Mapping[str, Any]) -> list[str]:
    """`-p NAME VALUE` arguments that push_kernel.py reads back into exactly these settings."""
    args = []
    for name, value in settings.items():
        text = value if isinstance(value, str) else json.dumps(value, default=list)
        args += ["-p", name, text]
    return args


# --------------------------------------------------------------------------- results


def status_table(sweep: Sweep) -> str:
    """One line per combination: its swept values, state and any message."""
    names = list(sweep.grid)
    header = ["#", "slug", *names, "state", "note"]
    rows = [[str(c.index), c.slug, *(json.dumps(c.values[n], default=list) for n in names), c.state,
             (c.message or "")[:80]] for c in sweep.combinations]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    counts = ", ".join(f"{n} {state}" for state, n in sorted(sweep.counts().items()))
    title = f"sweep {sweep.name} ({sweep.target}): {len(sweep.combinations)} runs: {counts}"
    return "\n".join([title, *lines])


def results_of(c: Combination) -> dict[str, Any] | None:
    """A finished combination's results.json, or None when it has none (yet)."""
    path = Path(c.folder or "") / "results.json"
    if not c.folder or not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
