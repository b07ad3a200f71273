"""The road network's topology: merge pass-through chains of OSM edges into links, group
signalised corners into intersections, and lay out the flat arrays the kernels read (the data
files are read and checked in lib/sim/network_data.py).

Map data © OpenStreetMap contributors, ODbL 1.0 (lib/data/victoria_island/README.md).

Why the shapes below:
- The simulator needs few, long links (its time step is bound by the shortest cell), so chains
  of pass-through nodes are merged into one link that keeps the true total length and geometry.
- The 8 signalised OSM nodes are corners of 3 dual-carriageway boxes joined by 9-11 m links.
  Stopping each corner separately gridlocks the box, so signalised nodes joined by short links
  form one controller (`Signal`) whose internal links are never held red.
- Everything the kernels need is also exposed as flat int64/float64 arrays (CSR per node).
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lib.sim.network_data import DATA_FILES, Edge, parse_rows, read_folder

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "data" / "victoria_island"
DEFAULT_CELL_LENGTH_M = 25.0
# Links this short that join signalised nodes lie inside one intersection box (data: 9-11 m).
INTERNAL_LINK_MAX_M = 15.0

@dataclass(frozen=True)
class Link:
    index: int
    name: str
    highway: str
    from_node: int
    to_node: int
    length_m: float
    lanes: int
    free_speed_mps: float
    n_cells: int
    dx_m: float
    first_cell: int
    edges: tuple[tuple[int, int], ...]
    geometry: tuple[tuple[float, float], ...]
    internal: bool


@dataclass(frozen=True)
class Node:
    index: int
    osm_id: int
    lat: float
    lon: float
    kind: str
    signalised: bool
    in_links: tuple[int, ...]
    out_links: tuple[int, ...]
    signal: int


@dataclass(frozen=True)
class Movement:
    index: int
    node: int
    in_link: int
    out_link: int
    ratio: float
    signal: int
    phase: int
    uturn: bool


@dataclass(frozen=True)
class Approach:
    index: int
    signal: int
    link: int
    phase: int
    bearing_deg: float


@dataclass(frozen=True)
class Signal:
    index: int
    name: str
    osm_nodes: tuple[int, ...]
    nodes: tuple[int, ...]
    internal_links: tuple[int, ...]
    approaches: tuple[int, ...]
    n_phases: int


@dataclass(frozen=True)
class Network:
    links: tuple[Link, ...]
    nodes: tuple[Node, ...]
    movements: tuple[Movement, ...]
    signals: tuple[Signal, ...]
    approaches: tuple[Approach, ...]
    entries: tuple[int, ...]
    entry_links: tuple[int, ...]
    exits: tuple[int, ...]
    exit_links: tuple[int, ...]
    cell_length_m: float
    key: str
    source: str
    arrays: dict[str, np.ndarray] = field(repr=False, compare=False)

    @property
    def n_links(self) -> int:
        return len(self.links)

    @property
    def n_cells(self) -> int:
        return int(self.arrays["link_first_cell"][-1])

    @property
    def n_signals(self) -> int:
        return len(self.signals)

    @property
    def n_entries(self) -> int:
        return len(self.entries)

    @property
    def n_exits(self) -> int:
        return len(self.exits)

    def __getattr__(self, name: str) -> np.ndarray:
        """Flat kernel arrays read as attributes: `network.link_dx`, `network.mov_ratio`, ..."""
        arrays = self.__dict__.get("arrays", {})
        if name in arrays:
            return arrays[name]
        raise AttributeError(f"'Network' object has no attribute '{name}'")


# --------------------------------------------------------------------------- loading


def load_network(path: str | Path | None = None, cell_length_m: float = DEFAULT_CELL_LENGTH_M) -> Network:
    """Load a network folder (edges.csv, nodes.csv, optional observed_speeds.csv)."""
    folder = Path(path) if path is not None else DEFAULT_DATA
    edges_rows, nodes_rows, speeds = read_folder(folder)
    digest = hashlib.sha256()
    for name in DATA_FILES:
        if (folder / name).exists():
            digest.update((folder / name).read_bytes())
    return build_network(
        edges_rows, nodes_rows, cell_length_m, source=str(folder), observed_speeds=speeds, digest=digest
    )


def build_network(
    edges: Sequence[Mapping[str, Any]],
    nodes: Sequence[Mapping[str, Any]],
    cell_length_m: float = DEFAULT_CELL_LENGTH_M,
    source: str = "<memory>",
    observed_speeds: Sequence[Mapping[str, Any]] = (),
    digest: Any = None,
) -> Network:
    """Build a network from rows with the CSV columns (values may be strings or typed)."""
    if not (isinstance(cell_length_m, (int, float)) and cell_length_m > 0):
        raise ValueError(f"cell_length_m must be a positive number of metres, got {cell_length_m!r}")
    edge_list, node_info = parse_rows(edges, nodes, observed_speeds, source)
    if digest is None:
        digest = hashlib.sha256(repr((list(map(dict, edges)), list(map(dict, nodes)))).encode())
    digest.update(f"cell_length_m={float(cell_length_m)!r}".encode())
    return _assemble(edge_list, node_info, float(cell_length_m), source, digest.hexdigest()[:16])


# --------------------------------------------------------------------------- topology


def _assemble(
    edges: list[Edge], node_info: Mapping[int, Mapping[str, Any]], cell_length_m: float, source: str, key: str
) -> Network:
    groups = _intersection_groups(edges, node_info)
    group_of = {osm: g for g, members in enumerate(groups) for osm in members}
    chains = _chains(edges, node_info, group_of)
    kept = sorted({c[0].u for c in chains} | {c[-1].v for c in chains})
    node_index = {osm: i for i, osm in enumerate(kept)}
    links = _links(chains, node_index, group_of, cell_length_m)
    approaches = _approaches(links, node_index, group_of, len(groups))
    nodes = _nodes(kept, node_info, links, group_of)
    movements = _movements(nodes, links, approaches)
    signals = _signals(groups, node_index, links, approaches)
    entries = tuple(n.index for n in nodes if n.kind == "entry")
    exits = tuple(n.index for n in nodes if n.kind == "exit")
    for n in nodes:
        if n.kind != "junction" and len(n.in_links) + len(n.out_links) != 1:
            raise ValueError(f"{source}: {n.kind} node {n.osm_id} must touch exactly one link")
    return Network(
        links=links,
        nodes=nodes,
        movements=movements,
        signals=signals,
        approaches=approaches,
        entries=entries,
        entry_links=tuple(nodes[i].out_links[0] for i in entries),
        exits=exits,
        exit_links=tuple(nodes[i].in_links[0] for i in exits),
        cell_length_m=cell_length_m,
        key=key,
        source=source,
        arrays=_arrays(links, nodes, movements),
    )


def _intersection_groups(
    edges: Sequence[Edge], node_info: Mapping[int, Mapping[str, Any]]
) -> list[list[int]]:
    """Signalised nodes, and the nodes they reach through short links, joined into one box each."""
    neighbours: dict[int, set[int]] = defaultdict(set)
    for e in edges:
        if e.length_m <= INTERNAL_LINK_MAX_M:
            neighbours[e.u].add(e.v)
            neighbours[e.v].add(e.u)
    groups, seen = [], set()
    for osm_id, info in node_info.items():
        if not info["signalised"] or osm_id in seen:
            continue
        group, stack = [], [osm_id]
        seen.add(osm_id)
        while stack:
            n = stack.pop()
            group.append(n)
            for m in neighbours[n] - seen:
                seen.add(m)
                stack.append(m)
        groups.append(sorted(group))
    return groups


def _chains(
    edges: Sequence[Edge], node_info: Mapping[int, Mapping[str, Any]], group_of: Mapping[int, int]
) -> list[list[Edge]]:
    """Edges grouped into links: a chain continues through a node that only passes traffic on."""
    outs: dict[int, list[Edge]] = defaultdict(list)
    ins: dict[int, list[Edge]] = defaultdict(list)
    for e in edges:
        outs[e.u].append(e)
        ins[e.v].append(e)

    def successor(e: Edge) -> Edge | None:
        n = e.v
        if n in group_of or node_info[n]["signalised"]:
            return None
        onward = [o for o in outs[n] if o.v != e.u]
        if len(onward) != 1 or len(ins[n]) != len(outs[n]):
            return None
        nxt = onward[0]
        if [i for i in ins[n] if i.u != nxt.v] != [e]:
            return None  # another stream also feeds nxt: a merge, not a pass-through
        same = (e.highway, e.lanes, e.name) == (nxt.highway, nxt.lanes, nxt.name)
        return nxt if same else None

    succ = {(e.u, e.v): successor(e) for e in edges}
    has_pred = {(s.u, s.v) for s in succ.values() if s is not None}
    chains, used = [], set()
    starts = [e for e in edges if (e.u, e.v) not in has_pred]
    # Rings of pass-through nodes (a closed test road) have no start: break them anywhere.
    for e in starts + list(edges):
        if (e.u, e.v) in used:
            continue
        chain = [e]
        used.add((e.u, e.v))
        nxt = succ[(e.u, e.v)]
        while nxt is not None and (nxt.u, nxt.v) not in used:
            chain.append(nxt)
            used.add((nxt.u, nxt.v))
            nxt = succ[(nxt.u, nxt.v)]
        chains.append(chain)
    return chains


def _links(
    chains: Sequence[Sequence[Edge]],
    node_index: Mapping[int, int],
    group_of: Mapping[int, int],
    cell_length: float,
) -> tuple[Link, ...]:
    links, first_cell = [], 0
    for index, chain in enumerate(chains):
        length = sum(e.length_m for e in chain)
        travel_time = sum(e.length_m / e.free_speed_mps for e in chain)
        n_cells = max(1, round(length / cell_length))
        geometry = list(chain[0].geometry)
        for e in chain[1:]:
            geometry.extend(e.geometry[1:] if e.geometry[0] == geometry[-1] else e.geometry)
        u, v = chain[0].u, chain[-1].v
        internal = u in group_of and v in group_of and group_of[u] == group_of[v]
        links.append(
            Link(
                index=index,
                name=chain[0].name,
                highway=chain[0].highway,
                from_node=node_index[u],
                to_node=node_index[v],
                length_m=length,
                lanes=chain[0].lanes,
                free_speed_mps=length / travel_time,
                n_cells=n_cells,
                dx_m=length / n_cells,
                first_cell=first_cell,
                edges=tuple((abs(e.u), e.v) for e in chain),
                geometry=tuple(geometry),
                internal=internal,
            )
        )
        first_cell += n_cells
    return tuple(links)


def bearing_deg(geometry: Sequence[tuple[float, float]]) -> float:
    """Compass bearing (0 = north, clockwise) of the last segment of a (lon, lat) polyline."""
    (lon0, lat0), (lon1, lat1) = geometry[-2], geometry[-1]
    east = (lon1 - lon0) * math.cos(math.radians((lat0 + lat1) / 2))
    north = lat1 - lat0
    return math.degrees(math.atan2(east, north)) % 360.0


def _approaches(
    links: Sequence[Link], node_index: Mapping[int, int], group_of: Mapping[int, int], n_groups: int
) -> tuple[Approach, ...]:
    """Links entering a box from outside; phase 0 serves north-south approaches, phase 1 the rest."""
    osm_of = {i: osm for osm, i in node_index.items()}
    approaches = []
    for link in links:
        target = osm_of[link.to_node]
        if link.internal or target not in group_of:
            continue
        bearing = bearing_deg(link.geometry)
        folded = bearing % 180.0
        phase = 0 if folded < 45.0 or folded >= 135.0 else 1
        approaches.append(Approach(len(approaches), group_of[target], link.index, phase, bearing))
    return tuple(approaches)


def _nodes(
    kept: Sequence[int],
    node_info: Mapping[int, Mapping[str, Any]],
    links: Sequence[Link],
    group_of: Mapping[int, int],
) -> tuple[Node, ...]:
    ins: dict[int, list[int]] = defaultdict(list)
    outs: dict[int, list[int]] = defaultdict(list)
    for link in links:
        outs[link.from_node].append(link.index)
        ins[link.to_node].append(link.index)
    nodes = []
    for i, osm in enumerate(kept):
        kind = "entry" if not ins[i] else "exit" if not outs[i] else "junction"
        info = node_info[osm]
        nodes.append(
            Node(
                i,
                abs(osm),
                info["lat"],
                info["lon"],
                kind,
                info["signalised"],
                tuple(ins[i]),
                tuple(outs[i]),
                group_of.get(osm, -1),
            )
        )
    return tuple(nodes)


def _movements(
    nodes: Sequence[Node], links: Sequence[Link], approaches: Sequence[Approach]
) -> tuple[Movement, ...]:
    """Every (in, out) pair at a junction; turning ratios follow the receiving lanes, U-turns get 0."""
    phase_of_link = {a.link: a.phase for a in approaches}
    movements = []
    for node in nodes:
        if node.kind != "junction":
            continue
        for in_link in node.in_links:
            last = links[in_link].edges[-1]
            uturn = {o: links[o].edges[0] == (last[1], last[0]) for o in node.out_links}
            weight = {o: 0.0 if uturn[o] else float(links[o].lanes) for o in node.out_links}
            total = sum(weight.values())
            phase = phase_of_link.get(in_link, -1)
            for out_link in node.out_links:
                movements.append(
                    Movement(
                        len(movements),
                        node.index,
                        in_link,
                        out_link,
                        weight[out_link] / total,
                        node.signal,
                        phase,
                        uturn[out_link],
                    )
                )
    return tuple(movements)


def _signals(
    groups: Sequence[Sequence[int]],
    node_index: Mapping[int, int],
    links: Sequence[Link],
    approaches: Sequence[Approach],
) -> tuple[Signal, ...]:
    signals = []
    for g, members in enumerate(groups):
        mine = [a for a in approaches if a.signal == g]
        by_phase = sorted({(a.phase, links[a.link].name) for a in mine})
        names = list(dict.fromkeys(name for _, name in by_phase if name))
        signals.append(
            Signal(
                index=g,
                name=" x ".join(names) or f"signal {g}",
                osm_nodes=tuple(members),
                nodes=tuple(node_index[m] for m in members if m in node_index),
                internal_links=tuple(
                    lk.index
                    for lk in links
                    if lk.internal
                    and links[lk.index].from_node in {node_index[m] for m in members if m in node_index}
                ),
                approaches=tuple(a.index for a in mine),
                n_phases=max((a.phase for a in mine), default=0) + 1,
            )
        )
    return tuple(signals)


def _arrays(
    links: Sequence[Link], nodes: Sequence[Node], movements: Sequence[Movement]
) -> dict[str, np.ndarray]:
    def ints(values: Iterable[int]) -> np.ndarray:
        return np.asarray(list(values), dtype=np.int64)

    def floats(values: Iterable[float]) -> np.ndarray:
        return np.asarray(list(values), dtype=np.float64)

    def csr(lists: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        ptr = np.zeros(len(lists) + 1, dtype=np.int64)
        ptr[1:] = np.cumsum([len(x) for x in lists])
        return ptr, ints(i for x in lists for i in x)

    first = [lk.first_cell for lk in links] + [sum(lk.n_cells for lk in links)]
    node_in_ptr, node_in_idx = csr([n.in_links for n in nodes])
    node_out_ptr, node_out_idx = csr([n.out_links for n in nodes])
    arrays = {
        "link_first_cell": ints(first),
        "link_dx": floats(lk.dx_m for lk in links),
        "link_lanes": floats(lk.lanes for lk in links),
        "link_free_speed": floats(lk.free_speed_mps for lk in links),
        "cell_link": ints(lk.index for lk in links for _ in range(lk.n_cells)),
        "mov_node": ints(m.node for m in movements),
        "mov_in": ints(m.in_link for m in movements),
        "mov_out": ints(m.out_link for m in movements),
        "mov_ratio": floats(m.ratio for m in movements),
        "mov_signal": ints(m.signal for m in movements),
        "mov_phase": ints(m.phase for m in movements),
        "node_in_ptr": node_in_ptr,
        "node_in_idx": node_in_idx,
        "node_out_ptr": node_out_ptr,
        "node_out_idx": node_out_idx,
    }
    for a in arrays.values():
        a.setflags(write=False)
    return arrays
