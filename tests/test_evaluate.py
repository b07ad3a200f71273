"""Evaluation: same seeds and demands for every controller, metrics from the final infos, no hang."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from lib.rl import plots
from lib.rl.controllers import Actuated, FixedTime, FixedTimePlan, MaxPressure, RandomController
from lib.rl.env import EnvConfig, SignalBatch
from lib.rl.evaluate import (
    Evaluation,
    evaluate,
    evaluate_controller,
    evaluate_controllers,
    relative_change,
    results_markdown,
)
from lib.rl.train import RunResult
from lib.rl.vecenv import TrafficVecEnv
from lib.sim.network import load_network
from lib.sim.simulator import SimConfig

pytestmark = pytest.mark.usefixtures("pool_events")


@pytest.fixture
def vec():
    env = TrafficVecEnv(3, backend="cpu", episode_seconds=150.0)
    yield env
    env.close()


PLAN = FixedTimePlan(((30.0, 30.0),) * 3, (0.0, 0.0, 0.0))


def fixed(step=15.0):
    return FixedTime(PLAN, control_step_s=step)


def actuated():
    return Actuated(control_step_s=15.0)


def _run(env, controller, seed=7):
    return evaluate(controller.name, controller.act, env, seed, reset=controller.reset, progress_bar=False)


def test_every_controller_faces_the_same_arrivals_and_results_repeat(vec):
    first = _run(vec, fixed())
    again = _run(vec, fixed())
    other = _run(vec, actuated())
    assert first.episodes == again.episodes
    entered = [e["entered_veh"] for e in first.episodes]
    assert entered == [e["entered_veh"] for e in other.episodes]
    assert len(set(entered)) == 3  # three seeds, three different demands
    assert [e["seed"] for e in first.episodes] == [7, 8, 9]


def test_metrics_are_those_of_the_final_step(vec):
    controller = actuated()
    result = _run(vec, controller, seed=11)
    vec.seed(11)
    vec.reset()
    controller.reset(vec)
    total = np.zeros(3)
    for _ in range(10):
        _, rewards, dones, infos = vec.step(controller.act(None, vec))
        total += rewards
    assert dones.all()
    for episode, info, ret in zip(result.episodes, infos, total, strict=True):
        assert episode["mean_delay_s"] == pytest.approx(info["mean_delay_s"])
        assert episode["throughput_veh"] == pytest.approx(info["exited"])
        assert episode["mean_queue_veh"] == pytest.approx(info["mean_queue_veh"])
        assert episode["mean_reward"] == pytest.approx(ret, rel=1e-5)
        assert episode["switches"] == info["switches"]
    assert result.link_speed_mps.shape == (vec.network.n_links,)
    assert np.all(result.link_density_vpm >= 0) and result.link_density_vpm.max() > 0


def test_an_episode_that_never_ends_raises_instead_of_hanging(vec, monkeypatch):
    real = SignalBatch.step

    def never_truncates(self, bits):
        obs, reward, truncated = real(self, bits)
        return obs, reward, np.zeros_like(truncated)

    monkeypatch.setattr(SignalBatch, "step", never_truncates)
    with pytest.raises(RuntimeError, match="did not end"):
        _run(vec, actuated())


def test_progress_events_name_the_controller(vec, pool_events):
    _run(vec, actuated())
    progress = pool_events("eval_progress")
    assert progress and all(r["controller"] == "actuated" for r in progress)
    assert progress[-1]["episode"] == progress[-1]["episodes"] == 3


def test_a_classic_controller_runs_at_its_own_step_on_the_pooled_build(pool_events):
    config = EnvConfig(backend="cpu", episode_seconds=150.0, decision_interval=15.0, demand_scale=3.0)
    result = evaluate_controller(fixed(step=1.0), config, [5, 9], sample_s=15.0)
    assert [e["seed"] for e in result.episodes] == [5, 9]
    swapped = evaluate_controller(fixed(step=1.0), config, [9, 5], sample_s=15.0)
    assert [e["mean_delay_s"] for e in swapped.episodes] == [e["mean_delay_s"] for e in result.episodes][::-1]
    assert result.episodes[0]["switches"] >= 4  # 30 s phases over 150 s, realised at 1 s
    assert len(pool_events("network_build")) == 1
    with pytest.raises(ValueError, match="decision_interval=1.0"):
        _run(TrafficVecEnv(1, config), fixed(step=1.0))


def baselines():
    """Five different controllers, fresh (the random one's draws start again), one at 5 s."""
    return {
        "webster": FixedTime(PLAN, name="webster"),
        "fixed_time": FixedTime(FixedTimePlan(((20.0, 40.0),) * 3, (0.0, 10.0, 20.0))),
        "max_pressure": MaxPressure(delta_s=5.0),
        "actuated": Actuated(600.0, 40.0),
        "random": RandomController(3),
        "slow": FixedTime(PLAN, name="slow", control_step_s=5.0),
    }


def test_batched_baselines_give_each_controller_its_own_episodes_exactly():
    """All controllers x seeds in one batch (one per control step) equal one controller at a time
    bit for bit: each block reads its own rows, and every per-scenario computation (rewards by
    row_sum, each controller on its block's shape) is independent of the batch. The simulator's
    too once its CPU chunk is one scenario wide: at its default width (min(cpu_chunk, B / threads),
    lib/sim/cpu.py) the compiled loops vectorise differently for another B, and the same scenario
    differs in the last bits (docs/PERFORMANCE.md, "Batched baselines")."""
    config = EnvConfig(backend="cpu", episode_seconds=150.0, demand_scale=3.0, sim=SimConfig(cpu_chunk=1))
    seeds = [5, 9]
    batched = evaluate_controllers(baselines(), config, seeds, sample_s=15.0)
    assert list(batched) == list(baselines())
    delays = set()
    for name, controller in baselines().items():
        alone = evaluate_controller(controller, config, seeds, sample_s=15.0)
        assert batched[name].name == alone.name
        assert batched[name].episodes == alone.episodes, name
        assert np.array_equal(batched[name].link_speed_mps, alone.link_speed_mps)
        assert np.array_equal(batched[name].link_density_vpm, alone.link_density_vpm)
        delays.add(tuple(e["mean_delay_s"] for e in alone.episodes))
    assert len(delays) == len(baselines())  # distinct controllers: a misrouted block would show


def test_link_maps_are_sampled_on_the_common_clock(vec):
    """Link speed and density are read at the start of every `sample_s` period (here every second
    decision), not at every decision: at a 1 s step those reads cost more than the simulation."""
    controller = actuated()
    result = evaluate("a", controller.act, vec, 3, reset=controller.reset, progress_bar=False, sample_s=30.0)
    vec.seed(3)
    obs = vec.reset()
    controller.reset(vec)
    speed, density = [], []
    for step in range(10):
        if step % 2 == 0:
            speed.append(vec.sim.link_speed())
            density.append(vec.sim.link_density())
        obs, _, _, _ = vec.step(controller.act(obs, vec))
    np.testing.assert_allclose(result.link_speed_mps, np.mean(speed, axis=0).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(result.link_density_vpm, np.mean(density, axis=0).mean(axis=0), rtol=1e-12)


def test_entry_queue_is_sampled_on_the_common_clock():
    """Sampled every 15 s (each decision) and every 30 s: the mean and maximum of exactly those
    samples of the info's entry queue, the rest of the episode unchanged."""
    vec = TrafficVecEnv(2, backend="cpu", episode_seconds=150.0, demand_scale=4.0)
    controller = actuated()
    every = evaluate("a", controller.act, vec, 3, reset=controller.reset, progress_bar=False)
    sparse = evaluate("a", controller.act, vec, 3, reset=controller.reset, progress_bar=False, sample_s=30.0)
    vec.seed(3)
    obs = vec.reset()
    controller.reset(vec)
    samples = []
    for _ in range(10):
        obs, _, _, infos = vec.step(controller.act(obs, vec))
        samples.append([info["entry_queue_veh"] for info in infos])
    samples = np.array(samples)
    assert samples.max() > 0
    for i, (e, s) in enumerate(zip(every.episodes, sparse.episodes, strict=True)):
        assert e["mean_entry_queue_veh"] == pytest.approx(samples[:, i].mean())
        assert s["mean_entry_queue_veh"] == pytest.approx(samples[1::2, i].mean())
        assert s["max_entry_queue_veh"] == pytest.approx(samples[1::2, i].max())
        assert e["mean_delay_s"] == s["mean_delay_s"]
    with pytest.raises(ValueError, match="multiple"):
        evaluate("a", controller.act, vec, 3, reset=controller.reset, progress_bar=False, sample_s=20.0)
    vec.close()


RESULTS = {
    "dqn": {
        "mean_delay_s": 30.0,
        "throughput_veh": 110.0,
        "mean_queue_veh": 5.0,
        "mean_reward": -2.0,
        "mean_entry_queue_veh": 1.0,
        "max_entry_queue_veh": 2.0,
        "switches": 10.0,
    },
    "webster": {
        "mean_delay_s": 40.0,
        "throughput_veh": 100.0,
        "mean_queue_veh": 10.0,
        "mean_reward": -4.0,
        "mean_entry_queue_veh": 2.0,
        "max_entry_queue_veh": 4.0,
        "switches": 10.0,
    },
}
for _r in RESULTS.values():
    _r.update({f"{k}_std": 1.0 for k in list(_r)}, episodes=5)


def test_relative_change_and_table():
    change = relative_change(RESULTS, "dqn", "webster")
    assert change["mean_delay_s"] == pytest.approx(-0.25)
    assert change["throughput_veh"] == pytest.approx(0.10)
    assert change["mean_reward"] == pytest.approx(0.5)
    table = results_markdown(RESULTS, "dqn", ("webster", "max_pressure"))
    assert "| webster | -25.0% | +10.0% | -50.0% | -50.0% | +0.0% | -50.0% | +50.0% |" in table
    assert "30.00 ± 1.00" in table and "max_pressure |" not in table


def test_summary_spread_is_the_sample_std():
    episodes = [
        dict.fromkeys(RESULTS["dqn"], 0.0) | {"mean_delay_s": d, "throughput_veh": 1.0} for d in (1, 3)
    ]
    summary = Evaluation("x", episodes, np.zeros(1), np.zeros(1)).summary()
    assert summary["mean_delay_s"] == 2.0
    assert summary["mean_delay_s_std"] == pytest.approx(np.sqrt(2.0))
    assert summary["throughput_veh_std"] == 0.0


def test_plots_return_figures_and_the_map_credits_osm():
    result = RunResult(
        status="ok", output_dir=None, results=RESULTS, training_curve=[(100, -3.0), (200, -2.0)], policy="dqn"
    )
    assert isinstance(plots.training_curve(result), Figure)
    comparison = plots.controller_comparison(result)
    assert len(comparison.axes) == len(plots.PANELS)
    network = load_network()
    fig = plots.corridor_map(network, np.arange(network.n_links, dtype=float), "speed (m/s)")
    assert any(plots.ATTRIBUTION in t.get_text() for t in fig.texts)
    assert len(fig.axes[0].collections[0].get_segments()) == network.n_links
    with pytest.raises(ValueError, match="one number per link"):
        plots.corridor_map(network, [1.0, 2.0], "x")
