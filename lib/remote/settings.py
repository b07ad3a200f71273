"""Run settings from a command line: every RunConfig leaf by dotted name, values typed per field.

Why here: push_kernel.py's options and its sweeps both turn text into run settings, and both
must read `--env.sim.order 2` and `--sweep env.sim.order=1,2` the same way.
"""

from __future__ import annotations

import json
import typing
from typing import Any

from lib.config import Setting, settings

# Not settable from the command line: the notebook sets its own output folder (Kaggle's cwd);
# `resume` is push_kernel.py's --resume RUN_ID, which also names the run to continue.
NOT_OPTIONS = ("output_dir", "resume")


def run_options() -> dict[str, Setting]:
    """RunConfig's settings by dotted name, each one an option of push_kernel.py."""
    from lib.rl.run_config import RunConfig

    return {name: s for name, s in settings(RunConfig).items() if name not in NOT_OPTIONS}


def setting_name(text: str) -> str:
    """A setting's name as written on a command line (`env.sim.min-green-s`) in its dotted form."""
    return text.strip().replace("-", "_")


def typed(text: str, setting: Setting | None) -> Any:
    """A command-line value for a setting: text for text fields, else JSON when it parses (lists
    as tuples), else the text itself (RunConfig then names what is wrong with it)."""
    if setting is not None and is_text(setting.annotation):
        return text
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return tuple(value) if isinstance(value, list) else value


def is_text(annotation: Any) -> bool:
    """Whether a field holds text (str, an all-str Literal, or str | None)."""
    args = typing.get_args(annotation)
    if annotation is str:
        return True
    if typing.get_origin(annotation) is typing.Literal:
        return all(isinstance(a, str) for a in args)
    return bool(args) and all(a is str or a is type(None) for a in args) and str in args
