"""The calibration report: the free speeds the model uses, per class and per link.

    python -m lib.sim.calibration     # the Markdown tables of docs/calibration.md
"""

from __future__ import annotations

from lib.sim.network import Network, load_network
from lib.sim.network_data import DEFAULT_FREE_SPEED_KMH


def calibration_table(network: Network) -> str:
    """Markdown tables of the free speeds the model uses, per class and per link (docs/calibration.md)."""
    lines = [
        "| class | default km/h (no probe) | links | km | length-weighted free speed km/h |",
        "| --- | --- | --- | --- | --- |",
    ]
    for highway, default in DEFAULT_FREE_SPEED_KMH.items():
        mine = [lk for lk in network.links if lk.highway == highway]
        length = sum(lk.length_m for lk in mine)
        time = sum(lk.length_m / lk.free_speed_mps for lk in mine)
        mean = f"{3.6 * length / time:.1f}" if mine else "-"
        lines.append(f"| {highway} | {default:.1f} | {len(mine)} | {length / 1000:.2f} | {mean} |")
    lines += ["", "| link | name | class | length m | lanes | cells | free speed km/h |", "| --- " * 7 + "|"]
    for lk in network.links:
        lines.append(
            f"| {lk.index} | {lk.name} | {lk.highway} | {lk.length_m:.1f} | {lk.lanes} | {lk.n_cells} "
            f"| {lk.free_speed_mps * 3.6:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(calibration_table(load_network()))
