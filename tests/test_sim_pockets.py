"""Turn-pocket storage (docs/model.md, "Turn pockets"): a pocket longer than its approach's queue
keeps the partial FIFO of its own stream; once the queue outgrows it, the overflow stands in
arrival order and the approach is back to strict FIFO; storage 0 is no pocket at all.

The scenario is tests/test_sim_nodes.py's `held_red`: K turns red for B and stays red, so the
movement A -> B is held while A -> C could flow. With 85 % of A's traffic bound for B, more
arrives than C alone can discharge and A's queue fills the link (200 m), the case where a
pocket's length matters. The held movement A -> B is a through movement and A -> C a left
turn; the roles (held or free, pocketed or shared) are what the tests name."""

from __future__ import annotations

import numpy as np
import pytest

from lib.sim.network import load_network
from lib.sim.simulator import Simulator
from tests import junction_net
from tests.junction_net import link
from tests.test_cuda_sim_pockets import FRACTIONS
from tests.test_sim_nodes import held_red

LONG_M = 250.0  # longer than any queue on A: 85 % of a full 200 m link is 170 m in one lane
SHORT_M = 10.0  # about one car


def free_flow_per_minute(pocket: str, storage_m: float) -> tuple[float, float]:
    """(vehicles A -> C in the last of 20 minutes of red for B, in all 20 minutes)."""
    net = junction_net.network(fractions=FRACTIONS, pocket=pocket, storage_m=storage_m)
    _, per_minute = held_red(net)
    c = link(net, "C")
    return float(per_minute[-1][c]), float(sum(m[c] for m in per_minute))


@pytest.mark.parametrize("pocket", ["B", "C"])
def test_a_pocket_longer_than_the_queue_keeps_the_free_movement_flowing(pocket: str) -> None:
    """Pocket B: the held movement waits in its pocket, the shared lane keeps discharging C.
    Pocket C: the free movement reaches its pocket past the held queue (partial FIFO)."""
    last, total = free_flow_per_minute(pocket, LONG_M)
    _, strict = free_flow_per_minute("", 0.0)
    assert last > 5, "the free movement was held although the pocket holds the whole queue"
    assert total > 5 * strict


@pytest.mark.parametrize("pocket", ["B", "C"])
def test_a_pocket_shorter_than_the_queue_is_back_to_strict_fifo(pocket: str) -> None:
    """Pocket B: the held movement's queue overflows its pocket and blocks the shared lane.
    Pocket C: the held movement's queue blocks the pocket's entrance. Either way the free
    movement passes only the share of the queue within the pocket's reach."""
    last, total = free_flow_per_minute(pocket, SHORT_M)
    long_last, long_total = free_flow_per_minute(pocket, LONG_M)
    assert last < 0.15 * long_last, (last, long_last)
    assert total < 0.4 * long_total, (total, long_total)


def test_storage_zero_is_no_pocket() -> None:
    """A movement declared with storage_m = 0 shares its approach's strict-FIFO stream: the same
    streams and, bit for bit, the same flows as the network without it; and the corridor, which
    declares no pocket, couples no stream."""
    plain = junction_net.network(fractions=FRACTIONS)
    zero = junction_net.network(fractions=FRACTIONS, pocket="C", storage_m=0.0)
    a = link(zero, "A")
    assert len({int(zero.arrays["mov_stream"][m.index]) for m in zero.movements if m.in_link == a}) == 1
    assert np.array_equal(plain.arrays["mov_stream"], zero.arrays["mov_stream"])
    (sim_plain, minutes_plain), (sim_zero, minutes_zero) = held_red(plain, 5), held_red(zero, 5)
    assert np.array_equal(sim_plain.cell_state()[0], sim_zero.cell_state()[0])
    assert np.array_equal(np.array(minutes_plain), np.array(minutes_zero))
    network = load_network()
    approaches = {(m.node, m.in_link) for m in network.movements}
    assert len(network.arrays["stream_link"]) == len(approaches), "the corridor has one stream per approach"
    assert (Simulator(network, backend="cpu")._static["st_main"] < 0).all()
