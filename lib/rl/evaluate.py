"""Evaluation: any policy or controller on the same seeds, same demands, same metrics.

Why one function for all: the earlier system compared against a fixed-time plan defined
differently in each script, and its evaluation could hang silently. Here every controller (the
trained policy included) runs one episode per evaluation seed on the same batched VecEnv (one
scenario per seed, all advanced in one simulator call), re-seeded identically before each
controller so the demands match. Each episode must end at its horizon (a hard step limit turns a
hang into an error), and progress shows as a tqdm bar on stderr plus `eval_progress` events at
least every few seconds.

Per episode the metrics are read from the info of its final step: `mean_delay_s` (delay per
vehicle entered), `exited` (throughput), `switches`, `mean_queue_veh`, and the episode's summed
reward (its return: `mean_reward` is the mean return over episodes; it depends on the decision
interval, so compare it only between policies of one interval). The entry queue (vehicles the
network cannot take in yet) is sampled every `sample_s` of simulated time, the same clock for
every controller whatever its step: `mean_entry_queue_veh`, `max_entry_queue_veh`. The per-link
mean speed and density (the maps) are sampled on that clock too, at the start of each period:
reading them is host-side numpy over every cell, and at a 1 s step it cost more than the
simulation. `entered_veh` is kept per episode to show that every controller faced the same
arrivals.

Classic controllers act on their own control step, not the learner's decision interval:
`evaluate_controller` runs one on a pooled VecEnv deciding every `controller.control_step_s`;
`evaluate_controllers` runs several that share a step, each x every seed, as one batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lib.obs.events import emit
from lib.obs.progress import progress_bar as bar_for
from lib.rl.controllers import Blocks
from lib.rl.vecenv import TrafficVecEnv

METRICS = (
    "mean_delay_s",
    "throughput_veh",
    "mean_entry_queue_veh",
    "max_entry_queue_veh",
    "switches",
    "mean_queue_veh",
    "mean_reward",
)
# Seconds between `eval_progress` events: well inside the 10 s the log format promises.
PROGRESS_EVERY_S = 5.0

Actor = Callable[[Any, Any], Any]


@dataclass
class Throttle:
    """True at most once per `every` seconds (and on the first call)."""

    every: float
    last: float = field(default=-math.inf)

    def ready(self) -> bool:
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            return True
        return False


@dataclass
class Evaluation:
    """One controller's episodes: per-episode metrics and per-link means over its samples."""

    name: str
    episodes: list[dict[str, float]]
    link_speed_mps: np.ndarray
    link_density_vpm: np.ndarray

    def summary(self) -> dict[str, float]:
        """Mean and spread (sample std; 0 for one episode) of every metric, plus the count."""
        out: dict[str, float] = {"episodes": len(self.episodes)}
        for key in METRICS:
            values = np.array([e[key] for e in self.episodes], dtype=np.float64)
            out[key] = float(values.mean())
            out[f"{key}_std"] = float(values.std(ddof=1)) if values.size > 1 else 0.0
        return out


def policy_actor(model: Any) -> Actor:
    """An SB3 model as an actor: its deterministic action for the batch of observations."""
    return lambda obs, env: model.predict(obs, deterministic=True)[0]


def horizon_steps(env: Any) -> int:
    """Decisions in one episode of `env` (its horizon over its decision interval, rounded up)."""
    return env.config.horizon


@dataclass
class Episodes:
    """Every scenario's episode of one batched run, kept per scenario so that a run of several
    controllers (lib.rl.controllers.Blocks) can be split into one Evaluation each."""

    episodes: list[dict[str, float]]
    link_speed_mps: np.ndarray  # (scenarios, links): each scenario's mean over its samples
    link_density_vpm: np.ndarray

    def evaluation(self, name: str, rows: slice = slice(None)) -> Evaluation:
        """The Evaluation of the scenarios `rows` (all by default)."""
        return Evaluation(
            name,
            self.episodes[rows],
            self.link_speed_mps[rows].mean(axis=0),
            self.link_density_vpm[rows].mean(axis=0),
        )


def evaluate(
    name: str,
    actor: Actor,
    env: Any,
    seed: int | Sequence[int],
    reset: Callable[[Any], None] | None = None,
    progress_bar: bool = True,
    sample_s: float | None = None,
) -> Evaluation:
    """`run_episodes` of all scenarios of `env` as one Evaluation named `name`."""
    return run_episodes(name, actor, env, seed, reset, progress_bar, sample_s).evaluation(name)


def run_episodes(
    name: str,
    actor: Actor,
    env: Any,
    seed: int | Sequence[int],
    reset: Callable[[Any], None] | None = None,
    progress_bar: bool = True,
    sample_s: float | None = None,
) -> Episodes:
    """Run one episode per scenario of the VecEnv `env` with `actor`: scenario i seeded `seed + i`,
    or `seed[i]` when a sequence is given (paired comparisons repeat episodes across candidates).

    `reset(env)` (a controller's) is called after the environment reset. The entry queue (at the
    end) and the link speeds and densities (at the start) of every `sample_s` simulated seconds
    are sampled (default: every decision; it must be a multiple of the decision interval).
    Raises RuntimeError if an episode has not ended a few steps past its horizon."""
    n = env.num_envs
    seeds = [seed + i for i in range(n)] if isinstance(seed, (int, np.integer)) else [int(s) for s in seed]
    if len(seeds) != n:
        raise ValueError(f"evaluate needs one seed per scenario ({n}), got {len(seeds)}")
    every = sample_steps(env, sample_s)
    limit = horizon_steps(env) + 2
    env.seed_each(seeds)
    obs = env.reset()
    if reset is not None:
        reset(env)
    returns = np.zeros(n)
    finals: list[dict[str, Any] | None] = [None] * n
    speed = np.zeros((n, env.network.n_links))
    density = np.zeros((n, env.network.n_links))
    counts = np.zeros((n, 1))
    entry = EntryQueue(n)
    throttle = Throttle(PROGRESS_EVERY_S)
    with bar_for(total=limit - 2, desc=f"eval {name}", disable=not progress_bar, leave=False) as bar:
        for step in range(limit):
            running = np.array([f is None for f in finals])
            if not running.any():
                break
            if throttle.ready():
                emit(
                    "eval_progress",
                    controller=name,
                    episode=n - int(running.sum()),
                    episodes=n,
                    step=step,
                    steps=limit - 2,
                )
            if step % every == 0:
                speed[running] += env.sim.link_speed()[running]
                density[running] += env.sim.link_density()[running]
                counts[running] += 1.0
            obs, rewards, dones, infos = env.step(actor(obs, env))
            returns[running] += rewards[running]
            if (step + 1) % every == 0:
                entry.sample(running, infos)
            for i in np.flatnonzero(running & dones):
                finals[i] = infos[i]
            bar.update(1)
        else:
            raise RuntimeError(
                f"evaluation of {name}: {sum(f is None for f in finals)} episode(s) did not end within "
                f"{limit} decisions (horizon {horizon_steps(env)}); the environment's truncation is broken"
            )
    emit("eval_progress", controller=name, episode=n, episodes=n, step=step, steps=limit - 2)
    episodes = [
        {
            "mean_delay_s": float(f["mean_delay_s"]),
            "throughput_veh": float(f["exited"]),
            "mean_entry_queue_veh": float(entry.mean()[i]),
            "max_entry_queue_veh": float(entry.peak[i]),
            "switches": float(f["switches"]),
            "mean_queue_veh": float(f["mean_queue_veh"]),
            "mean_reward": float(r),
            "entered_veh": float(f["entered"]),
            "seed": seeds[i],
        }
        for i, (f, r) in enumerate(zip(finals, returns, strict=True))
    ]
    return Episodes(episodes, speed / counts, density / counts)


def sample_steps(env: Any, sample_s: float | None) -> int:
    """Decisions between two entry-queue samples; `sample_s` must be a multiple of the interval."""
    interval = float(env.config.decision_interval)
    if sample_s is None:
        return 1
    steps = round(sample_s / interval)
    if steps < 1 or not math.isclose(steps * interval, sample_s):
        raise ValueError(
            f"sample_s ({sample_s}) must be a positive multiple of the decision interval ({interval})"
        )
    return steps


@dataclass
class EntryQueue:
    """Running mean and maximum of each scenario's entry queue over its samples."""

    n: int
    total: np.ndarray = field(init=False)
    peak: np.ndarray = field(init=False)
    count: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.total, self.peak, self.count = np.zeros(self.n), np.zeros(self.n), np.zeros(self.n)

    def sample(self, running: np.ndarray, infos: Sequence[dict[str, Any]]) -> None:
        queue = np.array([info["entry_queue_veh"] for info in infos])
        self.total[running] += queue[running]
        self.count[running] += 1
        self.peak[running] = np.maximum(self.peak[running], queue[running])

    def mean(self) -> np.ndarray:
        return self.total / np.maximum(self.count, 1)


def evaluate_controller(
    controller: Any,
    config: Any,
    seeds: Sequence[int],
    sample_s: float,
    progress_bar: bool = False,
) -> Evaluation:
    """A classic controller on `seeds` (one scenario each) of the env `config`, deciding every
    `controller.control_step_s` on a pooled VecEnv (no network build), entry queue sampled every
    `sample_s` (the learner's decision interval, so both sides are sampled alike)."""
    env = TrafficVecEnv(len(seeds), config.replace(decision_interval=controller.control_step_s))
    try:
        return evaluate(
            controller.name,
            controller.act,
            env,
            seeds,
            reset=controller.reset,
            progress_bar=progress_bar,
            sample_s=sample_s,
        )
    finally:
        env.close()


def evaluate_controllers(
    controllers: dict[str, Any],
    config: Any,
    seeds: Sequence[int],
    sample_s: float,
    progress_bar: bool = False,
) -> dict[str, Evaluation]:
    """Every controller as `evaluate_controller` would run it, but all those sharing a control
    step x all `seeds` in one batched VecEnv (`Blocks`: controller i on scenarios
    [i * len(seeds), (i + 1) * len(seeds))), the simulator being cheaper per scenario in a larger
    batch (1.9x for 5 x 30 hour episodes, docs/PERFORMANCE.md). Same keys, same episodes as one at
    a time (to round-off: the CPU kernel's chunk width follows the batch size)."""
    by_step: dict[float, list[str]] = {}
    for name, controller in controllers.items():
        by_step.setdefault(controller.control_step_s, []).append(name)
    out: dict[str, Evaluation] = {}
    for step, names in by_step.items():
        blocks = Blocks([controllers[n] for n in names], len(seeds))
        env = TrafficVecEnv(len(names) * len(seeds), config.replace(decision_interval=step))
        try:
            run = run_episodes(
                "+".join(names),
                blocks.act,
                env,
                [s for _ in names for s in seeds],
                reset=blocks.reset,
                progress_bar=progress_bar,
                sample_s=sample_s,
            )
        finally:
            env.close()
        out.update({n: run.evaluation(blocks.members[i].name, blocks.rows(i)) for i, n in enumerate(names)})
    return {name: out[name] for name in controllers}


def report(evaluation: Evaluation) -> dict[str, float]:
    """Emit the controller's `eval_result` event and return its summary."""
    summary = evaluation.summary()
    emit("eval_result", controller=evaluation.name, **summary)
    return summary


def relative_change(results: dict[str, dict[str, float]], policy: str, reference: str) -> dict[str, float]:
    """Relative change (policy - reference) / |reference| of each metric's mean (NaN if 0)."""
    out = {}
    for key in METRICS:
        ref = results[reference][key]
        out[key] = (results[policy][key] - ref) / abs(ref) if ref != 0 else math.nan
    return out


LABELS = {
    "mean_delay_s": "mean delay (s/veh)",
    "throughput_veh": "throughput (veh)",
    "mean_entry_queue_veh": "mean entry queue (veh)",
    "max_entry_queue_veh": "max entry queue (veh)",
    "switches": "switches",
    "mean_queue_veh": "mean queue (veh)",
    "mean_reward": "reward",
}


def results_markdown(results: dict[str, dict[str, float]], policy: str, references: tuple[str, ...]) -> str:
    """A table (mean ± sample std over the evaluation episodes) and the policy's relative changes."""
    lines = [
        "| controller | episodes | " + " | ".join(LABELS[k] for k in METRICS) + " |",
        "| --- " * (len(METRICS) + 2) + "|",
    ]
    for name, r in results.items():
        cells = [f"{r[k]:.2f} ± {r[k + '_std']:.2f}" for k in METRICS]
        lines.append(f"| {name} | {int(r['episodes'])} | " + " | ".join(cells) + " |")
    lines += ["", f"Relative change of `{policy}` (negative delay and queue are better):", ""]
    lines += ["| vs | " + " | ".join(LABELS[k] for k in METRICS) + " |", "| --- " * (len(METRICS) + 1) + "|"]
    for ref in references:
        if ref in results and ref != policy:
            change = relative_change(results, policy, ref)
            lines.append(f"| {ref} | " + " | ".join(f"{100 * change[k]:+.1f}%" for k in METRICS) + " |")
    return "\n".join(lines) + "\n"
