"""TrafficVecEnv: one simulator call for B scenarios, same numbers as the single env, SB3-ready."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

from lib.rl import pool
from lib.rl.env import TrafficSignalEnv
from lib.rl.vecenv import TrafficVecEnv

OPTIONS = {"backend": "cpu", "episode_seconds": 90.0}


pytestmark = pytest.mark.usefixtures("pool_events")


def _same_info(single: dict, batched: dict) -> None:
    for key, value in single.items():
        # The simulator's own read-outs (approach queues) may differ in the last bit between a
        # batch of 1 and of 3 (numpy picks its summation order by shape); all else is exact.
        assert batched[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key


@pytest.mark.parametrize(
    ("reward", "extra"),
    [
        ("delay", {}),
        ("pressure", {}),
        ("queue_pressure", {"observation": "extended", "decision_interval": 5.0}),
    ],
)
def test_vecenv_matches_single_envs_on_same_seeds_and_actions(reward, extra):
    n = 3
    options = {**OPTIONS, **extra, "episode_seconds": 6 * extra.get("decision_interval", 15.0)}
    vec = TrafficVecEnv(n, **options, reward=reward)
    assert vec.seed(11) == [11, 12, 13]
    obs = vec.reset()
    singles = [TrafficSignalEnv(**options, reward=reward) for _ in range(n)]
    first = [env.reset(seed=11 + i) for i, env in enumerate(singles)]
    assert np.array_equal(obs, np.stack([o for o, _ in first]))
    for i in range(n):
        _same_info(first[i][1], vec.reset_infos[i])
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(14):  # 6 decisions per episode: two automatic resets per scenario
        actions = rng.integers(0, 8, size=n)
        obs, rewards, dones, infos = vec.step(actions)
        for i, env in enumerate(singles):
            o, r, terminated, truncated, info = env.step(int(actions[i]))
            assert rewards[i] == np.float32(r) and dones[i] == (terminated or truncated)
            _same_info(info, infos[i])
            if truncated:
                ended += 1
                assert np.array_equal(infos[i]["terminal_observation"], o)
                assert infos[i]["TimeLimit.truncated"] is True
                o, info = env.reset()  # the env's RNG continues, as in the VecEnv
                _same_info(info, vec.reset_infos[i])
            assert np.array_equal(obs[i], o)
    assert ended == 2 * n
    vec.close()
    for env in singles:
        env.close()


def test_one_simulator_call_steps_every_scenario(monkeypatch):
    vec = TrafficVecEnv(4, **OPTIONS)
    calls = []
    advance = vec.sim.advance
    monkeypatch.setattr(vec.sim, "advance", lambda seconds: calls.append(seconds) or advance(seconds))
    vec.reset()
    vec.step(np.zeros(4, dtype=np.int64))
    assert calls == [3.0, 12.0]  # one call for all scenarios per piece: cut where an amber ends
    assert np.all(vec.sim.time == 15.0)
    vec.close()


def test_encode_phases_and_bad_input():
    vec = TrafficVecEnv(2, **OPTIONS)
    with pytest.raises(RuntimeError, match="call reset"):
        vec.step(np.zeros(2, dtype=np.int64))
    vec.reset()
    current = vec.sim.current_phase()
    wanted = current.copy()
    wanted[1, 2] = 1 - wanted[1, 2]
    assert vec.encode_phases(wanted).tolist() == [0, 4]
    with pytest.raises(ValueError, match="expected shape \\(2,\\)"):
        vec.step(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="phases must be ints of shape"):
        vec.encode_phases(wanted[0])
    with pytest.raises(ValueError, match="n_envs must be a positive int"):
        TrafficVecEnv(0)
    vec.close()
    with pytest.raises(RuntimeError, match="closed"):
        vec.reset()


def test_sb3_trains_on_it_and_the_build_is_shared():
    joint = VecMonitor(TrafficVecEnv(2, **OPTIONS))
    dqn = DQN("MlpPolicy", joint, learning_starts=8, train_freq=1, buffer_size=100, batch_size=8, seed=0)
    dqn.learn(24)
    assert dqn.num_timesteps >= 24 and dqn._n_updates > 0
    multi = VecMonitor(TrafficVecEnv(2, **OPTIONS, action_mode="multibinary"))
    ppo = PPO("MlpPolicy", multi, n_steps=8, batch_size=8, n_epochs=1, seed=0)
    ppo.learn(16)
    assert ppo.num_timesteps >= 16
    single = TrafficSignalEnv(**OPTIONS)
    assert pool.build_count() == 1
    for env in (joint, multi, single):
        env.close()


@pytest.mark.parametrize("mode", ["joint", "multibinary"])
def test_per_index_calls_act_like_dummy_vec_env_over_single_envs(mode):
    """get_attr / env_method / set_attr answer per sub-environment exactly as SB3's DummyVecEnv does
    over TrafficSignalEnvs: per-scenario values, a reset of one index only, its (obs, info)."""
    n = 3
    ours = TrafficVecEnv(n, **OPTIONS, action_mode=mode)
    dummy = DummyVecEnv([lambda: TrafficSignalEnv(**OPTIONS, action_mode=mode) for _ in range(n)])
    for vec in (ours, dummy):
        vec.seed(5)
        vec.reset()
    for name in ("n_signals", "demand_veh_h"):
        assert_same(ours.get_attr(name, [2, 0]), dummy.get_attr(name, [2, 0]))
    phases = [[1, 0, 1], [0, 0, 0]]
    assert_same(ours.env_method("encode_phases", phases[0], indices=[1]),
                dummy.env_method("encode_phases", phases[0], indices=[1]))
    action = ours.env_method("encode_phases", phases[1], indices=[2])[0]
    assert_same(ours.env_method("decode_action", action, indices=[2]),
                dummy.env_method("decode_action", action, indices=[2]))
    keep = np.stack([np.asarray(a) for a in ours.env_method("encode_phases", phases[1])])
    for vec in (ours, dummy):  # two decisions, then scenario 1 alone starts again
        vec.step(keep)
        vec.step(keep)
    [(obs_ours, info_ours)] = ours.env_method("reset", seed=99, indices=[1])
    [(obs_dummy, info_dummy)] = dummy.env_method("reset", seed=99, indices=[1])
    assert np.array_equal(obs_ours, obs_dummy)
    _same_info(info_dummy, info_ours)
    obs, _, _, infos = ours.step(keep)
    expected, _, _, dummy_infos = dummy.step(keep)
    assert np.array_equal(obs, expected)
    assert [i["sim_time"] for i in infos] == [i["sim_time"] for i in dummy_infos] == [45.0, 15.0, 45.0]
    ours.set_attr("label", "a", indices=[0])
    ours.set_attr("label", "b", indices=[1, 2])
    assert ours.get_attr("label") == ["a", "b", "b"]
    with pytest.raises(ValueError, match="share 'config'.*set it for all indices"):
        ours.set_attr("config", ours.config, indices=[0])
    with pytest.raises(RuntimeError, match="cannot step alone"):
        ours.env_method("step", keep[0], indices=[0])
    ours.close()
    dummy.close()


def assert_same(ours: list, theirs: list) -> None:
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b)), (a, b)
