# ruff: noqa: F821 - LIB_SHA256, FILES, SHIPPED, PINS, SUPPORTED, LIB_ARCHIVE are set above by bundle.py
"""The notebook's first cell (lib/remote/bundle.py puts its constants above this text).

Unpack this run's lib/ into a private folder and install only what the image lacks.

- lib/ goes to ~/.cache/victoria-island-signals/lib-<hash>: a folder of this user's only (0700,
  checked), whose content is verified file by file against the bundle's hashes (anything else in
  it, a planted module say, makes it extracted afresh). The path stays the same for the same
  lib/, so numba's on-disk cache (NUMBA_CACHE_DIR, beside it, keyed by the same hash) serves the
  kernels of an earlier run instead of recompiling them.
- The image's torch, numpy and numba are never replaced (Kaggle's torch is its CUDA build, and
  numba-cuda pins the CUDA libraries); stable-baselines3 and gymnasium are installed with
  --no-deps, the image's gymnasium kept when it is a supported version that imports, and their
  requirements then checked against what is installed: a missing one is installed (never
  replacing a kept package: pip gets them as constraints), a kept package that is too old stops
  the run with the reason. numba-cuda is installed when a GPU is present and numba lacks its
  CUDA target. The image's versions are put in SIGNALS_IMAGE_VERSIONS for the run's run_start.
"""
import base64
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

KEEP = ("torch", "numpy", "numba")
NO_DEPS = ("stable-baselines3", "gymnasium")
REPORTED = ("numpy", "numba", "numba-cuda", "torch", "stable-baselines3", "gymnasium")

try:
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
except ImportError:  # an image without packaging still has pip's copy
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.specifiers import SpecifierSet


def _private_root():
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "victoria-island-signals"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = root.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise RuntimeError(f"{root} must belong to you and be private: chmod 700 {root}")
    return root


def _digests(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def _unpack(root):
    tar_bytes = lzma.decompress(base64.b64decode(LIB_ARCHIVE))
    if hashlib.sha256(tar_bytes).hexdigest() != LIB_SHA256:
        raise RuntimeError("the embedded lib/ archive is corrupt: rebuild the bundle with push_kernel.py")
    target = root / f"lib-{LIB_SHA256[:16]}"
    if target.is_dir() and _digests(target) == FILES:
        return target
    fresh = Path(tempfile.mkdtemp(dir=root))
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        tar.extractall(fresh, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    if _digests(fresh) != FILES:
        raise RuntimeError(f"lib/ unpacked into {fresh} does not match the bundle's hashes")
    shutil.rmtree(target, ignore_errors=True)
    fresh.rename(target)
    return target


def _version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _supported(name, version):
    return version is not None and SpecifierSet(SUPPORTED.get(name, "")).contains(version, prereleases=True)


def _gymnasium_works():
    check = "import gymnasium; gymnasium.spaces.Discrete(2)"  # in a child: this process stays clean
    return subprocess.run([sys.executable, "-c", check], capture_output=True).returncode == 0


def _numba_cuda_missing():
    gpu = shutil.which("nvidia-smi") is not None
    return gpu and _version("numba") is not None and importlib.util.find_spec("numba.cuda") is None


def _pip(*args):
    """pip install with every kept package of the image pinned as a constraint."""
    kept = [f"{name}=={_version(name)}" for name in KEEP if _version(name)]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as constraints:
        constraints.write("\n".join(kept) + "\n")
    print("installing", *args, flush=True)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-c", constraints.name, *args])
    os.unlink(constraints.name)
    if done.returncode != 0:
        raise RuntimeError(f"pip could not install {' '.join(args)} (see its message above); on Kaggle the "
                           "kernel needs internet access (enable_internet, phone-verified account)")


def _install_missing():
    plain, bare = [], []
    for name, pin in PINS.items():
        have = _version(name)
        if name == "gymnasium" and _supported(name, have) and _gymnasium_works():
            continue
        if name in NO_DEPS and have != pin:
            bare.append(f"{name}=={pin}")
        elif have is None:
            plain.append(f"{name}=={pin}")
    if _numba_cuda_missing():
        plain.append("numba-cuda")
    if bare:
        _pip("--no-deps", *bare)
    if plain:
        _pip(*plain)


def _requirement_problems():
    """What SB3's and gymnasium's requirements lack: (to install, kept packages too old)."""
    missing, conflicts = [], []
    for owner in NO_DEPS:
        for text in importlib.metadata.requires(owner) or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            have = _version(req.name)
            if have is not None and req.specifier.contains(have, prereleases=True):
                continue
            if have is not None and req.name.lower() in KEEP:
                conflicts.append(f"{owner} {_version(owner)} needs {req}, this image has {req.name} {have}")
            else:
                missing.append(str(req))
    return missing, conflicts


def _check_requirements():
    missing, conflicts = _requirement_problems()
    if conflicts:
        raise RuntimeError("; ".join(conflicts) + ". The image's torch, numpy and numba are kept (replacing "
                           "them downloads GBs and breaks the CUDA stack): choose a newer Kaggle image "
                           "(docker_image_pinning_type 'latest'), see docs/kaggle.md.")
    if missing:
        _pip(*missing)


def _image_versions():
    found = {name: _version(name) for name in REPORTED}
    found["python"] = sys.version.split()[0]
    return found


image = _image_versions()
os.environ["SIGNALS_IMAGE_VERSIONS"] = json.dumps(image)
root = _private_root()
lib_root = _unpack(root)
os.environ.setdefault("NUMBA_CACHE_DIR", str(root / f"numba-{LIB_SHA256[:16]}"))
sys.path.insert(0, str(lib_root))
_install_missing()
_check_requirements()
print(f"lib/ sha256 {LIB_SHA256[:12]} unpacked to {lib_root}: {', '.join(SHIPPED)}; image: "
      + ", ".join(f"{k} {v}" for k, v in image.items() if v), flush=True)
