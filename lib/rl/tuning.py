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
    CONTROL_STEP_S,
    WEBSTER_MAX_CYCLE_S,
    WEBSTER_MIN_CYCLE_S,
    Actuated,
    FixedTime,
    FixedTimePlan,
    MaxPressure,
    PhaseController,
    RandomController,
    may_switch,
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

# Measurement: each approach alone, its link a standing queue, everything downstream empty.
MEASURE_SECONDS = 60.0
STARTUP_S = 5.0  # discharge from green + this on is the saturation flow (start-up wave gone)
WINDOW_S = 20.0  # seconds of discharge measured (the shortest approach holds ~35 vehicles)

# Search grids and budget (candidate plans per level and profile, each on every tuning seed).
# Widened after tunings picked their edges (issue 12): Delta 2 s at low demand and 30 s at high,
# max green 20 s and 80 s; then, on these grids up to Delta 60 s, 60 s at 1.0x peak and above.
# Delta now runs from the control step (its hard floor, not reported as an edge) to 120 s; the
# gap from 100 veh/h/lane (near max-out only) to 1800 (about saturation: gap-out at once); max
# green from 15 s (just over the 10 s minimum) to 150 s. Each grid runs as one batch (40
# actuated candidates x tuning seeds).
DELTA_GRID_S = (CONTROL_STEP_S, 2.0, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0)
GAP_GRID_VEH_H_LANE = (100.0, 300.0, 600.0, 1200.0, 1800.0)
MAX_GREEN_GRID_S = (15.0, 20.0, 30.0, 40.0, 60.0, 80.0, 120.0, 150.0)
DEFAULT_BUDGET = 16
DEFAULT_TUNING_EPISODES = 3
SEARCH_ROUNDS = 4
# Cycles the search also starts from (Webster's splits): on the FIFO node model Webster's cycle
# from an isolated discharge (30 s) was far too short and 16 perturbations of it did not escape.
START_CYCLES_S = (60.0, 90.0, 120.0)


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
    signal, measured on the model the textbook way: each approach alone (one scenario each),
    its link filled with a standing queue at jam density (the env's motorcycle share, so their
    extra discharge counts), every other link empty, no arrivals, its phase given green (the
    first phase at once, the others after minimum green and amber). The discharge from STARTUP_S
    to STARTUP_S + WINDOW_S after the green starts is its saturation flow s; a phase's lost time
    is its amber plus the start-up loss G - n / s over the first G = STARTUP_S + WINDOW_S of green.

    Why not a congested run: with a FIFO node model a full receiving link blocks the approach,
    and a 2.5x-demand run measured 40 veh/h for approaches that discharge 4,500 when free."""
    env_config = config.replace(
        decision_interval=1.0,
        episode_seconds=MEASURE_SECONDS,
        randomize_demand=False,
        demand_profile="flat",
        demand_scale=0.0,
    )
    net = TrafficVecEnv(1, env_config).network
    env = TrafficVecEnv(len(net.approaches), env_config)
    try:
        served, green = _isolated_discharge(env, env_config)
    finally:
        env.close()
    return _discharge_model(net, served, green, float(config.sim.amber_s))


def _isolated_discharge(env: TrafficVecEnv, config: EnvConfig) -> tuple[np.ndarray, np.ndarray]:
    """(seconds, approaches) vehicles served so far and whether the approach had green."""
    net, sim = env.network, env.sim
    rows = np.arange(len(net.approaches))
    signal = np.array([a.signal for a in net.approaches])
    env.seed(0)
    env.reset()
    rho = np.zeros((len(rows), 2, net.n_cells))
    for a in net.approaches:
        lk = net.links[a.link]
        cells = slice(lk.first_cell, lk.first_cell + lk.n_cells)
        jam = config.sim.rho_jam_per_lane * lk.lanes
        rho[a.index, 0, cells], rho[a.index, 1, cells] = (
            config.moto_share * jam,
            (1 - config.moto_share) * jam,
        )
    sim.set_state(rho, np.zeros_like(rho))
    wanted = np.zeros((len(rows), net.n_signals), dtype=np.int64)
    wanted[rows, signal] = [a.phase for a in net.approaches]
    links = [a.link for a in net.approaches]
    served, green = [], []
    for _ in range(int(MEASURE_SECONDS)):
        current = sim.current_phase()
        env.step(env.encode_phases(np.where(may_switch(sim), wanted, current)))
        served.append(sim.cumulative_link_outflow()[rows, links])
        green.append((sim.current_phase() == wanted)[rows, signal] & ~sim.in_amber()[rows, signal])
    return np.array(served), np.array(green)


def _discharge_model(net: Network, served: np.ndarray, green: np.ndarray, amber_s: float) -> dict[str, Any]:
    """The signal model from each approach's isolated discharge (see measure_signals)."""
    start = green.argmax(axis=0)  # first second of green (served[k] is the count after second k)
    if not green.any(axis=0).all() or (start + STARTUP_S + WINDOW_S > len(served)).any():
        raise RuntimeError(
            "an approach got no (or too late a) green in the measurement; raise MEASURE_SECONDS"
        )
    cols = np.arange(served.shape[1])
    before = np.where(start > 0, served[np.maximum(start - 1, 0), cols], 0.0)
    early = served[(start + STARTUP_S - 1).astype(int), cols]
    late = served[(start + STARTUP_S + WINDOW_S - 1).astype(int), cols]
    rate = (late - early) / WINDOW_S
    if not np.all(rate > 0):
        raise RuntimeError(f"an approach discharged nothing in the measurement: {rate.tolist()}")
    startup = STARTUP_S + WINDOW_S - (late - before) / rate
    lost_time = [
        float(
            sum(
                amber_s + np.mean([startup[a] for a in s.approaches if net.approaches[a].phase == p])
                for p in range(s.n_phases)
            )
        )
        for s in net.signals
    ]
    return {
        "saturation_veh_h": (3600.0 * rate).round(1).tolist(),
        "lost_time_s": [round(v, 2) for v in lost_time],
    }


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
    """Mean delay of each candidate over `seeds`: all candidates x seeds in one batched run. Only
    the delay counts, so the samples (link maps, entry queue) are taken every decision interval
    of `config`, not every control step: read at every 1 s step they cost more than the run."""
    controller = make([c for c in candidates for _ in seeds])
    result = evaluate_controller(
        controller, config, [s for _ in candidates for s in seeds], sample_s=config.decision_interval
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
    at a common cycle) and its splits at START_CYCLES_S, so a too-short Webster cycle cannot trap
    the search. Returns the best plan and its tuning delay. A TRANSYT-like engineer's tool: a fixed
    budget of simulated evaluations, no gradient."""
    sim = config.sim
    floor = sim.amber_s + sim.min_green_s
    lo = max(WEBSTER_MIN_CYCLE_S, floor * max(s.n_phases for s in network.signals))
    cycle = float(np.clip(max(start.cycle_s), lo, WEBSTER_MAX_CYCLE_S))
    splits = [np.maximum(np.array(p) - floor, 1e-3) for p in start.phase_s]
    best = (cycle, splits, np.zeros(network.n_signals))
    best_delay, per_round = np.inf, max(1, budget // SEARCH_ROUNDS)
    for round_ in range(SEARCH_ROUNDS):
        scale = 0.5**round_
        candidates = (
            [best, *((c, splits, best[2]) for c in START_CYCLES_S)][:per_round] if round_ == 0 else []
        )
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
    beyond it (widen the grid and re-tune before trusting that baseline's number). An edge the
    parameter cannot pass (Delta at the control step) is no such sign and is not named."""
    picked = [
        ("max_pressure.delta_s", tuned["max_pressure"]["delta_s"], DELTA_GRID_S, {CONTROL_STEP_S}),
        ("actuated.gap_veh_h_lane", tuned["actuated"]["gap_veh_h_lane"], GAP_GRID_VEH_H_LANE, set()),
        ("actuated.max_green_s", tuned["actuated"]["max_green_s"], MAX_GREEN_GRID_S, set()),
    ]
    return [
        f"{name}={value:g}"
        for name, value, grid, limits in picked
        if value in {min(grid), max(grid)} - limits
    ]


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
