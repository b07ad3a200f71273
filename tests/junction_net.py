"""A small synthetic network with two diverges and one signal, for the node-model tests.

    entry 1 -Z-> U(2) -A-> J(3) -B-> K(4, signal) -D-> exit 8
                 U -E-> exit 5       J -C-> exit 6      entry 7 -F-> K

Z, A, B run north, E turns right (east) at U, C turns left (west) at J, F arrives at K heading
west. K's phase 0 serves B (north-south), phase 1 serves F. Every link is one lane.
"""

from __future__ import annotations

from lib.sim.network import Network, build_network

# (lon, lat) offsets in units of 0.001 degree (about 111 m) from (3.42, 6.43)
POSITIONS = {1: (0, 0), 2: (0, 2), 3: (0, 4), 4: (0, 6), 5: (2, 2), 6: (-2, 4), 7: (2, 6), 8: (0, 8)}
LINKS = {"Z": (1, 2), "A": (2, 3), "B": (3, 4), "C": (3, 6), "D": (4, 8), "E": (2, 5), "F": (7, 4)}
SIGNALISED = {4}


def nodes() -> list[dict]:
    return [{"osm_id": i, "lat": 6.43 + 0.001 * y, "lon": 3.42 + 0.001 * x,
             "traffic_signals": i in SIGNALISED} for i, (x, y) in POSITIONS.items()]


def edges(length_m: float) -> list[dict]:
    return [{"u": u, "v": v, "name": name, "highway": "primary", "length_m": length_m, "oneway": True,
             "osm_lanes": 1, "geometry_wkt": ""} for name, (u, v) in LINKS.items()]


def movement_rows(
    fractions: dict[str, float] | None = None, pocket: str = "", storage_m: float = 50.0
) -> list[dict]:
    """movements.csv rows: Z -> A / E at U, A -> B / C at J (fractions by the name of the outgoing
    link, default 0.5 each), B -> D (phase 0) and F -> D (phase 1) at K; `pocket` names an
    outgoing link whose movement gets a turn pocket of storage_m metres."""
    f = {"A": 0.5, "E": 0.5, "B": 0.5, "C": 0.5, **(fractions or {})}
    rows = []
    for node, a, b, turn, phase in (
        (2, "Z", "A", "through", -1), (2, "Z", "E", "right", -1), (3, "A", "B", "through", -1),
        (3, "A", "C", "left", -1), (4, "B", "D", "through", 0), (4, "F", "D", "right", 1),
    ):
        rows.append({"intersection": node, "from_u": LINKS[a][0], "from_v": LINKS[a][1], "to_u": LINKS[b][0],
                     "to_v": LINKS[b][1], "turn": turn, "fraction": f.get(b, 1.0), "phase": phase,
                     "storage_m": storage_m if b == pocket else 0})
    return rows


def network(length_m: float = 200.0, cell_length_m: float = 25.0, **movements) -> Network:
    return build_network(edges(length_m), nodes(), cell_length_m=cell_length_m,
                         movements=movement_rows(**movements))


def link(net: Network, name: str) -> int:
    """Index of the link named `name` in LINKS."""
    return next(lk.index for lk in net.links if lk.name == name)
