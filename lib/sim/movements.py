"""Junction movements: the default rule that derives them from the geometry, and movements.csv.

Map data © OpenStreetMap contributors, ODbL 1.0 (lib/data/victoria_island/README.md).

A movement is one way through a junction: from an incoming link to an outgoing link, with its
turn, its turning fraction (the share of the incoming link's traffic that takes it), its signal
phase (-1: not signal controlled) and an optional turn-pocket storage length (metres; 0 = none,
the movement shares its approach's lanes and so its strict FIFO queue, docs/model.md).

movements.csv, next to edges.csv, has one row per movement:

    intersection  OSM id of the junction (for a signalised box: the lowest signalised corner id)
    from_u, from_v  the incoming link's last OSM edge (as in edges.csv)
    to_u, to_v      the outgoing link's first OSM edge
    turn          left | through | right | uturn
    fraction      turning fraction in (0, 1]; they sum to 1 over the rows of one incoming link
    phase         signal phase (0 or 1) at a signalised junction, -1 (or empty) where unsignalised
    storage_m     turn-pocket storage length, m (empty or 0: no pocket)

Default rule (`default_rows`, written by `python -m lib.sim.movements [folder]`): at every
junction, every (incoming, outgoing) pair that the junction connects (inside a box: a directed
path of its internal edges from the approach's corner to the exit's corner) is a movement, its
turn classified by the change of bearing between the incoming link's last segment and the
outgoing link's first (through within +/-45 deg, right turns clockwise, left turns
anticlockwise). U-turns are left out (the reverse of the same edge, or a bearing change above
135 deg through a box): list one in movements.csv where it is legal. Fractions are proportional
to lanes of the receiving link x TURN_WEIGHT (no turning counts exist for these intersections;
docs/calibration.md). Phase: that of the approach (by bearing, lib/sim/network.py).
"""

from __future__ import annotations

import csv
import math
import sys
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MOVEMENTS_FILE = "movements.csv"
COLUMNS = ("intersection", "from_u", "from_v", "to_u", "to_v", "turn", "fraction", "phase", "storage_m")
TURNS = ("left", "through", "right", "uturn")
# Relative weight of a turn per receiving lane in the default fractions (an assumption: corridor
# through traffic dominates, docs/calibration.md).
TURN_WEIGHT = {"through": 2.0, "left": 1.0, "right": 1.0}
FRACTION_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Movement:
    index: int
    node: int
    in_link: int
    out_link: int
    ratio: float  # turning fraction
    signal: int
    phase: int  # -1: always flows (no signal)
    turn: str
    storage_m: float  # turn-pocket storage, m; 0 = shares the approach's strict FIFO queue
    yields_to: int  # permitted left turn: the opposing approach link it gives way to; else -1

    @property
    def uturn(self) -> bool:
        return self.turn == "uturn"


@dataclass(frozen=True)
class JunctionView:
    """What the rule and the checks need to know about one junction."""

    index: int
    osm_id: int
    signal: int
    in_links: tuple[int, ...]
    out_links: tuple[int, ...]
    box: bool
    # directed internal OSM edges of a box (empty for a plain node)
    box_edges: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class LinkView:
    index: int
    first_edge: tuple[int, int]
    last_edge: tuple[int, int]
    lanes: int
    in_bearing_deg: float  # bearing of the last segment
    out_bearing_deg: float  # bearing of the first segment


def turn_of(delta_deg: float) -> str:
    """Turn for a change of bearing in (-180, 180] (clockwise positive: right-hand traffic's right)."""
    if abs(delta_deg) <= 45.0:
        return "through"
    return "right" if delta_deg > 0 else "left"


def bearing_change(in_bearing: float, out_bearing: float) -> float:
    return (out_bearing - in_bearing + 540.0) % 360.0 - 180.0


def _reachable(box_edges: Sequence[tuple[int, int]], start: int) -> set[int]:
    adj: dict[int, list[int]] = defaultdict(list)
    for u, v in box_edges:
        adj[u].append(v)
    seen, todo = {start}, deque([start])
    while todo:
        for nxt in adj[todo.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def default_rows(
    junctions: Sequence[JunctionView], links: Sequence[LinkView], approach_phase: Mapping[int, int]
) -> list[dict[str, Any]]:
    """The default movements (the rule in the module docstring) as movements.csv rows."""
    rows = []
    for jn in junctions:
        for a in jn.in_links:
            la = links[a]
            corner = la.last_edge[1]
            reach = _reachable(jn.box_edges, corner) if jn.box else None
            options = []
            for b in jn.out_links:
                lb = links[b]
                if reach is not None and lb.first_edge[0] not in reach:
                    continue
                delta = bearing_change(la.in_bearing_deg, lb.out_bearing_deg)
                reverse = lb.first_edge == (la.last_edge[1], la.last_edge[0])
                uturn = reverse or (jn.box and abs(delta) > 135.0)
                options.append((b, "uturn" if uturn else turn_of(delta)))
            legal = [o for o in options if o[1] != "uturn"]
            weights = [links[b].lanes * TURN_WEIGHT[turn] for b, turn in legal]
            total = sum(weights)
            for (b, turn), weight in zip(legal, weights, strict=True):
                rows.append({
                    "intersection": jn.osm_id, "from_u": la.last_edge[0], "from_v": la.last_edge[1],
                    "to_u": links[b].first_edge[0], "to_v": links[b].first_edge[1], "turn": turn,
                    "fraction": round(weight / total, 12),
                    "phase": approach_phase.get(a, -1) if jn.signal >= 0 else -1, "storage_m": 0,
                })
    return rows


def read_movements(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; found {reader.fieldnames}")
        return list(reader)


def write_movements(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row[c] for c in COLUMNS})


@dataclass(frozen=True)
class ParsedMovement:
    row: int
    node: int
    in_link: int
    out_link: int
    fraction: float
    phase: int
    turn: str
    storage_m: float


def parse_movements(
    rows: Sequence[Mapping[str, Any]],
    junctions: Sequence[JunctionView],
    links: Sequence[LinkView],
    n_phases: Mapping[int, int],
    where: str,
) -> list[ParsedMovement]:
    """Checked movements from movements.csv rows; a ValueError names `where` (the file) and the row.

    Checks: known junction, the from edge ends a link entering it and the to edge starts a link
    leaving it, a known turn, a fraction in (0, 1], a phase the junction's signal has (-1 where
    unsignalised), storage_m >= 0, no duplicate pair, fractions summing to 1 per incoming link,
    every incoming link of every junction served, and one phase for the movements of an approach
    that share its FIFO queue (under strict FIFO a red turn would hold the whole approach)."""
    by_osm = {jn.osm_id: jn for jn in junctions}
    ending = {lk.last_edge: lk.index for lk in links}
    starting = {lk.first_edge: lk.index for lk in links}
    out: list[ParsedMovement] = []
    seen: dict[tuple[int, int], int] = {}
    for row_no, row in enumerate(rows, start=1):

        def fail(problem: str, row_no: int = row_no) -> ValueError:
            return ValueError(f"{where} row {row_no} (line {row_no + 1}): {problem}")

        try:
            osm = int(str(row.get("intersection")).strip())
            from_edge = (int(str(row.get("from_u")).strip()), int(str(row.get("from_v")).strip()))
            to_edge = (int(str(row.get("to_u")).strip()), int(str(row.get("to_v")).strip()))
        except ValueError:
            raise fail("intersection, from_u, from_v, to_u, to_v must be OSM ids") from None
        jn = by_osm.get(osm)
        if jn is None:
            raise fail(f"unknown intersection {osm}; junctions are {sorted(by_osm)}")
        a = ending.get(from_edge)
        if a is None or a not in jn.in_links:
            raise fail(f"edge {from_edge[0]}->{from_edge[1]} is not the last edge of a link entering "
                       f"intersection {osm}")
        b = starting.get(to_edge)
        if b is None or b not in jn.out_links:
            raise fail(f"edge {to_edge[0]}->{to_edge[1]} is not the first edge of a link leaving "
                       f"intersection {osm}")
        if (a, b) in seen:
            raise fail(f"duplicate movement {from_edge}->{to_edge} (first on row {seen[(a, b)]})")
        seen[(a, b)] = row_no
        turn = str(row.get("turn") or "").strip()
        if turn not in TURNS:
            raise fail(f"turn must be one of {', '.join(TURNS)}, got {turn!r}")
        fraction = _number(row.get("fraction"))
        if fraction is None or not 0.0 < fraction <= 1.0:
            raise fail(f"fraction must be a number in (0, 1], got {row.get('fraction')!r}")
        raw_phase = str(row.get("phase") if row.get("phase") is not None else "").strip()
        phase = _number(raw_phase or "-1")
        limit = n_phases.get(jn.signal, 0)
        if phase is None or not phase.is_integer() or not -1 <= phase < limit:
            allowed = f"-1..{limit - 1}" if limit else "-1 (the intersection has no signal)"
            raise fail(f"phase must be an integer in {allowed}, got {row.get('phase')!r}")
        storage = _number(str(row.get("storage_m") or "").strip() or "0")
        if storage is None or storage < 0:
            raise fail(f"storage_m must be a number of metres >= 0 (or empty), got {row.get('storage_m')!r}")
        out.append(ParsedMovement(row_no, jn.index, a, b, fraction, int(phase), turn, storage))
    _check_approaches(out, junctions, links, where)
    return out


def _check_approaches(
    parsed: Sequence[ParsedMovement], junctions: Sequence[JunctionView], links: Sequence[LinkView], where: str
) -> None:
    per_link: dict[int, list[ParsedMovement]] = defaultdict(list)
    for m in parsed:
        per_link[m.in_link].append(m)
    for jn in junctions:
        for a in jn.in_links:
            if a not in per_link:
                e = links[a].last_edge
                raise ValueError(f"{where}: no movement leaves the link ending with edge {e[0]}->{e[1]} at "
                                 f"intersection {jn.osm_id}; its traffic would be trapped: add its rows")
    for group in per_link.values():
        total = sum(m.fraction for m in group)
        if abs(total - 1.0) > FRACTION_TOLERANCE:
            rows = ", ".join(str(m.row) for m in group)
            raise ValueError(f"{where} rows {rows}: fractions of one incoming link sum to {total:.9g}, not 1")
        shared = [m for m in group if m.storage_m == 0]
        if len({m.phase for m in shared}) > 1:
            rows = ", ".join(f"{m.row} (phase {m.phase})" for m in shared)
            raise ValueError(f"{where} rows {rows}: movements sharing an approach's FIFO queue must have one "
                             "phase (a red turn would hold them all); give the other turn a storage_m pocket")


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def main(argv: Sequence[str]) -> None:
    """Write the default movements.csv of a network folder (default: the corridor)."""
    from lib.sim.network import DEFAULT_DATA, load_network, movement_views

    folder = Path(argv[0]) if argv else DEFAULT_DATA
    target = folder / MOVEMENTS_FILE
    if target.exists():
        target.unlink()  # regenerate from the rule, not from the file being replaced
    junctions, links, phases = movement_views(load_network(folder))
    rows = default_rows(junctions, links, phases)
    write_movements(target, rows)
    print(f"wrote {len(rows)} movements to {target}")


if __name__ == "__main__":
    main(sys.argv[1:])
