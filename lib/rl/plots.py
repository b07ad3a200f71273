"""Figures of a run: the training curve, the controller comparison and a map of the corridor.

Each function returns a `matplotlib.figure.Figure` built without pyplot, so it works under the
Agg backend (CI, Kaggle) and leaves no global figure state behind; save with `fig.savefig(path)`
or display it in a notebook. Every map carries the OpenStreetMap attribution the ODbL requires.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from lib.sim.network import Network

ATTRIBUTION = "Map data © OpenStreetMap contributors, ODbL"
PANELS = (
    ("mean_delay_s", "mean delay (s/veh)"),
    ("throughput_veh", "throughput (veh)"),
    ("mean_queue_veh", "mean queue (veh)"),
)


def run_title(result: Any, what: str) -> str:
    """`what`, the run id and its training steps: every figure says which run it shows."""
    run_id, steps = getattr(result, "run_id", "") or "?", getattr(result, "steps", 0)
    return f"{what}: run {run_id}, {steps:,} training steps"


def training_curve(result: Any) -> Figure:
    """Episode return (mean of the last episodes) against environment steps; a run too short for a
    curve (fewer than two training episodes ended) says so instead of drawing an empty frame."""
    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    curve = list(result.training_curve)
    if len(curve) >= 2:
        steps, values = zip(*curve, strict=True)
        ax.plot(steps, values, marker="o" if len(curve) < 20 else None)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("episode return (mean of last 100)")
        ax.grid(alpha=0.3)
    else:
        ended = f"{len(curve)} training episode ended" if curve else "no training episode ended"
        ax.text(0.5, 0.5, f"this run is too short for a training curve:\n{ended} "
                f"(a curve needs at least 2)", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    ax.set_title(run_title(result, "training curve"), fontsize=10)
    fig.tight_layout()
    return fig


def controller_comparison(result: Any) -> Figure:
    """Bars per controller with the spread over evaluation episodes, one panel per metric."""
    results = result.results
    names = list(results)
    fig = Figure(figsize=(4 * len(PANELS), 3.5))
    policy = getattr(result, "policy", "")
    colours = ["tab:orange" if name == policy else "tab:blue" for name in names]
    episodes = sorted({int(results[n].get("episodes", 0)) for n in names})
    fig.suptitle(run_title(result, "controllers on the same evaluation episodes"), fontsize=11)
    fig.text(0.01, 0.01, f"bars: mean over {'/'.join(map(str, episodes))} evaluation episodes (the same "
             "seeds for every controller); whiskers: +/- 1 sample standard deviation over episodes",
             fontsize=8, ha="left", va="bottom")
    for i, (key, label) in enumerate(PANELS):
        ax = fig.add_subplot(1, len(PANELS), i + 1)
        means = [results[n][key] for n in names]
        spread = [results[n].get(f"{key}_std", 0.0) for n in names]
        ax.bar(range(len(names)), means, yerr=spread, capsize=3, color=colours)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_title(label)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout(rect=(0, 0.06, 1, 0.93))
    return fig


def corridor_map(network: Network, values: Sequence[float], label: str, title: str = "") -> Figure:
    """Each link's geometry coloured by `values` (one per link, in `network.links` order)."""
    data = np.asarray(values, dtype=np.float64)
    if data.shape != (network.n_links,):
        raise ValueError(
            f"values must hold one number per link ({network.n_links}, in network.links order), "
            f"got shape {data.shape}"
        )
    segments = [np.asarray(link.geometry) for link in network.links]
    finite = data[np.isfinite(data)]
    norm = Normalize(*(float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0))
    fig = Figure(figsize=(7, 6))
    ax = fig.add_subplot()
    lines = LineCollection(segments, array=data, cmap=colormaps["viridis"], norm=norm, linewidths=3)
    ax.add_collection(lines)
    ax.autoscale()
    lat = np.mean([p[1] for seg in segments for p in seg])
    ax.set_aspect(1.0 / np.cos(np.radians(lat)))
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title(title or f"Victoria Island corridor: {label}", fontsize=10)
    fig.colorbar(lines, ax=ax, label=label)
    fig.text(0.01, 0.01, ATTRIBUTION, fontsize=8, ha="left", va="bottom")
    return fig
