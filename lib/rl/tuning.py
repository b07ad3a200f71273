"""Baselines tuned as a practitioner would, once per simulator version, stored as data.

Why: a learner compared with untuned or mis-measured baselines looks better than it is. Here
- the signal model (each approach's saturation flow, each signal's lost time) is measured on
  the simulator itself (`measure_signals`), motorcycles counted by their measured discharge;
- Webster's plan per level follows from it and the level's design demand;
- the coordinated fixed-time plan (common cycle, splits, offsets), max-pressure's Delta and the
  actuated thresholds are tuned per level and profile on the tuning seeds by a fixed budget
  (`tune_level`);
- everything lands in lib/data/tuned_baselines.json under the simulator version that produced
  it (`sim_version`), so evaluation reads the parameters and never re-tunes.

Every candidate of a search round runs in one batched VecEnv (controllers take parameters per
scenario), paired on the same tuning episodes; the objective is the mean delay per vehicle.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lib.obs.events import emit
from lib.rl import protocol
from lib.rl.controllers import (
    WEBSTER_MAX_CYCLE_S,
    WEBSTER_MIN_CYCLE_S,
    Actuated,
    FixedTime,
    FixedTimePlan,
    MaxPressure,
    PhaseController,
    RandomController,
    webster_fixed_time,
)
from lib.rl.env import EnvConfig
from lib.rl.evaluate import evaluate_controller
from lib.rl.vecenv import TrafficVecEnv
from lib.sim.network import DEFAULT_DATA, Network
from lib.sim.network_data import DATA_FILES

TUNED_PATH = Path(__file__).resolve().parents[1] / "data" / "tuned_baselines.json"
SIM_DIR = Path(__file__).resolve().parents[1] / "sim"
# Env fields that change what a tuned parameter means; stored with it and checked on load.
ENV_KEYS = ("moto_share", "episode_seconds", "demand_jitter", "demand_veh_h", "cell_length_m")

# Measurement: every entry at this multiple of the base demand keeps the approaches queued, and
# a long 60 s / 60 s plan gives each green a stretch of saturated discharge.
MEASURE_DEMAND = 2.5
MEASURE_SECONDS = 1800.0
MEASURE_PHASE_S = 60.0
SATURATED_VEH = 5.0  # a green counts as saturated when this many vehicles stand throughout it
STARTUP_S = 8.0  # discharge after amber + this is the saturation flow (start-up wave gone)

# Search grids and budget (candidate plans per level and profile, each on every tuning seed).
# Grids widened after a first tuning on this simulator picked their edges (Delta 5 s at low
# demand, 30 s at 1.4x; gap 600, max green 30 s low and 90 s high).
DELTA_GRID_S = (2.0, 5.0, 10.0, 20.0, 30.0)
GAP_GRID_VEH_H_LANE = (300.0, 600.0, 1200.0)
MAX_GREEN_GRID_S = (20.0, 40.0, 80.0, 120.0)
DEFAULT_BUDGET = 16
DEFAULT_TUNING_EPISODES = 3
SEARCH_ROUNDS = 4


def sim_version(config: EnvConfig) -> str:
    """A hash of the simulator's code (lib/sim/*.py), the network data and the SimConfig: tuned
    parameters are only valid for the model that tuned them."""
    digest = hashlib.sha256()
    for path in sorted(SIM_DIR.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    folder = Path(config.data_path) if config.data_path else DEFAULT_DATA
    for name in DATA_FILES:
        path = folder / name
        digest.update(name.encode() + (path.read_bytes() if path.exists() else b"<absent>"))
    digest.update(repr(sorted(config.sim.to_dict().items())).encode())
    return digest.hexdigest()[:16]


def env_key(config: EnvConfig) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.to_dict().items() if k in ENV_KEYS}


def level_key(level: float, profile: str) -> str:
    return f"{level:g}/{profile}"


# --------------------------------------------------------------------------- measurement


def measure_signals(config: EnvConfig) -> dict[str, Any]:
    """Saturation flow (veh/h, all lanes) of every approach and lost time (s per cycle) of every
    signal, measured on the model: `MEASURE_DEMAND` x the base demand under a 60 s / 60 s plan.

    For each green that starts and stays saturated (SATURATED_VEH standing throughout), the
    discharge after amber + STARTUP_S gives the approach's saturation flow s, and the phase time
    T minus the vehicles served over s (T - n / s: amber plus start-up loss) its lost time. An
    approach that never saturates (fed only by an upstream signal) takes the median per-lane
    flow of those that did, a phase without a saturated green the median lost time: both flagged."""
    env_config = config.replace(
        decision_interval=1.0,
        episode_seconds=MEASURE_SECONDS,
        randomize_demand=False,
        demand_profile="flat",
        demand_scale=config.demand_scale * MEASURE_DEMAND,
    )
    env = TrafficVecEnv(1, env_config)
    net = env.network
    plan = FixedTimePlan(tuple((MEASURE_PHASE_S,) * s.n_phases for s in net.signals), (0.0,) * net.n_signals)
    controller = FixedTime(plan, name="measure")
    links = [a.link for a in net.approaches]
    phases, queues, served = [], [], []
    try:
        env.seed(0)
        obs = env.reset()
        controller.reset(env)
        for _ in range(int(MEASURE_SECONDS)):
            phases.append(env.sim.current_phase()[0].copy())
            obs, _, _, _ = env.step(controller.act(obs, env))
            queues.append(env.sim.approach_state()[0, :, 2].copy())
            served.append(env.sim.cumulative_link_outflow()[0, links].copy())
    finally:
        env.close()
    amber = float(config.sim.amber_s)
    return _signal_model(net, np.array(phases), np.array(queues), np.array(served), amber)


def _signal_model(
    net: Network, phases: np.ndarray, queues: np.ndarray, served: np.ndarray, amber_s: float
) -> dict[str, Any]:
    rates: list[list[float]] = [[] for _ in net.approaches]
    greens: list[list[tuple[float, float]]] = [[] for _ in net.approaches]  # (T, n) per saturated green
    for a in net.approaches:
        for start, stop in _runs(phases[:, a.signal] == a.phase)[1:-1]:  # whole greens after the first
            if queues[start:stop, a.index].min() < SATURATED_VEH:
                continue
            late = start + int(amber_s + STARTUP_S)
            rates[a.index].append((served[stop - 1, a.index] - served[late - 1, a.index]) / (stop - late))
            greens[a.index].append(
                (float(stop - start), served[stop - 1, a.index] - served[start - 1, a.index])
            )
    lanes = np.array([net.links[a.link].lanes for a in net.approaches], dtype=np.float64)
    measured = np.array([bool(r) for r in rates])
    if not measured.any():
        raise RuntimeError("no approach saturated during the measurement; raise MEASURE_DEMAND")
    saturation = np.array([3600.0 * np.median(r) if r else np.nan for r in rates])
    per_lane = float(np.median(saturation[measured] / lanes[measured]))
    saturation = np.where(measured, saturation, per_lane * lanes)
    lost = {}
    for a in net.approaches:
        for t, n in greens[a.index]:
            lost.setdefault((a.signal, a.phase), []).append(t - 3600.0 * n / saturation[a.index])
    typical = float(np.median([v for values in lost.values() for v in values]))
    lost_time = [  # >= 0: Webster's formula needs it (ARZ discharges fastest right after the amber)
        max(
            0.0,
            sum(
                float(np.median(lost[(s.index, p)])) if (s.index, p) in lost else typical
                for p in range(s.n_phases)
            ),
        )
        for s in net.signals
    ]
    return {
        "saturation_veh_h": saturation.round(1).tolist(),
        "saturation_measured": measured.tolist(),
        "lost_time_s": [round(v, 2) for v in lost_time],
        "lost_time_measured": [all((s.index, p) in lost for p in range(s.n_phases)) for s in net.signals],
    }


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of every run of True in `flags`."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


# --------------------------------------------------------------------------- controllers from data


def webster_for(config: EnvConfig, network: Network, model: dict[str, Any]) -> FixedTimePlan:
    """Webster's plan for the level and profile of `config` from the measured signal model."""
    sim = config.sim
    return webster_fixed_time(
        network,
        protocol.design_demand(config, network),
        np.array(model["saturation_veh_h"]),
        np.array(model["lost_time_s"]),
        sim.amber_s,
        sim.min_green_s,
    )


BASELINES = ("webster", "fixed_time", "max_pressure", "actuated", "random")


def classic_controllers(
    config: EnvConfig, network: Network, model: dict[str, Any], tuned: dict[str, Any], seed: int
) -> dict[str, PhaseController]:
    """Every baseline of one level and profile, from measured and tuned data (no tuning here)."""
    saturation = np.array(model["saturation_veh_h"])
    return {
        "webster": FixedTime(webster_for(config, network, model), name="webster"),
        "fixed_time": FixedTime(FixedTimePlan.from_dict(tuned["fixed_time"]), name="fixed_time"),
        "max_pressure": MaxPressure(saturation, tuned["max_pressure"]["delta_s"]),
        "actuated": Actuated(tuned["actuated"]["gap_veh_h_lane"], tuned["actuated"]["max_green_s"]),
        "random": RandomController(seed),
    }


def run_baselines(config: EnvConfig, network: Network, seed: int) -> dict[str, PhaseController]:
    """The baselines of one training run's own comparison: tuned ones when this simulator version
    has them for the run's level (`demand_scale`) and profile (flat for a random profile), else
    Webster from a fresh measurement (a few seconds), max-pressure and actuated at their default
    parameters and no coordinated plan, with a `warning` event saying so. Never tunes."""
    profile = config.demand_profile if config.demand_profile in protocol.PROFILES else "flat"
    try:
        entry = load_tuned(config)
        return classic_controllers(
            config, network, entry["signal_model"], tuned_level(entry, config.demand_scale, profile), seed
        )
    except LookupError as missing:
        emit(
            "warning",
            category="UntunedBaselines",
            count=1,
            message=f"{missing}; this run's baselines use "
            f"Webster from a fresh measurement and default parameters, and no coordinated fixed_time plan",
        )
    model = measure_signals(config)
    return {
        "webster": FixedTime(webster_for(config, network, model), name="webster"),
        "max_pressure": MaxPressure(np.array(model["saturation_veh_h"])),
        "actuated": Actuated(),
        "random": RandomController(seed),
    }


# --------------------------------------------------------------------------- search


def batch_delays(
    make: Callable[[Sequence[Any]], PhaseController],
    candidates: Sequence[Any],
    config: EnvConfig,
    seeds: Sequence[int],
) -> np.ndarray:
    """Mean delay of each candidate over `seeds`: all candidates x seeds in one batched run."""
    controller = make([c for c in candidates for _ in seeds])
    result = evaluate_controller(
        controller, config, [s for _ in candidates for s in seeds], sample_s=controller.control_step_s
    )
    delay = np.array([ep["mean_delay_s"] for ep in result.episodes])
    return delay.reshape(len(candidates), len(seeds)).mean(axis=1)


def plan_from(cycle: float, splits: Sequence[np.ndarray], offsets: np.ndarray, floor: float) -> FixedTimePlan:
    """A two-or-more-phase coordinated plan: common cycle, phase shares per signal, offsets;
    every phase at least `floor` (amber + minimum green) long."""
    phases = []
    for shares in splits:
        spare = cycle - floor * len(shares)
        phases.append(tuple(float(floor + spare * s) for s in shares / shares.sum()))
    return FixedTimePlan(tuple(phases), tuple(float(o % cycle) for o in offsets))


def tune_fixed_time(
    config: EnvConfig,
    network: Network,
    start: FixedTimePlan,
    seeds: Sequence[int],
    budget: int,
    rng: np.random.Generator,
) -> tuple[FixedTimePlan, float]:
    """Coordinated fixed-time by a (1 + lambda) search: SEARCH_ROUNDS rounds of budget /
    SEARCH_ROUNDS candidates, each a random perturbation of the best so far (cycle, each
    signal's phase shares, each offset), steps halving every round; round 1 holds `start` (Webster
    at a common cycle). Returns the best plan and its tuning delay. A TRANSYT-like engineer's tool:
    a fixed budget of simulated evaluations, no gradient."""
    sim = config.sim
    floor = sim.amber_s + sim.min_green_s
    lo = max(WEBSTER_MIN_CYCLE_S, floor * max(s.n_phases for s in network.signals))
    cycle = float(np.clip(max(start.cycle_s), lo, WEBSTER_MAX_CYCLE_S))
    splits = [np.maximum(np.array(p) - floor, 1e-3) for p in start.phase_s]
    best = (cycle, splits, np.zeros(network.n_signals))
    best_delay, per_round = np.inf, max(1, budget // SEARCH_ROUNDS)
    for round_ in range(SEARCH_ROUNDS):
        scale = 0.5**round_
        candidates = [best] if round_ == 0 else []
        while len(candidates) < per_round:
            c = float(np.clip(best[0] * np.exp(rng.normal(0, 0.25 * scale)), lo, WEBSTER_MAX_CYCLE_S))
            s = [x * np.exp(rng.normal(0, 0.4 * scale, size=x.size)) for x in best[1]]
            o = best[2] + rng.normal(0, 0.25 * scale * c, size=network.n_signals)
            o[0] = 0.0
            candidates.append((c, s, o))
        plans = [plan_from(c, s, o, floor) for c, s, o in candidates]
        delays = batch_delays(lambda ps: FixedTime(ps), plans, config, seeds)
        i = int(np.argmin(delays))
        if delays[i] < best_delay:
            best, best_delay = candidates[i], float(delays[i])
    return plan_from(best[0], best[1], best[2], floor), best_delay


def tune_level(
    config: EnvConfig,
    network: Network,
    model: dict[str, Any],
    seeds: Sequence[int],
    budget: int = DEFAULT_BUDGET,
) -> dict[str, Any]:
    """Tune the baselines of one level and profile on `seeds` (tuning set) within `budget`
    fixed-time candidates plus the max-pressure and actuated grids."""
    if not protocol.TUNING.holds(seeds):
        raise ValueError(
            f"tuning must use the tuning seed set [{protocol.TUNING.start}, {protocol.TUNING.stop})"
        )
    if budget < SEARCH_ROUNDS:
        raise ValueError(f"budget must be >= {SEARCH_ROUNDS} candidates (one per search round), got {budget}")
    rng = np.random.default_rng(0)
    plan, plan_delay = tune_fixed_time(
        config, network, webster_for(config, network, model), seeds, budget, rng
    )
    saturation = np.array(model["saturation_veh_h"])
    deltas = batch_delays(lambda d: MaxPressure(saturation, d), DELTA_GRID_S, config, seeds)
    grid = [(g, m) for g in GAP_GRID_VEH_H_LANE for m in MAX_GREEN_GRID_S]
    actuated = batch_delays(lambda c: Actuated([g for g, _ in c], [m for _, m in c]), grid, config, seeds)
    gap, max_green = grid[int(np.argmin(actuated))]
    return {
        "fixed_time": {**plan.to_dict(), "tuning_delay_s": round(plan_delay, 3)},
        "max_pressure": {
            "delta_s": DELTA_GRID_S[int(np.argmin(deltas))],
            "tuning_delay_s": round(float(deltas.min()), 3),
        },
        "actuated": {
            "gap_veh_h_lane": gap,
            "max_green_s": max_green,
            "tuning_delay_s": round(float(actuated.min()), 3),
        },
    }


def grid_edges(tuned: dict[str, Any]) -> list[str]:
    """The tuned values of one level that lie on an edge of their grid: the optimum may lie
    beyond it (widen the grid and re-tune before trusting that baseline's number)."""
    picked = [
        ("max_pressure.delta_s", tuned["max_pressure"]["delta_s"], DELTA_GRID_S),
        ("actuated.gap_veh_h_lane", tuned["actuated"]["gap_veh_h_lane"], GAP_GRID_VEH_H_LANE),
        ("actuated.max_green_s", tuned["actuated"]["max_green_s"], MAX_GREEN_GRID_S),
    ]
    return [f"{name}={value:g}" for name, value, grid in picked if value in (min(grid), max(grid))]


def tune_all(
    base: EnvConfig,
    network: Network,
    cells: Sequence[tuple[float, str]],
    budget: int = DEFAULT_BUDGET,
    episodes: int = DEFAULT_TUNING_EPISODES,
) -> dict[str, Any]:
    """Measure the signal model and tune every (level, profile) of `cells`; returns the entry to
    store (save_tuned adds its levels to those already stored for this simulator version)."""
    started = time.monotonic()
    seeds = protocol.TUNING.take(episodes)
    model = measure_signals(base)
    emit("tuning_progress", done=0, total=len(cells), measured=model)
    tuned: dict[str, Any] = {}
    for i, (level, profile) in enumerate(cells):
        tuned[level_key(level, profile)] = {
            **tune_level(protocol.level_config(base, level, profile), network, model, seeds, budget),
            "budget": budget,
            "tuning_seeds": seeds,
        }
        elapsed = time.monotonic() - started
        done, total = i + 1, len(cells)
        emit(
            "tuning_progress",
            done=done,
            total=total,
            level=level,
            profile=profile,
            eta_s=round(elapsed / done * (total - done), 1),
        )
    return {
        "sim_version": sim_version(base),
        "env": env_key(base),
        "budget": budget,
        "tuning_seeds": seeds,
        "tuned_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "signal_model": model,
        "levels": tuned,
    }


# --------------------------------------------------------------------------- storage


def load_tuned(base: EnvConfig, path: Path | None = None) -> dict[str, Any]:
    """The stored entry of this simulator version (in `path`, default TUNED_PATH), with a clear
    error when there is none or when it was tuned for other env settings."""
    path = path or TUNED_PATH
    version = sim_version(base)
    stored = json.loads(path.read_text()) if path.exists() else {}
    if version not in stored:
        raise LookupError(
            f"no tuned baselines for simulator version {version} in {path} "
            f"(stored: {sorted(stored) or 'none'}); run `python bench/experiment.py --tune-only` once "
            f"for this simulator"
        )
    entry = stored[version]
    if entry["env"] != env_key(base):
        raise LookupError(
            f"the baselines of {version} were tuned for {entry['env']}, not {env_key(base)}; "
            f"re-tune with --tune"
        )
    return entry


def save_tuned(entry: dict[str, Any], path: Path | None = None) -> None:
    """Store `entry` under its simulator version: other versions are kept, and levels tuned
    earlier for this version and env stay unless `entry` re-tunes them."""
    path = path or TUNED_PATH
    stored = json.loads(path.read_text()) if path.exists() else {}
    earlier = stored.get(entry["sim_version"], {})
    if earlier.get("env") == entry["env"]:
        entry = {**entry, "levels": {**earlier["levels"], **entry["levels"]}}
    stored[entry["sim_version"]] = entry
    path.write_text(json.dumps(stored, indent=1) + "\n")


def tuned_level(entry: dict[str, Any], level: float, profile: str) -> dict[str, Any]:
    key = level_key(level, profile)
    if key not in entry["levels"]:
        raise LookupError(
            f"level {key} was not tuned (tuned: {sorted(entry['levels'])}); re-tune with --tune"
        )
    return entry["levels"][key]
