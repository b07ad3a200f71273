"""Show an analysis (lib/runlog/analysis.py): terminal tables, analysis.md/.json, a timeline chart,
comparisons.

The terminal text and the Markdown file are rendered from the same list of sections so the two
never disagree. The chart is a horizontal bar per phase on the run's clock (nested phases such as
an evaluation inside training show as overlapping bars), with the start-up and the time between
phases as grey bars, so the share of a run spent outside training, evaluation and baselines is
visible at a glance. One story throughout: one total (the log's span, start-up included), one
throughput figure with its definition, overhead as in docs/PERFORMANCE.md.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PLOT_SIZE_PX = (1000, 400)
PLOT_DPI = 100
GAP_SHARE = 0.002  # gaps between phases shorter than this share of the run are not drawn
GREY = ("start-up", "between phases")
_STATUS = {
    "completed": "COMPLETED",
    "error": "ERROR",
    "interrupted": "INTERRUPTED",
    "cut_off": "CUT OFF (no run_end: the run died or the log was cut)",
    "unknown": "ENDING UNKNOWN",
    "empty": "NOTHING READ",
    "unreadable": "NOTHING READ",
}


@dataclass
class Section:
    """A titled block: free lines, then an optional table."""

    title: str
    lines: list[str] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


def sections(analysis: dict[str, Any]) -> list[Section]:
    """The report's sections, in reading order."""
    out = [_summary(analysis), _builds(analysis), _timeline(analysis), _throughput(analysis)]
    out += [_metrics(analysis), _warnings(analysis)]
    return [s for s in out if s.lines or s.rows]


def render_text(analysis: dict[str, Any]) -> str:
    """The terminal report: aligned plain-text tables."""
    parts = []
    for section in sections(analysis):
        parts.append(f"== {section.title} ==")
        parts += [f"  {line}" for line in section.lines]
        if section.rows:
            parts += ["  " + row for row in _aligned(section.headers, section.rows)]
        parts.append("")
    return "\n".join(parts)


def render_markdown(analysis: dict[str, Any]) -> str:
    """analysis.md: the same sections as Markdown, with the timeline chart embedded."""
    parts = [f"# Run analysis: {analysis.get('run', {}).get('run_id') or Path(analysis['source']).name}", ""]
    for section in sections(analysis):
        parts += [f"## {section.title}", ""]
        parts += [f"- {line}" for line in section.lines]
        if section.lines:
            parts.append("")
        if section.rows:
            parts.append("| " + " | ".join(section.headers) + " |")
            parts.append("|" + "---|" * len(section.headers))
            parts += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in section.rows]
            parts.append("")
        if section.title == "Timeline" and analysis["timeline"]["total_s"]:
            parts += ["![timeline](timeline.png)", ""]
    return "\n".join(parts)


def write_outputs(analysis: dict[str, Any], folder: Path) -> list[Path]:
    """Write analysis.json, analysis.md and (when the log has times) timeline.png into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "analysis.json", folder / "analysis.md"]
    written[0].write_text(to_json(analysis) + "\n", encoding="utf-8")
    written[1].write_text(render_markdown(analysis), encoding="utf-8")
    if analysis["timeline"]["total_s"]:
        written.append(plot_timeline(analysis, folder / "timeline.png"))
    return written


def to_json(data: Any) -> str:
    """Strict JSON (NaN and infinities become null)."""
    return json.dumps(_finite(data), indent=1, allow_nan=False, default=str)


def plot_timeline(analysis: dict[str, Any], path: Path) -> Path:
    """A horizontal bar chart of the phases over the run's clock, PLOT_SIZE_PX pixels."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure  # no pyplot: leaves the caller's backend alone

    timeline = analysis["timeline"]
    names = [row["phase"] for row in timeline["phases"]]
    spans = {name: [] for name in names}
    for item in timeline["intervals"]:
        spans[item["phase"]].append((item["start"], item["end"] - item["start"], item["open"]))
    gaps = _gaps(timeline)
    spans.setdefault("start-up", [])
    spans["start-up"] += [(a, b - a, False) for a, b in gaps if a == 0.0]
    spans["between phases"] = [(a, b - a, False) for a, b in gaps if a > 0.0]
    fig = Figure(figsize=(PLOT_SIZE_PX[0] / PLOT_DPI, PLOT_SIZE_PX[1] / PLOT_DPI), dpi=PLOT_DPI)
    ax = fig.subplots()
    colors = colormaps["tab10"]
    for y, name in enumerate(reversed(names)):
        color = "0.75" if name in GREY else colors(names.index(name) % 10)
        for still_open in (False, True):  # one collection per row and kind: fast for many spans
            bars = [(start, width) for start, width, o in spans[name] if o == still_open]
            ax.broken_barh(bars, (y - 0.4, 0.8), facecolors=color, hatch="//" if still_open else None,
                           edgecolor="0.3")
    ax.set_yticks(range(len(names)), list(reversed(names)))
    ax.set_xlabel("seconds since the log started (hatched: still open when the log ended)")
    useful = _percent(timeline["useful_share"])
    ax.set_title(f"{_title(analysis)}: {timeline['total_s']:.1f} s, useful (train, eval, baselines) {useful}")
    ax.set_xlim(0, max(timeline["total_s"], 1e-9))
    fig.subplots_adjust(left=0.12, right=0.98, top=0.9, bottom=0.14)
    fig.savefig(path, dpi=PLOT_DPI)
    return path


COMPARED_METRICS = ("mean_delay_s", "throughput_veh", "mean_queue_veh", "mean_reward")


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two analyses side by side: the run's numbers (A, B, change B - A), each metric as one
    table with the same controllers on the same rows, and the parameters that differ."""
    rows = [
        ("builds", a["builds"]["count"], b["builds"]["count"]),
        ("build time lost (s)", a["builds"]["lost_s"], b["builds"]["lost_s"]),
        ("total (s)", a["timeline"]["total_s"], b["timeline"]["total_s"]),
    ]
    phases_a, phases_b = _phase_seconds(a), _phase_seconds(b)
    rows += [(f"{p} (s)", phases_a.get(p), phases_b.get(p)) for p in _union_keys(phases_a, phases_b)]
    for key in ("useful_share", "overhead_ratio"):
        rows.append((key.replace("_", " "), a["timeline"].get(key), b["timeline"].get(key)))
    for key in ("steps_per_s", "train_steps", "eval_episodes"):
        rows.append((key.replace("_", " "), a["throughput"].get(key), b["throughput"].get(key)))
    table = [{"item": item, "a": va, "b": vb, **_change(va, vb)} for item, va, vb in rows]
    controllers = _union_keys(a["metrics"], b["metrics"])
    metrics = {
        key: [{"controller": name, "a": _metric(a, name, key), "b": _metric(b, name, key),
               **_change(_metric(a, name, key), _metric(b, name, key))} for name in controllers]
        for key in COMPARED_METRICS
        if any(_metric(x, n, key) is not None for x in (a, b) for n in controllers)
    }
    endings = {"a": a["ending"]["status"], "b": b["ending"]["status"]}
    return {"a": a["source"], "b": b["source"], "endings": endings, "rows": table, "metrics": metrics,
            "parameters": _parameter_diff(a, b)}


def render_compare(comparison: dict[str, Any]) -> str:
    head = [f"A: {comparison['a']} ({comparison['endings']['a']})",
            f"B: {comparison['b']} ({comparison['endings']['b']})", ""]
    columns = ["A", "B", "change", "change %"]
    rows = [[r["item"], _fmt(r["a"]), _fmt(r["b"]), _signed(r["change"]), _percent(r["change_pct"], True)]
            for r in comparison["rows"]]
    out = head + ["== The runs =="] + _aligned(["", *columns], rows)
    for key, entries in comparison["metrics"].items():
        table = [[e["controller"], _fmt(e["a"]), _fmt(e["b"]), _signed(e["change"]),
                  _percent(e["change_pct"], True)] for e in entries]
        out += ["", f"== {key} per controller =="] + _aligned(["controller", *columns], table)
    params = comparison["parameters"]
    out += ["", "== Parameters that differ =="]
    out += (_aligned(["parameter", "A", "B"], [[p["name"], _fmt(p["a"]), _fmt(p["b"])] for p in params])
            if params else ["none (or neither log has run_start parameters)"])
    return "\n".join(out) + "\n"


def _metric(analysis: dict[str, Any], controller: str, key: str) -> Any:
    value = analysis["metrics"].get(controller, {}).get(key)
    return value if _is_number(value) else None


def _parameter_diff(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """The run_start parameters (dotted names) whose values differ between the two runs."""
    flat_a, flat_b = (_flatten((x.get("run") or {}).get("params") or {}) for x in (a, b))
    return [{"name": k, "a": flat_a.get(k), "b": flat_b.get(k)} for k in _union_keys(flat_a, flat_b)
            if flat_a.get(k) != flat_b.get(k)]


def _flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested parameters by dotted name (`env.sim.order`), as RunConfig names its settings."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _summary(analysis: dict[str, Any]) -> Section:
    run, ending = analysis.get("run") or {}, analysis["ending"]
    lines = [f"log: {analysis['source']} ({analysis['format']}, {analysis['lines']} lines, "
             f"{analysis['events']} events, kind: {analysis['kind']})"]
    if run:
        lines.append(f"run {run.get('run_id')} commit {run.get('commit')} backend {run.get('backend')} "
                     f"device {run.get('device')}")
    lines += _backend_lines(analysis)
    if analysis.get("kernel"):
        kernel = analysis["kernel"]
        lines.append(f"Kaggle kernel {kernel['ref']}: {kernel['status']}"
                     + (f" ({kernel['failure']})" if kernel.get("failure") else ""))
    lines.append("ending: " + _ending(ending, analysis["timeline"].get("total_s")))
    lines += [f"note: {note}" for note in analysis["notes"]]
    return Section("Summary", lines)


def _backend_lines(analysis: dict[str, Any]) -> list[str]:
    """Why the run is on its backend, its kernel launches, and a Kaggle GPU left idle, said where
    nobody misses them."""
    chosen = analysis.get("backend") or {}
    lines = []
    if chosen:
        why = f": {chosen['reason']}" if chosen.get("reason") else ""
        lines.append(f"backend {chosen.get('backend')} on {chosen.get('device')} "
                     f"(asked {chosen.get('requested')}){why}")
    counted = analysis.get("launches") or {}
    if counted:
        grids = ", ".join(f"{g} x{n}" for g, n in counted["grid_sizes"].items())
        lines.append(f"kernel launches: {_fmt(counted['launches'])} over {_fmt(counted['decisions'])} "
                     f"decision steps ({_fmt(counted['per_decision'])} per decision); "
                     f"grid sizes (blocks x launches): {grids or '-'}")
    for w in analysis["warnings"]:
        if w["category"] == "gpu_unused":
            lines.append(f"WARNING: the GPU sat idle: {w.get('message')}")
    return lines


def _ending(ending: dict[str, Any], total: float | None = None) -> str:
    text = _STATUS.get(ending["status"], ending["status"])
    if ending.get("seconds") is not None:
        text += f": the run took {_fmt(ending['seconds'])} s (run_start to run_end)"
        if total is not None and total > ending["seconds"]:
            text += f" of the log's {_fmt(total)} s"
    if ending.get("error"):
        text += f": {ending['error']}"
    if ending["status"] == "cut_off":
        last = ending.get("last_event") or {}
        text += f"; last phase {ending.get('last_phase')}"
        if last:
            text += f", last event {last.get('event')} at t={_fmt(last.get('t'))} s"
        if ending.get("silent_after_last_event_s") is not None:
            text += f", {_fmt(ending['silent_after_last_event_s'])} s of output after it"
        if ending.get("file_age_s") is not None:
            text += f"; log file last written {_fmt(ending['file_age_s'])} s ago"
    if ending.get("detail") and ending["status"] != "completed":
        text += f" ({ending['detail']})"
    return text


def _builds(analysis: dict[str, Any]) -> Section:
    builds = analysis["builds"]
    lines = [f"{builds['count']} network build(s), expected {builds['expected']}: "
             f"{builds['redundant']} redundant, {_fmt(builds['lost_s'])} s lost to them"]
    legacy = analysis.get("legacy") or {}
    if legacy:
        memory = legacy["gpu_memory"]
        lines.append(f"'GPU memory allocated' lines: {memory['allocations']}, "
                     f"{_fmt(memory['total_mb'])} MB in all")
    rows = [[str(i + 1), _fmt(b.get("at")), _fmt(b.get("seconds")), _memory(b), str(b.get("phase")),
             _clip(" / ".join(b.get("context") or []), 90)] for i, b in enumerate(builds["items"])]
    return Section("Builds", lines, ["#", "at (s)", "seconds", "memory", "phase", "preceding lines"], rows)


def _memory(build: dict[str, Any]) -> str:
    if build.get("bytes") is not None:
        return f"{build['bytes'] / 2**20:.1f} MB"
    return f"{_fmt(build['memory_mb'])} MB" if build.get("memory_mb") is not None else "-"


def _timeline(analysis: dict[str, Any]) -> Section:
    timeline = analysis["timeline"]
    if not timeline["total_s"]:
        return Section("Timeline", ["no time stamps in this log: no timeline"])
    how = "inferred from markers and Kaggle time stamps" if timeline["inferred"] else "from phase events"
    lines = [f"total {_fmt(timeline['total_s'])} s: the log's span, start-up included ({how})",
             f"useful (train, eval, baselines): {_fmt(timeline['useful_s'])} s = "
             f"{_percent(timeline['useful_share'])} of the total; overhead ratio "
             f"{_fmt(timeline['overhead_ratio'])} (all other time, start-up included, / useful time)",
             f"time lost to redundant builds: {_fmt(analysis['builds']['lost_s'])} s"]
    rows = [[r["phase"] + (" (open)" if r["open"] else ""), _fmt(r["start"]), _fmt(r["seconds"]),
             _percent(r["share"]), "#" * round(20 * (r["share"] or 0))] for r in timeline["phases"]]
    return Section("Timeline", lines, ["phase", "start (s)", "seconds", "share", ""], rows)


def _throughput(analysis: dict[str, Any]) -> Section:
    t = analysis["throughput"]
    lines = [f"training: {_fmt(t.get('steps_per_s'))} steps/s = {_fmt(t.get('train_steps'))} environment "
             f"steps over the {_fmt(t.get('train_s'))} s of the train phase (model set-up, checkpoints "
             f"and validations included)"]
    if t.get("train_steps") is None and t.get("train_s") is None:
        lines = ["training: no training seen in this log"]
    if t.get("eval_episodes") is not None:
        lines.append(f"evaluation episodes: {_fmt(t['eval_episodes'])}")
    if t.get("eval_lines") is not None:
        lines.append(f"'Eval num_timesteps=' lines: {t['eval_lines']}")
    legacy = analysis.get("legacy") or {}
    if legacy:
        sb3 = legacy["sb3"]
        lines.append(f"SB3 tables: {sb3['tables']} ({sb3['rows']} rows)")
    sanity = analysis["sanity"]
    if sanity["checks"]:
        failed = ", ".join(str(c.get("check")) for c in sanity["failed"]) or "none"
        lines.append(f"sanity checks: {sanity['checks']}, failed: {failed}")
    if analysis["compile"]["count"]:
        c = analysis["compile"]
        lines.append(f"kernel compiles: {c['count']} ({c['cached']} cached), {_fmt(c['seconds'])} s")
    return Section("Throughput", lines)


def _metrics(analysis: dict[str, Any]) -> Section:
    metrics = analysis["metrics"]
    keys = [k for k in _union_keys(*metrics.values()) if not k.endswith("_std")] if metrics else []
    rows = [[name] + [_with_std(values, k) for k in keys] for name, values in metrics.items()]
    return Section("Final metrics per controller", [], ["controller", *keys], rows)


def _with_std(values: dict[str, Any], key: str) -> str:
    std = values.get(key + "_std")
    return _fmt(values.get(key)) + (f" ± {_fmt(std)}" if _is_number(std) else "")


def _warnings(analysis: dict[str, Any]) -> Section:
    rows = []
    for w in analysis["warnings"]:
        detail = f"grid sizes {w['grid_sizes']}" if w.get("grid_sizes") else str(w.get("message") or "")
        rows.append([str(w["count"]), w["category"], w["source"], detail[-100:]])
    unknown = analysis["unknown_events"]
    lines = [f"unknown events: {', '.join(f'{k} x{v}' for k, v in unknown.items())}"] if unknown else []
    return Section("Warnings", lines, ["count", "category", "from", "detail"], rows)


def _gaps(timeline: dict[str, Any]) -> list[tuple[float, float]]:
    """The stretches of [0, total] that no phase covers (long enough to see on the chart)."""
    gaps, reach = [], 0.0
    for item in sorted(timeline["intervals"], key=lambda i: i["start"]):
        if item["start"] > reach:
            gaps.append((reach, item["start"]))
        reach = max(reach, item["end"])
    if timeline["total_s"] > reach:
        gaps.append((reach, timeline["total_s"]))
    visible = GAP_SHARE * timeline["total_s"]
    return [(a, b) for a, b in gaps if b - a >= visible]


def _phase_seconds(analysis: dict[str, Any]) -> dict[str, Any]:
    return {row["phase"]: row["seconds"] for row in analysis["timeline"]["phases"]}


def _union_keys(*dicts: dict[str, Any]) -> list[str]:
    keys: list[str] = []
    for d in dicts:
        keys += [k for k in d if k not in keys]
    return keys


def _change(a: Any, b: Any) -> dict[str, Any]:
    if not (_is_number(a) and _is_number(b)):
        return {"change": None, "change_pct": None}
    change = b - a
    return {"change": change, "change_pct": change / abs(a) if a else None}


def _aligned(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    return ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in [headers, *rows]]


def _clip(text: str, width: int) -> str:
    """The end of `text` (the lines just before a build say most about its cause)."""
    return text if len(text) <= width else "..." + text[-(width - 3):]


def _title(analysis: dict[str, Any]) -> str:
    return str((analysis.get("run") or {}).get("run_id") or Path(analysis["source"]).name)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return f"{value:.1f}" if abs(value) >= 100 else f"{value:.3g}"
    return str(value)


def _signed(value: Any) -> str:
    return "-" if value is None else ("+" if value > 0 else "") + _fmt(float(value))


def _percent(value: float | None, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value * 100:+.1f}%" if sign else f"{value * 100:.1f}%"


def _finite(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    if isinstance(data, float) and not math.isfinite(data):
        return None
    return data
