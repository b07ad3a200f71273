"""TrafficSignalEnv: spaces and checkers, determinism, control that matters, consistent metrics."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from lib.config import ConfigError
from lib.rl import pool
from lib.rl.demand import default_demand
from lib.rl.env import EnvConfig, TrafficSignalEnv
from lib.rl.reward import REWARD_SCALE

SHORT = {"backend": "cpu", "episode_seconds": 300.0, "randomize_demand": False}


pytestmark = pytest.mark.usefixtures("pool_events")


def _rollout(env: TrafficSignalEnv, seed: int, actions: list) -> list:
    out = [env.reset(seed=seed)]
    out += [env.step(a) for a in actions]
    return out


@pytest.mark.parametrize("mode", ["joint", "multibinary"])
def test_gymnasium_and_sb3_checkers_pass_without_warnings(mode):
    env = gym.make("VictoriaIsland-v0", backend="cpu", episode_seconds=60.0, action_mode=mode).unwrapped
    assert isinstance(env, TrafficSignalEnv)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(env)
        sb3_check_env(env, warn=True)
    expected = gym.spaces.Discrete(8) if mode == "joint" else gym.spaces.MultiBinary(3)
    assert env.action_space == expected
    assert env.observation_space.shape == (3 * 9 + 3 * (2 + 2),)
    env.close()


def test_registered_with_gym_make_and_overrides():
    env = gym.make("VictoriaIsland-v0", backend="cpu", episode_seconds=45.0, reward="queue")
    assert env.unwrapped.config.reward == "queue"
    env.reset(seed=0)
    flags = [env.step(0)[3] for _ in range(3)]
    assert flags == [False, False, True]
    env.close()
    with pytest.raises(ConfigError, match="unknown key 'rewrd'.*Did you mean 'reward'"):
        gym.make("VictoriaIsland-v0", rewrd="queue")


def test_same_seed_same_actions_same_trajectory_bit_for_bit():
    actions = [int(a) for a in np.random.default_rng(3).integers(0, 8, size=12)]
    env = TrafficSignalEnv(backend="cpu", episode_seconds=300.0)
    first = _rollout(env, 7, actions)
    second = _rollout(env, 7, actions)
    for a, b in zip(first, second, strict=True):
        assert np.array_equal(a[0], b[0]) and a[1:] == b[1:]
    other = _rollout(env, 8, actions)
    assert other[0][1]["demand_level"] != first[0][1]["demand_level"]
    assert not np.array_equal(other[-1][0], first[-1][0])
    env.close()


def test_holding_an_approach_red_queues_it_and_switching_releases_it():
    env = TrafficSignalEnv(**{**SHORT, "episode_seconds": 1200.0})
    network = env.network
    approach = next(a for a in network.approaches if a.phase == 1 and a.signal == 0)
    column = 3 * approach.index + 2  # its queue in the observation
    obs, _ = env.reset(seed=0)
    for _ in range(20):  # every signal keeps phase 0: this approach stays red for 300 s
        obs, *_ = env.step(0)
    held = env.sim.approach_state()[0, approach.index, 2]
    held_obs = obs[column]
    assert held > 20.0 and held_obs > 0.1
    obs, *_ = env.step(env.encode_phases(np.array([1, 0, 0])))
    assert env.sim.current_phase()[0, 0] == 1
    for _ in range(12):  # 180 s of green
        obs, *_ = env.step(0)
    released = env.sim.approach_state()[0, approach.index, 2]
    assert released < 0.25 * held and obs[column] < 0.25 * held_obs
    env.close()


def test_encode_and_decode_are_inverse_and_follow_the_bits():
    env = TrafficSignalEnv(**SHORT)
    env.reset(seed=0)
    current = env.sim.current_phase()[0]
    for action in range(8):
        phases = env.decode_action(action)
        bits = [(action >> i) & 1 for i in range(3)]
        assert np.array_equal(phases, np.where(bits, 1 - current, current))
        assert env.encode_phases(phases) == action
    env.close()
    multi = TrafficSignalEnv(**SHORT, action_mode="multibinary")
    multi.reset(seed=0)
    assert np.array_equal(multi.encode_phases(multi.decode_action([1, 0, 1])), [1, 0, 1])
    multi.close()


def test_switch_requests_in_min_green_are_ignored_and_counted():
    env = TrafficSignalEnv(**SHORT, decision_interval=5.0)
    env.reset(seed=0)
    env.step(0)
    info = env.step(0)[4]
    assert (info["switches"], info["ignored_requests"]) == (0, 0)
    info = env.step(1)[4]  # t = 10 s: minimum green is over, the request is granted
    assert (info["switches"], info["ignored_requests"]) == (1, 0)
    info = env.step(1)[4]  # 5 s after the switch: refused
    assert (info["switches"], info["ignored_requests"]) == (1, 1)
    assert info["ignored_requests"] == env.sim.ignored_requests()[0]
    env.close()


@pytest.mark.parametrize("reward", ["delay", "queue", "pressure", "throughput"])
def test_reward_and_metrics_match_the_simulator_counters(reward):
    env = TrafficSignalEnv(**SHORT, reward=reward, demand_scale=1.5)
    sim, network = env.sim, env.network
    _, info = env.reset(seed=1)
    assert info["delay_s"] == info["entered"] == info["mean_queue_veh"] == 0.0
    rewards, queues = [], []
    for k in range(20):
        _, r, terminated, truncated, info = env.step(7 if k % 3 == 0 else 0)
        rewards.append(r)
        queues.append(info["queue_veh"])
        assert not terminated and truncated == (k == 19)
        scale = REWARD_SCALE[reward]
        if reward == "queue":
            assert r == pytest.approx(-info["queue_veh"] / scale, rel=1e-12)
        if reward == "pressure":
            length = np.array([lk.length_m for lk in network.links])
            vehicles = sim.link_density()[0] * length
            matrix = np.zeros((network.n_links, network.n_signals))
            for a in network.approaches:
                matrix[a.link, a.signal] += 1
            for s in network.signals:
                for node in s.nodes:
                    for link in network.nodes[node].out_links:
                        matrix[link, s.index] -= 1
            assert r == pytest.approx(-np.abs(vehicles @ matrix).sum() / scale, rel=1e-9)
    total = sum(rewards) * REWARD_SCALE[reward]
    if reward == "delay":
        assert -total * env.config.decision_interval == pytest.approx(info["delay_s"], rel=1e-9)
    if reward == "throughput":
        assert total * env.config.decision_interval == pytest.approx(info["exited"], rel=1e-9)
    assert info["delay_s"] == sim.cumulative_delay()[0] > 0
    assert info["entered"] == sim.cumulative_entered()[0]
    assert info["exited"] == sim.cumulative_exited()[0] > 0
    assert info["mean_delay_s"] == pytest.approx(info["delay_s"] / info["entered"], rel=1e-12)
    assert info["mean_queue_veh"] == pytest.approx(np.mean(queues), rel=1e-12)
    assert info["max_queue_veh"] == max(queues) > 0
    assert info["switches"] == sim.switches()[0] > 0 and info["sim_time"] == 300.0
    # demand is applied as configured: every vehicle that arrived is counted at the entries
    expected = 1.5 * default_demand(network).sum() * 300.0 / 3600.0
    assert info["entered"] == pytest.approx(expected, rel=1e-9)
    env.close()


def test_peak_profile_keeps_the_mean_and_randomisation_draws_from_the_seed():
    flat = TrafficSignalEnv(**SHORT, demand_profile="flat")
    peak = TrafficSignalEnv(**SHORT, demand_profile="peak")
    infos = []
    for env in (flat, peak):
        env.reset(seed=0)
        infos.append([env.step(0)[4]["entered"] for _ in range(20)])
    assert infos[1][0] < infos[0][0] and infos[1][-1] == pytest.approx(infos[0][-1], rel=1e-9)
    assert infos[1][10] - infos[1][9] > infos[0][10] - infos[0][9]  # mid-episode peak
    flat.close()
    peak.close()
    env = TrafficSignalEnv(backend="cpu", episode_seconds=60.0)
    levels = {env.reset(seed=s)[1]["demand_level"] for s in range(6)}
    assert len(levels) == 6 and all(0.7 <= v <= 1.3 for v in levels)
    base = default_demand(env.network)
    ratio = env.demand_veh_h / base
    assert np.ptp(ratio) > 0 and np.all(np.abs(ratio / env.reset(seed=5)[1]["demand_level"] - 1) <= 0.15)
    env.close()


def test_invalid_actions_and_configs_name_the_fix():
    env = TrafficSignalEnv(**SHORT)
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(0)
    env.reset(seed=0)
    for bad in (8, -1, 1.5, [0, 1], "a"):
        with pytest.raises(ValueError, match=r"integer in \[0, 8\) whose bit i = 1 asks signal i to switch"):
            env.step(bad)
    env.close()
    with pytest.raises(RuntimeError, match="closed"):
        env.reset()
    multi = TrafficSignalEnv(**SHORT, action_mode="multibinary")
    multi.reset(seed=0)
    with pytest.raises(ValueError, match="3 values of 0 \\(keep\\) or 1 \\(switch\\)"):
        multi.step([0, 2, 1])
    multi.step(np.array([1.0, 0.0, 1.0], dtype=np.float32))  # PPO hands MultiBinary actions as floats
    multi.close()
    cases = [
        ({"demand_scale": -1.0}, "demand_scale must be >= 0"),
        ({"moto_share": 1.5}, "moto_share must be a fraction"),
        ({"reward": "speed"}, "reward must be one of 'delay', 'queue', 'pressure', 'throughput'"),
        ({"demand_veh_h": (100.0, -5.0, 0.0, 0.0, 0.0)}, "demand_veh_h must be >= 0"),
        ({"episode_seconds": 10.0}, "must be >= decision_interval"),
        ({"sim": {"amber": 3.0}}, "unknown key 'sim.amber' for EnvConfig. Did you mean 'sim.amber_s'"),
    ]
    for overrides, message in cases:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            EnvConfig(**overrides)
    with pytest.raises(ConfigError, match="has 2 values but the network has 5 entries"):
        TrafficSignalEnv(backend="cpu", demand_veh_h=(1.0, 2.0))


def test_many_envs_resets_and_closes_share_one_build():
    for _ in range(4):
        env = TrafficSignalEnv(backend="cpu", episode_seconds=30.0)
        for seed in range(3):
            env.reset(seed=seed)
            env.step(0)
        env.close()
    reused = TrafficSignalEnv(backend="cpu")
    assert pool.build_count() == 1
    reused.close()
    TrafficSignalEnv(backend="cpu", reward="queue", sim={"min_green_s": 5.0}).close()
    assert pool.build_count() == 2


def test_extended_observation_appends_switch_allowed_moving_vehicles_and_entry_queues():
    """Layout (docs/env.md): the basic 39 entries unchanged, then per signal 1 where a switch
    request would be accepted now, per approach the link's vehicles not standing in its queue,
    per entry its vertical queue q as q / (q + entry_queue_norm_veh)."""
    options = {**SHORT, "decision_interval": 5.0, "episode_seconds": 600.0, "demand_scale": 2.5}
    basic = TrafficSignalEnv(**options)
    env = TrafficSignalEnv(**options, observation="extended")
    net = env.network
    n_basic = basic.observation_space.shape[0]
    s, a, e = net.n_signals, len(net.approaches), net.n_entries
    assert env.observation_space.shape == (n_basic + s + a + e,) == (39 + 3 + 9 + 5,)
    rng = np.random.default_rng(4)
    length = np.array([lk.length_m for lk in net.links])
    scale = env._batch._scale[:, 2]
    allowed_seen, refused_seen, entry_seen = set(), 0, 0.0
    for k in range(2 * env.config.horizon):  # two episodes: the flags start afresh at a reset
        if k % env.config.horizon == 0:
            obs, _ = env.reset(seed=2 + k)
            assert np.array_equal(obs[:n_basic], basic.reset(seed=2 + k)[0])
        allowed = obs[n_basic : n_basic + s].astype(bool)
        assert set(np.unique(obs[n_basic : n_basic + s])) <= {0.0, 1.0}
        # at t = 10 s every signal may switch (no amber yet): ask all, else at random
        action = 7 if k % env.config.horizon == 2 else int(rng.integers(8))
        bits = (action >> np.arange(s)) & 1
        before = env.sim.ignored_requests()[0], env.sim.switches()[0]
        obs, *_, info = env.step(action)
        # the flag says exactly which requests the simulator grants: refused = asked where 0
        assert info["ignored_requests"] - before[0] == int((bits & ~allowed).sum())
        assert info["switches"] - before[1] == int((bits & allowed).sum())
        allowed_seen.add(tuple(allowed))
        refused_seen += int((bits & ~allowed).sum())
        assert np.array_equal(obs[:n_basic], basic.step(action)[0])
        state = env.sim.approach_state()[0]
        on_link = (env.sim.link_density()[0] * length)[[ap.link for ap in net.approaches]]
        moving = np.clip(np.maximum(on_link - state[:, 2], 0.0) * scale, 0, 1)
        assert obs[n_basic + s : n_basic + s + a] == pytest.approx(moving, abs=1e-6)
        q = env.sim.queue_lengths()[0]
        assert obs[n_basic + s + a :] == pytest.approx(q / (q + env.config.entry_queue_norm_veh), abs=1e-6)
        entry_seen = max(entry_seen, float(obs[n_basic + s + a :].max()))
        assert env.observation_space.contains(obs)
    assert len(allowed_seen) > 2 and refused_seen > 0  # the flags vary and requests were refused
    assert entry_seen > 0.3 and obs[n_basic + s : n_basic + s + a].max() > 0.05
    env.close()
    basic.close()


def test_queue_pressure_reward_is_standing_queues_in_minus_out_per_signal():
    env = TrafficSignalEnv(**SHORT, reward="queue_pressure", demand_scale=1.5)
    net = env.network
    approach_of = {ap.link: ap.index for ap in net.approaches}
    matrix = np.zeros((len(net.approaches), net.n_signals))  # queue -> +in, -out per signal
    for ap in net.approaches:
        matrix[ap.index, ap.signal] += 1
    for sig in net.signals:
        for node in sig.nodes:
            for link in net.nodes[node].out_links:
                if link in approach_of:
                    matrix[approach_of[link], sig.index] -= 1
    env.reset(seed=1)
    nonzero = 0
    for k in range(20):
        _, r, *_ = env.step(7 if k % 4 == 0 else 0)
        queue = env.sim.approach_state()[0, :, 2]
        expected = -np.abs(queue @ matrix).sum() / REWARD_SCALE["queue_pressure"]
        assert r == pytest.approx(expected, rel=1e-9, abs=1e-12)
        nonzero += r < -0.01
    assert nonzero > 5
    env.close()


def test_an_amber_lasts_amber_s_whatever_the_decision_interval():
    """The simulator gates movements per substep (dt ~2.5 s) against the amber left, so one
    advance(15) kept a 3 s amber closed for 5 s; the env advances in pieces cut where an amber
    ends, and the same fixed-time plan then costs about the same on a 15 s grid as on a 1 s one."""
    from lib.rl.controllers import FixedTime, FixedTimePlan
    from lib.rl.env import advance_pieces
    from lib.rl.evaluate import evaluate_controller

    assert advance_pieces(15.0, 3.0) == [3.0, 12.0] and advance_pieces(5.0, 3.0) == [3.0, 2.0]
    assert advance_pieces(1.0, 3.0) == [1.0] and advance_pieces(3.0, 3.0) == [3.0]
    assert advance_pieces(2.0, 3.0) == [1.0, 1.0] and advance_pieces(2.5, 3.0) == [0.5, 2.0]
    plan = FixedTimePlan(((30.0, 30.0),) * 3, (0.0, 0.0, 0.0))  # switches on the 15 s grid
    config = EnvConfig(backend="cpu", episode_seconds=900.0, demand_scale=0.6, demand_level_range=(1.0, 1.0))
    delay = {}
    for align in (True, False):
        for step in (1.0, 15.0):
            ev = evaluate_controller(
                FixedTime(plan, control_step_s=step), config.replace(align_amber=align), [5, 6], sample_s=15.0
            )
            delay[align, step] = np.mean([e["mean_delay_s"] for e in ev.episodes])
    assert delay[True, 1.0] == delay[False, 1.0]  # 1 s steps: ambers end on step boundaries
    assert abs(delay[True, 15.0] / delay[True, 1.0] - 1) < 0.2
    assert delay[False, 15.0] > 1.25 * delay[True, 1.0]  # what a 5 s amber cost before (+34 %)
