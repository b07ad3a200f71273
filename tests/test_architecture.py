"""The house rules of docs/architecture.md, read from the code: layers import only downwards, only
lib/remote talks to Kaggle, only lib/obs/events.py writes `[event]` lines, the top-level names
load lazily, and `import lib` registers the Gymnasium id."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "lib"

# layer -> the layers it may import (itself included); docs/architecture.md draws the same graph.
ALLOWED = {
    "config": {"config"},
    "obs": {"obs", "config"},
    "sim": {"sim", "obs", "config"},
    "rl": {"rl", "sim", "obs", "config"},
    "runlog": {"runlog", "obs", "config"},
    "remote": {"remote", "runlog", "rl", "obs", "config"},
}


def modules() -> dict[str, Path]:
    """Every module of lib/ by dotted name."""
    found = {}
    for path in sorted(LIB.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def lib_imports(path: Path) -> list[tuple[str, bool]]:
    """(imported lib module, at module level?) for each import of lib.* in `path`."""
    tree = ast.parse(path.read_text(), str(path))
    top = {id(node) for node in tree.body}
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] if node.module == "lib" else [node.module]
        for name in names:
            if name == "lib" or name.startswith("lib."):
                out.append((name, id(node) in top))
    return out


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "root"


def test_every_module_belongs_to_a_layer() -> None:
    unknown = sorted(m for m in modules() if layer(m) not in ALLOWED and m != "lib")
    assert not unknown, f"modules outside the layers of docs/architecture.md: {unknown}"


def test_layers_import_only_downwards() -> None:
    broken = [
        f"{module} imports {target}"
        for module, path in modules().items()
        if module != "lib"
        for target, _ in lib_imports(path)
        if layer(target) not in ALLOWED[layer(module)]
    ]
    assert not broken, "imports against the layer rules:\n" + "\n".join(broken)


def test_module_level_imports_have_no_cycles() -> None:
    known = modules()
    graph = {m: {t for t, top in lib_imports(p) if top and t in known and t != m} for m, p in known.items()}
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for target in graph[module]:
            if state.get(target) == "open":
                pytest.fail("import cycle: " + " -> ".join([*trail, module, target]))
            if target not in state:
                visit(target, [*trail, module])
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module, [])


def test_the_top_level_imports_nothing_eagerly() -> None:
    assert lib_imports(LIB / "__init__.py") == []


def test_only_remote_imports_kaggle_and_only_events_writes_event_lines() -> None:
    for module, path in modules().items():
        tree = ast.parse(path.read_text())
        kaggle = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                  and any((getattr(n, "module", None) or a.name).split(".")[0] == "kaggle" for a in n.names)]
        if layer(module) != "remote":
            assert not kaggle, f"{module} imports the kaggle package: only lib/remote may"
        texts = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        if module != "lib.obs.events":  # an event line starts with the prefix; prose may name it
            assert not [s for s in texts if s.startswith("[event]")], f"{module} writes [event] lines itself"


FRESH = r"""
import json, sys
import lib
cheap = not ({"numba", "torch", "stable_baselines3"} & set(sys.modules))
import gymnasium as gym
from lib import (EnvConfig, Network, RunConfig, SimConfig, Simulator, TrafficSignalEnv, TrafficVecEnv,
                 load_network, run)
env = gym.make("VictoriaIsland-v0", backend="cpu").unwrapped
made = type(env).__module__ + "." + type(env).__name__
env.close()
print(json.dumps({"cheap": cheap, "made": made, "run": run.__module__, "vec": TrafficVecEnv.__module__}))
"""

FRESH_PREFIXED = r"""
import gymnasium as gym
env = gym.make("lib:VictoriaIsland-v0", backend="cpu")
print(type(env.unwrapped).__name__)
env.close()
"""


def fresh_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_import_lib_is_cheap_lazy_and_registers_the_env() -> None:
    seen = json.loads(fresh_python(FRESH))
    assert seen == {"cheap": True, "made": "lib.rl.env.TrafficSignalEnv", "run": "lib.rl.train",
                    "vec": "lib.rl.vecenv"}
    assert fresh_python(FRESH_PREFIXED) == "TrafficSignalEnv"


def test_fetch_logs_pays_for_neither_numba_nor_torch() -> None:
    code = "import sys, fetch_logs; print(sorted({'numba', 'torch'} & set(sys.modules)))"
    assert fresh_python(code) == "[]"
