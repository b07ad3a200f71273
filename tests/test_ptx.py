"""Every CUDA kernel compiles to real PTX and assembles, with the argument types the backend passes.

The CUDA simulator runs kernels as Python, so it accepts code the real compiler rejects (numpy
calls in a kernel, kernel parameters over the 4 KB that sm_60 allows). This test compiles each
kernel of lib/sim/cuda.py with numba-cuda's NVVM (`compile_ptx`, no GPU or driver needed) for
sm_60 (P100), sm_75 (T4) and sm_80 (A100), with the types of the arrays a CudaEngine really
passes (an engine built on HostMemory), for both orders and both precisions, and assembles the
PTX with `ptxas -v`: the registers per thread it reports are the input of docs/PERFORMANCE.md's
occupancy figures. It also counts the float64 instructions left in the float32 fused kernels
(FLOAT32_F64_LIMIT: only the float64 counters and the time).
Needs `numba-cuda[cu12]` (requirements-dev.txt), which brings NVVM and ptxas; skipped without it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import types

import numba
import pytest

from lib.sim.simulator import SimConfig, Simulator
from tests import junction_net

CCS = ((6, 0), (7, 5), (8, 0))
USED = re.compile(r"Used (\d+) registers")
# float64 arithmetic and conversions to or from float64 in PTX (a predicate guard allowed before)
GUARD = r"^\s*(?:@!?%p\d+\s+)?"
F64_ARITHMETIC = re.compile(GUARD + r"(?:add|sub|mul|fma|div|min|max|neg|abs|sqrt|rcp)\.[\w.]*f64\b", re.M)
F64_CONVERT = re.compile(GUARD + r"cvt\.[\w.]*f64\b", re.M)
# What a float32 fused kernel may keep in float64, by design: the float64 counters and balances
# (entered, exited, link outflow, delay: an add and a conversion each, unrolled per stage) and
# the substep's time against the amber end. docs/PERFORMANCE.md has the counts per kernel.
FLOAT32_F64_LIMIT = {"arithmetic": 60, "convert": 60}


def ptxas() -> str | None:
    try:
        from cuda.pathfinder import find_nvidia_binary_utility

        found = find_nvidia_binary_utility("ptxas")
    except ImportError:
        found = None
    return found or shutil.which("ptxas")


@pytest.fixture
def toolchain(monkeypatch):
    """numba-cuda's compiler without a GPU: the path to ptxas, and device-function compiles told a
    compute capability (they ask the current device for it; the kernel's own `cc` decides the PTX)."""
    if importlib.util.find_spec("numba_cuda") is None:
        pytest.skip("numba-cuda is not installed (pip install -r requirements-dev.txt)")
    assembler = ptxas()
    if assembler is None:
        pytest.skip("ptxas not found (numba-cuda[cu12] brings it; or put a CUDA toolkit's bin on PATH)")
    import numba.cuda.dispatcher as dispatcher

    device = types.SimpleNamespace(compute_capability=(7, 5))
    monkeypatch.setattr(dispatcher, "get_current_device", lambda: device)
    return assembler


def test_every_kernel_compiles_to_ptx_and_assembles(toolchain, tmp_path, record_property) -> None:
    from numba import cuda

    from lib.sim.cuda import KERNELS, CudaEngine, HostMemory

    registers: dict[str, int] = {}
    float64_ops: dict[str, dict[str, int]] = {}
    compiled = set()
    for order, precision in ((1, "float64"), (2, "float64"), (1, "float32"), (2, "float32")):
        sim = Simulator(junction_net.network(), n_scenarios=3, backend="cpu", config=SimConfig(order=order))
        sim.config = SimConfig(order=order, precision=precision)  # float32 is CUDA's: types only here
        for name, (kernel, args) in CudaEngine(sim, memory=HostMemory).launch_arguments().items():
            if (name, precision) in compiled or (precision == "float32" and not name.startswith("k_advance")):
                continue
            compiled.add((name, precision))
            name = name if precision == "float64" else f"{name} float32"
            signature = tuple(numba.typeof(a) for a in args)
            for cc in CCS:
                ptx, _ = cuda.compile_ptx(kernel.py_func, signature, cc=cc)
                float64_ops[f"{name} sm_{cc[0]}{cc[1]}"] = float64_instructions(ptx)
                ptx_file = tmp_path / f"{name}.ptx"
                registers[f"{name} sm_{cc[0]}{cc[1]}"] = assemble(toolchain, ptx, cc, ptx_file)
    assert {n for n, _ in compiled} == {k.__name__ for k in KERNELS}, "a launched kernel was not compiled"
    record_property("registers_per_thread", registers)
    record_property("float64_instructions", float64_ops)
    print("registers per thread:", registers)
    print("float64 instructions:", {k: v for k, v in float64_ops.items() if "advance" in k})
    assert all(0 < n <= 255 for n in registers.values()), registers
    single = {k: v for k, v in float64_ops.items() if k.startswith("k_advance") and "float32" in k}
    assert len(single) == 2 * len(CCS), single
    for name, counts in single.items():
        for kind, limit in FLOAT32_F64_LIMIT.items():
            assert counts[kind] <= limit, f"{name}: {counts[kind]} float64 {kind} (limit {limit})"


def float64_instructions(ptx: str) -> dict[str, int]:
    """Float64 arithmetic instructions and conversions to or from float64 in a kernel's PTX: what
    a float32 kernel should not need beyond its float64 counters."""
    return {"arithmetic": len(F64_ARITHMETIC.findall(ptx)), "convert": len(F64_CONVERT.findall(ptx))}


def assemble(assembler: str, ptx: str, cc: tuple[int, int], path: os.PathLike) -> int:
    """ptxas -v on the PTX: the registers per thread it uses (fails on any assembler error)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(ptx)
    done = subprocess.run([assembler, "-v", f"-arch=sm_{cc[0]}{cc[1]}", str(path), "-o", os.devnull],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    used = USED.findall(done.stderr)
    assert used, done.stderr[-2000:]
    return int(used[-1])
