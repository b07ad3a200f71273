"""Strict, typed configuration objects.

Every setting of the project lives in exactly one frozen dataclass, and the configs nest:
RunConfig holds an EnvConfig, which holds a SimConfig. A misspelled key must never be silently
dropped (the earlier system lost its training settings that way), so unknown keys raise a
ConfigError that names the closest valid key, and values are checked against the field's
annotation.

A setting is named by its dotted path from the outermost config (`steps`, `env.reward`,
`env.sim.order`); that one naming scheme serves `from_dict`, `replace`, the notebook's `config`
parameter and push_kernel.py's options, so a new field needs no edit anywhere else.

Usage::

    @strict_config
    class MyConfig:
        steps: int = 300
        algorithm: Literal["dqn", "ppo"] = "dqn"
        env: EnvConfig = EnvConfig()           # a nested config

    MyConfig(steps=10, env={"reward": "queue"})  # a mapping becomes the nested config
    MyConfig.from_dict({"stpes": 10})            # ConfigError: unknown key 'stpes' ... 'steps'?
    MyConfig.from_dict({"env.reward": "queue"})  # dotted names
    cfg.replace(**{"env.sim.order": 2})          # a new validated copy; the rest is kept
    settings(MyConfig)                           # {"steps": Setting(...), "env.reward": ...}
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

T = TypeVar("T")
MARK = "__strict_config__"


class ConfigError(ValueError):
    """A configuration key or value is invalid; the message says which and how to fix it."""


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """" Did you mean 'x'?" naming the closest valid name, or "" when none is close: every
    misspelled-name error of the project says it the same way."""
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


class UnknownKey(ConfigError):
    """A key that names no field; `key` and `valid` are dotted from the outermost config."""

    def __init__(self, key: str, valid: list[str], owner: str) -> None:
        hint = did_you_mean(key, valid)
        super().__init__(f"unknown key '{key}' for {owner}.{hint} Valid keys: {', '.join(valid)}.")
        self.key, self.valid = key, valid


def strict_config(cls: type[T]) -> type[T]:
    """Turn `cls` into a frozen, keyword-only dataclass that validates keys and value types."""
    cls = dataclasses.dataclass(frozen=True, kw_only=True)(cls)
    dataclass_init = cls.__init__

    def __init__(self, **kwargs: Any) -> None:
        _reject_unknown(cls, kwargs)
        dataclass_init(self, **_build_nested(cls, kwargs))
        _check_types(self)
        validate = getattr(self, "validate", None)
        if validate is not None:
            validate()

    __init__.__doc__ = dataclass_init.__doc__
    cls.__init__ = __init__  # type: ignore[method-assign]
    cls.from_dict = classmethod(_from_dict)  # type: ignore[attr-defined]
    cls.replace = _replace  # type: ignore[attr-defined]
    cls.to_dict = _to_dict  # type: ignore[attr-defined]
    setattr(cls, MARK, True)
    return cls


def is_config(value: Any) -> bool:
    """Whether `value` is a strict config class or instance."""
    return hasattr(value, MARK)


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


@dataclasses.dataclass(frozen=True)
class Setting:
    """One leaf setting of a config tree: its annotation and default."""

    annotation: Any
    default: Any


def settings(cls: type, prefix: str = "") -> dict[str, Setting]:
    """Every leaf setting of `cls` by dotted name, nested configs expanded (declaration order)."""
    hints = get_type_hints(cls)
    out: dict[str, Setting] = {}
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if is_config(kind):
            out.update(settings(kind, prefix + f.name + "."))
        else:
            out[prefix + f.name] = Setting(kind, default)
    return out


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """`{"env.sim.order": 2, "steps": 5}` -> `{"env": {"sim": {"order": 2}}, "steps": 5}`."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        head, _, rest = str(key).partition(".")
        if rest:
            inner = out.setdefault(head, {})
            if not isinstance(inner, dict):  # a whole nested value given beside a dotted one
                inner = out[head] = _as_mapping(inner)
            _merge(inner, nest({rest: value}))
        elif isinstance(value, Mapping) and isinstance(out.get(head), dict):
            _merge(out[head], nest(value))
        else:
            out[head] = nest(value) if isinstance(value, Mapping) else value
    return out


def _merge(into: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _as_mapping(value: Any) -> dict[str, Any]:
    return _to_dict(value) if is_config(value) else dict(value)


def _build_nested(cls: type, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Mappings given for nested-config fields become those configs (dotted names in errors), and
    lists for tuple fields tuples (JSON, a notebook parameter or a command line has no tuples)."""
    hints = get_type_hints(cls)
    out = dict(kwargs)
    for name, value in kwargs.items():
        kind = hints[name]
        if isinstance(value, list) and _takes_tuple(kind):
            out[name] = tuple(value)
        if is_config(kind) and isinstance(value, Mapping):
            try:
                out[name] = kind(**nest(value))
            except UnknownKey as exc:
                dotted = [f"{name}.{key}" for key in exc.valid]
                raise UnknownKey(f"{name}.{exc.key}", dotted, cls.__name__) from None
    return out


def _takes_tuple(kind: Any) -> bool:
    if get_origin(kind) in (Union, types.UnionType):
        return any(_takes_tuple(arg) for arg in get_args(kind))
    return get_origin(kind) is tuple


def _from_dict(cls: type[T], data: Mapping[str, Any] | None = None, **overrides: Any) -> T:
    """A config from a mapping of plain, nested or dotted names (overrides win)."""
    return cls(**nest({**dict(data or {}), **overrides}))


def _replace(self: T, **changes: Any) -> T:
    """A validated copy with `changes` (dotted names and partial nested mappings allowed)."""
    merged = _to_dict(self)
    _merge(merged, nest(changes))
    return type(self)(**merged)


def _to_dict(self: Any) -> dict[str, Any]:
    """Field values by name, nested configs as nested dicts (JSON-ready for plain values)."""
    return {
        f.name: _to_dict(getattr(self, f.name)) if is_config(getattr(self, f.name)) else getattr(self, f.name)
        for f in dataclasses.fields(self)
    }


def _reject_unknown(cls: type, kwargs: Mapping[str, Any]) -> None:
    valid = field_names(cls)
    for key in kwargs:
        if key not in valid:
            raise UnknownKey(key, valid, cls.__name__)


def _check_types(obj: Any) -> None:
    hints = get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        expected = hints[f.name]
        if not _matches(value, expected):
            raise ConfigError(f"{type(obj).__name__}.{f.name} must be {_describe(expected)}, got {value!r}.")


def _matches(value: Any, expected: Any) -> bool:
    origin = get_origin(expected)
    if expected is Any:
        return True
    if expected is type(None):
        return value is None
    if origin is Literal:
        return value in get_args(expected)
    if origin in (Union, types.UnionType):
        return any(_matches(value, arg) for arg in get_args(expected))
    if origin is tuple:
        args = get_args(expected)
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(args) == len(value) and all(_matches(v, a) for v, a in zip(value, args, strict=True))
    if origin in (dict, Mapping, typing.Mapping):
        return isinstance(value, Mapping)
    if expected is float:  # finite: a NaN slips through every `x < 0` check downstream
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(expected, type):
        return isinstance(value, expected)
    return True


def _describe(expected: Any) -> str:
    origin = get_origin(expected)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(expected))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(expected))
    if expected is type(None):
        return "None"
    if expected is float:
        return "a finite number"
    return getattr(expected, "__name__", str(expected))
