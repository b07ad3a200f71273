"""Network data files: read edges.csv, nodes.csv and observed_speeds.csv and check every row.

Map data © OpenStreetMap contributors, ODbL 1.0 (lib/data/victoria_island/README.md).

A bad row is refused with a ValueError naming the file, the row and the fix: a typo must never
turn into a silently different road. The output is plain OSM-level data (directed `Edge`s and a
dict of node facts) that lib/sim/network.py turns into the simulator's topology.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA_FILES = ("edges.csv", "nodes.csv", "observed_speeds.csv")
# Lanes per direction when OSM has no `lanes` tag: the corridor's primaries and secondaries are
# dual carriageways of 2 lanes (where tagged they say 2); its tertiaries are narrow two-way streets.
DEFAULT_LANES = {"primary": 2, "secondary": 2, "tertiary": 1}
# Free speed per highway class (km/h) where no probe speed exists: the median of the observed
# `freeflow_speed` per class in observed_speeds.csv (2025-08-05), see docs/calibration.md.
DEFAULT_FREE_SPEED_KMH = {"primary": 54.0, "secondary": 36.0, "tertiary": 20.0}

# Bounds a row must respect: beyond them a value is a unit or typing error, and one such value
# (length_m = 1e12) once made the network build allocate 17 GB before anything said why.
MAX_LENGTH_M = 20_000.0  # the longest link; a longer road is several OSM ways
MAX_LANES = 8  # per direction

EDGE_COLUMNS = ("u", "v", "name", "highway", "length_m", "oneway", "osm_lanes", "geometry_wkt")
NODE_COLUMNS = ("osm_id", "lat", "lon", "traffic_signals")



@dataclass(frozen=True)
class Edge:
    """One directed OSM road segment as read from edges.csv."""

    u: int
    v: int
    name: str
    highway: str
    length_m: float
    lanes: int
    free_speed_mps: float
    geometry: tuple[tuple[float, float], ...]



def read_folder(folder: Path) -> tuple[list[dict[str, str]], list[dict[str, str]], list[dict[str, str]]]:
    """The rows of a network folder's edges.csv, nodes.csv and (optional) observed_speeds.csv."""
    if not folder.is_dir():
        problem = "is a file, not a folder" if folder.is_file() else "does not exist"
        raise ValueError(f"network folder {folder} {problem}; pass a folder holding edges.csv and nodes.csv")
    for required in ("edges.csv", "nodes.csv"):
        if not (folder / required).exists():
            raise ValueError(
                f"{folder / required} is missing; a network folder needs edges.csv and nodes.csv"
            )
    speeds_file = folder / "observed_speeds.csv"
    speeds = (
        _read_csv(speeds_file, ("u", "v", "freeflow_speed", "confidence")) if speeds_file.exists() else []
    )
    edges = _read_csv(folder / "edges.csv", EDGE_COLUMNS)
    return edges, _read_csv(folder / "nodes.csv", NODE_COLUMNS), speeds


def parse_rows(
    edges: Sequence[Mapping[str, Any]],
    nodes: Sequence[Mapping[str, Any]],
    observed_speeds: Sequence[Mapping[str, Any]],
    source: str,
) -> tuple[list[Edge], dict[int, dict[str, Any]]]:
    """Checked edges and node facts from rows with the CSV columns (values strings or typed)."""
    node_info = _parse_nodes(nodes, source)
    speed_obs = _observed_free_speeds(observed_speeds)
    edge_list = _parse_edges(edges, node_info, speed_obs, source)
    edge_list = _split_boundary_ends(edge_list, node_info)
    _check_ways_out(edge_list, node_info, source)
    return edge_list, node_info


def _read_csv(path: Path, required: Iterable[str]) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(
                f"{path.name}: missing column(s) {', '.join(missing)}; found {reader.fieldnames}"
            )
        return list(reader)


def _row_error(source: str, file: str, row: int, problem: str) -> ValueError:
    # Row numbers count data rows from 1; the file line is row + 1 (after the header).
    return ValueError(f"{source}/{file} row {row} (line {row + 1}): {problem}")


def _parse_nodes(rows: Sequence[Mapping[str, Any]], source: str) -> dict[int, dict[str, Any]]:
    info: dict[int, dict[str, Any]] = {}
    for row_no, row in enumerate(rows, start=1):
        try:
            osm_id = int(row["osm_id"])
            lat, lon = float(row["lat"]), float(row["lon"])
        except (KeyError, TypeError, ValueError) as exc:
            raise _row_error(source, "nodes.csv", row_no, f"bad osm_id/lat/lon ({exc})") from None
        if not _coordinates(lon, lat):
            raise _row_error(source, "nodes.csv", row_no, f"lat must be in [-90, 90] and lon in [-180, "
                             f"180] (decimal degrees, WGS84), got lat {row['lat']!r}, lon {row['lon']!r}")
        if osm_id in info:
            raise _row_error(source, "nodes.csv", row_no, f"duplicate node {osm_id}")

        def fail(problem: str, row_no: int = row_no) -> ValueError:
            return _row_error(source, "nodes.csv", row_no, problem)

        signalised = _flag(row.get("traffic_signals", False), "traffic_signals", fail)
        info[osm_id] = {"lat": lat, "lon": lon, "signalised": signalised}
    return info


def _parse_edges(
    rows: Sequence[Mapping[str, Any]],
    node_info: Mapping[int, Mapping[str, Any]],
    speed_obs: Mapping[tuple[int, int], float],
    source: str,
) -> list[Edge]:
    seen: set[tuple[int, int]] = set()
    edges = []
    for row_no, row in enumerate(rows, start=1):

        def fail(problem: str, row_no: int = row_no) -> ValueError:
            return _row_error(source, "edges.csv", row_no, problem)

        try:
            u, v = int(row["u"]), int(row["v"])
        except (KeyError, TypeError, ValueError):
            raise fail(f"u and v must be OSM node ids, got {row.get('u')!r}, {row.get('v')!r}") from None
        for end in (u, v):
            if end not in node_info:
                raise fail(f"unknown node {end}: add it to nodes.csv or fix the edge")
        if u == v:
            raise fail(f"edge {u}->{v} starts and ends at the same node")
        if (u, v) in seen:
            raise fail(f"duplicate edge {u}->{v}: each directed edge may appear once")
        seen.add((u, v))
        length = _float(row.get("length_m"))
        if not (length is not None and 0 < length <= MAX_LENGTH_M):
            raise fail(f"length_m must be a positive number of metres up to {MAX_LENGTH_M:.0f} (split a "
                       f"longer road into several edges; check the unit), got {row.get('length_m')!r}")
        highway = str(row.get("highway") or "").strip()
        if highway not in DEFAULT_LANES:
            raise fail(f"highway {highway!r} unknown; expected one of {', '.join(DEFAULT_LANES)}")
        lanes = _lanes(row.get("osm_lanes"), highway, _flag(row.get("oneway", True), "oneway", fail), fail)
        free_kmh = speed_obs.get((u, v), DEFAULT_FREE_SPEED_KMH[highway])
        geometry = _parse_wkt(row.get("geometry_wkt"), fail) or _straight(node_info, u, v)
        edges.append(Edge(u, v, str(row.get("name") or ""), highway, length, lanes, free_kmh / 3.6, geometry))
    return edges


def _lanes(raw: Any, highway: str, oneway: bool, fail: Any) -> int:
    """Lanes per direction: OSM counts both directions of a two-way street."""
    if raw is None or str(raw).strip() == "":
        return DEFAULT_LANES[highway]
    try:
        number = float(str(raw).split(";")[0])
    except ValueError:
        number = math.nan
    if not number.is_integer():
        raise fail(f"osm_lanes must be a whole number, got {raw!r}")
    total = int(number)
    most = MAX_LANES if oneway else 2 * MAX_LANES
    if not 0 < total <= most:
        raise fail(f"osm_lanes must be 1..{most} ({MAX_LANES} per direction, both directions counted on "
                   f"a two-way street), got {raw!r}")
    return total if oneway else max(1, total // 2)


def _observed_free_speeds(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[int, int], float]:
    """Confidence-weighted mean of the probe free-flow speeds (km/h) per edge."""
    sums: dict[tuple[int, int], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for row in rows:
        speed, weight = _float(row.get("freeflow_speed")), _float(row.get("confidence"))
        if speed is None or weight is None or speed <= 0 or weight <= 0:
            continue
        acc = sums[(int(row["u"]), int(row["v"]))]
        acc[0] += weight * speed
        acc[1] += weight
    return {key: s / w for key, (s, w) in sums.items()}


def _split_boundary_ends(edges: list[Edge], node_info: dict[int, dict[str, Any]]) -> list[Edge]:
    """A two-way street that leaves the map ends in a node whose only way on is a U-turn; there
    traffic leaves the map and other traffic enters it, so the node becomes an exit and an entry
    (the entry side under the id -osm_id). Returns the edges with the departing ones re-rooted."""
    outs: dict[int, list[Edge]] = defaultdict(list)
    ins: dict[int, list[Edge]] = defaultdict(list)
    for e in edges:
        outs[e.u].append(e)
        ins[e.v].append(e)
    boundary = {
        n
        for n in node_info
        if len(ins[n]) == 1
        and len(outs[n]) == 1
        and outs[n][0].v == ins[n][0].u
        and not node_info[n]["signalised"]
    }
    for n in boundary:
        node_info[-n] = dict(node_info[n])
    return [dataclasses.replace(e, u=-e.u) if e.u in boundary else e for e in edges]


def _check_ways_out(edges: Sequence[Edge], node_info: Mapping[int, Any], source: str) -> None:
    """Every node is used, and (unless the network is closed) traffic on every edge can reach an
    exit without U-turns: otherwise vehicles would pile up there for ever."""
    outs: dict[int, list[Edge]] = defaultdict(list)
    for e in edges:
        outs[e.u].append(e)
    touched = {e.u for e in edges} | {e.v for e in edges}
    for osm_id in node_info:
        if osm_id not in touched:
            raise ValueError(f"{source}/nodes.csv: node {osm_id} has no edges; remove it or connect it")
    if not any(not outs[e.v] for e in edges):
        return  # a closed network (test rings): nothing can leave, nothing must
    reaches = {(e.u, e.v) for e in edges if not outs[e.v]}
    changed = True
    while changed:
        changed = False
        for e in edges:
            if (e.u, e.v) not in reaches and any(
                (o.u, o.v) in reaches for o in outs[e.v] if abs(o.v) != abs(e.u)
            ):
                reaches.add((e.u, e.v))
                changed = True
    for e in edges:
        if (e.u, e.v) not in reaches:
            raise ValueError(
                f"{source}/edges.csv: traffic on edge {abs(e.u)}->{e.v} can never reach an exit: node "
                f"{e.v} has no way out but a U-turn or a closed loop; add an outgoing edge to the rest "
                f"of the network, or make {e.v} an exit by removing its outgoing edges"
            )


TRUE_WORDS = {"true", "1", "yes"}
FALSE_WORDS = {"false", "0", "no"}


def _flag(value: Any, column: str, fail: Any) -> bool:
    """A boolean column read strictly: a typo must not flip a one-way road into a two-way one."""
    word = str(value).strip().lower()
    if word not in TRUE_WORDS | FALSE_WORDS:
        raise fail(f"{column} must be True or False, got {value!r}")
    return word in TRUE_WORDS


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _parse_wkt(raw: Any, fail: Any) -> tuple[tuple[float, float], ...]:
    text = str(raw or "").strip()
    if not text:
        return ()
    if not (text.upper().startswith("LINESTRING") and "(" in text and text.endswith(")")):
        raise fail(f"geometry_wkt must be a WKT LINESTRING, got {text[:40]!r}")
    try:
        pairs = text[text.index("(") + 1 : -1].split(",")
        points = tuple((float(p.split()[0]), float(p.split()[1])) for p in pairs)
    except (ValueError, IndexError):
        raise fail(f"geometry_wkt has a malformed coordinate: {text[:60]!r}") from None
    if not all(_coordinates(lon, lat) for lon, lat in points):
        raise fail(f"geometry_wkt has a point outside lon [-180, 180], lat [-90, 90]: {text[:60]!r}")
    return points


def _coordinates(lon: float, lat: float) -> bool:
    """Valid WGS84 degrees (NaN fails both comparisons)."""
    return -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0


def _straight(node_info: Mapping[int, Mapping[str, Any]], u: int, v: int) -> tuple[tuple[float, float], ...]:
    return tuple((node_info[n]["lon"], node_info[n]["lat"]) for n in (u, v))
