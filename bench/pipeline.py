"""Wall time of a training run split by phase, and the share that is neither training nor evaluation.

    python bench/pipeline.py                       # a 300-step run and a 20,000-step run
    python bench/pipeline.py --long-steps 100000

Each run goes through lib.train.run in this process (a fresh pool for each, as in a new process)
and its own events are parsed: the phases' `seconds`, the time before the first phase (imports
excluded: they happen before this script starts the clock) and the run total. "Overhead" is
everything but train, eval and baselines: config, build (load + compile + allocate), sanity,
save, and the time between phases.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.obs import events
from lib.rl import pool  # noqa: E402
from lib.rl.train import RunConfig, run  # noqa: E402

WORK = ("train", "eval", "baselines")


def timed_run(steps: int, n_envs: int, episode_seconds: float) -> dict[str, float]:
    pool.reset_pool()
    stream = io.StringIO()
    events.set_stream(stream)
    try:
        with tempfile.TemporaryDirectory() as out:
            run(
                RunConfig(
                    steps=steps,
                    n_envs=n_envs,
                    env={"episode_seconds": episode_seconds, "backend": "cpu"},
                    progress_bar=False,
                    output_dir=out,
                )
            )
    finally:
        events.set_stream(None)
    records = [r for r in map(events.parse_line, stream.getvalue().splitlines()) if r]
    phases = {r["phase"]: r["seconds"] for r in records if r["event"] == "phase_end"}
    total = next(r["seconds"] for r in records if r["event"] == "run_end")
    phases["total"] = total
    phases["overhead"] = total - sum(phases.get(p, 0.0) for p in WORK)
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short-steps", type=int, default=300)
    parser.add_argument("--long-steps", type=int, default=20_000)
    parser.add_argument("--n-envs", type=int, default=4)
    parser.add_argument("--episode-seconds", type=float, default=3600.0)
    args = parser.parse_args()
    timed_run(300, args.n_envs, 300.0)  # warm-up: imports, JIT cache, torch kernels
    rows = {
        steps: timed_run(steps, args.n_envs, args.episode_seconds)
        for steps in (args.short_steps, args.long_steps)
    }
    names = ["config", "build", "sanity", "train", "eval", "baselines", "save", "overhead", "total"]
    print(f"{'phase (s)':<12}" + "".join(f"{f'{s} steps':>16}" for s in rows))
    for name in names:
        print(f"{name:<12}" + "".join(f"{r.get(name, 0.0):>16.3f}" for r in rows.values()))
    print(
        f"{'overhead %':<12}" + "".join(f"{100 * r['overhead'] / r['total']:>15.1f}%" for r in rows.values())
    )


if __name__ == "__main__":
    main()
