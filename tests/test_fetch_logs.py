"""fetch_logs.py end to end: targets (file, folder, newest run, Kaggle kernel), outputs, exit codes.

Kaggle downloads go through the real `kaggle` client against the stand-in server of
tests/kaggle_stub.py on 127.0.0.1 (its fixtures fail a test if any request tried to escape).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fetch_logs

pytest_plugins = ("tests.kaggle_stub",)

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "logs"
REF = "stubuser/victoria-run"
OUTPUTS = ("analysis.json", "analysis.md", "timeline.png")


def run_folder(runs: Path, name: str, fixture: str, log_name: str = "run.log", age_s: float = 0.0) -> Path:
    """A run folder holding a copy of a fixture log, its mtime `age_s` seconds in the past."""
    folder = runs / name
    folder.mkdir(parents=True)
    shutil.copy(FIXTURES / fixture, folder / log_name)
    stamp = time.time() - age_s
    os.utime(folder, (stamp, stamp))
    return folder


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "fetch_logs.py"), *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=120)


def test_log_file_with_out_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert fetch_logs.main([str(FIXTURES / "healthy_events.log"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "COMPLETED" in text and "== Builds ==" in text and "== Timeline ==" in text
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)
    assert not (FIXTURES / "analysis.json").exists()


def test_run_folder_gets_the_analysis_next_to_its_log(tmp_path: Path) -> None:
    folder = run_folder(tmp_path / "runs", "r1", "kaggle_truncated.log")
    (folder / "notes.txt").write_text("a larger text file that is not the log " * 100)
    assert fetch_logs.main([str(folder)]) == 0
    analysis = json.loads((folder / "analysis.json").read_text())
    assert analysis["source"] == str(folder / "run.log")
    assert analysis["ending"]["status"] == "cut_off"
    assert all((folder / name).is_file() for name in OUTPUTS)


def test_json_prints_only_the_analysis(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = run_folder(tmp_path, "legacy", "legacy_kaggle_viewer.txt", log_name="legacy.txt")
    assert fetch_logs.main([str(folder), "--json"]) == 0
    captured = capsys.readouterr()
    analysis = json.loads(captured.out)
    assert analysis["builds"]["count"] == 4 and analysis["kind"] == "legacy"
    assert "wrote" in captured.err


def test_no_argument_analyses_the_newest_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    run_folder(runs, "old", "legacy_kaggle_viewer.txt", log_name="old.txt", age_s=3600)
    newest = run_folder(runs, "new", "healthy_events.log")
    assert fetch_logs.main(["--runs-dir", str(runs)]) == 0
    assert str(newest / "run.log") in capsys.readouterr().out
    assert (newest / "analysis.json").is_file() and not (runs / "old" / "analysis.json").exists()
    sweeps = runs / "sweeps" / "s" / "s-00"  # a sweep folder is newer, but it is no run
    sweeps.mkdir(parents=True)
    (sweeps / "run.log").write_text((FIXTURES / "legacy_kaggle_viewer.txt").read_text())
    assert fetch_logs.main(["--runs-dir", str(runs)]) == 0
    assert str(newest / "run.log") in capsys.readouterr().out


def test_compare_two_runs(capsys: pytest.CaptureFixture[str]) -> None:
    healthy, cut = FIXTURES / "healthy_events.log", FIXTURES / "cut_off_eval.log"
    assert fetch_logs.main(["--compare", str(healthy), str(cut)]) == 0
    text = capsys.readouterr().out
    assert "(completed)" in text and "(cut_off)" in text
    row = next(line for line in text.splitlines() if line.startswith("total (s)"))
    assert row.split()[2:5] == ["90", "60", "-30"]


@pytest.mark.parametrize(("args", "code", "message"), [
    (["no/such/file.log"], 2, "neither an existing file"),
    (["--compare", "nowhere-a", "nowhere-b"], 2, "not a log file"),
])
def test_bad_targets_exit_2(args: list[str], code: int, message: str, capsys) -> None:
    assert fetch_logs.main(args) == code
    assert message in capsys.readouterr().err


def test_no_runs_at_all_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fetch_logs.main(["--runs-dir", str(tmp_path / "runs")]) == 2
    assert "push_kernel.py" in capsys.readouterr().err


def test_folder_without_a_log_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "model.zip").write_bytes(b"PK")
    assert fetch_logs.main([str(tmp_path)]) == 1
    assert "no *.log or *.txt" in capsys.readouterr().err


@pytest.mark.parametrize("fixture", ["garbage.bin", None])
def test_unreadable_logs_exit_1_without_traceback(tmp_path: Path, fixture: str | None) -> None:
    path = tmp_path / "run.log"
    if fixture:
        shutil.copy(FIXTURES / fixture, path)
    else:
        path.write_bytes(b"")
    result = cli(str(path))
    assert result.returncode == 1
    assert "NOTHING READ" in result.stdout
    assert "Traceback" not in result.stderr + result.stdout


def test_kernel_ref_downloads_into_a_new_folder(kaggle_env, tmp_path: Path, capsys) -> None:
    log = (FIXTURES / "kaggle_whole.log").read_text()
    kaggle_env.add_kernel(REF, statuses=["COMPLETE"], outputs={"results.json": b"{}"}, log=log)
    runs = tmp_path / "runs"
    assert fetch_logs.main([f"{REF}/3", "--runs-dir", str(runs)]) == 0
    text = capsys.readouterr().out
    folder = runs / "victoria-run-v3"
    assert f"Kaggle kernel {REF}/3: COMPLETE" in text
    assert (folder / "victoria-run.log").read_text() == log  # the raw log is kept
    analysis = json.loads((folder / "analysis.json").read_text())
    assert analysis["kernel"] == {"ref": f"{REF}/3", "status": "COMPLETE", "failure": None}
    assert analysis["ending"]["status"] == "completed"
    assert kaggle_env.calls("GetKernelSessionStatus")[0].body.get("versionLabel") == "v3"
    assert kaggle_env.calls("ListKernelSessionOutput")
    assert fetch_logs.main([f"{REF}/3", "--runs-dir", str(runs)]) == 0
    assert (runs / "victoria-run-v3-2" / "analysis.json").is_file()
    assert json.loads((folder / "analysis.json").read_text()) == analysis


def test_running_kernel_is_noted(kaggle_env, tmp_path: Path, capsys) -> None:
    kaggle_env.add_kernel(REF, statuses=["RUNNING"], log=(FIXTURES / "cut_off_eval.log").read_text())
    assert fetch_logs.main([REF, "--runs-dir", str(tmp_path / "runs"), "--json"]) == 0
    captured = capsys.readouterr()
    assert f"Kaggle kernel {REF}: RUNNING" in captured.err
    analysis = json.loads(captured.out)
    assert any("still RUNNING" in note for note in analysis["notes"])
    assert analysis["ending"]["status"] == "cut_off"


def test_no_argument_fetches_the_last_push_when_newer(kaggle_env, tmp_path: Path, capsys) -> None:
    log = (FIXTURES / "kaggle_truncated.log").read_text()
    kaggle_env.add_kernel(REF, statuses=["ERROR"], failure_message="Kernel ran out of memory", log=log)
    runs = tmp_path / "runs"
    run_folder(runs, "older-local-run", "healthy_events.log", age_s=600)
    push = {"ref": REF, "version": 5, "url": "https://www.kaggle.com/code/" + REF, "pushed_at": time.time()}
    (runs / "last_push.json").write_text(json.dumps(push))
    assert fetch_logs.main(["--runs-dir", str(runs)]) == 0
    text = capsys.readouterr().out
    assert "ERROR: Kernel ran out of memory" in text
    assert "CUT OFF" in text
    assert (runs / "victoria-run-v5" / "analysis.md").is_file()
    assert not (runs / "older-local-run" / "analysis.json").exists()


def test_unknown_kernel_and_missing_credentials_exit_2(kaggle_stub, tmp_path: Path) -> None:
    env = kaggle_stub.client_env(tmp_path / "home")
    unknown = cli("stubuser/no-such-kernel", "--runs-dir", str(tmp_path / "runs"), env=env)
    assert unknown.returncode == 2, unknown.stderr
    assert "kernel stubuser/no-such-kernel" in unknown.stderr and "Traceback" not in unknown.stderr
    bare = cli(REF, "--runs-dir", str(tmp_path / "runs"), env=kaggle_stub.client_env(tmp_path / "h2", None))
    assert bare.returncode == 2, bare.stderr
    assert "KAGGLE_API_TOKEN" in bare.stderr and "Traceback" not in bare.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
