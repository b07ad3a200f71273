"""Where a run's code came from: the git commit and a hash of lib/, recorded in `run_start`.

Kaggle runs have no git checkout, so the bundle fills the commit in before pushing and the run
hashes its own lib/ (which tells apart two runs of one commit with edited code).
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

LIB_DIR = Path(__file__).resolve().parents[1]


def git_commit(path: Path = LIB_DIR) -> str:
    """HEAD's hash, with '-dirty' when the tree under `path` differs from it; 'unknown' outside git."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=path, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        head = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--", ".")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def lib_hash() -> str:
    """A hash of every lib/**/*.py (path and content)."""
    digest = hashlib.sha256()
    for path in sorted(LIB_DIR.rglob("*.py")):
        if "__pycache__" not in path.parts:
            digest.update(path.relative_to(LIB_DIR).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]
