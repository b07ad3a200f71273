"""The evaluation protocol of issue 12: seed sets, demand levels, episodes and paired statistics.

Why it is shaped this way: a claim against baselines is only as good as what it is measured on.
- Three disjoint seed sets: training (learners), tuning/validation (baseline tuning and
  checkpoint selection) and evaluation (the tables only). `check_disjoint` proves it.
- Demand levels 0.6-1.4 of the base demand, flat and peak profiles; each level is also stated
  by its critical flow ratio (the Y of Webster's method, from the design demand).
- Every controller faces the same episodes (same seeds, hence the same demand draws), so each
  comparison is paired per episode: the mean relative change in delay with a 95 % bootstrap
  interval (over training seeds, then episodes), the win rate and the median per-episode ratio,
  against every baseline and, as the headline, against the best classic controller at that level.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lib.rl.demand import mean_profile_factor
from lib.rl.env import EnvConfig, base_demand
from lib.sim.network import Network

LEVELS = (0.6, 0.8, 1.0, 1.2, 1.4)
PROFILES = ("flat", "peak")
CLASSIC = ("webster", "fixed_time", "max_pressure", "actuated")  # "random" is a floor, not a contender
DESIGN_WINDOW_S = 900.0  # a peak's design demand: its busiest 15 minutes (Highway Capacity Manual)
BOOTSTRAP_REPLICATES = 10_000


@dataclass(frozen=True)
class SeedSet:
    """Episode seeds [start, stop): a VecEnv of n scenarios seeded s uses s .. s + n - 1."""

    name: str
    start: int
    stop: int

    def take(self, n: int, skip: int = 0) -> list[int]:
        """`n` seeds from the set (after `skip`), with a clear error when the set runs out."""
        if n < 0 or skip < 0 or self.start + skip + n > self.stop:
            raise ValueError(
                f"the {self.name} seed set [{self.start}, {self.stop}) has no room for {n} seeds after {skip}"
            )
        return list(range(self.start + skip, self.start + skip + n))

    def holds(self, seeds: Sequence[int]) -> bool:
        return all(self.start <= s < self.stop for s in seeds)


# Training runs seed their n_envs scenarios with seed .. seed + n_envs - 1 and their sanity and
# in-run evaluation envs at lib.rl.train's offsets (1e6, 2e6): all below 1e7, the training set.
TRAINING = SeedSet("training", 0, 10_000_000)
TUNING = SeedSet("tuning/validation", 10_000_000, 11_000_000)
EVALUATION = SeedSet("evaluation", 20_000_000, 21_000_000)
SEED_SETS = (TRAINING, TUNING, EVALUATION)


def check_disjoint(sets: Sequence[SeedSet] = SEED_SETS) -> None:
    """Raise ValueError if any two seed sets share a seed."""
    ordered = sorted(sets, key=lambda s: s.start)
    for a, b in zip(ordered, ordered[1:], strict=False):
        if b.start < a.stop:
            raise ValueError(
                f"seed sets {a.name} [{a.start}, {a.stop}) and {b.name} [{b.start}, {b.stop}) overlap"
            )


def check_level(level: float, profile: str) -> None:
    if not (np.isfinite(level) and level > 0):
        raise ValueError(f"a demand level must be a positive multiple of the base demand, got {level!r}")
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")


def level_config(base: EnvConfig, level: float, profile: str) -> EnvConfig:
    """The episodes of one level and profile: the base demand x level, per-entry jitter from
    the seed, no level randomisation (the level is the experiment's factor)."""
    check_level(level, profile)
    return base.replace(
        demand_scale=level, randomize_demand=True, demand_level_range=(1.0, 1.0), demand_profile=profile
    )


def design_demand(config: EnvConfig, network: Network) -> np.ndarray:
    """Per-entry demand (veh/h) a traffic engineer designs for: the level's mean demand, or for
    a peak profile its busiest DESIGN_WINDOW_S (centred on the peak)."""
    mean = base_demand(config, network)
    if config.demand_profile != "peak":
        return mean
    middle, half = 0.5 * config.episode_seconds, 0.5 * min(DESIGN_WINDOW_S, config.episode_seconds)
    return mean * float(mean_profile_factor("peak", middle - half, middle + half, config.episode_seconds))


# --------------------------------------------------------------------------- paired statistics


def paired_statistics(
    learner_delay: np.ndarray, baseline_delay: np.ndarray, rng: np.random.Generator | None = None
) -> dict[str, float]:
    """A learner against one baseline on the same episodes.

    `learner_delay` is (training seeds, episodes), `baseline_delay` (episodes,). Per episode the
    relative change is (learner - baseline) / baseline. Returns its mean, a 95 % percentile
    interval from a two-stage bootstrap (each replicate redraws the training seeds, then the
    episodes, both with replacement, keeping the pairing), the win rate (share of seed-episode
    pairs where the learner's delay is lower) and the median per-episode ratio."""
    learner = np.atleast_2d(np.asarray(learner_delay, dtype=np.float64))
    baseline = np.asarray(baseline_delay, dtype=np.float64)
    if learner.ndim != 2 or baseline.shape != (learner.shape[1],) or baseline.size == 0:
        raise ValueError(
            f"need learner (seeds, episodes) and baseline (episodes,), got {learner.shape}, {baseline.shape}"
        )
    if not np.all(baseline > 0):
        raise ValueError("baseline delays must be > 0 to form ratios")
    ratio = learner / baseline[None, :]
    change = ratio - 1.0
    rng = rng or np.random.default_rng(0)
    k, e = change.shape
    seed_counts = _counts(rng.integers(0, k, size=(BOOTSTRAP_REPLICATES, k)), k)
    episode_counts = _counts(rng.integers(0, e, size=(BOOTSTRAP_REPLICATES, e)), e)
    replicates = np.einsum("rk,ke,re->r", seed_counts, change, episode_counts) / (k * e)
    low, high = np.percentile(replicates, [2.5, 97.5])
    return {
        "mean_rel_change": float(change.mean()),
        "ci_low": float(low),
        "ci_high": float(high),
        "win_rate": float((learner < baseline[None, :]).mean()),
        "median_ratio": float(np.median(ratio)),
        "training_seeds": int(k),
        "episodes": int(e),
    }


def _counts(draws: np.ndarray, n: int) -> np.ndarray:
    """(replicates, n): how often each index was drawn in each replicate."""
    out = np.zeros((draws.shape[0], n))
    np.add.at(out, (np.arange(draws.shape[0])[:, None], draws), 1.0)
    return out


def best_classic(summaries: Mapping[str, Mapping[str, float]]) -> str:
    """The classic controller of lowest mean delay at this level (chosen on the same evaluation
    episodes: a choice that can only favour the baseline, never the learner)."""
    present = [name for name in CLASSIC if name in summaries]
    if not present:
        raise ValueError(f"no classic controller among {sorted(summaries)}; need one of {CLASSIC}")
    return min(present, key=lambda name: summaries[name]["mean_delay_s"])


def compare(
    learner_episodes: Sequence[Sequence[Mapping[str, float]]],
    baseline_episodes: Mapping[str, Sequence[Mapping[str, float]]],
    summaries: Mapping[str, Mapping[str, float]],
) -> dict[str, Any]:
    """A learner's paired statistics against every baseline and the headline (best classic).

    `learner_episodes[k]` are training seed k's evaluation episodes, in the baselines' order
    (checked by seed). The headline also gives the learner's throughput relative to the best."""
    seeds = [[ep["seed"] for ep in run] for run in learner_episodes]
    delay = np.array([[ep["mean_delay_s"] for ep in run] for run in learner_episodes])
    out: dict[str, Any] = {"vs": {}}
    for name, episodes in baseline_episodes.items():
        if any(s != [ep["seed"] for ep in episodes] for s in seeds):
            raise ValueError(f"learner and {name} were not evaluated on the same episodes")
        out["vs"][name] = paired_statistics(delay, np.array([ep["mean_delay_s"] for ep in episodes]))
    best = best_classic(summaries)
    throughput = np.mean([[ep["throughput_veh"] for ep in run] for run in learner_episodes])
    out["headline"] = {
        "best_classic": best,
        **out["vs"][best],
        "throughput_ratio": float(throughput / summaries[best]["throughput_veh"]),
    }
    return out


def pct(value: float) -> str:
    return f"{100 * value:+.1f} %"


def paired_markdown(name: str, comparison: dict[str, Any]) -> list[str]:
    """Lines of a table: `name` against every baseline (paired per episode), headline first."""
    h = comparison["headline"]
    lines = [
        f"`{name}` against every baseline (paired per episode, {h['training_seeds']} training seed(s) x "
        f"{h['episodes']} episodes; negative is less delay). Headline: against the best classic "
        f"controller, **{h['best_classic']}**: {pct(h['mean_rel_change'])} [{pct(h['ci_low'])}, "
        f"{pct(h['ci_high'])}], throughput ratio {h['throughput_ratio']:.3f}.",
        "",
        "| vs | delay change [95 % CI] | win rate | median ratio |",
        "| --- | --- | --- | --- |",
    ]
    for ref, st in comparison["vs"].items():
        lines.append(
            f"| {ref} | {pct(st['mean_rel_change'])} [{pct(st['ci_low'])}, {pct(st['ci_high'])}] | "
            f"{100 * st['win_rate']:.0f} % | {st['median_ratio']:.3f} |"
        )
    return lines
