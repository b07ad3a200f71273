"""The road network's topology: merge pass-through chains of OSM edges into links, collapse each
signalised dual-carriageway box into one junction, attach its movements (lib/sim/movements.py),
and lay out the flat arrays the kernels read (the data files are read and checked in
lib/sim/network_data.py).

Map data © OpenStreetMap contributors, ODbL 1.0 (lib/data/victoria_island/README.md).

Why the shapes below:
- The simulator needs few, long links (its time step is bound by the shortest cell), so chains
  of pass-through nodes are merged into one link that keeps the true total length and geometry.
- The 8 signalised OSM nodes are corners of 3 dual-carriageway boxes joined by 9-11 m edges.
  Each box (its signalised corners, and the nodes they reach through short edges) becomes one
  junction node controlled by one `Signal`; its internal edges stop being links or cells (their
  length, 9-11 m, is dropped: `Signal.box_edges`, `Signal.box_length_m`). Traffic crosses a box
  along the movements of movements.csv (approach -> exit), so no vehicle circles a box or makes
  a U-turn through it, and the 9 m cells no longer set the time step.
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

from lib.sim.movements import (
    MOVEMENTS_FILE,
    JunctionView,
    LinkView,
    Movement,
    ParsedMovement,
    bearing_change,
    default_rows,
    parse_movements,
    read_movements,
)
from lib.sim.network_data import DATA_FILES, Edge, parse_rows, read_folder

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "data" / "victoria_island"
DEFAULT_CELL_LENGTH_M = 50.0
# Edges this short that join signalised nodes lie inside one intersection box (data: 9-11 m).
INTERNAL_LINK_MAX_M = 15.0
# An approach whose bearing differs from another's by more than this opposes it (permitted lefts).
OPPOSING_MIN_DEG = 135.0

__all__ = ["Approach", "Link", "Movement", "Network", "Node", "Signal", "build_network", "load_network"]

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
    osm_nodes: tuple[int, ...]  # the box's OSM nodes (its corners)
    nodes: tuple[int, ...]  # the one junction node that stands for the box
    box_edges: tuple[tuple[int, int], ...]  # the internal OSM edges it replaces (not simulated)
    box_length_m: float  # their total length, dropped from the simulated road
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
    """Load a network folder (edges.csv, nodes.csv, optional observed_speeds.csv and movements.csv;
    without movements.csv the movements follow the default rule of lib/sim/movements.py)."""
    folder = Path(path) if path is not None else DEFAULT_DATA
    edges_rows, nodes_rows, speeds = read_folder(folder)
    digest = hashlib.sha256()
    for name in (*DATA_FILES, MOVEMENTS_FILE):
        if (folder / name).exists():
            digest.update((folder / name).read_bytes())
    movements_file = folder / MOVEMENTS_FILE
    movements = read_movements(movements_file) if movements_file.exists() else None
    return build_network(
        edges_rows, nodes_rows, cell_length_m, source=str(folder), observed_speeds=speeds, digest=digest,
        movements=movements,
    )


def build_network(
    edges: Sequence[Mapping[str, Any]],
    nodes: Sequence[Mapping[str, Any]],
    cell_length_m: float = DEFAULT_CELL_LENGTH_M,
    source: str = "<memory>",
    observed_speeds: Sequence[Mapping[str, Any]] = (),
    digest: Any = None,
    movements: Sequence[Mapping[str, Any]] | None = None,
) -> Network:
    """Build a network from rows with the CSV columns (values may be strings or typed); `movements`
    are movements.csv rows (None: the default rule)."""
    if not (isinstance(cell_length_m, (int, float)) and cell_length_m > 0):
        raise ValueError(f"cell_length_m must be a positive number of metres, got {cell_length_m!r}")
    edge_list, node_info = parse_rows(edges, nodes, observed_speeds, source)
    if digest is None:
        digest = hashlib.sha256(repr((list(map(dict, edges)), list(map(dict, nodes)))).encode())
        digest.update(repr(None if movements is None else list(map(dict, movements))).encode())
    digest.update(f"cell_length_m={float(cell_length_m)!r}".encode())
    return _assemble(edge_list, node_info, float(cell_length_m), source, digest.hexdigest()[:16], movements)


# --------------------------------------------------------------------------- topology


def _assemble(
    edges: list[Edge],
    node_info: Mapping[int, Mapping[str, Any]],
    cell_length_m: float,
    source: str,
    key: str,
    movement_rows: Sequence[Mapping[str, Any]] | None,
) -> Network:
    groups = _intersection_groups(edges, node_info)
    group_of = {osm: g for g, members in enumerate(groups) for osm in members}
    inside = [e for e in edges if _in_box(e, group_of)]
    chains = _chains([e for e in edges if not _in_box(e, group_of)], node_info, group_of)
    # a box's corners are one node, named by its lowest signalised OSM id
    box_id = [min(m for m in members if node_info[m]["signalised"]) for members in groups]

    def node_key(osm: int) -> int:
        return box_id[group_of[osm]] if osm in group_of else osm

    kept = sorted({node_key(c[0].u) for c in chains} | {node_key(c[-1].v) for c in chains})
    node_index = {k: i for i, k in enumerate(kept)}
    index_of = {osm: node_index[node_key(osm)] for osm in {e.u for e in edges} | {e.v for e in edges}
                if node_key(osm) in node_index}
    links = _links(chains, index_of, cell_length_m)
    box_node = {node_index[box_id[g]]: g for g in range(len(groups)) if box_id[g] in node_index}
    approaches = _approaches(links, box_node)
    nodes = _nodes(kept, node_info, links, groups, box_node)
    signals = _signals(groups, box_node, inside, approaches, links)
    movements = _movements(nodes, links, approaches, signals, inside, group_of, movement_rows, source)
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


def _in_box(e: Edge, group_of: Mapping[int, int]) -> bool:
    """A short edge joining two nodes of one box: inside the intersection, not a road link."""
    return (
        e.length_m <= INTERNAL_LINK_MAX_M and e.u in group_of and e.v in group_of
        and group_of[e.u] == group_of[e.v]
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
    chains: Sequence[Sequence[Edge]], index_of: Mapping[int, int], cell_length: float
) -> tuple[Link, ...]:
    links, first_cell = [], 0
    for index, chain in enumerate(chains):
        length = sum(e.length_m for e in chain)
        travel_time = sum(e.length_m / e.free_speed_mps for e in chain)
        n_cells = max(1, round(length / cell_length))
        geometry = list(chain[0].geometry)
        for e in chain[1:]:
            geometry.extend(e.geometry[1:] if e.geometry[0] == geometry[-1] else e.geometry)
        links.append(
            Link(
                index=index,
                name=chain[0].name,
                highway=chain[0].highway,
                from_node=index_of[chain[0].u],
                to_node=index_of[chain[-1].v],
                length_m=length,
                lanes=chain[0].lanes,
                free_speed_mps=length / travel_time,
                n_cells=n_cells,
                dx_m=length / n_cells,
                first_cell=first_cell,
                edges=tuple((abs(e.u), e.v) for e in chain),
                geometry=tuple(geometry),
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


def _approaches(links: Sequence[Link], box_node: Mapping[int, int]) -> tuple[Approach, ...]:
    """Links entering a box; phase 0 serves north-south approaches, phase 1 the rest."""
    approaches = []
    for link in links:
        if link.to_node not in box_node:
            continue
        bearing = bearing_deg(link.geometry)
        folded = bearing % 180.0
        phase = 0 if folded < 45.0 or folded >= 135.0 else 1
        approaches.append(Approach(len(approaches), box_node[link.to_node], link.index, phase, bearing))
    return tuple(approaches)


def _nodes(
    kept: Sequence[int],
    node_info: Mapping[int, Mapping[str, Any]],
    links: Sequence[Link],
    groups: Sequence[Sequence[int]],
    box_node: Mapping[int, int],
) -> tuple[Node, ...]:
    ins: dict[int, list[int]] = defaultdict(list)
    outs: dict[int, list[int]] = defaultdict(list)
    for link in links:
        outs[link.from_node].append(link.index)
        ins[link.to_node].append(link.index)
    nodes = []
    for i, osm in enumerate(kept):
        kind = "entry" if not ins[i] else "exit" if not outs[i] else "junction"
        if i in box_node:
            members = groups[box_node[i]]
            lat = sum(node_info[m]["lat"] for m in members) / len(members)
            lon = sum(node_info[m]["lon"] for m in members) / len(members)
            signalised, signal = True, box_node[i]
        else:
            lat, lon = node_info[osm]["lat"], node_info[osm]["lon"]
            signalised, signal = node_info[osm]["signalised"], -1
        nodes.append(Node(i, abs(osm), lat, lon, kind, signalised, tuple(ins[i]), tuple(outs[i]), signal))
    return tuple(nodes)


def movement_views(
    network: Network,
) -> tuple[list[JunctionView], list[LinkView], dict[int, int]]:
    """The junctions, links and approach phases of a built network, as lib/sim/movements.py sees them."""
    box_edges = {s.nodes[0]: s.box_edges for s in network.signals}
    return _views(network.nodes, network.links, network.approaches, box_edges)


def _views(
    nodes: Sequence[Node],
    links: Sequence[Link],
    approaches: Sequence[Approach],
    box_edges: Mapping[int, tuple[tuple[int, int], ...]],
) -> tuple[list[JunctionView], list[LinkView], dict[int, int]]:
    junctions = [
        JunctionView(n.index, n.osm_id, n.signal, n.in_links, n.out_links, n.signal >= 0,
                     box_edges.get(n.index, ()))
        for n in nodes
        if n.kind == "junction"
    ]
    link_views = [
        LinkView(lk.index, lk.edges[0], lk.edges[-1], lk.lanes, bearing_deg(lk.geometry),
                 bearing_deg(lk.geometry[:2]))
        for lk in links
    ]
    return junctions, link_views, {a.link: a.phase for a in approaches}


def _movements(
    nodes: Sequence[Node],
    links: Sequence[Link],
    approaches: Sequence[Approach],
    signals: Sequence[Signal],
    inside: Sequence[Edge],
    group_of: Mapping[int, int],
    rows: Sequence[Mapping[str, Any]] | None,
    source: str,
) -> tuple[Movement, ...]:
    """The movements of movements.csv (or of the default rule), checked, in junction order; a
    permitted left turn records the opposing approach it yields to (docs/model.md)."""
    box_edges = {
        s.nodes[0]: tuple((e.u, e.v) for e in inside if group_of[e.u] == s.index) for s in signals
    }
    junctions, link_views, phases = _views(nodes, links, approaches, box_edges)
    where = f"{source}/{MOVEMENTS_FILE}" if rows is not None else f"{source} (default movements)"
    if rows is None:
        rows = default_rows(junctions, link_views, phases)
    parsed = parse_movements(rows, junctions, link_views, {s.index: s.n_phases for s in signals}, where)
    parsed = sorted(parsed, key=lambda m: (m.node, m.in_link, m.row))
    return tuple(
        Movement(i, m.node, m.in_link, m.out_link, m.fraction, nodes[m.node].signal, m.phase, m.turn,
                 m.storage_m, _opposing(m, parsed, link_views))
        for i, m in enumerate(parsed)
    )


def _opposing(m: ParsedMovement, parsed: Sequence[ParsedMovement], links: Sequence[LinkView]) -> int:
    """The approach a signalised left turn yields to: the incoming link of the same junction from the
    opposite direction whose through or right movements run in the same phase; -1 if none."""
    if m.turn != "left" or m.phase < 0:
        return -1
    for other in parsed:
        opposite = abs(bearing_change(links[m.in_link].in_bearing_deg, links[other.in_link].in_bearing_deg))
        if (other.node == m.node and other.in_link != m.in_link and other.phase == m.phase
                and other.turn in ("through", "right") and opposite > OPPOSING_MIN_DEG):
            return other.in_link
    return -1


def _signals(
    groups: Sequence[Sequence[int]],
    box_node: Mapping[int, int],
    inside: Sequence[Edge],
    approaches: Sequence[Approach],
    links: Sequence[Link],
) -> tuple[Signal, ...]:
    node_of = {g: n for n, g in box_node.items()}
    signals = []
    for g, members in enumerate(groups):
        mine = [a for a in approaches if a.signal == g]
        by_phase = sorted({(a.phase, links[a.link].name) for a in mine})
        names = list(dict.fromkeys(name for _, name in by_phase if name))
        box = [e for e in inside if e.u in members]
        signals.append(
            Signal(
                index=g,
                name=" x ".join(names) or f"signal {g}",
                osm_nodes=tuple(members),
                nodes=(node_of[g],) if g in node_of else (),
                box_edges=tuple((e.u, e.v) for e in box),
                box_length_m=sum(e.length_m for e in box),
                approaches=tuple(a.index for a in mine),
                n_phases=max((a.phase for a in mine), default=0) + 1,
            )
        )
    return tuple(signals)


def _streams(movements: Sequence[Movement]) -> dict[str, list]:
    """Queues of the node model (docs/model.md): per incoming link one strict-FIFO stream holding
    its movements without a turn pocket, and one stream per pocketed movement; streams are in
    junction order. Returns each stream's link, node, pocket storage (m, 0 for a shared stream),
    the pocketed movement's turning fraction (0 for a shared stream) and the approach's shared
    stream that a pocket couples with once its queue outgrows it (-1: none), and each
    movement's stream."""
    keys: dict[tuple[int, int, int], int] = {}
    out: dict[str, list] = {name: [] for name in ("link", "node", "storage", "ratio", "main", "mov_stream")}
    for m in movements:
        key = (m.node, m.in_link, m.index if m.storage_m > 0 else -1)
        if key not in keys:
            keys[key] = len(out["link"])
            out["link"].append(m.in_link)
            out["node"].append(m.node)
            out["storage"].append(m.storage_m)
            out["ratio"].append(m.ratio if m.storage_m > 0 else 0.0)
        out["mov_stream"].append(keys[key])
    for node, link, pocket in keys:
        out["main"].append(keys.get((node, link, -1), -1) if pocket >= 0 else -1)
    return out


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
    streams = _streams(movements)
    # the share of the opposing approach's traffic a permitted left turn crosses (through + right)
    conflicting: dict[tuple[int, int], float] = defaultdict(float)
    for m in movements:
        if m.turn in ("through", "right") and m.phase >= 0:
            conflicting[(m.in_link, m.phase)] += m.ratio
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
        "mov_stream": ints(streams["mov_stream"]),
        "mov_yield": ints(m.yields_to for m in movements),
        "mov_yield_share": floats(conflicting[(m.yields_to, m.phase)] if m.yields_to >= 0 else 0.0
                                  for m in movements),
        "stream_link": ints(streams["link"]),
        "stream_node": ints(streams["node"]),
        "stream_storage": floats(streams["storage"]),
        "stream_ratio": floats(streams["ratio"]),
        "stream_main": ints(streams["main"]),
        "node_in_ptr": node_in_ptr,
        "node_in_idx": node_in_idx,
        "node_out_ptr": node_out_ptr,
        "node_out_idx": node_out_idx,
    }
    for a in arrays.values():
        a.setflags(write=False)
    return arrays
