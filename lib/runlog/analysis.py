"""Where a run's time went, read from its log: builds, phases, throughput, warnings and ending.

The earlier system's Kaggle logs had to be read by hand to learn that the network was built nine
times, that most of the run was set-up, and that a run had silently died. This module answers
those questions from a stream of `LogLine`s (lib/runlog/reader.py): our `[event]` lines (docs/events.md)
when the run printed them, else the earlier system's human-readable lines, whose phases are
inferred from markers and Kaggle's time stamps. The result is a plain JSON-ready dict; a log
that ends without `run_end` is reported as cut off, never as a success.

Time is on one clock, the log's: seconds since the kernel started when Kaggle stamped the lines
(an event's `t` is shifted by the offset seen on the first stamped event), else the run's `t`.
"""

from __future__ import annotations

import re
import time as wallclock
from collections import deque
from pathlib import Path
from typing import Any

from lib.obs.events import PREFIX, parse_line
from lib.runlog.legacy import Legacy
from lib.runlog.reader import LogLine, LogReader
from lib.runlog.values import MAX_ITEMS, Bounded, Interval, clean_event, difference, number, ratio, rounded

EXPECTED_BUILDS = 1
PHASES = ("setup", "config", "build", "sanity", "train", "eval", "baselines", "save")
# The work a run is for (docs/PERFORMANCE.md): everything else is overhead.
USEFUL = ("train", "eval", "baselines")
STARTUP = "start-up"  # before the first phase: kernel start, bootstrap, imports
BETWEEN = "between phases"
MAX_CATEGORIES = 200
MAX_PHASE_ROWS = 20
OTHER_PHASES = "other phases "
CONTEXT_LINES = 3

_EXCEPTION = re.compile(r"^\s*(?:[\w.]+(?:Error|Exception|Interrupt)|Killed)\b")
# (category, a substring that must be present, pattern); "" takes the category from the match.
_WARNINGS = (
    ("numba_low_occupancy", "NumbaPerf", re.compile(r"NumbaPerformanceWarning: Grid size (\d+)")),
    ("tensorboard_notf", "notf", re.compile(r"cannot import name 'notf'")),
    ("protobuf_getprototype", "GetPrototype", re.compile(r"'MessageFactory' object has no attribute 'GetPr")),
    ("", "Warning", re.compile(r"\b(\w+Warning): ")),
)


class Analysis:
    """Accumulates what one log says; `feed` each line, then `result()` the analysis dict."""

    def __init__(self) -> None:
        self.lines = 0
        self.clock: float | None = None
        self.latest: float | None = None
        self.offset: float | None = None
        self.events = 0
        self.bad_events = 0
        self.bad_values = Bounded()  # "event: field, ..." for fields of the wrong type, dropped
        self.unknown: dict[str, int] = {}
        self.last_event: dict[str, Any] | None = None
        self.last_event_at: float | None = None
        self.run: dict[str, Any] = {}
        self.run_starts = 0
        self.run_end: dict[str, Any] | None = None
        self.backend: dict[str, Any] = {}
        self.launches: dict[str, Any] = {}
        self.timeline = Timeline()
        self.builds = Bounded()
        self.compile = {"count": 0, "seconds": 0.0, "cached": 0}
        self.sanity = Bounded()
        self.train: dict[str, Any] = {}
        self.train_events = 0
        self.eval_progress = 0
        self.metrics: dict[str, dict[str, Any]] = {}
        self.checkpoints = Bounded()
        self.warnings = Warnings()
        self.legacy = Legacy()
        self.context: deque[str] = deque(maxlen=CONTEXT_LINES)
        self.tail: deque[str] = deque(maxlen=CONTEXT_LINES)

    def feed(self, line: LogLine) -> None:
        self.lines += 1
        if line.time is not None:
            self._tick(line.time)
        text = line.text
        if text.startswith(PREFIX):
            record = parse_line(text)
            if record is not None and number(record.get("t")) is not None:
                self._event(record, line.time)
                return
            self.bad_events += 1
        if not text.strip():
            return
        self.tail.append(text)
        if self.warnings.feed(text) or self.legacy.feed(text, self.clock, self.context):
            return
        self.context.append(text.strip())

    def _tick(self, at: float) -> None:
        self.clock = at
        self.latest = at if self.latest is None else max(self.latest, at)

    def _event(self, raw: dict[str, Any], stamped: float | None) -> None:
        record, bad = clean_event(raw)
        if bad:
            self.bad_values.add(f"{record['event'][:60]}: {', '.join(bad[:5])}")
        t = float(record["t"])
        if stamped is not None and self.offset is None:
            self.offset = stamped - t
        at = t + (self.offset or 0.0)
        self._tick(at if stamped is None else stamped)
        self.events += 1
        name = str(record["event"])
        self.last_event, self.last_event_at = {"event": name, "t": t}, at
        handler = getattr(self, "_on_" + name, None) if name in _HANDLED else None
        if handler is None:
            if len(self.unknown) < MAX_CATEGORIES or name in self.unknown:
                self.unknown[name] = self.unknown.get(name, 0) + 1
            return
        handler(record, at)

    def _on_run_start(self, record: dict[str, Any], at: float) -> None:
        self.run_starts += 1
        if self.run_starts == 1:
            keys = ("run_id", "commit", "backend", "device", "params", "versions")
            self.run = {k: record[k] for k in keys if k in record}
            self.run["started_at"] = at

    def _on_backend(self, record: dict[str, Any], at: float) -> None:
        self.backend = {k: record[k] for k in ("requested", "backend", "device", "reason") if k in record}

    def _on_phase_start(self, record: dict[str, Any], at: float) -> None:
        self.timeline.start(str(record.get("phase", "?")), at)

    def _on_phase_end(self, record: dict[str, Any], at: float) -> None:
        self.timeline.end(str(record.get("phase", "?")), at, number(record.get("seconds")))

    def _on_network_build(self, record: dict[str, Any], at: float) -> None:
        keys = ("n", "key", "links", "nodes", "cells", "scenarios", "backend", "seconds", "bytes")
        seconds = number(record.get("seconds"))
        item = {"at": at - (seconds or 0.0), "end": at, **{k: record[k] for k in keys if k in record}}
        item["phase"] = self.timeline.current()
        item["context"] = list(self.context)
        self.builds.add(item)

    def _on_kernel_compile(self, record: dict[str, Any], at: float) -> None:
        self.compile["count"] += 1
        self.compile["seconds"] += number(record.get("seconds")) or 0.0
        self.compile["cached"] += bool(record.get("cached"))

    def _on_sanity(self, record: dict[str, Any], at: float) -> None:
        keys = ("check", "passed", "detail")
        self.sanity.add({k: record.get(k) for k in keys})

    def _on_train_progress(self, record: dict[str, Any], at: float) -> None:
        self.train = {k: v for k, v in record.items() if k not in ("event", "t")}
        self.train_events += 1

    def _on_eval_progress(self, record: dict[str, Any], at: float) -> None:
        self.eval_progress += 1

    def _on_eval_result(self, record: dict[str, Any], at: float) -> None:
        controller = str(record.get("controller", "?"))
        self.metrics[controller] = {k: v for k, v in record.items() if k not in ("event", "t", "controller")}

    def _on_checkpoint(self, record: dict[str, Any], at: float) -> None:
        self.checkpoints.add({"path": record.get("path"), "steps": record.get("steps"), "at": at})

    def _on_warning(self, record: dict[str, Any], at: float) -> None:
        self.warnings.event(str(record.get("category", "?")), record.get("count"), record.get("message"))

    def _on_run_end(self, record: dict[str, Any], at: float) -> None:
        self.run_end = {"status": record.get("status"), "seconds": record.get("seconds"), "at": at,
                        "builds": record.get("builds")}
        if record.get("error") is not None:
            self.run_end["error"] = record.get("error")
        if record.get("launches") is not None:
            grids = record.get("grid_sizes")
            grids = grids if isinstance(grids, dict) else {}
            self.launches = {
                "launches": record.get("launches"), "decisions": record.get("decisions"),
                "per_decision": record.get("launches_per_decision"),
                "grid_sizes": {str(k): v for k, v in grids.items() if number(v) is not None},
            }

    def result(self) -> dict[str, Any]:
        """The analysis as a dict of plain values (NaN possible: lib.report.to_json writes strict JSON).

        Keys: kind ("events", "legacy" or "plain"), notes, lines, events, malformed_events,
        unknown_events, run (from run_start), backend (from the backend event: requested, backend,
        device, reason), launches (from run_end: launches, decisions, per_decision, grid_sizes),
        builds (count, expected, redundant, seconds, lost_s,
        items with phase and preceding lines), timeline (total_s, inferred, phases with start,
        seconds, share, count, open, plus "start-up" and "between phases"; intervals; useful_s
        (train, eval and baselines), useful_share,
        overhead_ratio), compile, sanity, throughput, metrics (per controller), checkpoints,
        warnings (category, count, message, source, grid_sizes), legacy (GPU memory lines, SB3
        tables, Eval lines, training completion) and ending (status completed, error,
        interrupted, cut_off or empty, with the error or the last phase and event).
        """
        end = self._end()
        inferred = not self.events and end is not None
        intervals = self.legacy.intervals(end) if inferred else self.timeline.closed(end)
        kind = "events" if self.events else ("legacy" if self.legacy.seen else "plain")
        return {
            "kind": kind,
            "notes": self._notes(end),
            "lines": self.lines,
            "events": self.events,
            "malformed_events": self.bad_events,
            "unknown_events": dict(self.unknown),
            "run": self.run,
            "backend": self.backend,
            "launches": self.launches,
            "builds": self._builds(),
            "timeline": timeline(intervals, end, inferred),
            "compile": self.compile,
            "sanity": self._sanity(),
            "throughput": self._throughput(intervals),
            "metrics": self.metrics or self.legacy.metrics(),
            "checkpoints": self.checkpoints.total,
            "warnings": self.warnings.result(),
            "legacy": self.legacy.result() if self.legacy.seen else None,
            "ending": self._ending(),
        }

    def _notes(self, end: float | None) -> list[str]:
        notes = []
        if self.bad_events:
            notes.append(f"{self.bad_events} malformed [event] line(s) skipped")
        if self.bad_values.total:
            notes.append(f"{self.bad_values.total} event(s) with fields of the wrong type (read as missing), "
                         f"first: {self.bad_values[0]}")
        if self.run_starts > 1:
            notes.append(f"{self.run_starts} run_start events: several runs in one log, the first is shown")
        if end is None and self.lines:
            notes.append("no time stamps in the log: no timeline")
        if self.unknown:
            notes.append("unknown events (newer format?): " + ", ".join(sorted(self.unknown)))
        said = self.run_end and self.run_end["builds"]
        if said is not None and said != self.builds.total:
            notes.append(f"run_end counts {said:.0f} build(s) but the log holds {self.builds.total} "
                         "network_build event(s): builds in other processes, or lines lost")
        return notes

    def _end(self) -> float | None:
        ends = [x for x in (self.latest, self.run_end and self.run_end["at"]) if x is not None]
        return max(ends) if ends else None

    def _builds(self) -> dict[str, Any]:
        items = self.builds if self.events else self.legacy.builds
        seconds = [number(item.get("seconds")) for item in items]
        lost = sum(s for s in seconds[EXPECTED_BUILDS:] if s is not None)
        known = [s for s in seconds if s is not None]
        return {
            "count": items.total,
            "expected": EXPECTED_BUILDS,
            "redundant": max(0, items.total - EXPECTED_BUILDS),
            "seconds": round(sum(known), 3) if known else None,
            "lost_s": round(lost, 3),
            "items": items,
        }

    def _sanity(self) -> dict[str, Any]:
        failed = [c for c in self.sanity if c.get("passed") is not True]
        return {"checks": self.sanity.total, "failed": failed}

    def _throughput(self, intervals: list[Interval]) -> dict[str, Any]:
        if not self.events:
            return self.legacy.throughput()
        train_s = _phase_seconds(intervals, "train")
        steps = number(self.train.get("steps"))
        episodes = sum(number(m.get("episodes")) or 0 for m in self.metrics.values())
        return {
            "train_steps": steps,
            "total_steps": self.train.get("total"),
            "train_s": train_s,
            "steps_per_s": ratio(steps, train_s),
            "reported_steps_per_s": self.train.get("steps_per_s"),
            "train_progress_events": self.train_events,
            "eval_episodes": episodes,
            "eval_progress_events": self.eval_progress,
        }

    def _ending(self) -> dict[str, Any]:
        if self.lines == 0:
            return {"status": "empty", "detail": "nothing could be read from the log"}
        if self.run_end is not None:
            return _finished(self.run_end)
        ending: dict[str, Any] = {"status": "cut_off", "last_line": self.tail[-1] if self.tail else None}
        if self.events:
            ending["last_phase"] = self.timeline.current() or self.timeline.last_phase()
            ending["last_event"] = self.last_event
            ending["silent_after_last_event_s"] = rounded(difference(self._end(), self.last_event_at))
            ending["detail"] = "the log ends without a run_end event: the run died or was cut off"
            return ending
        error = next((x for x in reversed(self.tail) if _EXCEPTION.match(x)), None)
        if error is not None:
            return {"status": "error", "error": error.strip(), "detail": "the log ends with an exception"}
        if not self.legacy.seen:
            return {"status": "unknown", "last_line": ending["last_line"],
                    "detail": "no [event] line and no known marker: this log does not say how the run ended"}
        return {"status": "unknown", "last_phase": self.legacy.phase_now(), "last_line": ending["last_line"],
                "detail": "the earlier system's logs never say how a run ended (no run_end event)"}


_HANDLED = {
    "run_start", "backend", "phase_start", "phase_end", "network_build", "kernel_compile", "sanity",
    "train_progress", "eval_progress", "eval_result", "checkpoint", "warning", "run_end",
}




class Timeline:
    """Phase intervals from phase_start/phase_end pairs; phases may nest (eval inside train)."""

    def __init__(self) -> None:
        self.open: list[tuple[str, float]] = []
        self.intervals = Bounded()

    def start(self, phase: str, at: float) -> None:
        if len(self.open) < MAX_ITEMS:  # bounded like everything else a log can make grow
            self.open.append((phase, at))

    def end(self, phase: str, at: float, seconds: float | None) -> None:
        for i in range(len(self.open) - 1, -1, -1):
            if self.open[i][0] == phase:
                start = self.open.pop(i)[1]
                self.intervals.add((phase, min(start, at), at, False))
                return
        if seconds is not None:
            self.intervals.add((phase, at - max(seconds, 0.0), at, False))

    def current(self) -> str | None:
        return self.open[-1][0] if self.open else None

    def last_phase(self) -> str | None:
        return self.intervals[-1][0] if self.intervals else None

    def closed(self, end: float | None) -> list[Interval]:
        """All intervals, phases still open at the end of the log closed there and marked open."""
        stop = end if end is not None else 0.0
        return list(self.intervals) + [(phase, at, max(at, stop), True) for phase, at in self.open]


class Warnings:
    """Warnings grouped by category, from raw log lines and from `warning` events."""

    def __init__(self) -> None:
        self.groups: dict[str, dict[str, Any]] = {}

    def feed(self, text: str) -> bool:
        """Count `text` when it is a known warning line; True when it was one (or its echo line)."""
        if text.lstrip().startswith(("warn(", "warnings.warn(")):
            return True
        for category, needle, pattern in _WARNINGS:
            if needle not in text:
                continue
            match = pattern.search(text)
            if match is None:
                continue
            name = category or match.group(1)
            group = self._group(name, text.strip(), "log")
            group["count"] += 1
            if category == "numba_low_occupancy":
                group.setdefault("grid_sizes", set()).add(int(match.group(1)))
            return True
        return False

    def event(self, category: str, count: Any, message: Any) -> None:
        """A `warning` event: the first occurrence, or the count at the end (the larger wins)."""
        group = self._group(category, message, "event")
        group["count"] = max(group["count"], int(number(count) or 1))

    def _group(self, name: str, message: Any, source: str) -> dict[str, Any]:
        key = f"{source}:{name}"
        if key not in self.groups and len(self.groups) >= MAX_CATEGORIES:
            key, name = f"{source}:other", "other"
        fresh = {"category": name, "count": 0, "message": message, "source": source}
        return self.groups.setdefault(key, fresh)

    def result(self) -> list[dict[str, Any]]:
        groups = sorted(self.groups.values(), key=lambda g: -g["count"])
        return [{**g, "grid_sizes": sorted(g["grid_sizes"])} if "grid_sizes" in g else g for g in groups]


def timeline(intervals: list[Interval], end: float | None, inferred: bool) -> dict[str, Any]:
    """Phase rows (start, seconds, share), the time before the first phase (start-up: kernel,
    bootstrap, imports) and between phases, the useful share and the overhead ratio.

    Beyond MAX_PHASE_ROWS names, the rarer names share one row (a log of 20,000 distinct phase
    names once took 45 s and 451 MB to report, and its chart was unreadable)."""
    if end is None:
        return {"total_s": None, "inferred": inferred, "phases": [], "intervals": []}
    intervals = _fold_phases(intervals)
    total = max(end, max((b for _, _, b, _ in intervals), default=0.0))
    by_name: dict[str, list[Interval]] = {}
    for item in intervals:
        by_name.setdefault(item[0], []).append(item)
    others = sorted(set(by_name) - set(PHASES), key=lambda n: (n.startswith(OTHER_PHASES), n))
    rows = [_phase_row(name, by_name[name], total) for name in [p for p in PHASES if p in by_name] + others]
    covered = _union([(a, b) for _, a, b, _ in intervals])
    startup = min((a for _, a, _, _ in intervals), default=total)
    if startup > 0:
        rows.insert(0, _gap_row(STARTUP, 0.0, startup, total))
    rows.append(_gap_row(BETWEEN, None, total - covered - startup, total))
    useful = _union([(a, b) for p, a, b, _ in intervals if p in USEFUL])
    return {
        "total_s": rounded(total),
        "inferred": inferred,
        "phases": rows,
        "intervals": [
            {"phase": p, "start": rounded(a), "end": rounded(b), "open": o} for p, a, b, o in intervals
        ],
        "useful_s": rounded(useful),
        "useful_share": rounded(ratio(useful, total)),
        "overhead_ratio": rounded(ratio(total - useful, useful)),
    }


def _gap_row(name: str, start: float | None, seconds: float, total: float) -> dict[str, Any]:
    """A row for time no phase covers: start-up (before the first phase) or between phases."""
    return {"phase": name, "start": start, "seconds": rounded(max(seconds, 0.0)),
            "share": rounded(ratio(max(seconds, 0.0), total)), "count": None, "open": False}


def _fold_phases(intervals: list[Interval]) -> list[Interval]:
    """The intervals with names past the first MAX_PHASE_ROWS (known phases first, then by
    count) renamed to one 'other phases (N names)'."""
    counts: dict[str, int] = {}
    for name, *_ in intervals:
        counts[name] = counts.get(name, 0) + 1
    if len(counts) <= MAX_PHASE_ROWS:
        return intervals
    ranked = sorted(counts, key=lambda n: (n not in PHASES, -counts[n], n))
    kept = set(ranked[:MAX_PHASE_ROWS - 1])
    other = f"{OTHER_PHASES}({len(counts) - len(kept)} names)"
    return [item if item[0] in kept else (other, *item[1:]) for item in intervals]


def _phase_row(name: str, mine: list[Interval], total: float) -> dict[str, Any]:
    seconds = _union([(a, b) for _, a, b, _ in mine])
    return {
        "phase": name,
        "start": rounded(min(a for _, a, _, _ in mine)),
        "seconds": rounded(seconds),
        "share": rounded(ratio(seconds, total)),
        "count": len(mine),
        "open": any(o for *_, o in mine),
    }


def _phase_seconds(intervals: list[Interval], name: str) -> float | None:
    mine = [(a, b) for p, a, b, _ in intervals if p == name]
    return rounded(_union(mine)) if mine else None


def _union(spans: list[tuple[float, float]]) -> float:
    """Length of the union of [a, b] spans (nested phases are not counted twice)."""
    total, reach = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b > reach:
            total += b - max(a, reach)
            reach = b
    return total


def _finished(run_end: dict[str, Any]) -> dict[str, Any]:
    status = {"ok": "completed", "error": "error", "interrupted": "interrupted"}.get(str(run_end["status"]))
    ending = {"status": status or "error", "seconds": run_end.get("seconds")}
    if status is None:
        ending["error"] = f"run_end with unknown status {run_end['status']!r}"
    if "error" in run_end:
        ending["error"] = run_end["error"]
    return ending


def analyse(lines: Any) -> dict[str, Any]:
    """The analysis of an iterable of LogLine."""
    state = Analysis()
    for line in lines:
        state.feed(line)
    return state.result()


def analyse_path(path: Path | str, now: float | None = None) -> dict[str, Any]:
    """Stream the log at `path` and return its analysis, with how it was read and any notes."""
    reader = LogReader(path)
    result = analyse(reader)
    notes = reader.summary_notes() + result.pop("notes")
    result = {"source": str(path), "format": reader.format, "notes": notes, **result}
    ending = result["ending"]
    if ending["status"] == "empty" and reader.format in ("binary", "unreadable"):
        ending["status"] = "unreadable"
    if ending["status"] in ("empty", "unreadable") and reader.notes:
        ending["detail"] = "; ".join(reader.notes)
    if ending["status"] == "cut_off":
        ending["file_age_s"] = _file_age(Path(path), now)
    return result


def _file_age(path: Path, now: float | None) -> float | None:
    """Seconds since the log file was last written: a local run silent for long has died."""
    try:
        return round((now if now is not None else wallclock.time()) - path.stat().st_mtime, 1)
    except OSError:
        return None
