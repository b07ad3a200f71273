"""The calibration report: free speed, jam density, wave speed and the capacity they give, per
class of road and per link.

    python -m lib.sim.calibration     # the Markdown tables of docs/calibration.md
"""

from __future__ import annotations

from lib.sim.network import Network, load_network
from lib.sim.network_data import DEFAULT_FREE_SPEED_KMH
from lib.sim.simulator import SimConfig, capacity_veh_s


def calibration_table(network: Network, config: SimConfig | None = None) -> str:
    """Markdown tables of the free speeds per class, and per link its free speed, jam density,
    wave speed and the derived capacity (docs/calibration.md). Checks every capacity is a
    plausible urban saturation flow (1,000-2,400 veh/h per lane)."""
    cfg = config or SimConfig()
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
    lines += [
        "",
        f"Jam spacing {cfg.jam_spacing_m:g} m per car and lane (k_j = {1000 * cfg.rho_jam_per_lane:.1f} "
        f"veh/km per lane), wave speed W = {cfg.wave_speed_mps:g} m/s on every link.",
        "",
        "| link | name | class | length m | lanes | cells | free speed km/h | capacity veh/h/lane |",
        "| --- " * 8 + "|",
    ]
    for lk in network.links:
        per_lane = 3600.0 * capacity_veh_s(lk.free_speed_mps, cfg.rho_jam_per_lane, cfg)
        if not 1000.0 <= per_lane <= 2400.0:
            raise ValueError(f"link {lk.index} ({lk.name}): capacity {per_lane:.0f} veh/h/lane from v_f "
                             f"{3.6 * lk.free_speed_mps:.1f} km/h is not a plausible saturation flow")
        lines.append(
            f"| {lk.index} | {lk.name} | {lk.highway} | {lk.length_m:.1f} | {lk.lanes} | {lk.n_cells} "
            f"| {lk.free_speed_mps * 3.6:.1f} | {per_lane:,.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(calibration_table(load_network()))
