"""The pool builds once per (data content, sim config, backend) and hands out reset simulators."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from lib.rl import pool
from lib.sim.network import DEFAULT_DATA
from lib.sim.simulator import SimConfig


def test_one_build_across_many_leases_and_releases(pool_events):
    leases = [pool.acquire(1, backend="cpu") for _ in range(3)]
    for lease in leases:
        lease.release()
    for _ in range(5):
        with pool.acquire(2, backend="cpu") as lease:
            lease.sim.advance(5.0)
    assert pool.build_count() == 1
    builds = pool_events("network_build")
    assert len(builds) == 1
    record = builds[0]
    network = leases[0].network
    assert record["n"] == 1 and record["key"] == network.key
    assert (record["links"], record["nodes"], record["cells"]) == (
        network.n_links,
        len(network.nodes),
        network.n_cells,
    )
    assert record["scenarios"] == 1 and record["backend"] == "cpu"
    assert record["bytes"] == leases[0].sim.nbytes > 0 and record["seconds"] >= 0
    compiles = pool_events("kernel_compile")
    assert len(compiles) == 1 and isinstance(compiles[0]["cached"], bool)


def test_released_simulator_is_reused_and_reset_by_copy(pool_events):
    first = pool.acquire(2, backend="cpu")
    sim = first.sim
    sim.set_demand(np.full(first.network.n_entries, 900.0))
    sim.advance(60.0)
    assert sim.vehicles().min() > 0 and sim.time.min() == 60.0
    first.release()
    first.release()  # idempotent: the simulator must not enter the free list twice
    second = pool.acquire(2, backend="cpu")
    assert second.sim is sim
    assert np.all(sim.time == 0.0) and np.all(sim.vehicles() == 0.0)
    assert np.all(sim.cumulative_entered() == 0.0)
    other = pool.acquire(2, backend="cpu")
    assert other.sim is not sim  # the free list was empty: a new simulator, not a rebuild
    single = pool.acquire(1, backend="cpu")
    assert single.sim.n_scenarios == 1
    assert pool.build_count() == 1


def test_a_different_config_builds_its_own(pool_events):
    base = pool.acquire(1, backend="cpu")
    tuned = pool.acquire(1, sim_config={"min_green_s": 5.0}, backend="cpu")
    finer = pool.acquire(1, backend="cpu", cell_length_m=25.0)
    assert pool.build_count() == 3
    assert [b["n"] for b in pool_events("network_build")] == [1, 2, 3]
    assert tuned.sim.config.min_green_s == 5.0 and base.sim.config.min_green_s != 5.0
    assert finer.network.n_cells > base.network.n_cells
    assert finer.network.key != base.network.key
    # the same settings spelled differently are the same key: no extra build
    pool.acquire(1, sim_config=SimConfig(min_green_s=5.0), backend="cpu")
    pool.acquire(1, sim_config=SimConfig(), backend="cpu")
    assert pool.build_count() == 3
    assert len(pool_events("kernel_compile")) == 1


def test_key_is_the_data_content_not_the_path(pool_events, tmp_path):
    same = tmp_path / "same"
    shutil.copytree(DEFAULT_DATA, same)
    pool.acquire(1, backend="cpu")
    pool.acquire(1, data_path=same, backend="cpu")
    assert pool.build_count() == 1
    edited = tmp_path / "edited"
    shutil.copytree(DEFAULT_DATA, edited)
    (edited / "observed_speeds.csv").unlink()
    lease = pool.acquire(1, data_path=str(edited), backend="cpu")
    assert pool.build_count() == 2
    assert lease.network.source == str(edited)


def test_bad_requests_name_the_fix(pool_events, tmp_path):
    with pytest.raises(ValueError, match="n_slots must be a positive int"):
        pool.acquire(0)
    with pytest.raises(ValueError, match="does not exist"):
        pool.acquire(1, data_path=tmp_path / "missing")
    with pytest.raises(TypeError, match="sim_config must be a SimConfig"):
        pool.acquire(1, sim_config=3)
    with pytest.raises(ValueError, match="unknown key 'min_gren_s'.*min_green_s"):
        pool.acquire(1, sim_config={"min_gren_s": 5.0})
    assert pool.build_count() == 0


def test_a_config_with_other_kernels_compiles_them_in_its_build(pool_events):
    pool.acquire(1, backend="cpu")
    second = pool.acquire(1, sim_config={"order": 2}, backend="cpu")
    compiles = pool_events("kernel_compile")
    assert len(compiles) == 2, "the order-2 kernels are compiled (and timed) in the pool's build"
    assert pool.build_count() == 2
    start = len(pool_events.stream.getvalue())
    second.sim.advance(30.0)
    assert "kernel_compile" not in pool_events.stream.getvalue()[start:]
