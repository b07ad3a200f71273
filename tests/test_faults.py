"""Fault injection: every probe of the hardening review (issue 15) kept as a regression test.

A stand-in Kaggle that stalls, drops replies, sends garbage and throttles (tests/kaggle_stub.py);
hostile credential files, logs and data; kills during checkpoint writes. Timeouts are injected
(SIGNALS_KAGGLE_POLICY) so that each probe takes a fraction of a second instead of minutes.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from lib.remote import kaggle_api as kaggle_io
from lib.remote.kaggle_api import KaggleError

pytest_plugins = ("tests.kaggle_stub",)

REF = "stubuser/victoria-island-signals"
FAST = "connect_s=1,read_s=0.5,attempts=3,total_s=5,backoff_s=0.01,retry_after_max_s=2,min_poll_s=0"


@pytest.fixture(autouse=True)
def fast_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(kaggle_io.POLICY_ENV, FAST)


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    """A minimal pushable folder: the client reads only the metadata and the code file."""
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "run.ipynb").write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4,
                                                  "nbformat_minor": 5}))
    metadata = {"id": REF, "title": "Victoria Island Signals", "code_file": "run.ipynb",
                "language": "python", "kernel_type": "notebook", "is_private": True}
    (folder / "kernel-metadata.json").write_text(json.dumps(metadata))
    return folder


# --------------------------------------------------------------------------- Kaggle requests


def test_a_stalled_status_reply_times_out_with_a_message(kaggle_env) -> None:
    kaggle_env.add_kernel(REF, statuses=["RUNNING"])
    kaggle_env.misbehave("GetKernelSessionStatus", "stall", times=99)
    started = time.monotonic()
    with pytest.raises(KaggleError, match=r"after 3 tries.*no reply within 0.5 s") as info:
        kaggle_io.kernel_status(REF)
    assert time.monotonic() - started < 5
    assert info.value.exit_code == 1


def test_a_day_long_retry_after_is_not_slept(kaggle_env) -> None:
    kaggle_env.add_kernel(REF)
    kaggle_env.fail("GetKernelSessionStatus", 429, times=9, retry_after="86400")
    with pytest.raises(KaggleError, match=r"asks to wait 86400 s .* more than the 2 s"):
        kaggle_io.kernel_status(REF)
    assert len(kaggle_env.calls("GetKernelSessionStatus")) == 1


def test_retries_stop_at_the_total_time(kaggle_env, monkeypatch) -> None:
    monkeypatch.setenv(kaggle_io.POLICY_ENV, "attempts=50,total_s=0.5,backoff_s=0.2,backoff_max_s=0.2")
    kaggle_env.add_kernel(REF)
    kaggle_env.fail("GetKernelSessionStatus", 503, times=99)
    with pytest.raises(KaggleError, match="HTTP 503"):
        kaggle_io.kernel_status(REF)
    assert len(kaggle_env.calls("GetKernelSessionStatus")) < 10


def test_a_push_whose_reply_is_lost_is_not_pushed_again(kaggle_env, bundle_dir) -> None:
    kaggle_env.misbehave("SaveKernel", "drop")
    result = kaggle_io.push(bundle_dir)
    assert (result.version, result.versions) == (1, (1,))
    assert len(kaggle_env.calls("SaveKernel")) == 1
    assert kaggle_env.kernels[REF].version == 1


def test_a_garbage_push_reply_is_checked_then_retried(kaggle_env, bundle_dir) -> None:
    kaggle_env.add_kernel(REF, version=4)
    kaggle_env.misbehave("SaveKernel", "garbage")
    result = kaggle_io.push(bundle_dir)
    assert (result.version, result.versions) == (5, (5,))
    assert len(kaggle_env.calls("SaveKernel")) == 2
    assert len(kaggle_env.calls("GetKernel")) >= 2  # before the push, and after the garbage


def test_a_push_that_keeps_failing_says_no_version_exists(kaggle_env, bundle_dir) -> None:
    kaggle_env.misbehave("SaveKernel", "garbage", times=99)
    with pytest.raises(KaggleError, match="could not be read.*No new version appeared") as info:
        kaggle_io.push(bundle_dir)
    assert "refused by the client" not in str(info.value)


def test_garbage_status_is_not_blamed_on_the_slug(kaggle_env) -> None:
    kaggle_env.add_kernel(REF)
    kaggle_env.misbehave("GetKernelSessionStatus", "garbage", times=99)
    with pytest.raises(KaggleError, match="status reply could not be read.*Bad gateway") as info:
        kaggle_io.kernel_status(REF)
    assert "OWNER/SLUG" not in str(info.value)


def test_an_unknown_status_is_reported_as_kaggle_spelled_it(kaggle_env) -> None:
    kaggle_env.add_kernel(REF, statuses=["HIBERNATING"])
    assert kaggle_io.kernel_status(REF) == ("HIBERNATING", None)
    assert "HIBERNATING" not in kaggle_io.KNOWN_STATUSES


def test_wait_has_a_deadline(kaggle_env) -> None:
    kaggle_env.add_kernel(REF, statuses=["RUNNING"])
    with pytest.raises(KaggleError, match="gave up waiting .* still RUNNING.*fetch_logs.py"):
        kaggle_io.wait_for_completion(REF, poll_s=0.05, deadline_s=0.3)


def test_wait_polls_no_faster_than_the_floor(kaggle_env, monkeypatch) -> None:
    monkeypatch.setenv(kaggle_io.POLICY_ENV, "min_poll_s=0.2")
    kaggle_env.add_kernel(REF, statuses=["RUNNING"])
    with pytest.raises(KaggleError, match="gave up"):
        kaggle_io.wait_for_completion(REF, poll_s=0.0, deadline_s=0.5)
    assert len(kaggle_env.calls("GetKernelSessionStatus")) <= 3


def test_a_cut_off_download_is_retried_whole(kaggle_env, tmp_path) -> None:
    kaggle_env.add_kernel(REF, outputs={"a.txt": b"x" * 5000})
    kaggle_env.misbehave("download", "truncate")
    folder = kaggle_io.download_output(REF + "/1", tmp_path / "runs")
    assert (folder / "a.txt").read_bytes() == b"x" * 5000


def test_a_broken_download_leaves_a_message_and_no_folder(kaggle_env, tmp_path) -> None:
    kaggle_env.add_kernel(REF, outputs={"a.txt": b"x" * 5000, "b.txt": b"b"})
    kaggle_env.misbehave("download", "truncate", times=99)
    with pytest.raises(KaggleError, match="download the outputs after 3 tries.*cut off"):
        kaggle_io.download_output(REF + "/1", tmp_path / "runs")
    assert list((tmp_path / "runs").iterdir()) == []


def test_concurrent_fetches_of_one_kernel_never_mix(kaggle_env, tmp_path) -> None:
    outputs = {f"f{i}.txt": bytes([65 + i]) * 2000 for i in range(4)}
    kaggle_env.add_kernel(REF, outputs=outputs)
    folders: list[Path] = []
    errors: list[Exception] = []

    def fetch() -> None:
        try:
            folders.append(kaggle_io.download_output(REF + "/1", tmp_path / "runs"))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(f.name for f in folders) == [
        "victoria-island-signals-v1", "victoria-island-signals-v1-2", "victoria-island-signals-v1-3"]
    for folder in folders:
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == outputs
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted(f.name for f in folders)


def test_an_unreachable_server_is_named(kaggle_env, monkeypatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # the discard port: nothing listens
    with pytest.raises(KaggleError, match="cannot connect to Kaggle"):
        kaggle_io.kernel_status(REF)


@pytest.mark.parametrize(("file", "content", "words"), [
    ("kaggle.json", b"{not json", "not readable JSON"),
    ("kaggle.json", b'{"username": "u"}', "lacks 'username' and 'key'"),
    ("access_token", b"\xff\xfe\x00token", "not UTF-8 text"),
])
def test_a_broken_credential_file_is_named_not_ignored(kaggle_env, monkeypatch, file, content, words) -> None:
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    folder = Path.home() / ".kaggle"
    folder.mkdir(exist_ok=True)
    (folder / file).write_bytes(content)
    with pytest.raises(KaggleError, match=words) as info:
        kaggle_io.has_credentials()
    assert info.value.exit_code == 2 and file in str(info.value)
    assert kaggle_io.credential_values() is not None  # readable for the bundle's secret scan


# --------------------------------------------------------------------------- checkpoints, run dirs

CHILD = '''
import os, sys, time
from pathlib import Path
from stable_baselines3 import DQN
from lib.rl.checkpoints import Checkpoints
from lib.obs.rundir import owned

folder = Path(sys.argv[1])
with owned(folder.parent):
    model = DQN("MlpPolicy", "CartPole-v1", buffer_size=500, learning_starts=10, seed=0, device="cpu")
    store = Checkpoints(folder, keep=3)
    model.learn(40)
    store.save(model)
    model.learn(40, reset_num_timesteps=False)

    def stalled_write(path):
        Path(path).write_bytes(b"half a replay buffer")
        (folder.parent / "writing").touch()
        time.sleep(60)

    model.save_replay_buffer = stalled_write
    store.save(model)
'''


def _cartpole_env():
    from stable_baselines3.common.env_util import make_vec_env

    return make_vec_env("CartPole-v1", n_envs=1)


@pytest.fixture
def saved_sets(tmp_path):
    """Two complete DQN sets (steps 40 and 80) in tmp_path/checkpoints."""
    from stable_baselines3 import DQN

    from lib.rl.checkpoints import Checkpoints

    store = Checkpoints(tmp_path / "checkpoints", keep=3)
    model = DQN("MlpPolicy", "CartPole-v1", buffer_size=500, learning_starts=10, seed=0, device="cpu")
    for _ in range(2):
        model.learn(40, reset_num_timesteps=False)
        store.save(model)
    return store


def test_a_kill_during_a_checkpoint_write_resumes_from_the_last_complete_set(tmp_path) -> None:
    import os
    import signal
    import subprocess
    import sys

    from lib.obs.rundir import RunDirBusy, owned
    from lib.rl.checkpoints import Checkpoints

    folder = tmp_path / "checkpoints"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(folder)], cwd=Path(__file__).parents[1])
    deadline = time.monotonic() + 60
    while not (tmp_path / "writing").exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (tmp_path / "writing").exists(), "the child never reached the checkpoint write"
    with pytest.raises(RunDirBusy, match="in use by pid"):
        with owned(tmp_path):
            pass
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(10) == -signal.SIGKILL
    store = Checkpoints(folder, keep=3)
    latest = store.latest()
    assert latest is not None and latest.name.startswith("step_") and latest.name != "step_000000080.zip"
    model = store.load(latest, "dqn", _cartpole_env(), "cpu")
    assert model.num_timesteps == 40 and model.replay_buffer.size() > 0
    with owned(tmp_path):  # the kernel released the dead child's lock
        pass


def test_a_set_whose_replay_buffer_is_gone_is_refused_unless_asked(saved_sets) -> None:
    from lib.rl.checkpoints import CheckpointError

    latest = saved_sets.latest()
    saved_sets.replay_path(latest).unlink()
    assert saved_sets.latest() == latest, "the set is not silently replaced by an older one"
    with pytest.raises(CheckpointError, match="no replay buffer.*resume_without_replay=True"):
        saved_sets.load(latest, "dqn", _cartpole_env(), "cpu")
    model = saved_sets.load(latest, "dqn", _cartpole_env(), "cpu", without_replay=True)
    assert model.num_timesteps == 80 and model.replay_buffer.size() == 0


def test_a_damaged_newest_set_is_skipped_and_named(saved_sets) -> None:
    newest = saved_sets.latest()
    with newest.open("r+b") as handle:
        handle.truncate(100)
    older = saved_sets.latest()
    assert older is not None and older.name == "step_000000040.zip"
    assert saved_sets.skipped == [f"{newest.stem}: {newest.name} is missing or not the size its "
                                  "manifest records"]


def test_two_runs_never_share_a_run_directory(tmp_path) -> None:
    from lib.obs.rundir import owned
    from lib.rl.train import RunConfig, RunFailed, run

    with owned(tmp_path), pytest.raises(RunFailed, match="in use by pid"):
        run(RunConfig(steps=300, progress_bar=False, output_dir=str(tmp_path)))


# --------------------------------------------------------------------------- input bounds

NODES = [{"osm_id": 1, "lat": 6.43, "lon": 3.42, "traffic_signals": "False"},
         {"osm_id": 2, "lat": 6.44, "lon": 3.42, "traffic_signals": "False"}]


def _edge(**changes):
    return {"u": 1, "v": 2, "name": "a", "highway": "primary", "length_m": "100", "oneway": "True",
            "osm_lanes": "2", "geometry_wkt": "", **changes}


@pytest.mark.parametrize(("edge", "nodes", "words"), [
    (_edge(length_m="20001"), NODES, "length_m must be a positive number of metres up to 20000"),
    (_edge(length_m="1e12"), NODES, "split a longer road"),
    (_edge(length_m="nan"), NODES, "length_m"),
    (_edge(osm_lanes="9"), NODES, "osm_lanes must be 1..8"),
    (_edge(osm_lanes="1e9"), NODES, "osm_lanes must be 1..8"),
    (_edge(oneway="False", osm_lanes="17"), NODES, "osm_lanes must be 1..16"),
    (_edge(), [NODES[0], {**NODES[1], "lat": "nan"}], r"lat must be in \[-90, 90\]"),
    (_edge(), [NODES[0], {**NODES[1], "lon": "181"}], "lon in"),
    (_edge(geometry_wkt="LINESTRING (3.42 6.43, 200 6.44)"), NODES, "point outside"),
])
def test_out_of_range_data_is_refused_naming_the_row(edge, nodes, words) -> None:
    from lib.sim.network import build_network

    with pytest.raises(ValueError, match=words):
        build_network([edge], nodes, source="probe")


def test_a_simulator_that_would_not_fit_is_refused_before_allocating(monkeypatch) -> None:
    from lib.sim import memory
    from lib.sim.network import build_network
    from lib.sim.simulator import Simulator

    network = build_network([_edge()], NODES, source="probe")
    monkeypatch.setattr(memory, "machine_bytes", lambda backend: 2 * memory.estimate_bytes(
        network.n_cells, network.n_links, 1000))
    Simulator(network, 1000, backend="cpu")
    with pytest.raises(MemoryError, match=r"1001 scenarios .* more than half .* lower n_scenarios"):
        Simulator(network, 1001, backend="cpu")


@pytest.mark.parametrize(("settings", "words"), [
    ({"env": {"decision_interval": 1e-9}}, r"decision_interval must be 1..3600"),
    ({"env": {"decision_interval": 7200.0, "episode_seconds": 7200.0}}, "decision_interval"),
    ({"env": {"cell_length_m": 0.01}}, r"cell_length_m must be 1..1000"),
    ({"steps": 10**12}, "steps must be at most"),
])
def test_run_settings_out_of_known_ranges_are_refused(settings, words) -> None:
    from lib.config import ConfigError
    from lib.rl.run_config import RunConfig

    with pytest.raises(ConfigError, match=words):
        RunConfig.from_dict(settings)


# --------------------------------------------------------------------------- hostile logs

def _event(**fields) -> str:
    return "[event] " + json.dumps(fields)


HOSTILE = {
    "text where numbers belong": [
        _event(event="run_start", t=0, run_id={"a": 1}, params=[1, 2], versions="v"),
        _event(event="network_build", t=1, seconds="slow", bytes="big", cells="many", n=[1]),
        _event(event="train_progress", t=2, steps="a", total=None, steps_per_s=[1]),
        _event(event="eval_result", t=3, controller={"x": 1}, mean_delay_s="q", episodes=True),
        _event(event="warning", t=4, category=["a"], count="many", message={"m": 1}),
        _event(event="checkpoint", t=5, path=5, steps="x"),
        _event(event=5, t=6),
        _event(event="run_end", t=7, status=["ok"], seconds="x", builds="y", error={"e": 1}),
    ],
    "infinite and NaN numbers": [
        _event(event="run_start", t=0),
        '[event] {"event": "phase_start", "t": 1e999, "phase": "train"}',
        '[event] {"event": "phase_end", "t": 1, "phase": "x", "seconds": Infinity}',
        '[event] {"event": "run_end", "t": NaN, "status": "ok"}',
        '[event] {"event": "run_end", "t": 3, "status": "ok", "builds": 1e400}',
    ],
    "nested 100,000 deep": ['[event] {"event": "x", "t": 1, "a": ' + "[" * 100_000 + "]" * 100_000 + "}"],
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_event_values_give_notes_not_tracebacks(name, tmp_path) -> None:
    from lib.runlog.analysis import analyse_path
    from lib.runlog.report import render_text, to_json, write_outputs

    path = tmp_path / "run.log"
    path.write_text("\n".join(HOSTILE[name]) + "\n")
    analysis = analyse_path(path)
    assert analysis["notes"], "what could not be read is said"
    assert render_text(analysis) and json.loads(to_json(analysis))
    write_outputs(analysis, tmp_path)


def test_hostile_kaggle_elements_are_read_or_skipped(tmp_path) -> None:
    from lib.runlog.analysis import analyse_path
    from lib.runlog.report import render_text

    start = _event(event="run_start", t=0) + "\n"
    elements = [json.dumps({"stream_name": "stdout", "time": 0.0, "data": start}),
                '{"stream_name": "stdout", "time": NaN, "data": "a\\n"}',
                '{"stream_name": "stdout", "time": 1e999, "data": "b\\n"}',
                json.dumps({"stream_name": ["x"], "time": 2.0, "data": "c\\n"}),
                '{"stream_name": "stdout", "time": 3, "data": ' + "[" * 100_000 + "]" * 100_000 + "}",
                json.dumps({"stream_name": "stdout", "time": 4.0, "data": "d\\n"})]
    path = tmp_path / "run.log"
    path.write_text("[" + "\n,".join(elements) + "]")
    analysis = analyse_path(path)
    assert analysis["lines"] == 5 and "1 malformed element(s) skipped" in analysis["notes"]
    assert render_text(analysis)


def test_many_distinct_phase_names_fold_into_one_row(tmp_path) -> None:
    from lib.runlog.analysis import MAX_PHASE_ROWS, analyse_path
    from lib.runlog.report import write_outputs

    lines = [_event(event="run_start", t=0)]
    for i in range(3000):
        lines += [_event(event="phase_start", t=i, phase=f"p{i}"),
                  _event(event="phase_end", t=i + 0.5, phase=f"p{i}", seconds=0.5)]
    path = tmp_path / "run.log"
    path.write_text("\n".join(lines) + "\n")
    analysis = analyse_path(path)
    rows = [r["phase"] for r in analysis["timeline"]["phases"]]
    assert len(rows) == MAX_PHASE_ROWS + 1 and rows[-2:] == ["other phases (2981 names)", "between phases"]
    assert len({i["phase"] for i in analysis["timeline"]["intervals"]}) == MAX_PHASE_ROWS
    write_outputs(analysis, tmp_path)


# --------------------------------------------------------------------------- push_kernel.py, bundles

ROOT = Path(__file__).resolve().parents[1]


def _cli(args: list[str], cwd: Path, env: dict[str, str]):
    import subprocess
    import sys

    folders = ["--runs-dir", str(cwd / "runs"), "--build-dir", str(cwd / "build")]
    return subprocess.run([sys.executable, str(ROOT / "push_kernel.py"), *args, *folders], cwd=cwd,
                          env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("args", "words"), [
    (["--poll-interval", "0", "--wait"], "--poll-interval: must be at least 5 seconds"),
    (["--poll-interval", "nan", "--wait"], "--poll-interval: must be at least 5"),
    (["--poll-interval", "-1", "--wait"], "--poll-interval: must be at least 5"),
    (["--accelerator", "bogus"], "unknown machine shape 'bogus'"),
    (["--run-id", ""], "--run-id must not be empty"),
    (["--slug", "Bad_Slug!"], "--slug: 'Bad_Slug!' is not a valid kernel slug"),
    (["--steps", str(10**12)], "steps must be at most"),
    (["--resume", "r1", "--target", "kaggle"], "resuming on Kaggle or a sweep is not supported"),
    (["--resume", "no-such-run"], "cannot resume no-such-run"),
])
def test_usage_errors_exit_2_before_any_request(kaggle_stub, tmp_path, monkeypatch, args, words) -> None:
    monkeypatch.delenv(kaggle_io.POLICY_ENV)  # the real 5 s floor
    done = _cli(args, tmp_path, kaggle_stub.client_env(tmp_path / "home"))
    assert done.returncode == 2, done.stderr
    assert words in done.stderr and "Traceback" not in done.stderr
    assert kaggle_stub.requests == [] and not (tmp_path / "build").exists()


def test_resume_takes_the_runs_settings_and_the_options_on_top(kaggle_stub, tmp_path) -> None:
    import ast
    import re

    import nbformat

    from lib.rl.run_config import RunConfig

    (tmp_path / "runs" / "r1").mkdir(parents=True)
    saved = RunConfig.from_dict({"steps": 300, "seed": 7, "env": {"reward": "queue"}}).to_dict()
    (tmp_path / "runs" / "r1" / "config.json").write_text(json.dumps(saved))
    done = _cli(["--resume", "r1", "--steps", "600", "--dry-run", "--allow-dirty"], tmp_path,
                kaggle_stub.client_env(tmp_path / "home"))
    assert done.returncode == 0, done.stderr
    nb = nbformat.read(tmp_path / "build" / "victoria-island-signals" / "victoria-island-signals.ipynb", 4)
    source = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))["source"]
    config = ast.literal_eval(re.search(r"^config = (.*)$", source, re.M).group(1))
    assert (config["run_id"], config["resume"], config["steps"], config["seed"]) == ("r1", True, 600, 7)
    assert config["env.reward"] == "queue"


@pytest.fixture
def git_lib(tmp_path):
    """A stand-in lib/ in a git checkout with one commit."""
    import subprocess

    lib = tmp_path / "repo" / "lib"
    lib.mkdir(parents=True)
    (lib / "__init__.py").write_text('"""stand-in"""\n')
    (lib / "sim.py").write_text("VALUE = 1\n")
    git = ["git", "-C", str(lib.parent), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "lib"], check=True)
    subprocess.run([*git, "commit", "-qm", "lib"], check=True)
    return lib


def _bundle(lib: Path, tmp_path: Path, **options):
    from lib.remote.bundle import build_bundle

    return build_bundle({"config": {"run_id": "t"}}, tmp_path / "out", REF, None, lib_dir=lib, **options)


def _bundled_names(bundle) -> set[str]:
    import base64
    import io
    import lzma
    import re
    import tarfile

    text = bundle.notebook.read_text()
    archive = re.search(r'LIB_ARCHIVE = (["\'])(.*?)\1', text).group(2)
    with tarfile.open(fileobj=io.BytesIO(lzma.decompress(base64.b64decode(archive)))) as tar:
        return set(tar.getnames())


def test_untracked_files_are_never_bundled_and_a_dirty_lib_is_refused(git_lib, tmp_path) -> None:
    from lib.remote.bundle import BundleError

    (git_lib / "notes.py").write_text("SECRET_PLAN = 1\n")
    (git_lib / "sim.py").write_text("VALUE = 2\n")
    refused = r"lib/sim.py \(modified\), lib/notes.py \(untracked\).*--allow-dirty"
    with pytest.raises(BundleError, match=refused):
        _bundle(git_lib, tmp_path, require_clean=True)
    made = _bundle(git_lib, tmp_path)
    assert made.untracked == ("lib/notes.py",)
    assert _bundled_names(made) == {"lib/__init__.py", "lib/sim.py"}


@pytest.mark.parametrize(("content", "kind"), [
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
     "a private key"),
    ("KEY_ID = 'AKIA" + "ABCDEFGHIJKLMNOP'\n", "an AWS access key"),
    ("aws_secret_access_key = " + "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n", "an AWS secret key"),
    ("TOKEN = 'ghp_" + "a" * 36 + "'\n", "a GitHub token"),
])
def test_generic_secrets_in_tracked_files_are_refused(git_lib, tmp_path, content, kind) -> None:
    import subprocess

    from lib.remote.bundle import BundleError

    (git_lib / "config_values.py").write_text(content)
    subprocess.run(["git", "-C", str(git_lib.parent), "add", "lib"], check=True)
    with pytest.raises(BundleError, match=f"looks like {kind}") as info:
        _bundle(git_lib, tmp_path)
    assert content.strip().splitlines()[0][-12:] not in str(info.value)


SLEEPER = '''
import sys
from pathlib import Path
import nbformat
from lib.remote.bundle import build_bundle, run_local

root = Path(sys.argv[1])
lib = root / "lib"
lib.mkdir(parents=True, exist_ok=True)
(lib / "__init__.py").write_text("")
nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                       "display_name": "Python 3"}})
body = ("import time\\ntry:\\n    print('started', flush=True)\\n    time.sleep(60)\\n"
        "except KeyboardInterrupt:\\n    print('checkpoint saved', flush=True)\\n    raise")
nb.cells = [nbformat.v4.new_code_cell("steps = 1", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell(body)]
nbformat.write(nb, root / "n.ipynb")
made = build_bundle({"steps": 1}, root / "out", "stubuser/victoria-island-signals", None,
                    notebook=root / "n.ipynb", lib_dir=lib)
print("RESULT", run_local(made, root / "runs" / "r1").status, flush=True)
'''


def test_ctrl_c_on_a_local_run_lets_the_kernel_finish_and_keeps_a_valid_log(tmp_path) -> None:
    import os
    import signal
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", SLEEPER, str(tmp_path)], cwd=ROOT, start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    log = tmp_path / "runs" / "r1" / "run.log"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (log.exists() and "started" in log.read_text()):
        time.sleep(0.1)
    os.killpg(child.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole foreground group
    try:
        out, _ = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    assert "RESULT interrupted" in out, out[-2000:]
    lines = [e["data"] for e in json.loads(log.read_text())]
    assert "checkpoint saved\n" in lines and lines[-1].startswith("KeyboardInterrupt")


def test_a_resumed_local_run_keeps_the_earlier_log_and_waits_for_the_lock(tmp_path) -> None:
    from lib.obs.rundir import owned
    from lib.remote.bundle import Bundle, BundleError, run_local

    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    made = Bundle(tmp_path, tmp_path / "missing.ipynb", {}, {}, "", "", 0)
    with pytest.raises(BundleError, match="already exists.*--resume r1"):
        run_local(made, run_dir)
    with pytest.raises(BundleError, match="no checkpoints to resume from") as info:
        run_local(made, run_dir, resume=True)
    assert info.value.exit_code == 2
    (run_dir / "checkpoints").mkdir()
    (run_dir / "run.log").write_text("[]")
    with owned(run_dir, ".push.lock"), pytest.raises(BundleError, match="in use by pid"):
        run_local(made, run_dir, resume=True)
    assert (run_dir / "run.log").read_text() == "[]", "a refused resume changes nothing"
    assert run_local(made, run_dir, resume=True).status == "error"  # the notebook does not exist
    assert (run_dir / "run.1.log").read_text() == "[]" and (run_dir / "run.log").read_text() != "[]"


def test_fetch_logs_names_an_unknown_status(kaggle_env, tmp_path, capsys) -> None:
    import fetch_logs

    kaggle_env.add_kernel(REF, statuses=["HIBERNATING"], outputs={"run.log": b"[]"})
    assert fetch_logs.main([REF + "/1", "--runs-dir", str(tmp_path / "runs"), "--json"]) == 1
    notes = json.loads(capsys.readouterr().out)["notes"]
    assert any("status 'HIBERNATING', which this tool does not know" in n for n in notes)


def test_a_lost_push_reply_with_unreadable_versions_says_a_version_may_exist(kaggle_env, bundle_dir,
                                                                             monkeypatch) -> None:
    looks = iter([lambda: 0, lambda: (_ for _ in ()).throw(KaggleError("HTTP 503"))])
    monkeypatch.setattr(kaggle_io, "latest_version", lambda ref, api=None: next(looks)())
    kaggle_env.misbehave("SaveKernel", "drop")
    with pytest.raises(KaggleError, match="reply was lost .* a new version may exist"):
        kaggle_io.push(bundle_dir)
    assert len(kaggle_env.calls("SaveKernel")) == 1


def test_a_push_whose_version_cannot_be_read_first_sends_nothing(kaggle_env, bundle_dir) -> None:
    kaggle_env.misbehave("GetKernel", "garbage", times=99)
    with pytest.raises(KaggleError, match="could not read the kernel's latest version"):
        kaggle_io.push(bundle_dir)
    assert kaggle_env.calls("SaveKernel") == []
