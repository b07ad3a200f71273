"""Strict configs reject what would otherwise be silently dropped; events follow docs/events.md."""

from __future__ import annotations

import io
import json
import math
from typing import Literal

import numpy as np
import pytest

from lib.config import ConfigError, Setting, nest, settings, strict_config
from lib.obs import events


@strict_config
class ExampleConfig:
    steps: int = 300
    rate: float = 1e-3
    algorithm: Literal["dqn", "ppo"] = "dqn"
    name: str | None = None
    sizes: tuple[int, ...] = (64, 64)

    def validate(self) -> None:
        if self.steps <= 0:
            raise ConfigError(f"steps must be positive, got {self.steps}")


def test_defaults_and_overrides():
    cfg = ExampleConfig(steps=10, rate=1)
    assert (cfg.steps, cfg.rate, cfg.algorithm, cfg.sizes) == (10, 1, "dqn", (64, 64))
    assert cfg.replace(algorithm="ppo").algorithm == "ppo"
    assert ExampleConfig.from_dict({"steps": 5}, rate=0.5).to_dict()["rate"] == 0.5


@strict_config
class OuterConfig:
    seed: int = 0
    inner: ExampleConfig = ExampleConfig()


def test_nested_configs_take_mappings_dotted_names_and_keep_the_rest_on_replace():
    outer = OuterConfig.from_dict({"seed": 3, "inner.steps": 7, "inner": {"rate": 0.5}})
    assert (outer.seed, outer.inner.steps, outer.inner.rate) == (3, 7, 0.5)
    changed = outer.replace(**{"inner.algorithm": "ppo"})
    assert (changed.inner.algorithm, changed.inner.steps, changed.inner.rate) == ("ppo", 7, 0.5)
    assert changed.to_dict()["inner"] == {**ExampleConfig().to_dict(), "steps": 7, "rate": 0.5,
                                          "algorithm": "ppo"}
    assert OuterConfig.from_dict(changed.to_dict()) == changed  # to_dict round-trips (JSON-ready)
    assert OuterConfig(inner={"sizes": [8, 8]}).inner.sizes == (8, 8)  # JSON has no tuples
    assert nest({"a.b.c": 1, "a.d": 2, "e": 3}) == {"a": {"b": {"c": 1}, "d": 2}, "e": 3}


def test_settings_lists_every_leaf_by_dotted_name():
    found = settings(OuterConfig)
    assert list(found) == ["seed"] + [f"inner.{k}" for k in ("steps", "rate", "algorithm", "name", "sizes")]
    assert found["inner.rate"] == Setting(float, 1e-3)


def test_nested_errors_name_the_dotted_key():
    closest = r"unknown key 'inner\.stpes' for OuterConfig\. Did you mean 'inner\.steps'"
    with pytest.raises(ConfigError, match=closest):
        OuterConfig.from_dict({"inner.stpes": 1})
    with pytest.raises(ConfigError, match="steps must be positive"):
        OuterConfig().replace(**{"inner.steps": 0})


def test_misspelled_key_names_the_closest_valid_one():
    with pytest.raises(ConfigError, match=r"unknown key 'stpes' for ExampleConfig\. Did you mean 'steps'\?"):
        ExampleConfig.from_dict({"stpes": 10})
    with pytest.raises(ConfigError, match="unknown key 'zzz'"):
        ExampleConfig(zzz=1)


@pytest.mark.parametrize(
    ("key", "value"),
    [("steps", "10"), ("steps", 1.5), ("steps", True), ("algorithm", "a2c"), ("sizes", ("64",)), ("name", 3)],
)
def test_wrong_types_are_rejected(key, value):
    with pytest.raises(ConfigError, match=f"ExampleConfig.{key} must be"):
        ExampleConfig(**{key: value})


def test_validate_hook_and_frozen():
    with pytest.raises(ConfigError, match="steps must be positive"):
        ExampleConfig(steps=0)
    cfg = ExampleConfig()
    with pytest.raises(AttributeError):
        cfg.steps = 3  # type: ignore[misc]


def test_event_lines_are_prefixed_compact_json():
    out = io.StringIO()
    events.set_stream(out)
    try:
        events.start_clock()
        record = events.emit("network_build", n=1, bytes=np.int64(12), shape=np.arange(2), bad=math.nan)
    finally:
        events.set_stream(None)
    line = out.getvalue()
    assert line.startswith("[event] ") and line.endswith("\n") and line.count("\n") == 1
    parsed = json.loads(line[len("[event] ") :])
    assert parsed == {
        "event": "network_build",
        "t": record["t"],
        "n": 1,
        "bytes": 12,
        "shape": [0, 1],
        "bad": None,
    }
    assert 0 <= parsed["t"] < 1
    assert events.parse_line(line.strip()) == parsed


def test_parse_line_rejects_non_events():
    assert events.parse_line("hello") is None
    assert events.parse_line("[event] {not json") is None
    assert events.parse_line('[event] {"t": 1}') is None
    assert events.parse_line(' [event] {"event": "x", "t": 1}') is None


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_rejected_where_a_nan_would_pass_every_range_check(value):
    with pytest.raises(ConfigError, match="ExampleConfig.rate must be a finite number"):
        ExampleConfig(rate=value)


def test_real_configs_reject_non_finite_values():
    from lib.rl.env import EnvConfig
    from lib.sim.simulator import SimConfig

    with pytest.raises(ConfigError, match="SimConfig.amber_s must be a finite number"):
        SimConfig(amber_s=math.nan)
    with pytest.raises(ConfigError, match="SimConfig.min_green_s must be a finite number"):
        SimConfig(min_green_s=math.inf)
    with pytest.raises(ConfigError, match="EnvConfig.episode_seconds must be a finite number"):
        EnvConfig(episode_seconds=math.inf)
    with pytest.raises(ConfigError, match="EnvConfig.demand_level_range"):
        EnvConfig(demand_level_range=(0.7, math.inf))
