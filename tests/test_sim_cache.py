"""numba's disk cache never serves a kernel compiled from other physics: the cache folder is keyed
by the hash of lib/sim/physics.py and the backend file (numba itself only watches the kernel's file)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from lib.sim import cpu, kernel_cache

ROOT = Path(__file__).resolve().parents[1]

SNIPPET = r"""
import json
import numpy as np
from lib.sim import cpu
from lib.sim.network import load_network
from lib.sim.simulator import Simulator
sim = Simulator(load_network(), backend="cpu")
sim.set_demand(np.full(sim.network.n_entries, 900.0))
sim.advance(120.0)
print(json.dumps({"hit": cpu.cache_hits() > 0, "vehicles": float(sim.vehicles()[0]),
                  "folder": cpu.advance_kernel._cache.cache_path}))
"""


def test_source_key_follows_both_files(tmp_path) -> None:
    for name in ("physics.py", "cpu.py"):
        shutil.copy(ROOT / "lib" / "sim" / name, tmp_path / name)
    phys, backend = tmp_path / "physics.py", tmp_path / "cpu.py"
    key = kernel_cache.source_key(backend, phys)
    sim_dir = ROOT / "lib" / "sim"
    assert key == kernel_cache.source_key(sim_dir / "cpu.py", sim_dir / "physics.py")
    phys.write_text(phys.read_text().replace("TINY = 1e-300", "TINY = 1e-200"))
    edited = kernel_cache.source_key(backend, phys)
    assert edited != key
    backend.write_text(backend.read_text() + "\n")
    assert kernel_cache.source_key(backend, phys) not in (key, edited)


def test_kernel_is_cached_in_the_keyed_folder() -> None:
    folder = Path(cpu.advance_kernel._cache.cache_path)
    assert f"sim-kernels-{kernel_cache.source_key(cpu.__file__)}" in folder.parts


def run_copy(project: Path, cache: Path) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    done = subprocess.run([sys.executable, "-c", SNIPPET], cwd=project, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_edited_physics_compiles_afresh_instead_of_loading_the_old_kernel(tmp_path) -> None:
    """A copy of lib/: compiled once, then served from the cache; after an edit to physics.py only
    (cpu.py untouched, so numba's own check would pass) the kernel compiles anew and the results
    follow the edited physics."""
    project, cache = tmp_path / "project", tmp_path / "cache"
    shutil.copytree(ROOT / "lib", project / "lib", ignore=shutil.ignore_patterns("__pycache__"))
    first = run_copy(project, cache)
    second = run_copy(project, cache)
    assert not first["hit"] and second["hit"]
    assert second["vehicles"] == first["vehicles"] > 0
    phys = project / "lib" / "sim" / "physics.py"
    text = phys.read_text()
    slower = "return wave * rho_jam / (v_free + wave)"  # the critical density: half the capacity below
    assert slower in text
    phys.write_text(text.replace(slower, "return 0.5 * wave * rho_jam / (v_free + wave)"))
    third = run_copy(project, cache)
    assert not third["hit"], "the kernel compiled from the old physics.py was loaded from the cache"
    assert third["folder"] != first["folder"]
    assert third["vehicles"] != first["vehicles"]
