"""movements.csv: the corridor's movements (no U-turns through the boxes), the default rule, and a
clear ValueError naming the file and row for every malformed row."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from lib.sim.movements import COLUMNS, MOVEMENTS_FILE, bearing_change, turn_of
from lib.sim.network import DEFAULT_DATA, load_network


@pytest.fixture(scope="module")
def net():
    return load_network()


def test_corridor_movements_have_no_uturns_and_fractions_sum_to_one(net):
    assert (DEFAULT_DATA / MOVEMENTS_FILE).exists()
    sums: dict[int, float] = {}
    for m in net.movements:
        sums[m.in_link] = sums.get(m.in_link, 0.0) + m.ratio
        assert not m.uturn
        last, first = net.links[m.in_link].edges[-1], net.links[m.out_link].edges[0]
        assert first != (last[1], last[0])
        # back the way it came along the same street through a box: a U-turn
        if m.signal >= 0 and net.links[m.in_link].name == net.links[m.out_link].name:
            assert m.turn == "through"
    assert set(sums) == {lk for n in net.nodes if n.kind == "junction" for lk in n.in_links}
    assert all(abs(s - 1.0) < 1e-9 for s in sums.values())
    turns = {m.turn for m in net.movements}
    assert turns == {"left", "through", "right"}


def test_left_turns_at_signals_yield_to_the_opposing_approach(net):
    lefts = [m for m in net.movements if m.turn == "left" and m.phase >= 0]
    yielding = [m for m in lefts if m.yields_to >= 0]
    assert yielding
    for m in yielding:
        opposing = [a for a in net.approaches if a.link == m.yields_to][0]
        mine = [a for a in net.approaches if a.link == m.in_link][0]
        assert opposing.signal == mine.signal and opposing.phase == m.phase
        assert abs(bearing_change(mine.bearing_deg, opposing.bearing_deg)) > 135


def test_turn_classification():
    assert turn_of(10.0) == "through" and turn_of(90.0) == "right" and turn_of(-90.0) == "left"
    assert bearing_change(350.0, 80.0) == pytest.approx(90.0)


def test_a_listed_uturn_is_a_movement(tmp_path):
    folder = _folder(tmp_path)
    # let the northbound Akin Adesola approach (rows 1-2) turn back south through the box: the
    # southbound exit that row 4's movement uses
    _edit(folder, lambda rows: rows[:1] + [{**rows[0], "turn": "uturn", "to_u": rows[3]["to_u"],
                                             "to_v": rows[3]["to_v"], "fraction": "0.1"}]
          + [{**rows[1], "fraction": str(float(rows[1]["fraction"]) - 0.1)}] + rows[2:])
    net = load_network(folder)
    assert sum(m.uturn for m in net.movements) == 1


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "net"
    shutil.copytree(DEFAULT_DATA, folder)
    return folder


def _edit(folder: Path, edit) -> None:
    path = folder / MOVEMENTS_FILE
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    rows = edit(rows)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _set(row_no: int, **values):
    def edit(rows):
        rows[row_no - 1].update({k: str(v) for k, v in values.items()})
        return rows

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set(3, intersection=42), r"movements.csv row 3 \(line 4\): unknown intersection 42"),
        (_set(2, from_u=1, from_v=2), r"movements.csv row 2 .*edge 1->2 is not the last edge of a link"),
        (_set(5, to_v=1), r"movements.csv row 5 .*is not the first edge of a link leaving"),
        (_set(1, turn="sideways"), r"movements.csv row 1 .*turn must be one of"),
        (_set(4, fraction="lots"), r"movements.csv row 4 .*fraction must be a number in \(0, 1\]"),
        (_set(4, fraction=0), r"movements.csv row 4 .*fraction must be a number in \(0, 1\]"),
        (_set(1, fraction=0.9), r"movements.csv rows 1, 2: fractions of one incoming link sum to 1.5666"),
        (_set(1, phase=2), r"movements.csv row 1 .*phase must be an integer in -1..1, got '2'"),
        (_set(19, phase=0), r"movements.csv row 19 .*phase must be an integer in -1 \(the"),
        (_set(1, phase=1), r"movements.csv rows 1 \(phase 1\), 2 \(phase 0\): movements sharing"),
        (_set(1, storage_m=-5), r"movements.csv row 1 .*storage_m must be a number of metres >= 0"),
        (lambda rows: rows + [rows[0]], r"movements.csv row 21 .*duplicate movement .*first on row 1"),
        (lambda rows: rows[2:], r"movements.csv: no movement leaves .* edge 36240967->31674708"),
    ],
)
def test_malformed_movements_name_file_and_row(tmp_path, edit, message):
    folder = _folder(tmp_path)
    _edit(folder, edit)
    with pytest.raises(ValueError, match=message):
        load_network(folder)


def test_missing_column_and_an_edited_file_changes_the_network_key(tmp_path, net):
    folder = _folder(tmp_path)
    _edit(folder, _set(1, fraction=0.5, storage_m=30))
    _edit(folder, _set(2, fraction=0.5))
    edited = load_network(folder)
    assert edited.key != net.key and edited.movements[0].storage_m == 30
    (folder / MOVEMENTS_FILE).write_text("intersection,from_u\n1,2\n")
    with pytest.raises(ValueError, match=r"movements.csv: missing column\(s\) from_v"):
        load_network(folder)


def test_a_pocketed_turn_may_run_in_its_own_phase(tmp_path):
    folder = _folder(tmp_path)
    _edit(folder, _set(1, phase=1, storage_m=40))
    net = load_network(folder)
    pocketed = [m for m in net.movements if m.storage_m > 0]
    assert len(pocketed) == 1 and pocketed[0].phase == 1
