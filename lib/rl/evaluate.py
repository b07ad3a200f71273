"""Evaluation: any policy or controller on the same seeds, same demands, same metrics.

Why one function for all: the earlier system compared against a fixed-time plan defined
differently in each script, and its evaluation could hang silently. Here every controller (the
trained policy included) runs one episode per evaluation seed on the same batched VecEnv (one
scenario per seed, all advanced in one simulator call), re-seeded identically before each
controller so the demands match. Each episode must end at its horizon (a hard step limit turns a
hang into an error), and progress shows as a tqdm bar on stderr plus `eval_progress` events at
least every few seconds.

Per episode the metrics are read from the info of its final step: `mean_delay_s` (delay per
vehicle entered), `exited` (throughput), `mean_queue_veh`, and the episode's summed reward
(its return: `mean_reward` is the mean return over episodes). `entered_veh` is kept per episode
to show that every controller faced the same arrivals.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lib.obs.events import emit
from lib.obs.progress import progress_bar as bar_for

METRICS = ("mean_delay_s", "throughput_veh", "mean_queue_veh", "mean_reward")
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
    """One controller's episodes: per-episode metrics and per-link means over its decisions."""

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


def horizon_steps(env: Any) -> int:
    """Decisions in one episode of `env` (its horizon over its decision interval, rounded up)."""
    return env.config.horizon


def evaluate(
    name: str,
    actor: Actor,
    env: Any,
    seed: int,
    reset: Callable[[Any], None] | None = None,
    progress_bar: bool = True,
) -> Evaluation:
    """Run one episode per scenario of the VecEnv `env` (env i seeded `seed + i`) with `actor`.

    `reset(env)` (a controller's) is called after the environment reset. Raises RuntimeError if
    an episode has not ended a few steps past its horizon."""
    n = env.num_envs
    limit = horizon_steps(env) + 2
    env.seed(seed)
    obs = env.reset()
    if reset is not None:
        reset(env)
    returns = np.zeros(n)
    finals: list[dict[str, Any] | None] = [None] * n
    speed = np.zeros((n, env.network.n_links))
    density = np.zeros((n, env.network.n_links))
    counts = np.zeros((n, 1))
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
            speed[running] += env.sim.link_speed()[running]
            density[running] += env.sim.link_density()[running]
            counts[running] += 1.0
            obs, rewards, dones, infos = env.step(actor(obs, env))
            returns[running] += rewards[running]
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
            "mean_queue_veh": float(f["mean_queue_veh"]),
            "mean_reward": float(r),
            "entered_veh": float(f["entered"]),
            "seed": seed + i,
        }
        for i, (f, r) in enumerate(zip(finals, returns, strict=True))
    ]
    return Evaluation(name, episodes, (speed / counts).mean(axis=0), (density / counts).mean(axis=0))


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


def results_markdown(results: dict[str, dict[str, float]], policy: str, references: tuple[str, ...]) -> str:
    """A table (mean ± sample std over the evaluation episodes) and the policy's relative changes."""
    header = "| controller | episodes | mean delay (s/veh) | throughput (veh) | mean queue (veh) | reward |"
    lines = [header, "| --- | --- | --- | --- | --- | --- |"]
    for name, r in results.items():
        cells = [f"{r[k]:.2f} ± {r[k + '_std']:.2f}" for k in METRICS]
        lines.append(f"| {name} | {int(r['episodes'])} | " + " | ".join(cells) + " |")
    lines += ["", f"Relative change of `{policy}` (negative delay and queue are better):", ""]
    lines += ["| vs | delay | throughput | queue | reward |", "| --- | --- | --- | --- | --- |"]
    for ref in references:
        if ref in results and ref != policy:
            change = relative_change(results, policy, ref)
            lines.append(f"| {ref} | " + " | ".join(f"{100 * change[k]:+.1f}%" for k in METRICS) + " |")
    return "\n".join(lines) + "\n"
