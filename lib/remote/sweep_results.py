"""A sweep's results at a glance: what finished, and the paired statistics per level.

    python fetch_logs.py --sweep NAME

Collecting downloads the outputs of every Kaggle combination that has ended (a run here already
has its folder). Aggregating groups the finished runs by what the sweep varied other than the
training seed (a "level": a demand scale, a reward, ...). Within a level every run faced the
same evaluation episodes (lib/rl/train.py evaluates on the protocol's evaluation seeds whatever
the training seed), so the classic controllers are taken once per level, from its first run, and
the learner's training seeds are compared with them pair by pair (lib/rl/protocol.py: mean
relative change in delay with a 95 % bootstrap interval over training seeds then episodes, win
rate, median per-episode ratio), headlined against the best classic controller of that level.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from lib.remote.sweep import ENDED, Sweep, load, refresh, results_of, status_table, versioned_ref

SEED = "seed"
METRICS = (("mean_delay_s", "mean delay (s/veh)"), ("throughput_veh", "throughput (veh)"),
           ("mean_queue_veh", "mean queue (veh)"))


def collect(sweep: Sweep, status_of: Callable[[str], tuple[str, str | None]],
            download: Callable[[str, Path], Path], say: Callable[[str], None]) -> None:
    """Refresh a Kaggle sweep's states and download every ended run not yet here."""
    if sweep.target != "kaggle":
        return
    refresh(sweep, status_of)
    for c in sweep.with_state(*ENDED):
        if c.folder is None and c.ref:
            c.folder = str(download(versioned_ref(c), sweep.folder))
            say(f"  {c.slug}: {c.state}, outputs in {c.folder}")
    sweep.save()


def level_of(values: dict[str, Any]) -> str:
    """The level a combination belongs to: its swept values other than the training seed."""
    shown = {k: v for k, v in values.items() if k != SEED}
    return ", ".join(f"{k}={json.dumps(v, default=list)}" for k, v in shown.items()) or "all runs"


def aggregate(sweep: Sweep) -> dict[str, Any]:
    """Per level: each controller's mean metrics over its runs, and the learner's paired statistics
    against every baseline (headline: the best classic controller). Runs without results are
    listed, not guessed."""
    from lib.rl import protocol

    levels: dict[str, list[dict[str, Any]]] = {}
    missing = []
    for c in sweep.combinations:
        results = results_of(c) if c.state == "complete" else None
        if results is None:
            missing.append(c.slug)
            continue
        levels.setdefault(level_of(c.values), []).append(results)
    out: dict[str, Any] = {"sweep": sweep.name, "levels": {}, "without_results": missing}
    for level, runs in levels.items():
        policy = runs[0]["policy"]
        summary = _summaries(runs, policy)
        entry: dict[str, Any] = {"runs": len(runs), "policy": policy, "controllers": summary}
        baselines = {n: eps for n, eps in runs[0]["episodes"].items() if n != policy}
        try:
            entry["comparison"] = protocol.compare([r["episodes"][policy] for r in runs], baselines,
                                                   {n: summary[n] for n in baselines})
        except ValueError as exc:  # runs on other episodes, or no classic controller
            entry["note"] = f"no paired statistics: {exc}"
        out["levels"][level] = entry
    return out


def _summaries(runs: list[dict[str, Any]], policy: str) -> dict[str, dict[str, float]]:
    """Mean of each metric per controller: the learner over its training seeds (with the spread
    between seeds, `<metric>_seed_std`), a baseline from the level's first run (the same episodes
    in every run)."""
    out = {}
    for name in runs[0]["results"]:
        source = runs if name == policy else runs[:1]
        values = {key: [r["results"][name][key] for r in source] for key, _ in METRICS}
        out[name] = {key: float(np.mean(v)) for key, v in values.items()}
        out[name]["runs"] = len(source)
        if len(source) > 1:
            out[name].update({f"{key}_seed_std": float(np.std(v, ddof=1)) for key, v in values.items()})
    return out


def markdown(aggregated: dict[str, Any]) -> str:
    """One table per metric (levels x controllers), then the learner's headline per level."""
    lines = [f"# Sweep {aggregated['sweep']}", ""]
    levels = aggregated["levels"]
    if not levels:
        return "\n".join([*lines, "No run of this sweep has results yet.", ""])
    controllers = list(next(iter(levels.values()))["controllers"])
    for key, label in METRICS:
        lines += [f"## {label}", "", "| level | runs | " + " | ".join(controllers) + " |",
                  "| --- | --- | " + " | ".join("---" for _ in controllers) + " |"]
        for level, entry in levels.items():
            cells = [f"{entry['controllers'][n][key]:.2f}" if n in entry["controllers"] else "-"
                     for n in controllers]
            lines.append(f"| {level} | {entry['runs']} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Learner against the best classic controller of each level", "",
              "Mean relative change in delay per episode (negative: the learner is better), 95 % "
              "bootstrap interval over training seeds then episodes, win rate, median ratio, throughput "
              "ratio.", "",
              "| level | seeds | best classic | change in delay | 95 % interval | win rate | median ratio "
              "| throughput ratio |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for level, entry in levels.items():
        head = entry.get("comparison", {}).get("headline")
        if head is None:
            lines.append(f"| {level} | {entry['runs']} | - | {entry.get('note', '-')} | | | | |")
            continue
        lines.append(f"| {level} | {head['training_seeds']} | {head['best_classic']} | "
                     f"{100 * head['mean_rel_change']:+.1f} % | [{100 * head['ci_low']:+.1f}, "
                     f"{100 * head['ci_high']:+.1f}] % | {100 * head['win_rate']:.0f} % | "
                     f"{head['median_ratio']:.3f} | {head['throughput_ratio']:.3f} |")
    if aggregated["without_results"]:
        lines += ["", f"Runs without results (not counted): {', '.join(aggregated['without_results'])}"]
    return "\n".join(lines) + "\n"


def figures(aggregated: dict[str, Any]) -> dict[str, Figure]:
    """One bar chart per metric: levels along x, a bar per controller (the learner's whisker: the
    standard deviation of its training seeds' means)."""
    levels = aggregated["levels"]
    out: dict[str, Figure] = {}
    if not levels:
        return out
    controllers = list(next(iter(levels.values()))["controllers"])
    width = 0.8 / max(len(controllers), 1)
    for key, label in METRICS:
        fig = Figure(figsize=(max(6, 1.6 * len(levels) + 3), 3.8))
        ax = fig.add_subplot()
        for i, name in enumerate(controllers):
            means = [levels[lv]["controllers"].get(name, {}).get(key, np.nan) for lv in levels]
            spread = [levels[lv]["controllers"].get(name, {}).get(f"{key}_seed_std", 0.0) for lv in levels]
            ax.bar(np.arange(len(levels)) + (i - (len(controllers) - 1) / 2) * width, means, width,
                   yerr=spread, capsize=2, label=name)
        ax.set_xticks(range(len(levels)), list(levels), rotation=20, ha="right", fontsize=8)
        ax.set_ylabel(label)
        ax.set_title(f"sweep {aggregated['sweep']}: {label} per level (whisker: spread over training seeds)",
                     fontsize=9)
        ax.legend(fontsize=7, ncols=min(len(controllers), 6))
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        out[f"sweep_{key}.png"] = fig
    return out


def report(runs_dir: Path, name: str, status_of: Callable[[str], tuple[str, str | None]],
           download: Callable[[str, Path], Path], say: Callable[[str], None]) -> tuple[str, dict[str, Any]]:
    """Collect, aggregate and write sweep_results.json, sweep_results.md and one PNG per metric into
    the sweep's folder; the text to print and the aggregate."""
    sweep = load(runs_dir, name)
    collect(sweep, status_of, download, say)
    aggregated = aggregate(sweep)
    (sweep.folder / "sweep_results.json").write_text(json.dumps(aggregated, indent=1, default=float) + "\n")
    text = markdown(aggregated)
    (sweep.folder / "sweep_results.md").write_text(text)
    for file, fig in figures(aggregated).items():
        fig.savefig(sweep.folder / file, dpi=110)
    return status_table(sweep) + "\n\n" + text + f"\n(written to {sweep.folder}/)", aggregated
