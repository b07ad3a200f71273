"""Reading logs of every shape (lib.logs), analysing them (lib.analysis) and reporting (lib.report).

Fixtures in tests/fixtures/logs/ (written for these tests):
- healthy_events.log: a plain-text event log of a healthy run (all phases, one build, run_end ok);
- cut_off_eval.log: the same log cut off during evaluation, mid-line;
- kaggle_whole.log: the same run as Kaggle's JSON-array output log (kernel start 7.5 s before
  run_start, a line split across elements, stderr warnings and progress bars);
- kaggle_truncated.log: that array cut off mid-element during evaluation, with one malformed element;
- legacy_kaggle_viewer.txt: the earlier system's lines as Kaggle's log viewer shows them;
- garbage.bin: random bytes.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from bench.logs import measure, write_big_log
from lib.obs import events
from lib.runlog.analysis import EXPECTED_BUILDS, PHASES, analyse, analyse_path
from lib.runlog.reader import CHUNK, LogLine, LogReader, sniff
from lib.runlog.report import (
    PLOT_SIZE_PX,
    compare,
    render_compare,
    render_markdown,
    render_text,
    write_outputs,
)

FIXTURES = Path(__file__).parent / "fixtures" / "logs"
KAGGLE_START = 7.5  # kaggle_whole.log: kernel time of run_start


def events_of(path: Path) -> list[dict]:
    """The fixture's events, parsed independently of lib.analysis."""
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("[event] "):
            try:
                records.append(json.loads(line[8:]))
            except json.JSONDecodeError:
                pass
    return records


def phase_row(analysis: dict, phase: str) -> dict:
    return next(r for r in analysis["timeline"]["phases"] if r["phase"] == phase)


def gap_seconds(analysis: dict, row: str) -> float:
    """Seconds of the start-up or between-phases row (a start-up of 0 s has no row)."""
    found = [r["seconds"] for r in analysis["timeline"]["phases"] if r["phase"] == row]
    return found[0] if found else 0.0


def kaggle_array(lines: list[tuple[float, str]]) -> str:
    """Kaggle output-log text for (time, text) lines, one element per line."""
    elements = [json.dumps({"stream_name": "stdout", "time": t, "data": text + "\n"}) for t, text in lines]
    return "[" + "\n,".join(elements) + "]"


# Healthy run -------------------------------------------------------------------------------------


def test_healthy_event_log_phases_builds_metrics_and_ending() -> None:
    path = FIXTURES / "healthy_events.log"
    records = events_of(path)
    a = analyse_path(path)
    assert a["kind"] == "events" and a["format"] == "text"
    assert a["events"] == len(records)
    assert a["ending"]["status"] == "completed"
    assert a["builds"]["count"] == EXPECTED_BUILDS == 1
    assert a["builds"]["redundant"] == 0 and a["builds"]["lost_s"] == 0
    assert a["builds"]["items"][0]["phase"] == "build"
    ends = {r["phase"]: r["seconds"] for r in records if r["event"] == "phase_end"}
    assert set(ends) == set(PHASES)
    for phase, seconds in ends.items():
        assert phase_row(a, phase)["seconds"] == pytest.approx(seconds)
    run_end = next(r for r in records if r["event"] == "run_end")
    assert a["timeline"]["total_s"] == pytest.approx(run_end["t"])
    first = min(r["t"] for r in records if r["event"] == "phase_start")
    assert gap_seconds(a, "start-up") == pytest.approx(first)
    between = gap_seconds(a, "between phases")
    assert first + between == pytest.approx(run_end["t"] - sum(ends.values()))
    useful = ends["train"] + ends["eval"] + ends["baselines"]  # overhead as docs/PERFORMANCE.md
    assert a["timeline"]["useful_share"] == pytest.approx(useful / run_end["t"], abs=1e-3)
    assert a["timeline"]["overhead_ratio"] == pytest.approx((run_end["t"] - useful) / useful, abs=1e-3)
    results = {r["controller"]: r for r in records if r["event"] == "eval_result"}
    assert set(a["metrics"]) == set(results)
    for name, record in results.items():
        assert a["metrics"][name]["mean_delay_s"] == record["mean_delay_s"]
    last = [r for r in records if r["event"] == "train_progress"][-1]
    assert a["throughput"]["train_steps"] == last["steps"]
    assert a["throughput"]["steps_per_s"] == pytest.approx(last["steps"] / ends["train"])
    assert a["unknown_events"] == {"gpu_stats": 1}
    assert a["sanity"] == {"checks": 3, "failed": []}


def test_warning_events_keep_the_final_count() -> None:
    a = analyse_path(FIXTURES / "healthy_events.log")
    counts = [r["count"] for r in events_of(FIXTURES / "healthy_events.log") if r["event"] == "warning"]
    (group,) = [w for w in a["warnings"] if w["source"] == "event"]
    assert group["count"] == max(counts) and group["category"] == "NumbaPerformanceWarning"


def test_cut_off_during_evaluation_is_never_a_success() -> None:
    a = analyse_path(FIXTURES / "cut_off_eval.log")
    ending = a["ending"]
    assert ending["status"] == "cut_off"
    assert ending["last_phase"] == "eval"
    assert ending["last_event"]["event"] == "eval_progress"
    assert phase_row(a, "eval")["open"] is True
    assert a["malformed_events"] == 1  # the half-written last line
    assert "baselines" not in [r["phase"] for r in a["timeline"]["phases"]]
    assert "CUT OFF" in render_text(a)


def test_run_end_error_is_reported_with_its_message() -> None:
    lines = [LogLine(None, "stdout", '[event] {"event": "run_start", "t": 0.0}'),
             LogLine(None, "stdout", '[event] {"event": "phase_start", "t": 0.0, "phase": "train"}'),
             LogLine(None, "stdout", '[event] {"event": "run_end", "t": 5.0, "status": "error", '
                                     '"seconds": 5.0, "error": "CUDA out of memory"}')]
    ending = analyse(lines)["ending"]
    assert ending == {"status": "error", "seconds": 5.0, "error": "CUDA out of memory"}


def test_lines_written_by_lib_events_are_understood() -> None:
    buffer = io.StringIO()
    events.set_stream(buffer)
    try:
        events.start_clock()
        events.emit("run_start", run_id="w", commit="c", params={}, backend="cpu", device="cpu", versions={})
        for phase in PHASES:
            events.emit("phase_start", phase=phase)
            if phase == "build":
                events.emit("network_build", n=1, key="k", links=26, nodes=21, cells=500, scenarios=4,
                            backend="cpu", seconds=0.0, bytes=np.int64(1 << 20))
            events.emit("phase_end", phase=phase, seconds=0.0, status="ok")
        events.emit("eval_result", controller="dqn", episodes=2, mean_delay_s=np.float64(4.5),
                    throughput_veh=10.0, mean_queue_veh=float("nan"), mean_reward=-1.0)
        events.emit("run_end", status="ok", seconds=round(events.elapsed(), 3), builds=1)
    finally:
        events.set_stream(None)
    a = analyse(LogLine(None, "stdout", line) for line in buffer.getvalue().splitlines())
    assert a["events"] == 2 * len(PHASES) + 4 and a["malformed_events"] == 0 and not a["unknown_events"]
    rows = [r["phase"] for r in a["timeline"]["phases"] if r["phase"] != "start-up"]
    assert rows == [*PHASES, "between phases"]
    assert a["builds"]["items"][0]["bytes"] == 1 << 20 and a["builds"]["items"][0]["phase"] == "build"
    assert a["metrics"]["dqn"]["mean_delay_s"] == 4.5 and a["metrics"]["dqn"]["mean_queue_veh"] is None
    assert a["ending"]["status"] == "completed" and not a["notes"]


def test_run_end_build_count_disagreeing_with_the_log_is_noted() -> None:
    lines = [LogLine(None, "stdout", '[event] {"event": "network_build", "t": 1.0, "n": 1, "seconds": 2.0}'),
             LogLine(None, "stdout", '[event] {"event": "run_end", "t": 5.0, "status": "ok", "builds": 3}')]
    a = analyse(lines)
    assert a["builds"]["count"] == 1
    assert any("run_end counts 3 build(s)" in note for note in a["notes"])


def test_the_report_tells_one_consistent_story() -> None:
    """One total (the log's span, start-up named), the run's own time said as such, one throughput
    figure with its definition, overhead as docs/PERFORMANCE.md defines it (all but train, eval and
    baselines), and an earlier-system log whose ending is unknown is not called cut off."""
    kaggle = analyse_path(FIXTURES / "kaggle_whole.log")
    text = render_text(kaggle)
    total = kaggle["timeline"]["total_s"]
    run_seconds = kaggle["ending"]["seconds"]
    assert f"the run took {run_seconds:g} s (run_start to run_end) of the log's {total:g} s" in text
    assert f"total {total:g} s: the log's span, start-up included" in text
    assert gap_seconds(kaggle, "start-up") == pytest.approx(KAGGLE_START)
    useful = sum(phase_row(kaggle, p)["seconds"] for p in ("train", "eval", "baselines"))
    assert kaggle["timeline"]["useful_s"] == pytest.approx(useful)
    throughput = text[text.index("== Throughput =="):text.index("== Final metrics")]
    assert throughput.count("steps/s") == 1 and "over the" in throughput
    assert "of the train phase" in throughput
    assert "unaccounted" not in text
    legacy = render_text(analyse_path(FIXTURES / "legacy_kaggle_viewer.txt"))
    assert "ENDING UNKNOWN" in legacy and "CUT OFF" not in legacy


# Kaggle JSON array -------------------------------------------------------------------------------


def test_kaggle_array_gives_the_same_run_as_plain_text() -> None:
    text = analyse_path(FIXTURES / "healthy_events.log")
    kaggle = analyse_path(FIXTURES / "kaggle_whole.log")
    assert kaggle["format"] == "kaggle-json" and kaggle["notes"] == text["notes"]
    assert kaggle["events"] == text["events"]
    assert kaggle["metrics"] == text["metrics"]
    assert kaggle["builds"]["count"] == 1
    assert kaggle["builds"]["items"][0]["bytes"] == text["builds"]["items"][0]["bytes"]  # line was split
    for phase in PHASES:
        assert phase_row(kaggle, phase)["seconds"] == pytest.approx(phase_row(text, phase)["seconds"])
        shifted = phase_row(text, phase)["start"] + KAGGLE_START
        assert phase_row(kaggle, phase)["start"] == pytest.approx(shifted)
    assert kaggle["run"]["started_at"] == KAGGLE_START
    assert kaggle["timeline"]["total_s"] == pytest.approx(text["timeline"]["total_s"] + KAGGLE_START)
    assert gap_seconds(kaggle, "start-up") == pytest.approx(gap_seconds(text, "start-up") + KAGGLE_START)
    assert gap_seconds(kaggle, "between phases") == pytest.approx(gap_seconds(text, "between phases"))
    numba = next(w for w in kaggle["warnings"] if w["category"] == "numba_low_occupancy")
    assert numba["count"] == 2 and numba["grid_sizes"] == [4, 70]
    assert kaggle["ending"]["status"] == "completed"


def test_kaggle_truncated_array_reads_up_to_the_cut() -> None:
    reader = LogReader(FIXTURES / "kaggle_truncated.log")
    a = analyse(reader)
    assert reader.truncated and reader.malformed == 1
    notes = " ".join(reader.summary_notes())
    assert "cut off" in notes and "1 malformed element" in notes
    assert a["ending"]["status"] == "cut_off" and a["ending"]["last_phase"] == "eval"
    assert a["builds"]["count"] == 1
    assert phase_row(a, "train")["seconds"] == pytest.approx(45.0)


def test_lines_split_across_elements_are_joined_per_stream(tmp_path: Path) -> None:
    elements = [
        {"stream_name": "stdout", "time": 1.0, "data": "hel"},
        {"stream_name": "stderr", "time": 1.5, "data": "warn one\nwarn "},
        {"stream_name": "stdout", "time": 2.0, "data": "lo\nsecond\nthi"},
        {"stream_name": "stderr", "time": 2.5, "data": "two\n"},
        {"stream_name": "stdout", "time": 3.0, "data": "rd"},
    ]
    path = tmp_path / "split.log"
    path.write_text("[" + "\n,".join(json.dumps(e) for e in elements) + "]")
    lines = list(LogReader(path))
    assert [(x.time, x.stream, x.text) for x in lines] == [
        (1.5, "stderr", "warn one"),
        (1.0, "stdout", "hello"),
        (2.0, "stdout", "second"),
        (1.5, "stderr", "warn two"),
        (2.0, "stdout", "third"),
    ]


def test_multibyte_characters_across_chunk_boundaries_stay_whole(tmp_path: Path) -> None:
    text = "✅ █ " * (CHUNK // 3)  # raw UTF-8 inside the JSON, several 1 MB chunks
    path = tmp_path / "utf8.log"
    path.write_text("[" + json.dumps({"stream_name": "stdout", "time": 1, "data": text + "\n"},
                                     ensure_ascii=False) + "]", encoding="utf-8")
    (line,) = list(LogReader(path))
    assert line.text == text and "\ufffd" not in line.text


def test_kaggle_array_on_one_line_and_bad_elements(tmp_path: Path) -> None:
    path = tmp_path / "one_line.log"
    path.write_text('[{"stream_name":"stdout","time":1,"data":"a\\n"},{"time":2},"text",'
                    '{"stream_name":"stdout","time":3,"data":"b\\r\\nc\\n"}]')
    reader = LogReader(path)
    assert [x.text for x in reader] == ["a", "b", "c"]
    assert reader.malformed == 2 and not reader.truncated


# Legacy lines -------------------------------------------------------------------------------------


LEGACY = FIXTURES / "legacy_kaggle_viewer.txt"


def test_legacy_log_counts_exactly() -> None:
    raw = LEGACY.read_text(encoding="utf-8")
    a = analyse_path(LEGACY)
    assert a["format"] == "kaggle-viewer" and a["kind"] == "legacy"
    builds = a["builds"]
    assert builds["count"] == raw.count("[NETWORK BUILD] Creating") == 4
    assert builds["redundant"] == 3
    assert [b["phase"] for b in builds["items"]] == ["setup", "setup", "train", "eval"]
    assert [b["memory_mb"] for b in builds["items"]] == [12.0, 2.0, 0.0, 12.0]
    assert "Training started: 300 total timesteps" in builds["items"][2]["context"]
    assert builds["items"][3]["context"][-1].endswith("Evaluating final model...")
    assert builds["lost_s"] == pytest.approx(sum(b["seconds"] for b in builds["items"][1:]))
    legacy = a["legacy"]
    assert legacy["gpu_memory"] == {"allocations": raw.count("GPU memory allocated"), "total_mb": 27.5}
    assert legacy["gpu_memory"]["allocations"] == 5
    assert legacy["sb3"]["tables"] == 2 and legacy["sb3"]["rows"] == 10
    assert legacy["sb3"]["total_timesteps"] == 300 and legacy["sb3"]["fps"] == 9
    assert [e["num_timesteps"] for e in legacy["eval_lines"]] == [150, 300]
    assert legacy["training_completed"]["seconds"] == 16.0
    warnings = {w["category"]: w for w in a["warnings"]}
    assert warnings["numba_low_occupancy"]["count"] == raw.count("NumbaPerformanceWarning: Grid size") == 7
    assert warnings["numba_low_occupancy"]["grid_sizes"] == [1, 2, 4, 70]
    assert warnings["tensorboard_notf"]["count"] == 2
    assert warnings["protobuf_getprototype"]["count"] == 2
    assert a["metrics"]["agent"]["mean_reward"] == 287.17
    assert a["throughput"]["train_steps"] == 300 and a["throughput"]["train_s"] == 16.0


def test_legacy_phases_are_inferred_and_ending_is_not_success() -> None:
    a = analyse_path(LEGACY)
    timeline = a["timeline"]
    assert timeline["inferred"] is True
    names = [r["phase"] for r in timeline["phases"]]
    assert names == ["setup", "build", "train", "eval", "between phases"]
    first_build = a["builds"]["items"][0]["at"]
    assert phase_row(a, "setup")["seconds"] == pytest.approx(first_build)
    assert phase_row(a, "build")["count"] == 4
    ticks = set()  # the viewer's stamps are tenths of a second: count covered tenths
    for item in timeline["intervals"]:
        ticks |= set(range(round(item["start"] * 10), round(item["end"] * 10)))
    uncovered = timeline["total_s"] - len(ticks) / 10
    assert phase_row(a, "between phases")["seconds"] == pytest.approx(uncovered)
    assert a["ending"]["status"] == "unknown" and a["ending"]["last_phase"] == "eval"


def test_legacy_lines_inside_a_kaggle_array_count_the_same(tmp_path: Path) -> None:
    lines = []
    for row in LEGACY.read_text(encoding="utf-8").splitlines():
        stamp, _, text = row.split("\t", 2)
        lines.append((float(stamp.rstrip("s")), text))
    path = tmp_path / "legacy.log"
    path.write_text(kaggle_array(lines), encoding="utf-8")
    viewer, kaggle = analyse_path(LEGACY), analyse_path(path)
    for key in ("builds", "warnings", "legacy", "timeline", "metrics", "throughput"):
        assert kaggle[key] == viewer[key], key


def test_legacy_traceback_at_the_end_is_an_error() -> None:
    lines = [LogLine(1.0, "stdout", "[NETWORK BUILD] Creating 70 segments and 60 nodes..."),
             LogLine(2.0, "stderr", "Traceback (most recent call last):"),
             LogLine(2.0, "stderr", '  File "train.py", line 3, in <module>'),
             LogLine(2.1, "stderr", "RuntimeError: CUDA error: an illegal memory access")]
    ending = analyse(lines)["ending"]
    assert ending["status"] == "error" and "illegal memory access" in ending["error"]


# Damaged input -------------------------------------------------------------------------------------


def test_unrecognised_text_is_read_but_its_ending_unknown() -> None:
    a = analyse([LogLine(0.7, "stdout", "lib/ unpacked"), LogLine(1.5, "stderr", "some other output")])
    assert a["kind"] == "plain" and a["lines"] == 2
    assert a["ending"]["status"] == "unknown" and "does not say how the run ended" in a["ending"]["detail"]
    assert a["timeline"]["total_s"] == 1.5 and a["timeline"]["phases"][0]["phase"] == "start-up"


def test_garbage_file_reports_nothing_read() -> None:
    a = analyse_path(FIXTURES / "garbage.bin")
    assert a["format"] == "binary" and a["lines"] == 0
    assert a["ending"]["status"] == "unreadable" and "binary" in a["ending"]["detail"]
    assert "NOTHING READ" in render_text(a)


@pytest.mark.parametrize("content", [b"", b"  \n\n", b"["])
def test_empty_or_bare_bracket_logs(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "run.log"
    path.write_bytes(content)
    a = analyse_path(path)
    assert a["lines"] == 0 and a["ending"]["status"] == "empty"
    assert a["notes"]


def test_missing_file_is_a_note_not_an_exception(tmp_path: Path) -> None:
    a = analyse_path(tmp_path / "absent.log")
    assert a["format"] == "unreadable" and a["ending"]["status"] == "unreadable"
    assert "cannot read" in a["ending"]["detail"]


def test_malformed_event_lines_are_counted_and_text_survives(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(
        b'[event] {"event": "run_start", "t": 0}\n'
        b"[event] {not json}\n"
        b'[event] ["a list"]\n'
        b'[event] {"event": "phase_start", "phase": "train"}\n'
        b"caf\xe9 latin-1 line\n"
        b'[event] {"event": "train_progress", "t": 4.0, "steps": 40, "total": 100}\n'
    )
    a = analyse_path(path)
    assert a["events"] == 2 and a["malformed_events"] == 3
    assert any("3 malformed [event]" in n for n in a["notes"])
    assert a["throughput"]["train_steps"] == 40
    assert a["ending"]["status"] == "cut_off"


@pytest.mark.parametrize(("head", "expected"), [
    (b"", "empty"),
    (b"\x00\x01binary", "binary"),
    (b'  [\n{"stream_name": "stdout"', "kaggle-json"),
    (b"[]", "kaggle-json"),
    (b"\xef\xbb\xbf[{", "kaggle-json"),
    (b'[event] {"event": "run_start"}', "text"),
    (b"[NETWORK BUILD] Creating 70 segments", "text"),
    (b"109.9s\t154\t[NETWORK BUILD] Creating", "kaggle-viewer"),
])
def test_sniff(head: bytes, expected: str) -> None:
    assert sniff(head) == expected


# Report ----------------------------------------------------------------------------------------------


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_outputs_json_markdown_and_png(tmp_path: Path) -> None:
    a = analyse_path(FIXTURES / "kaggle_truncated.log")
    written = write_outputs(a, tmp_path)
    assert sorted(p.name for p in written) == ["analysis.json", "analysis.md", "timeline.png"]
    assert json.loads((tmp_path / "analysis.json").read_text())["ending"]["status"] == "cut_off"
    assert png_size(tmp_path / "timeline.png") == PLOT_SIZE_PX
    md = (tmp_path / "analysis.md").read_text()
    assert "| train | 18.5 | 45 |" in md and "![timeline](timeline.png)" in md


def test_no_timeline_without_time_stamps(tmp_path: Path) -> None:
    path = tmp_path / "plain.txt"
    path.write_text("[NETWORK BUILD] Creating 70 segments and 60 nodes...\nsomething\n")
    a = analyse_path(path)
    assert a["timeline"]["total_s"] is None and a["builds"]["count"] == 1
    assert [p.name for p in write_outputs(a, tmp_path / "out")] == ["analysis.json", "analysis.md"]
    assert "no time stamps" in render_markdown(a)


def test_compare_shows_change_per_item() -> None:
    a = analyse_path(FIXTURES / "healthy_events.log")
    b = analyse_path(LEGACY)
    rows = {r["item"]: r for r in compare(a, b)["rows"]}
    assert rows["builds"] == {"item": "builds", "a": 1, "b": 4, "change": 3, "change_pct": 3.0}
    assert rows["train (s)"]["change"] == pytest.approx(phase_row(b, "train")["seconds"] - 45.0)
    assert rows["baselines (s)"]["b"] is None and rows["baselines (s)"]["change"] is None
    text = render_compare(compare(a, b))
    assert "builds" in text and "+3" in text


def test_compare_lines_up_controllers_per_metric_and_diffs_the_parameters() -> None:
    lines_a = ['[event] {"event": "run_start", "t": 0, "params": {"steps": 300, "env": {"reward": "delay"}}}',
               '[event] {"event": "eval_result", "t": 1, "controller": "dqn", "mean_delay_s": 40.0}',
               '[event] {"event": "eval_result", "t": 2, "controller": "webster", "mean_delay_s": 50.0}']
    lines_b = ['[event] {"event": "run_start", "t": 0, "params": {"steps": 300, "env": {"reward": "queue"}}}',
               '[event] {"event": "eval_result", "t": 1, "controller": "webster", "mean_delay_s": 50.0}',
               '[event] {"event": "eval_result", "t": 2, "controller": "dqn", "mean_delay_s": 30.0}']
    a, b = (analyse(LogLine(None, "stdout", x) for x in lines) for lines in (lines_a, lines_b))
    for x in (a, b):
        x["source"] = "x"
    comparison = compare(a, b)
    delay = {e["controller"]: e for e in comparison["metrics"]["mean_delay_s"]}
    assert delay["dqn"]["a"] == 40.0 and delay["dqn"]["b"] == 30.0 and delay["dqn"]["change"] == -10.0
    assert delay["webster"]["change"] == 0.0
    assert comparison["parameters"] == [{"name": "env.reward", "a": "delay", "b": "queue"}]
    text = render_compare(comparison)
    table = text[text.index("== mean_delay_s per controller =="):]
    rows = [line.split()[:3] for line in table.splitlines()[2:4]]
    assert rows == [["dqn", "40", "30"], ["webster", "50", "50"]]
    assert "env.reward  delay  queue" in text


# Big logs ----------------------------------------------------------------------------------------------


BIG_MB = 50  # big enough that holding the log (or its lines) would exceed the bound several times
MAX_RSS_GROWTH_MB = 64


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc for peak memory")
def test_a_big_log_streams_in_bounded_memory(tmp_path: Path) -> None:
    """Memory only: the speed depends on the machine's load, so bench/logs.py measures it."""
    path = tmp_path / "big.log"
    elements = write_big_log(path, BIG_MB)
    result = measure(path)
    assert result["lines"] == elements
    assert result["numba"] == result["rows"] == (elements - 1) // 4
    assert result["rss_growth_kb"] / 1024 < MAX_RSS_GROWTH_MB
