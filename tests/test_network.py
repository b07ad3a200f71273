"""The network loader: the real corridor's topology, and clear errors on malformed input."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from lib.sim.calibration import calibration_table
from lib.sim.network import DEFAULT_DATA, build_network, load_network


@pytest.fixture(scope="module")
def net():
    return load_network()


def test_corridor_keeps_all_road_length_and_every_osm_edge(net):
    with (DEFAULT_DATA / "edges.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    total = sum(float(r["length_m"]) for r in rows)
    boxes = sum(s.box_length_m for s in net.signals)
    assert sum(link.length_m for link in net.links) + boxes == pytest.approx(total, rel=1e-12)
    merged = [edge for link in net.links for edge in link.edges]
    merged += [e for s in net.signals for e in s.box_edges]
    assert sorted(merged) == sorted((int(r["u"]), int(r["v"])) for r in rows)


def test_corridor_has_three_intersections_covering_the_eight_signalised_nodes(net):
    signalised = {n for s in net.signals for n in s.osm_nodes if n in _signalised_ids()}
    assert len(net.signals) == 3
    assert signalised == _signalised_ids()
    assert all(s.n_phases == 2 for s in net.signals)
    box = next(s for s in net.signals if 5902583245 in s.osm_nodes)
    assert 2339926113 in box.osm_nodes  # the unsignalised corners inside the box belong to it


def test_each_box_is_one_junction_and_its_short_edges_are_not_links(net):
    box_edges = [e for s in net.signals for e in s.box_edges]
    assert len(box_edges) == 10 and 35 < sum(s.box_length_m for s in net.signals) < 110
    assert min(link.length_m for link in net.links) > 50  # the 9-11 m edges no longer set the step
    for s in net.signals:
        (junction,) = s.nodes
        assert net.nodes[junction].signal == s.index and net.nodes[junction].kind == "junction"
        assert {net.approaches[a].link for a in s.approaches} == set(net.nodes[junction].in_links)
    for m in net.movements:
        assert m.signal == net.nodes[m.node].signal and (m.phase >= 0) == (m.signal >= 0)


def test_map_boundary_of_a_two_way_street_is_an_exit_and_an_entry(net):
    ends = [net.nodes[i].osm_id for i in net.entries] + [net.nodes[i].osm_id for i in net.exits]
    assert ends.count(36240960) == 2
    assert net.n_entries == 5 and net.n_exits == 5


def test_cells_honour_the_true_link_length(net):
    for link in net.links:
        assert link.n_cells >= 1
        assert link.n_cells * link.dx_m == pytest.approx(link.length_m, rel=1e-12)
    assert net.n_cells == int(np.sum([link.n_cells for link in net.links]))
    finer = load_network(cell_length_m=10.0)
    assert finer.n_cells > net.n_cells and finer.key != net.key


def test_approach_phases_follow_bearing(net):
    for a in net.approaches:
        north_south = a.bearing_deg % 180 < 45 or a.bearing_deg % 180 >= 135
        assert a.phase == (0 if north_south else 1)


def test_free_speeds_come_from_the_probe_data(net):
    speeds = {link.free_speed_mps * 3.6 for link in net.links}
    assert min(speeds) >= 19.0 and max(speeds) <= 58.0
    table = calibration_table(net)
    assert "| primary |" in table and "54.0" in table


def test_calibration_doc_matches_the_code(net):
    doc = (Path(__file__).resolve().parents[1] / "docs" / "calibration.md").read_text()
    assert calibration_table(net) in doc, (
        "docs/calibration.md is stale: regenerate with python -m lib.network"
    )


def test_closed_ring_builds_without_entries_or_exits():
    nodes = [{"osm_id": i, "lat": 0.0, "lon": 0.001 * i, "traffic_signals": False} for i in range(3)]
    edges = [_edge(i, (i + 1) % 3, 100.0) for i in range(3)]
    ring = build_network(edges, nodes, cell_length_m=20.0)
    assert ring.n_entries == 0 and ring.n_exits == 0
    assert ring.n_cells == 15 and ring.n_links == 1


# --------------------------------------------------------------------------- malformed input


def _edge(u: int, v: int, length: float, **extra) -> dict:
    row = {
        "u": u,
        "v": v,
        "name": "Test Road",
        "highway": "primary",
        "length_m": length,
        "oneway": True,
        "osm_lanes": "",
        "geometry_wkt": "",
    }
    return {**row, **extra}


def _copy_data(tmp_path: Path) -> Path:
    folder = tmp_path / "net"
    shutil.copytree(DEFAULT_DATA, folder)
    return folder


def _rewrite(path: Path, edit) -> None:
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    fields = list(rows[0].keys())
    rows, fields = edit(rows, fields)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def test_missing_column_names_file_and_column(tmp_path):
    folder = _copy_data(tmp_path)
    _rewrite(
        folder / "edges.csv",
        lambda rows, f: (
            [{k: v for k, v in r.items() if k != "length_m"} for r in rows],
            [c for c in f if c != "length_m"],
        ),
    )
    with pytest.raises(ValueError, match=r"edges.csv: missing column\(s\) length_m"):
        load_network(folder)


def test_negative_length_names_row(tmp_path):
    folder = _copy_data(tmp_path)

    def edit(rows, fields):
        rows[4]["length_m"] = "-3"
        return rows, fields

    _rewrite(folder / "edges.csv", edit)
    with pytest.raises(ValueError, match=r"edges.csv row 5 \(line 6\): length_m must be a positive"):
        load_network(folder)


def test_unknown_node_names_it(tmp_path):
    folder = _copy_data(tmp_path)

    def edit(rows, fields):
        rows[2]["v"] = "999"
        return rows, fields

    _rewrite(folder / "edges.csv", edit)
    with pytest.raises(ValueError, match=r"row 3 .*unknown node 999"):
        load_network(folder)


def test_duplicate_edge_is_rejected(tmp_path):
    folder = _copy_data(tmp_path)
    _rewrite(folder / "edges.csv", lambda rows, f: (rows + [rows[0]], f))
    with pytest.raises(ValueError, match=r"row 71 .*duplicate edge"):
        load_network(folder)


def test_trap_with_no_way_out_is_rejected():
    nodes = [{"osm_id": i, "lat": 0.0, "lon": 0.001 * i, "traffic_signals": False} for i in range(6)]
    # 0 -> 1 -> 4 (exit), and 1 -> 2 -> 3 -> 5 -> 2: a one-way loop traffic can enter but never leave.
    edges = [
        _edge(0, 1, 50),
        _edge(1, 4, 50),
        _edge(1, 2, 50),
        _edge(2, 3, 50),
        _edge(3, 5, 50),
        _edge(5, 2, 50),
    ]
    with pytest.raises(ValueError, match="can never reach an exit"):
        build_network(edges, nodes)


def test_two_way_spur_whose_only_way_on_is_a_uturn_is_rejected():
    nodes = [{"osm_id": i, "lat": 0.0, "lon": 0.001 * i, "traffic_signals": False} for i in range(4)]
    # 0 -> 1 -> 2 (exit) with a two-way spur 1 <-> 3 whose far end 3 leaves the map: traffic
    # entering at 3 reaches 1 and goes on to 2, so the spur is a valid entry and exit.
    ok = [_edge(0, 1, 50), _edge(1, 2, 50), _edge(1, 3, 50), _edge(3, 1, 50)]
    assert build_network(ok, nodes).n_entries == 2
    # A dead-end pair hanging off a plain pass-through: 0 -> 1, 1 <-> 3 and nothing else.
    trap = [_edge(0, 1, 50), _edge(1, 3, 50), _edge(3, 1, 50)]
    with pytest.raises(ValueError, match="can never reach an exit"):
        build_network(trap, nodes[:2] + nodes[3:])


def test_missing_file_and_bad_folder(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_network(tmp_path / "nowhere")
    (tmp_path / "edges.csv").write_text("u,v\n")
    with pytest.raises(ValueError, match="nodes.csv is missing"):
        load_network(tmp_path)


def test_bad_highway_and_cell_length():
    nodes = [{"osm_id": i, "lat": 0.0, "lon": 0.001 * i, "traffic_signals": False} for i in range(2)]
    with pytest.raises(ValueError, match="highway 'motorway' unknown"):
        build_network([_edge(0, 1, 50, highway="motorway")], nodes)
    with pytest.raises(ValueError, match="cell_length_m must be a positive"):
        build_network([_edge(0, 1, 50)], nodes, cell_length_m=0)


def _signalised_ids() -> set[int]:
    with (DEFAULT_DATA / "nodes.csv").open() as handle:
        return {int(r["osm_id"]) for r in csv.DictReader(handle) if r["traffic_signals"] == "True"}


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("osm_lanes", "1.5", r"row 1 .*osm_lanes must be a whole number, got '1.5'"),
        ("osm_lanes", "two", r"row 1 .*osm_lanes must be a whole number"),
        ("oneway", "maybe", r"row 1 .*oneway must be True or False, got 'maybe'"),
    ],
)
def test_malformed_edge_values_are_rejected_not_reinterpreted(column, value, message):
    nodes = [{"osm_id": i, "lat": 0.0, "lon": 0.001 * i, "traffic_signals": False} for i in range(2)]
    with pytest.raises(ValueError, match=message):
        build_network([_edge(0, 1, 50, **{column: value})], nodes)


def test_malformed_signal_flag_and_a_file_for_a_folder(tmp_path):
    nodes = [{"osm_id": i, "lat": 0.0, "lon": 0.001 * i, "traffic_signals": "ja"} for i in range(2)]
    with pytest.raises(ValueError, match=r"nodes.csv row 1 .*traffic_signals must be True or False"):
        build_network([_edge(0, 1, 50)], nodes)
    with pytest.raises(ValueError, match="is a file, not a folder"):
        load_network(DEFAULT_DATA / "edges.csv")
