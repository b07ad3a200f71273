"""The notebook's bootstrap cell against a stand-in Kaggle image, offline.

A fresh venv gets small stand-in wheels (a `torch` that is only its metadata and a version, ...)
that imitate Kaggle's 2026 GPU image: numpy 2.0.2, numba 0.60.0 without its CUDA target, torch
2.10, gymnasium 1.3.0, no stable-baselines3. The bootstrap then runs with pip limited to those
wheels (`PIP_NO_INDEX`, `PIP_FIND_LINKS`), so what it installs, keeps and refuses is visible
without any network.
"""

from __future__ import annotations

import json
import os
import subprocess
import venv
import zipfile
from pathlib import Path

import nbformat
import pytest

from lib.remote.bundle import build_bundle, pinned_requirements

REF = "stubuser/victoria-island-signals"

# (distribution, version, requirements): the image, then what the index offers besides.
IMAGE = [
    ("numpy", "2.0.2", []), ("numba", "0.60.0", []), ("torch", "2.10.0", []),
    ("gymnasium", "1.3.0", ["numpy>=1.21", "cloudpickle>=1.2"]), ("cloudpickle", "3.1.1", []),
]
INDEX = [
    ("stable-baselines3", "2.9.2", ["gymnasium<1.5,>=0.29.1", "numpy<3,>=1.20", "torch<3,>=2.8",
                                    "cloudpickle", "farama-notifications; extra == 'docs'"]),
    ("gymnasium", "1.4.0", ["numpy>=1.21", "cloudpickle>=1.2"]),
    ("numba-cuda", "0.22.2", ["numba>=0.59"]),
    ("torch", "2.5.0", []), ("torch", "2.13.0", []),
]


def _wheel(folder: Path, name: str, version: str, requires: list[str]) -> None:
    """A minimal pure-Python wheel: one module (gymnasium's with spaces.Discrete) and metadata."""
    module = name.replace("-", "_")
    info = f"{module}-{version}.dist-info"
    body = f"__version__ = {version!r}\n"
    if name == "gymnasium":
        body += ("class _Spaces:\n    class Discrete:\n        def __init__(self, n):\n"
                 "            self.n = n\nspaces = _Spaces()\n")
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires)
    wheel = "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files = {f"{module}/__init__.py": body, f"{info}/METADATA": metadata, f"{info}/WHEEL": wheel}
    files[f"{info}/RECORD"] = "".join(f"{path},,\n" for path in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(folder / f"{module}-{version}-py3-none-any.whl", "w") as whl:
        for path, text in files.items():
            whl.writestr(path, text)


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> dict:
    """A venv holding the stand-in image, the wheels folder, a PATH with a stand-in nvidia-smi."""
    root = tmp_path_factory.mktemp("image")
    wheels = root / "wheels"
    wheels.mkdir()
    for entry in [*IMAGE, *INDEX]:
        _wheel(wheels, *entry)
    pins = pinned_requirements()
    for name in ("tqdm", "rich", "matplotlib"):  # the image has them (at its own versions)
        _wheel(wheels, name, pins[name], [])
    venv.create(root / "venv", with_pip=True)
    python = str(root / "venv" / "bin" / "python")
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels), "HOME": str(root / "home"),
           "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONPATH": ""}
    env.pop("XDG_CACHE_HOME", None)
    image_pins = [f"{n}=={v}" for n, v, _ in IMAGE]
    image_pins += [f"{n}=={pins[n]}" for n in ("tqdm", "rich", "matplotlib")]
    subprocess.run([python, "-m", "pip", "install", "--quiet", *image_pins], env=env, check=True, timeout=300)
    gpu = root / "gpu-bin"
    gpu.mkdir()
    (gpu / "nvidia-smi").write_text("#!/bin/sh\necho 'stand-in GPU'\n")
    (gpu / "nvidia-smi").chmod(0o755)
    env["PATH"] = f"{gpu}{os.pathsep}{env['PATH']}"
    return {"python": python, "env": env, "root": root}


def _bootstrap_source(tmp_path: Path) -> str:
    lib = tmp_path / "src" / "lib"
    lib.mkdir(parents=True)
    (lib / "__init__.py").write_text('"""stand-in"""\n')
    made = build_bundle({"config": {"run_id": "t"}}, tmp_path / "out", REF, None, lib_dir=lib)
    return nbformat.read(made.notebook, as_version=4).cells[0].source


def _versions(image: dict) -> dict:
    script = ("import importlib.metadata as m, json\nprint(json.dumps({d.metadata['Name']: d.version "
              "for d in m.distributions()}))")
    out = subprocess.run([image["python"], "-c", script], env=image["env"], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def _run(image: dict, source: str) -> subprocess.CompletedProcess:
    script = source + "\nimport os\nprint('IMAGE', os.environ['SIGNALS_IMAGE_VERSIONS'])\n"
    return subprocess.run([image["python"], "-c", script], env=image["env"], capture_output=True, text=True,
                          timeout=300, cwd=image["root"])


@pytest.mark.slow
def test_the_bootstrap_adds_only_what_the_image_lacks_then_refuses_a_too_old_torch(image, tmp_path) -> None:
    source = _bootstrap_source(tmp_path)
    done = _run(image, source)
    assert done.returncode == 0, done.stdout + done.stderr
    after = _versions(image)
    assert after["stable-baselines3"] == "2.9.2" and after["numba-cuda"] == "0.22.2"
    assert (after["torch"], after["numpy"], after["numba"]) == ("2.10.0", "2.0.2", "0.60.0")
    assert after["gymnasium"] == "1.3.0", "the image's gymnasium works and is in range: kept"
    assert "ERROR" not in done.stderr
    recorded = json.loads(done.stdout.split("IMAGE ", 1)[1])
    assert recorded["torch"] == "2.10.0" and recorded["stable-baselines3"] is None

    pip = [image["python"], "-m", "pip", "--quiet"]
    subprocess.run([*pip, "uninstall", "-y", "stable-baselines3"], env=image["env"], check=True, timeout=300)
    subprocess.run([*pip, "install", "torch==2.5.0"], env=image["env"], check=True, timeout=300)
    done = _run(image, source)
    assert done.returncode != 0
    assert "stable-baselines3 2.9.2 needs torch<3,>=2.8, this image has torch 2.5.0" in done.stderr
    assert "choose a newer Kaggle image" in done.stderr
    assert _versions(image)["torch"] == "2.5.0", "the image's torch is never replaced"
