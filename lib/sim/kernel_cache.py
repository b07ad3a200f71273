"""numba's disk cache for the kernels, keyed by the source of the physics and of the backend.

Why: numba invalidates a cached kernel only when the kernel's own file changes, so after an edit
to physics.py the CPU or CUDA kernel would silently load machine code compiled from the old
physics. `source_keyed(decorator, backend_file)` applies a caching kernel decorator while
numba's cache folder is one named after the hash of physics.py and the backend file, so an edited
source misses the cache and compiles afresh.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from lib.sim import physics


def source_key(
    backend_file: str | os.PathLike[str], physics_file: str | os.PathLike[str] = physics.__file__
) -> str:
    """Hash (16 hex digits) of the bytes of this physics file and a backend file (cpu.py, cuda.py)."""
    digest = hashlib.sha256()
    for path in (Path(physics_file), Path(backend_file)):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _writable(folder: str) -> bool:
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _cache_dir(folder: str) -> Iterator[None]:
    import numba

    previous = numba.config.CACHE_DIR
    numba.config.CACHE_DIR = folder
    try:
        yield
    finally:
        numba.config.CACHE_DIR = previous


def kernel_cache_dir(backend_file: str | os.PathLike[str]) -> str:
    """numba's cache folder for the kernels of `backend_file`: sim-kernels-<source_key> under
    NUMBA_CACHE_DIR when set, else under lib/__pycache__ (or the temp folder if not writable)."""
    import numba

    name = f"sim-kernels-{source_key(backend_file)}"
    default = str(Path(__file__).parents[1] / "__pycache__")
    for base in (numba.config.CACHE_DIR or default, tempfile.gettempdir()):
        folder = os.path.join(base, name)
        if _writable(folder):
            return folder
    raise OSError(f"no writable folder for numba's kernel cache (tried {name} under NUMBA_CACHE_DIR, "
                  "lib/__pycache__ and the temp folder); set NUMBA_CACHE_DIR to a writable folder")


def source_keyed(decorator: Callable[[Any], Any],
                 backend_file: str | os.PathLike[str]) -> Callable[[Any], Any]:
    """`decorator` (a numba jit with cache=True) applied while numba's cache folder is
    `kernel_cache_dir(backend_file)`.

    Why: numba invalidates a cached kernel only when the kernel's own file changes, so after an
    edit to physics.py the CPU or CUDA kernel would silently load machine code compiled from the
    old physics. Keying the folder by the hash of both files makes an edited source miss the cache
    and compile afresh. (numba picks a function's cache folder when the decorator is applied.)"""

    def apply(fn: Any) -> Any:
        with _cache_dir(kernel_cache_dir(backend_file)):
            return decorator(fn)

    return apply
