"""Progress bars that suit where they are shown.

On a terminal a bar redraws often; into a notebook cell or a log file (Kaggle's log, papermill's
stdout) every redraw is one more line, and a 2,000-step run wrote 220 of its 267 log lines as
bar fragments. So off a terminal a bar redraws at most every NOT_A_TERMINAL_S seconds.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

NOT_A_TERMINAL_S = 5.0


def progress_bar(**kwargs: Any) -> tqdm:
    """A tqdm bar on stderr, redrawn at most every NOT_A_TERMINAL_S s when stderr is no terminal."""
    stream = kwargs.pop("file", sys.stderr)
    interactive = bool(getattr(stream, "isatty", lambda: False)())
    kwargs.setdefault("mininterval", 0.1 if interactive else NOT_A_TERMINAL_S)
    return tqdm(file=stream, **kwargs)
