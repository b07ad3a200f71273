"""One run per run directory: an OS lock held for the whole run.

Why: two runs writing one folder overwrite each other's checkpoints and results while both report
success. `fcntl.flock` is released by the kernel when the process dies, even on SIGKILL, so a
crashed run never leaves a stale lock to clean up by hand. The lock file stays (removing it would
let a third process lock a different file of the same name).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


class RunDirBusy(RuntimeError):
    """Another process holds the run directory; the message names it and the way out."""


@contextlib.contextmanager
def owned(folder: Path, name: str = ".run.lock") -> Iterator[Path]:
    """Hold `folder/name` exclusively (created with the folder if needed) inside the block."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    handle = path.open("a+")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RunDirBusy(f"{folder} is in use by {holder}: one run per run directory. Wait for it "
                             "to end, or choose another output_dir / --run-id.") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        yield path
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()
