"""Pull a run's log and show where its time went: builds, phases, throughput, warnings, ending.

    python fetch_logs.py                       the latest run: the last Kaggle push (runs/last_push.json)
                                               when newer than the newest folder in runs/, else that folder
    python fetch_logs.py OWNER/SLUG[/VERSION]  download the kernel's outputs to runs/<slug>-v<version>/
    python fetch_logs.py PATH                  a log file (Kaggle JSON array or text) or a run folder
    python fetch_logs.py --compare A B         two runs (files or folders) side by side
    python fetch_logs.py --sweep NAME          a sweep (push_kernel.py --sweep): download what has
                                               finished, the state of every run, the results per level

The analysis is printed and written next to the log (or to --out) as analysis.json, analysis.md
and timeline.png. Exit codes: 0 the log was analysed (notes say what could not be read); 1 nothing
could be read (empty, binary or missing log); 2 bad argument, missing Kaggle credentials or unknown
kernel.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lib.remote import kaggle_api as kaggle_io
from lib.runlog.analysis import analyse_path
from lib.runlog.reader import choose_target, find_log
from lib.runlog.report import compare, render_compare, render_text, to_json, write_outputs

RUNS_DIR = Path(__file__).resolve().parent / "runs"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    say = _printer(args.json)
    try:
        if args.sweep:
            return _sweep(args.sweep, args.runs_dir, args.json, say)
        if args.compare:
            return _compare(args.compare, args.json)
        kind, target = choose_target(args.target, args.runs_dir)
        kernel = _fetch(str(target), args.runs_dir, say) if kind == "kaggle" else None
        folder = kernel["folder"] if kernel else Path(target)
        log = find_log(folder) if folder.is_dir() else folder
    except (ValueError, kaggle_io.KaggleError) as error:
        _error(str(error))
        return getattr(error, "exit_code", 2)
    if log is None:
        _error(f"no *.log or *.txt file in {folder}")
        return 1
    analysis = analyse_path(log)
    if kernel:
        analysis["kernel"] = {k: kernel[k] for k in ("ref", "status", "failure")}
        if kernel["status"] not in kaggle_io.KNOWN_STATUSES:
            analysis["notes"].append(f"Kaggle reports the status {kernel['status']!r}, which this tool does "
                                     "not know: its outputs may be partial; see the kernel's page")
        elif kernel["status"] not in kaggle_io.FINAL_STATUSES:
            analysis["notes"].append(f"the kernel is still {kernel['status']}: its outputs may be partial "
                                     "or from an earlier version; fetch again when it has ended")
    _write(analysis, args.out or (folder if folder.is_dir() else log.parent), say)
    print(to_json(analysis) if args.json else render_text(analysis))
    return 0 if analysis["lines"] else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("target", nargs="?", help="log file, run folder or OWNER/SLUG[/VERSION]")
    parser.add_argument("--compare", nargs=2, metavar=("A", "B"), help="compare two runs (files or folders)")
    parser.add_argument("--sweep", metavar="NAME", help="report on a sweep of push_kernel.py --sweep")
    parser.add_argument("--json", action="store_true", help="print only the machine-readable analysis")
    parser.add_argument("--out", type=Path, help="folder for the analysis files (default: the run folder)")
    parser.add_argument("--runs-dir", type=Path, default=RUNS_DIR, help="where runs live (default: ./runs)")
    return parser


def _printer(quiet_stdout: bool):
    """Messages go to stderr when stdout carries JSON."""
    stream = sys.stderr if quiet_stdout else sys.stdout
    return lambda message: print(message, file=stream, flush=True)


def _error(message: str) -> None:
    print(f"fetch_logs: {message}", file=sys.stderr, flush=True)


def _fetch(ref: str, runs_dir: Path, say) -> dict[str, Any]:
    """Print the kernel's status, download its outputs into a new run folder."""
    try:
        status, failure = kaggle_io.kernel_status(ref)
        say(f"Kaggle kernel {ref}: {status}" + (f": {failure}" if failure else ""))
        folder = kaggle_io.download_output(ref, runs_dir)
    except kaggle_io.KaggleError as error:
        raise kaggle_io.KaggleError(f"kernel {ref}: {error}", error.exit_code) from error
    say(f"outputs downloaded to {folder}")
    return {"ref": ref, "status": status, "failure": failure, "folder": folder}


def _write(analysis: dict[str, Any], folder: Path, say) -> None:
    try:
        written = write_outputs(analysis, folder)
    except OSError as error:
        analysis["notes"].append(f"could not write the analysis files to {folder}: {error}")
        return
    say("wrote " + ", ".join(str(p) for p in written))


def _sweep(name: str, runs_dir: Path, as_json: bool, say) -> int:
    from lib.remote import sweep_results

    text, aggregated = sweep_results.report(
        runs_dir, name, kaggle_io.kernel_status, kaggle_io.download_output, say
    )
    print(to_json(aggregated) if as_json else text)
    return 0


def _compare(targets: list[str], as_json: bool) -> int:
    analyses = []
    for target in targets:
        path = Path(target)
        log = find_log(path) if path.is_dir() else path
        if log is None or not log.exists():
            raise ValueError(f"'{target}' is not a log file or a run folder with a log")
        analyses.append(analyse_path(log))
    comparison = compare(*analyses)
    print(to_json(comparison) if as_json else render_compare(comparison))
    return 0 if all(a["lines"] for a in analyses) else 1


if __name__ == "__main__":
    sys.exit(main())
