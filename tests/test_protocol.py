"""The evaluation protocol: disjoint seeds, levels, paired statistics against the best baseline."""

from __future__ import annotations

import numpy as np
import pytest

from lib.config import ConfigError
from lib.rl import protocol
from lib.rl.demand import mean_profile_factor
from lib.rl.env import EnvConfig
from lib.rl.run_config import SANITY_SEED_OFFSET, RunConfig
from lib.sim.network import load_network


def test_the_three_seed_sets_do_not_intersect():
    protocol.check_disjoint()
    sets = [set(range(s.start, s.stop)) for s in protocol.SEED_SETS]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    with pytest.raises(ValueError, match="overlap"):
        protocol.check_disjoint([protocol.TRAINING, protocol.SeedSet("x", 9_999_999, 10_000_001)])


def test_a_training_run_only_uses_training_seeds():
    n = 64  # the largest seed RunConfig takes keeps its env and sanity seeds in the training set
    seed = protocol.TRAINING.stop - 1 - SANITY_SEED_OFFSET - n
    RunConfig(seed=seed, n_envs=n)
    assert protocol.TRAINING.holds([seed + i for i in range(n)] + [seed + SANITY_SEED_OFFSET])
    with pytest.raises(ConfigError, match="protocol's training set"):
        RunConfig(seed=seed + 1, n_envs=n)
    assert protocol.EVALUATION.holds(protocol.EVALUATION.take(30))
    with pytest.raises(ValueError, match="no room"):
        protocol.TUNING.take(2_000_000)


def test_levels_and_design_demand():
    network = load_network()
    flat = protocol.level_config(EnvConfig(), 1.4, "flat")
    assert flat.demand_scale == 1.4 and flat.demand_level_range == (1.0, 1.0)
    peak = flat.replace(demand_profile="peak")
    ratio = protocol.design_demand(peak, network) / protocol.design_demand(flat, network)
    assert ratio == pytest.approx(float(mean_profile_factor("peak", 1350.0, 2250.0, 3600.0)))
    assert ratio.min() > 1.3
    with pytest.raises(ValueError, match="profile"):
        protocol.level_config(EnvConfig(), 1.0, "rush")


def test_the_profile_mean_brings_the_same_vehicles_on_any_step():
    coarse = sum(mean_profile_factor("peak", t, t + 15.0, 3600.0) * 15.0 for t in range(0, 3600, 15))
    fine = sum(mean_profile_factor("peak", t, t + 1.0, 3600.0) for t in range(3600))
    assert coarse == pytest.approx(fine, rel=1e-12) and fine == pytest.approx(3600.0)


def test_paired_statistics_on_known_numbers():
    baseline = np.array([10.0, 20.0, 40.0, 50.0])
    learner = np.array([[9.0, 18.0, 44.0, 45.0], [8.0, 20.0, 36.0, 55.0]])
    stats = protocol.paired_statistics(learner, baseline)
    change = learner / baseline - 1
    assert stats["mean_rel_change"] == pytest.approx(change.mean())
    assert stats["win_rate"] == pytest.approx(5 / 8)
    assert stats["median_ratio"] == pytest.approx(np.median(learner / baseline))
    assert stats["ci_low"] < stats["mean_rel_change"] < stats["ci_high"]
    same = protocol.paired_statistics(np.full((3, 4), 20.0), np.full(4, 25.0))
    assert same["ci_low"] == pytest.approx(-0.2) and same["ci_high"] == pytest.approx(-0.2)
    with pytest.raises(ValueError, match="baseline"):
        protocol.paired_statistics(learner, baseline[:3])


def test_the_bootstrap_redraws_training_seeds():
    """Two seeds, one far worse: the interval spans both (episodes alone would make it narrow)."""
    baseline = np.full(30, 10.0)
    learner = np.stack([np.full(30, 8.0), np.full(30, 12.0)])
    stats = protocol.paired_statistics(learner, baseline)
    assert stats["ci_low"] == pytest.approx(-0.2) and stats["ci_high"] == pytest.approx(0.2)


def _episodes(delays, throughput=100.0):
    return [
        {"seed": 20_000_000 + i, "mean_delay_s": d, "throughput_veh": throughput}
        for i, d in enumerate(delays)
    ]


def test_headline_is_against_the_best_classic_never_random():
    summaries = {
        "webster": {"mean_delay_s": 30.0, "throughput_veh": 100.0},
        "actuated": {"mean_delay_s": 20.0, "throughput_veh": 100.0},
        "random": {"mean_delay_s": 5.0, "throughput_veh": 100.0},
    }
    baselines = {
        "webster": _episodes([30.0, 30.0]),
        "actuated": _episodes([20.0, 20.0]),
        "random": _episodes([5.0, 5.0]),
    }
    out = protocol.compare([_episodes([22.0, 22.0], 99.0)], baselines, summaries)
    assert out["headline"]["best_classic"] == "actuated"
    assert out["headline"]["mean_rel_change"] == pytest.approx(0.1)
    assert out["headline"]["throughput_ratio"] == pytest.approx(0.99)
    assert set(out["vs"]) == {"webster", "actuated", "random"}
    shifted = [{**e, "seed": e["seed"] + 1} for e in _episodes([22.0, 22.0])]
    with pytest.raises(ValueError, match="same episodes"):
        protocol.compare([shifted], baselines, summaries)
