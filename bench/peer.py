"""UXsim, the peer simulator, side by side with ours: same network, demand and signal cycle.

UXsim runs in a virtual environment of its own (never the project's):
    python3 -m venv ../.peers && ../.peers/bin/pip install uxsim numpy pandas
and ../shared/bench/peers/bench_uxsim_vi.py builds the corridor in it (its model choices are in
that script's docstring). Each call here runs that script once, in a fresh process, with its C++
engine (`World(cpp=True)`), and returns the timings it measured inside that process.

Same scenario on our side (`PEER_DEMAND_VEH_H`, `PEER_PHASE_S`): UXsim's 16 OD pairs of
250 veh/h put 1,000 veh/h on each of its 4 entries; our fifth entry (the Saka Tinubu map
boundary, 36240960) carries none there, so none here. UXsim's fixed plan runs 40 s green and
5 s all-red per phase, a 90 s cycle: ours alternates the two phases every 45 s (3 s amber).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np

from lib.sim.network import Network

ROOT = Path(__file__).resolve().parents[1]
PEER_SCRIPT = ROOT.parent / "shared" / "bench" / "peers" / "bench_uxsim_vi.py"
DEFAULT_PYTHON = Path(os.environ.get("PEERS_PYTHON", ROOT.parent / ".peers" / "bin" / "python"))
PEER_VEH_H = 1000.0
BOUNDARY_ENTRY = 36240960
PEER_PHASE_S = 45.0


def peer_demand(network: Network) -> np.ndarray:
    """Veh/h per entry (network.entries order) matching the peer script's demand."""
    return np.array([0.0 if network.nodes[e].osm_id == BOUNDARY_ENTRY else PEER_VEH_H
                     for e in network.entries])


def available(python: Path) -> bool:
    return python.exists() and PEER_SCRIPT.exists()


def run_peer(python: Path, style: str) -> dict:
    """One run of UXsim's C++ engine: style "full" (the hour in one call) or "step15act" (240
    calls of 15 s with a random phase per signal before each). Returns the script's record:
    "run" (wall s of the simulation), "dps" (decisions per second), ..."""
    done = subprocess.run([str(python), str(PEER_SCRIPT), "cpp", style, "1"], capture_output=True, text=True,
                          check=True, cwd=PEER_SCRIPT.parent)
    line = next(x for x in done.stdout.splitlines() if x.startswith("MEDIAN "))
    return json.loads(line[len("MEDIAN "):])
