"""Rewards of the signal-control environments, computed for all B scenarios at once.

One source of truth for both TrafficSignalEnv and TrafficVecEnv (docs/env.md, "Reward"). Each
reward is divided by a documented scale so that a typical step lies around [-1, 1]: learning
rates and value targets then need no per-reward tuning.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from lib.sim.network import Network

# Scales (docs/env.md): delay in vehicles held still on average during the interval
# (veh-s lost / interval s), queue and pressure in vehicles, throughput in veh/s leaving.
# "queue_pressure" is the pressure of standing queues (max-pressure's, Varaiya 2013), not of
# whole links: a link full of moving vehicles exerts none.
REWARD_SCALE = {"delay": 50.0, "queue": 50.0, "pressure": 50.0, "throughput": 1.0, "queue_pressure": 50.0}
# The reward names EnvConfig accepts: the keys above, written nowhere else.
RewardName = Literal[tuple(REWARD_SCALE)]  # type: ignore[valid-type]


class Reward:
    """`reward(sim, delay_increment, exited_increment, total_queue, approach_queue) -> (B,)` for one
    reward name (`approach_queue` (B, n_approaches): standing vehicles per approach)."""

    def __init__(self, name: str, network: Network, interval: float) -> None:
        if name not in REWARD_SCALE:
            raise ValueError(f"unknown reward {name!r}; use one of {', '.join(REWARD_SCALE)}")
        self.name = name
        self.interval = interval
        self.scale = REWARD_SCALE[name]
        self.sides = pressure_sides(network)
        self.length = np.array([link.length_m for link in network.links])
        self.queue_sides = queue_pressure_sides(network)

    def __call__(
        self,
        sim: object,
        delay_increment: np.ndarray,
        exited_increment: np.ndarray,
        total_queue: np.ndarray,
        approach_queue: np.ndarray | None = None,
    ) -> np.ndarray:
        if self.name == "delay":
            return -delay_increment / (self.interval * self.scale)
        if self.name == "queue":
            return -total_queue / self.scale
        if self.name == "throughput":
            return exited_increment / (self.interval * self.scale)
        if self.name == "queue_pressure":
            if approach_queue is None:
                raise ValueError("the queue_pressure reward needs approach_queue (B, n_approaches)")
            return -row_sum(np.abs(self.queue_pressures(approach_queue))) / self.scale
        return -row_sum(np.abs(self.pressures(sim.link_density() * self.length))) / self.scale  # type: ignore[attr-defined]

    def pressures(self, link_vehicles: np.ndarray) -> np.ndarray:
        """(B, n_signals): vehicles on each intersection's approach links minus on its exit links."""
        return np.stack(
            [row_sum(link_vehicles[:, ins]) - row_sum(link_vehicles[:, outs]) for ins, outs in self.sides],
            axis=1,
        )


    def queue_pressures(self, approach_queue: np.ndarray) -> np.ndarray:
        """(B, n_signals): standing vehicles on each intersection's approaches minus on the
        approaches its junction feeds (an exit link holds no queue here)."""
        q = approach_queue
        return np.stack([row_sum(q[:, ins]) - row_sum(q[:, outs]) for ins, outs in self.queue_sides], axis=1)


def queue_pressure_sides(network: Network) -> list[tuple[list[int], list[int]]]:
    """Per signal: its approaches, and the approaches (of other signals) on links its junction feeds."""
    approach_of = {a.link: a.index for a in network.approaches}
    return [
        (list(signal.approaches), [approach_of[link] for link in outs if link in approach_of])
        for signal, (_, outs) in zip(network.signals, pressure_sides(network), strict=True)
    ]


def pressure_sides(network: Network) -> list[tuple[list[int], list[int]]]:
    """Per signal: its approach links, and the links leaving its junction."""
    sides = []
    for signal in network.signals:
        ins = [network.approaches[a].link for a in signal.approaches]
        outs = [link for node in signal.nodes for link in network.nodes[node].out_links]
        sides.append((ins, outs))
    return sides


def row_sum(values: np.ndarray) -> np.ndarray:
    """Sum (B, k) -> (B,) column by column in a fixed order. numpy's reductions pick their order
    by shape, so `.sum(axis=1)` of one row can differ in the last bit from the same row inside a
    larger batch; the single env and the VecEnv must agree bit for bit."""
    total = np.zeros(values.shape[0])
    for column in range(values.shape[1]):
        total += values[:, column]
    return total
