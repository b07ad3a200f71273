"""Strict, typed configuration objects.

Every setting of the project lives in exactly one frozen dataclass (SimConfig, EnvConfig,
RunConfig, ...). A misspelled key must never be silently dropped (the earlier system lost its
training settings that way), so unknown keys raise a ConfigError that names the closest valid key,
and values are checked against the field's annotation.

Usage::

    @strict_config
    class MyConfig:
        steps: int = 300
        algorithm: Literal["dqn", "ppo"] = "dqn"

    MyConfig(steps=10)                 # ok
    MyConfig.from_dict({"stpes": 10})  # ConfigError: unknown key 'stpes' ... did you mean 'steps'?
    cfg.replace(steps=20)              # a new validated copy
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration key or value is invalid; the message says which and how to fix it."""


def strict_config(cls: type[T]) -> type[T]:
    """Turn `cls` into a frozen, keyword-only dataclass that validates keys and value types."""
    cls = dataclasses.dataclass(frozen=True, kw_only=True)(cls)
    dataclass_init = cls.__init__

    def __init__(self, **kwargs: Any) -> None:
        _reject_unknown(cls, kwargs)
        dataclass_init(self, **kwargs)
        _check_types(self)
        validate = getattr(self, "validate", None)
        if validate is not None:
            validate()

    __init__.__doc__ = dataclass_init.__doc__
    cls.__init__ = __init__  # type: ignore[method-assign]
    cls.from_dict = classmethod(_from_dict)  # type: ignore[attr-defined]
    cls.replace = _replace  # type: ignore[attr-defined]
    cls.to_dict = _to_dict  # type: ignore[attr-defined]
    return cls


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _from_dict(cls: type[T], data: Mapping[str, Any] | None = None, **overrides: Any) -> T:
    merged = {**dict(data or {}), **overrides}
    return cls(**merged)


def _replace(self: T, **changes: Any) -> T:
    return type(self)(**{**_to_dict(self), **changes})


def _to_dict(self: Any) -> dict[str, Any]:
    return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def _reject_unknown(cls: type, kwargs: Mapping[str, Any]) -> None:
    valid = field_names(cls)
    for key in kwargs:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"unknown key '{key}' for {cls.__name__}.{hint} Valid keys: {', '.join(valid)}."
            )


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
