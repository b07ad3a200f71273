"""Run the training notebook on a Kaggle GPU (through the Kaggle API) or here, with papermill.

    python push_kernel.py --steps 300             # Kaggle if credentials are configured, else here
    python push_kernel.py --target local --steps 64 --eval-episodes 1
    python push_kernel.py --steps 5000 --env.reward queue --env.sim.order 2
    python push_kernel.py --steps 5000 --wait     # push, poll until done, download, analyse
    python push_kernel.py --dry-run -p seed 3     # write the bundle to build/<slug>/, push nothing
    python push_kernel.py --sweep seed=0,1,2 --sweep env.demand_scale=0.6,1.0,1.4 --steps 20000
                                                  # 9 sessions, 2 at a time; run again to push more

Every setting of the run is an option, named by its dotted path in RunConfig (lib/rl/run_config.py):
`--steps`, `--env.decision-interval`, `--env.sim.min-green-s`, ... (`-p NAME VALUE` takes the
same names, with `_` or `-`). They reach the notebook as its one `config` parameter.

Outputs (under the repository, or --runs-dir / --build-dir): a local run writes runs/<run_id>/
(executed notebook, run.log in Kaggle's log format, results.json, model, plots); a push records
runs/last_push.json for `python fetch_logs.py`; the bundle is written to build/<slug>/.
See docs/kaggle.md. The work is done in lib/remote/bundle.py and lib/remote/kaggle_api.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from lib.remote import sweep as sweep_mod
from lib.remote.bundle import (
    REPO_ROOT,
    Bundle,
    BundleError,
    build_bundle,
    check_run_settings,
    resolve_parameters,
    run_local,
)
from lib.remote.kaggle_api import (
    CREDENTIALS_HELP,
    KaggleError,
    configured_username,
    download_output,
    has_credentials,
    kernel_status,
    push,
    record_push,
    username,
    wait_for_completion,
)
from lib.remote.settings import run_options, setting_name, typed
from lib.remote.sweep import DEFAULT_MAX_CONCURRENT, SweepError
from lib.runlog.analysis import analyse_path
from lib.runlog.reader import find_log
from lib.runlog.report import render_text, write_outputs

DEFAULT_SLUG = "victoria-island-signals"
DEFAULT_ACCELERATOR = "NvidiaTeslaT4"
RETIRED = {"NvidiaTeslaP100": "Kaggle has retired the P100 and runs such requests on a T4"}
RULE = "=" * 78


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, usage="%(prog)s [options] [--SETTING VALUE ...]",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    run_settings = parser.add_argument_group("run settings (RunConfig, by dotted name; default: RunConfig's)")
    for name, setting in run_options().items():
        run_settings.add_argument("--" + name.replace("_", "-"), dest="setting:" + name, default=None,
                                  metavar="VALUE", help=f"default {setting.default!r}")
    parser.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="any run setting by dotted name; VALUE is JSON when it parses, else text")
    parser.add_argument("--target", choices=("auto", "kaggle", "local"), default="auto",
                        help="auto: Kaggle when credentials are configured, otherwise here")
    parser.add_argument("--accelerator", default=DEFAULT_ACCELERATOR,
                        help="Kaggle machine shape (default NvidiaTeslaT4; 'none' for CPU only)")
    parser.add_argument("--slug", default=DEFAULT_SLUG, help="kernel SLUG or OWNER/SLUG")
    parser.add_argument("--timeout", type=_positive, default=None, help="Kaggle session timeout, seconds")
    parser.add_argument("--wait", action="store_true", help="poll until done, then download and analyse")
    parser.add_argument("--poll-interval", type=float, default=10.0,
                        help="first status poll interval with --wait, seconds (backs off to 60)")
    parser.add_argument("--dry-run", action="store_true", help="write the bundle, push or run nothing")
    sweep = parser.add_argument_group("sweeps (one run per combination; docs/kaggle.md)")
    sweep.add_argument("--sweep", action="append", default=[], metavar="NAME=V1,V2",
                       help="sweep a setting over these values (repeat for a grid: the cartesian product)")
    sweep.add_argument("--sweep-name", default=None,
                       help="name of the sweep (default: the swept settings and a hash of all the settings)")
    sweep.add_argument("--max-concurrent", type=_positive, default=DEFAULT_MAX_CONCURRENT,
                       help=f"Kaggle sessions queued or running at once (default {DEFAULT_MAX_CONCURRENT}: "
                            "a free account's assumed limit)")
    sweep.add_argument("--jobs", type=_positive, default=1, help="runs at once with --target local")
    parser.add_argument("--runs-dir", type=Path, default=REPO_ROOT / "runs",
                        help="where runs and last_push.json live (default: ./runs of the repository)")
    parser.add_argument("--build-dir", type=Path, default=REPO_ROOT / "build",
                        help="where the bundle is written (default: ./build of the repository)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return _run(args)
    except (BundleError, KaggleError, SweepError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)


def _run(args: argparse.Namespace) -> int:
    target = args.target
    if target == "auto":
        target = "kaggle" if has_credentials() else "local"
    if target == "kaggle" and not args.dry_run and not has_credentials():
        raise KaggleError(CREDENTIALS_HELP, exit_code=2)
    accelerator = _accelerator(args.accelerator)
    if args.sweep:
        return _sweep(args, target, accelerator)
    run_settings = _settings(args)
    run_settings.setdefault("run_id", f"{time.strftime('%Y%m%d-%H%M%S')}-{args.slug.split('/')[-1]}")
    check_run_settings(run_settings)
    params = resolve_parameters({"config": run_settings})
    ref = _ref(args.slug, target == "kaggle" and not args.dry_run)
    slug = ref.split("/")[1]
    bundle = build_bundle(params, args.build_dir / slug, ref, accelerator)
    if args.dry_run:
        _describe(bundle, "dry run: bundle written, nothing pushed or run")
        return 0
    if target == "local":
        return _local(bundle, args.runs_dir, args.target == "auto")
    return _kaggle(bundle, args, accelerator)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The run settings given on the command line (options, then -p), values typed per field."""
    known = run_options()
    given = {key.removeprefix("setting:"): value for key, value in vars(args).items()
             if key.startswith("setting:") and value is not None}
    given.update((setting_name(name), value) for name, value in args.param)
    return {name: typed(value, known.get(name)) for name, value in given.items()}


def _sweep(args: argparse.Namespace, target: str, accelerator: str | None) -> int:
    """Plan or continue a sweep: check every combination, then push the next ones (Kaggle) or run
    the pending ones (here), and record each state in the sweep's manifest."""
    base = _settings(args)
    if "run_id" in base:
        raise SweepError("a sweep names each run after its combination: leave --run-id out")
    plan = sweep_mod.plan(args.runs_dir, sweep_mod.parse_grid(args.sweep), base, target, args.sweep_name)
    for c in plan.combinations:
        check_run_settings(plan.settings_of(c))
    hours = sum(sweep_mod.estimate_seconds(plan.settings_of(c)) for c in plan.combinations) / 3600
    shape = " x ".join(str(len(values)) for values in plan.grid.values())
    print(f"sweep {plan.name}: {len(plan.combinations)} runs ({shape} of {', '.join(plan.grid)}) on "
          f"{target}, about {hours:.1f} session hours (a rough estimate, docs/kaggle.md); manifest "
          f"{plan.folder / sweep_mod.MANIFEST}", flush=True)
    if args.dry_run:
        for c in plan.combinations:
            build_bundle(resolve_parameters({"config": plan.settings_of(c)}), args.build_dir / c.slug,
                         _ref(c.slug, False), accelerator)
        print(f"dry run: {len(plan.combinations)} bundles in {args.build_dir}/, nothing pushed or run")
        return 0
    plan.save()
    if target == "local":
        return _sweep_here(plan, args)
    return _sweep_kaggle(plan, args, accelerator)


def _sweep_here(plan: sweep_mod.Sweep, args: argparse.Namespace) -> int:
    def command(c: sweep_mod.Combination) -> list[str]:
        return [sys.executable, str(Path(__file__).resolve()), "--target", "local", "--slug", c.slug,
                "--runs-dir", str(plan.folder), "--build-dir", str(args.build_dir),
                *sweep_mod.option_args(plan.settings_of(c))]

    print(f"running {len(plan.with_state('pending', 'error'))} combinations HERE, {args.jobs} at a time",
          flush=True)
    def report(c: sweep_mod.Combination) -> None:
        print(f"  {c.slug}: {c.state} {c.message or ''}".rstrip(), flush=True)

    sweep_mod.run_here(plan, command, args.jobs, on_done=report)
    print(sweep_mod.status_table(plan))
    print(f"next: python fetch_logs.py --sweep {plan.name}")
    return 0 if not plan.with_state("error") else 1


def _sweep_kaggle(plan: sweep_mod.Sweep, args: argparse.Namespace, accelerator: str | None) -> int:
    def push_one(c: sweep_mod.Combination) -> tuple[str, int | None]:
        ref = _ref(c.slug, True)
        bundle = build_bundle(resolve_parameters({"config": plan.settings_of(c)}), args.build_dir / c.slug,
                              ref, accelerator)
        result = push(bundle.folder, args.timeout, accelerator)
        print(f"  pushed {result.ref} version {result.version}: {result.url}", flush=True)
        return result.ref, result.version

    sweep_mod.refresh(plan, kernel_status)
    pushed = sweep_mod.push_next(plan, push_one, args.max_concurrent)
    plan.save()
    print(sweep_mod.status_table(plan))
    pending = len(plan.with_state("pending"))
    print(f"pushed {len(pushed)} now; {pending} pending"
          + (" (run this command again to push the next ones)" if pending else "")
          + f"; results: python fetch_logs.py --sweep {plan.name}")
    failed = [c for c in plan.with_state("pending") if (c.message or "").startswith("push failed")]
    return 1 if failed else 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number of seconds, got {text!r}")
    return value


def _accelerator(name: str) -> str | None:
    if name.lower() in ("none", "cpu"):
        return None
    if name in RETIRED:
        print(f"warning: {RETIRED[name]}.", file=sys.stderr)
    return name


def _ref(slug: str, need_owner: bool) -> str:
    if "/" in slug:
        return slug
    owner = configured_username() or (username() if need_owner else None)
    return f"{owner or 'OWNER'}/{slug}"


def _describe(bundle: Bundle, headline: str) -> None:
    params = " ".join(f"{k}={v}" for k, v in bundle.parameters.get("config", bundle.parameters).items())
    print(f"{headline}\n  notebook:  {bundle.notebook} ({bundle.source_bytes / 1e3:.0f} kB of Kaggle's 1 MB)"
          f"\n  metadata:  {bundle.folder / 'kernel-metadata.json'} (id {bundle.metadata['id']})"
          f"\n  lib/ sha256 {bundle.lib_sha256[:12]}, commit {bundle.commit}\n  parameters: {params}")


def _local(bundle: Bundle, runs_dir: Path, automatic: bool) -> int:
    run_dir = runs_dir / str(bundle.parameters["config"]["run_id"])
    why = "no Kaggle credentials are configured" if automatic else "--target local"
    print(f"{RULE}\nLOCAL RUN ({why}): the notebook runs HERE, not on Kaggle.\n  outputs: {run_dir}/",
          flush=True)
    _describe(bundle, "  bundle:")
    print(RULE, flush=True)
    start = time.monotonic()
    result = run_local(bundle, run_dir)
    seconds = time.monotonic() - start
    print(RULE)
    if result.status != "ok":
        print(f"LOCAL RUN FAILED after {seconds:.0f} s: {result.error}\n"
              f"  partial log kept: {run_dir / 'run.log'}\n"
              f"  executed notebook: {run_dir / bundle.notebook.name}")
        print(RULE)
        return 1
    print(f"LOCAL RUN finished (ran here, not on Kaggle) in {seconds:.0f} s: outputs in {run_dir}/\n"
          f"  next: python fetch_logs.py {run_dir}")
    print(RULE)
    return 0


def _kaggle(bundle: Bundle, args: argparse.Namespace, accelerator: str | None) -> int:
    print(f"Pushing {bundle.metadata['id']} to Kaggle ({accelerator or 'CPU'}, "
          f"{bundle.source_bytes / 1e3:.0f} kB notebook, run_id {bundle.parameters['config']['run_id']}) ...",
          flush=True)
    result = push(bundle.folder, args.timeout, accelerator)
    record_push(result, args.runs_dir)
    print(f"Pushed version {result.version}: {result.url}", flush=True)
    if not args.wait:
        print("It runs on Kaggle now. When it is done: python fetch_logs.py")
        return 0
    versioned = f"{result.ref}/{result.version}" if result.version else result.ref
    status, message = wait_for_completion(versioned, poll_s=args.poll_interval, on_poll=_show_poll)
    print(f"Kaggle run ended: {status}" + (f": {message}" if message else ""), flush=True)
    folder = download_output(versioned, args.runs_dir)
    print(f"Outputs downloaded to {folder}/", flush=True)
    _analyse(folder)
    return 0 if status == "COMPLETE" else 1


def _show_poll(status: str, elapsed: float) -> None:
    print(f"  [{int(elapsed) // 60:d}m{int(elapsed) % 60:02d}s] {status}", flush=True)


def _analyse(folder: Path) -> None:
    """Print and save the run's analysis, as `python fetch_logs.py FOLDER` does."""
    log = find_log(folder)
    if log is None:
        print(f"no log among the outputs in {folder}/: nothing to analyse.")
        return
    analysis = analyse_path(log)
    write_outputs(analysis, folder)
    print(render_text(analysis))


if __name__ == "__main__":
    sys.exit(main())
