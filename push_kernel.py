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
import json
import math
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
    check_clean,
    check_ref,
    check_run_settings,
    resolve_parameters,
    run_local,
)
from lib.remote.kaggle_api import (
    CREDENTIALS_HELP,
    KaggleError,
    Policy,
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
# Kaggle's GPU machine shapes; the run needs numba's CUDA target, so TPUs are refused. Add a new
# shape here when Kaggle offers one (docs/kaggle.md).
ACCELERATORS = ("NvidiaTeslaT4", "NvidiaL4", "NvidiaH100")
RETIRED = {"NvidiaTeslaP100": "Kaggle has retired the P100 and runs such requests on a T4"}
# Kaggle ends a session after 12 h at most; --wait allows that (or --timeout) plus the queue.
KAGGLE_MAX_SESSION_S = 12 * 3600
WAIT_MARGIN_S = 1800
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
    parser.add_argument("--accelerator", default=DEFAULT_ACCELERATOR, type=_accelerator_name,
                        help=f"Kaggle machine shape: {', '.join(ACCELERATORS)} (default "
                             f"{DEFAULT_ACCELERATOR}), or 'none' for CPU only")
    parser.add_argument("--slug", default=DEFAULT_SLUG, help="kernel SLUG or OWNER/SLUG")
    parser.add_argument("--timeout", type=_positive, default=None, help="Kaggle session timeout, seconds")
    parser.add_argument("--wait", action="store_true", help="poll until done, then download and analyse")
    parser.add_argument("--poll-interval", type=_poll_interval, default=10.0,
                        help=f"first status poll interval with --wait, seconds (>= {Policy().min_poll_s:.0f};"
                             " backs off to 60)")
    parser.add_argument("--wait-deadline", type=_positive, default=None,
                        help="give up waiting after this many seconds (default: --timeout, else Kaggle's "
                             f"12 h limit, plus {WAIT_MARGIN_S // 60} min for the queue)")
    parser.add_argument("--resume", metavar="RUN_ID", default=None,
                        help="continue the local run runs/RUN_ID from its newest complete checkpoint "
                             "(its settings, with the options given here on top; not on Kaggle)")
    parser.add_argument("--allow-dirty", action="store_true",
                        help="push although lib/ has uncommitted or untracked files (untracked ones are "
                             "left out of the bundle and listed)")
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
    """Exit codes: 0 success; 1 a failure (push, run, bundle refused); 2 a usage error (bad option
    or setting, missing or broken credentials, unknown kernel); 130 Ctrl-C."""
    args = parse_args(argv)
    try:
        return _run(args)
    except (BundleError, KaggleError, SweepError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    except KeyboardInterrupt:
        print("\ninterrupted (Ctrl-C): nothing more was started; a local run keeps its log and its last "
              "checkpoint (continue it with --resume RUN_ID).", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    target = _target(args)
    accelerator = _accelerator(args.accelerator)
    if args.sweep:
        return _sweep(args, target, accelerator)
    check_ref("OWNER/" + args.slug.split("/")[-1])  # before the slug goes into a default run_id
    run_settings = _run_settings(args)
    check_run_settings(run_settings)
    params = resolve_parameters({"config": run_settings})
    ref = _ref(args.slug, target == "kaggle" and not args.dry_run)
    slug = ref.split("/")[1]
    bundle = build_bundle(params, args.build_dir / slug, ref, accelerator,
                          require_clean=target == "kaggle" and not args.allow_dirty)
    if args.dry_run:
        _describe(bundle, "dry run: bundle written, nothing pushed or run")
        return 0
    if target == "local":
        return _local(bundle, args.runs_dir, args.target == "auto", resume=args.resume is not None)
    return _kaggle(bundle, args, accelerator)


def _target(args: argparse.Namespace) -> str:
    """Where the run goes; --resume is local only, Kaggle needs credentials (usage errors: 2)."""
    target = args.target
    if args.resume is not None:
        if target == "kaggle" or args.sweep:
            raise BundleError("--resume continues one local run; resuming on Kaggle or a sweep is not "
                              "supported (push a new run instead).", exit_code=2)
        return "local"
    if target == "auto":
        target = "kaggle" if has_credentials() else "local"
    if target == "kaggle" and not args.dry_run and not has_credentials():
        raise KaggleError(CREDENTIALS_HELP, exit_code=2)
    return target


def _run_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings of one run: the command line's, a time-stamped run_id unless given, and with
    --resume the settings the run saved underneath."""
    chosen = _settings(args)
    if args.resume is not None:
        return {**_resumed_settings(args.runs_dir, args.resume), **chosen, "run_id": args.resume,
                "resume": True}
    if chosen.get("run_id") == "":
        raise BundleError("--run-id must not be empty: it names the run's folder under runs/ (leave it "
                          "out for a time-stamped one).", exit_code=2)
    chosen.setdefault("run_id", f"{time.strftime('%Y%m%d-%H%M%S')}-{args.slug.split('/')[-1]}")
    return chosen


def _resumed_settings(runs_dir: Path, run_id: str) -> dict[str, Any]:
    """The settings of the local run runs/RUN_ID (its config.json), by dotted name."""
    from lib.config import ConfigError
    from lib.rl.run_config import RunConfig

    path = runs_dir / run_id / "config.json"
    try:
        saved = RunConfig.from_dict(json.loads(path.read_text())).to_dict()
    except (OSError, ValueError, ConfigError) as exc:
        raise BundleError(f"cannot resume {run_id}: {path} is missing or unreadable ({exc}); --resume "
                          f"takes the RUN_ID of a local run under {runs_dir}/.", exit_code=2) from None
    return {name: _lookup(saved, name) for name in run_options()}


def _lookup(nested: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        nested = nested[part]
    return nested


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
    check_clean(REPO_ROOT / "lib", require_clean=not args.allow_dirty)  # once, before any push
    def push_one(c: sweep_mod.Combination) -> tuple[str, int | None]:
        ref = _ref(c.slug, True)
        bundle = build_bundle(resolve_parameters({"config": plan.settings_of(c)}), args.build_dir / c.slug,
                              ref, accelerator, require_clean=not args.allow_dirty)
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


def _poll_interval(text: str) -> float:
    """At least Policy.min_poll_s (5 s; SIGNALS_KAGGLE_POLICY can lower it for tests)."""
    floor = Policy.from_env().min_poll_s
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value >= floor or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be at least {floor:g} seconds (Kaggle rate-limits faster "
                                         f"polling), got {text!r}")
    return value


def _accelerator_name(text: str) -> str:
    if text.lower() in ("none", "cpu") or text in ACCELERATORS or text in RETIRED:
        return text
    raise argparse.ArgumentTypeError(f"unknown machine shape {text!r}: use one of {', '.join(ACCELERATORS)} "
                                     "or 'none'")


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


def _local(bundle: Bundle, runs_dir: Path, automatic: bool, resume: bool = False) -> int:
    run_dir = runs_dir / str(bundle.parameters["config"]["run_id"])
    why = "--resume" if resume else "no Kaggle credentials are configured" if automatic else "--target local"
    print(f"{RULE}\nLOCAL RUN ({why}): the notebook runs HERE, not on Kaggle.\n  outputs: {run_dir}/",
          flush=True)
    _describe(bundle, "  bundle:")
    print(RULE, flush=True)
    start = time.monotonic()
    result = run_local(bundle, run_dir, resume=resume)
    seconds = time.monotonic() - start
    print(RULE)
    if result.status == "interrupted":
        print(f"LOCAL RUN INTERRUPTED (Ctrl-C) after {seconds:.0f} s: its log and last checkpoint are in "
              f"{run_dir}/; continue with  python push_kernel.py --resume {run_dir.name}\n{RULE}")
        return 130
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
    if len(result.versions) > 1:
        listed = ", ".join(map(str, result.versions))
        print(f"warning: this push made {len(result.versions)} versions ({listed}), each a session of its "
              "own: cancel the extra ones on the kernel's page.", file=sys.stderr)
    if not args.wait:
        print("It runs on Kaggle now. When it is done: python fetch_logs.py")
        return 0
    versioned = f"{result.ref}/{result.version}" if result.version else result.ref
    deadline = args.wait_deadline or (args.timeout or KAGGLE_MAX_SESSION_S) + WAIT_MARGIN_S
    print(f"Waiting for {versioned} to end (COMPLETE, ERROR or CANCEL_ACKNOWLEDGED), at most "
          f"{deadline / 3600:.1f} h ...", flush=True)
    status, message = wait_for_completion(versioned, poll_s=args.poll_interval, deadline_s=deadline,
                                          on_poll=_show_poll)
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
