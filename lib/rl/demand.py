"""Inflow demand at the network's entries: the documented default scenario and its per-episode
randomisation (docs/env.md, "Demand").

Why a default per lane and road class: the corridor has no counted flows, so each entry gets
a plausible share of its road's capacity, by the entry link's OSM class and lane count. A
controller trained on one fixed demand over-fits it, so each episode draws a level, a per-entry
jitter and a profile (flat, or a peak mid-episode) from the environment's seeded RNG.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lib.sim.network import Network

# Default inflow (veh/h per lane, both classes) by the entry link's highway class: about half
# of what one lane discharges at green here, so two-phase control is needed but not hopeless.
DEFAULT_VEH_PER_LANE_H = {"primary": 600.0, "secondary": 500.0, "tertiary": 350.0}
PROFILES = ("flat", "peak")
# The peak profile: 1 + PEAK_AMPLITUDE * cos(2 pi t / T), so its mean over the episode is 1,
# from 1 - A at the start and end to 1 + A mid-episode (an hour around the rush).
PEAK_AMPLITUDE = 0.4


def default_demand(network: Network) -> np.ndarray:
    """Default inflow (veh/h) per entry, in `network.entries` order."""
    return np.array(
        [
            DEFAULT_VEH_PER_LANE_H[network.links[link].highway] * network.links[link].lanes
            for link in network.entry_links
        ],
        dtype=np.float64,
    )


@dataclass(frozen=True)
class EpisodeDemand:
    """One episode's demand: `base` veh/h per entry (level and jitter applied) and its profile."""

    base: np.ndarray
    level: float
    profile: str


def mean_profile_factor(
    profile: str, t0: float | np.ndarray, t1: float | np.ndarray, episode_seconds: float
) -> float | np.ndarray:
    """The profile's exact mean over [t0, t1]: demand held at it for the interval brings the
    same vehicles as the profile itself, so controllers stepping every 1 s and every 15 s face
    the same arrivals at every common time (the midpoint value would not)."""
    if profile == "flat":
        return 1.0
    if profile == "peak":
        t0, t1 = np.asarray(t0, dtype=np.float64), np.asarray(t1, dtype=np.float64)
        w = 2.0 * np.pi / episode_seconds
        return 1.0 - PEAK_AMPLITUDE * (np.sin(w * t1) - np.sin(w * t0)) / (w * (t1 - t0))
    raise ValueError(f"unknown demand profile {profile!r}; use one of {', '.join(PROFILES)}")


def draw_episode(
    rng: np.random.Generator,
    base: np.ndarray,
    level_range: tuple[float, float],
    jitter: float,
    profile: str,
) -> EpisodeDemand:
    """Draw one episode's demand from `rng`: level ~ U[level_range] for all entries, each entry
    x U[1 - jitter, 1 + jitter], and the profile ("random": flat or peak with equal odds).
    Always draws the same count of numbers, so the RNG stream does not depend on the options."""
    level = float(rng.uniform(*level_range))
    entry_factor = rng.uniform(1.0 - jitter, 1.0 + jitter, size=base.shape)
    coin = float(rng.random())
    chosen = profile if profile != "random" else PROFILES[int(coin < 0.5)]
    return EpisodeDemand(base=base * level * entry_factor, level=level, profile=chosen)
