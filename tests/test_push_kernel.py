"""push_kernel.py end to end against the stand-in Kaggle server, and the bundle's guarantees."""

from __future__ import annotations

import ast
import base64
import hashlib
import io
import json
import lzma
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import nbformat
import pytest

from lib.remote import bundle as bundle_mod
from lib.remote.bundle import (
    REPO_ROOT,
    BundleError,
    KaggleStyleLog,
    build_bundle,
    resolve_parameters,
    run_local,
)
from lib.rl.run_config import RunConfig
from lib.runlog.analysis import analyse_path
from lib.sim.simulator import cuda_available

pytest_plugins = ("tests.kaggle_stub",)

REF = "stubuser/victoria-island-signals"
SCRIPT = REPO_ROOT / "push_kernel.py"


def push_cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the CLI with its runs/ and build/ folders under `cwd` (a temporary folder); lib/ may have
    uncommitted changes while one works (the clean-tree check has tests of its own)."""
    env = {"SIGNALS_KAGGLE_POLICY": "backoff_s=0,min_poll_s=0", **env, "PYTHONPATH": str(REPO_ROOT)}
    folders = ["--runs-dir", str(cwd / "runs"), "--build-dir", str(cwd / "build"), "--allow-dirty"]
    return subprocess.run([sys.executable, str(SCRIPT), *args, *folders], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def cells_of(text: str) -> list[dict]:
    return json.loads(text)["cells"]


def tagged(cells: list[dict], tag: str) -> dict:
    return next(c for c in cells if tag in c["metadata"].get("tags", []))


def injected_config(cells: list) -> dict:
    """The run settings papermill injected: the notebook's one `config` parameter."""
    source = tagged(cells, "injected-parameters")["source"]
    return ast.literal_eval(re.search(r"^config = (.*)$", source, re.M).group(1))


def test_push_steps_300_reaches_the_stub(kaggle_stub, tmp_path: Path) -> None:
    env = kaggle_stub.client_env(tmp_path / "home", credentials="key")
    done = push_cli(["--steps", "300"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert "Pushed version 1: https://www.kaggle.com/code/" + REF in done.stdout
    [call] = kaggle_stub.calls("SaveKernel")
    assert call.headers["Authorization"] == kaggle_stub.basic_auth()
    body = call.body
    assert body["slug"] == REF and body["machineShape"] == "NvidiaTeslaT4" and body["enableGpu"] is True
    assert body["isPrivate"] is True and body["kernelType"] == "notebook" and body["language"] == "python"
    cells = cells_of(body["text"])
    assert "LIB_ARCHIVE" in cells[0]["source"]
    injected = injected_config(cells)
    assert injected["steps"] == 300
    assert re.fullmatch(r"[0-9a-f]{12}(-dirty)?", injected["commit"])
    assert kaggle_stub.key not in body["text"]
    record = json.loads((tmp_path / "runs" / "last_push.json").read_text())
    assert record["ref"] == REF and record["version"] == 1


def test_wait_reports_error_then_downloads(kaggle_stub, tmp_path: Path) -> None:
    kaggle_stub.default_statuses = ["RUNNING", "ERROR"]
    env = kaggle_stub.client_env(tmp_path / "home", credentials="token")
    kaggle_stub.add_kernel(REF, statuses=["RUNNING", "ERROR"], failure_message="CUDA out of memory",
                           outputs={"results.json": b"{}"}, log="[]")
    done = push_cli(["--steps", "300", "--wait", "--poll-interval", "0.01"], tmp_path, env)
    assert done.returncode == 1, done.stderr
    assert "RUNNING" in done.stdout and "ERROR: CUDA out of memory" in done.stdout
    folder = tmp_path / "runs" / "victoria-island-signals-v1"
    assert (folder / "results.json").read_bytes() == b"{}"
    assert kaggle_stub.calls("SaveKernel")[0].headers["Authorization"] == f"Bearer {kaggle_stub.token}"


def test_wait_complete_downloads_and_prints_the_analysis(kaggle_stub, tmp_path: Path) -> None:
    lines = ['[event] {"event": "run_start", "t": 0.0, "run_id": "k1", "commit": "abc", "params": {}}\n',
             '[event] {"event": "run_end", "t": 42.0, "status": "ok", "seconds": 42.0}\n']
    log = json.dumps([{"stream_name": "stdout", "time": 1.0 + i, "data": x} for i, x in enumerate(lines)])
    kaggle_stub.add_kernel(REF, statuses=["QUEUED", "RUNNING", "COMPLETE"], log=log)
    done = push_cli(["--steps", "300", "--wait", "--poll-interval", "0.01"], tmp_path,
                    kaggle_stub.client_env(tmp_path / "home"))
    assert done.returncode == 0, done.stderr
    assert "QUEUED" in done.stdout and "Kaggle run ended: COMPLETE" in done.stdout
    folder = tmp_path / "runs" / "victoria-island-signals-v1"
    assert json.loads((folder / "victoria-island-signals.log").read_text())[1]["data"] == lines[1]
    analysis = json.loads((folder / "analysis.json").read_text())
    assert analysis["run"]["run_id"] == "k1" and analysis["ending"]["status"] == "completed"
    assert "run k1 commit abc" in done.stdout
    assert [c.body.get("versionLabel") for c in kaggle_stub.calls("GetKernelSessionStatus")] == ["v1"] * 3


def test_save_error_field_fails_the_cli(kaggle_stub, tmp_path: Path) -> None:
    kaggle_stub.save_error = "Maximum batch GPU session count reached"
    done = push_cli(["--steps", "300"], tmp_path, kaggle_stub.client_env(tmp_path / "home"))
    assert done.returncode == 1
    assert "Maximum batch GPU session count reached" in done.stderr
    assert not (tmp_path / "runs" / "last_push.json").exists()


def test_kaggle_target_without_credentials_exits_2(kaggle_stub, tmp_path: Path) -> None:
    env = kaggle_stub.client_env(tmp_path / "home", credentials=None)
    done = push_cli(["--target", "kaggle", "--steps", "300"], tmp_path, env)
    assert done.returncode == 2
    assert "KAGGLE_API_TOKEN" in done.stderr and "kaggle.json" in done.stderr
    assert kaggle_stub.requests == []


def test_dry_run_with_retired_p100_writes_bundle_only(kaggle_stub, tmp_path: Path) -> None:
    env = kaggle_stub.client_env(tmp_path / "home", credentials="file")
    done = push_cli(["--dry-run", "--accelerator", "NvidiaTeslaP100", "-p", "seed", "7",
                     "--slug", "my-test-run"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert "retired the P100" in done.stderr
    metadata = json.loads((tmp_path / "build" / "my-test-run" / "kernel-metadata.json").read_text())
    assert metadata["id"] == "stubuser/my-test-run" and metadata["machine_shape"] == "NvidiaTeslaP100"
    assert metadata["code_file"] == "my-test-run.ipynb" and metadata["title"] == "My Test Run"
    nb = nbformat.read(tmp_path / "build" / "my-test-run" / "my-test-run.ipynb", as_version=4)
    assert injected_config(nb.cells)["seed"] == 7
    assert kaggle_stub.requests == []


def test_unknown_setting_names_the_closest(kaggle_stub, tmp_path: Path) -> None:
    env = kaggle_stub.client_env(tmp_path / "home")
    done = push_cli(["--dry-run", "-p", "stpes", "3"], tmp_path, env)
    assert done.returncode == 2
    assert "unknown key 'stpes'" in done.stderr and "'steps'" in done.stderr
    done = push_cli(["--dry-run", "-p", "env.sim.ordr", "2"], tmp_path, env)
    assert done.returncode == 2 and "Did you mean 'env.sim.order'?" in done.stderr


def test_every_run_setting_is_an_option_with_dotted_names(kaggle_stub, tmp_path: Path) -> None:
    """Nested settings reach the notebook's `config` typed per field, from options and -p alike."""
    done = push_cli(["--dry-run", "--env.sim.order", "2", "--env.reward", "queue", "--run-id", "007",
                     "-p", "env.demand-level-range", "[0.9, 1.1]", "--net-arch", "[32]", "--slug", "dotted"],
                    tmp_path, kaggle_stub.client_env(tmp_path / "home"))
    assert done.returncode == 0, done.stderr
    nb = nbformat.read(tmp_path / "build" / "dotted" / "dotted.ipynb", as_version=4)
    config = injected_config(nb.cells)
    assert config["env.sim.order"] == 2 and config["env.reward"] == "queue" and config["run_id"] == "007"
    run = RunConfig.from_dict(config)  # as the notebook reads it: JSON lists back to tuples
    assert run.env.demand_level_range == (0.9, 1.1) and run.net_arch == (32,)


@pytest.fixture
def fake_lib(tmp_path: Path) -> Path:
    lib = tmp_path / "src" / "lib"
    lib.mkdir(parents=True)
    (lib / "__init__.py").write_text('"""A stand-in lib package."""\n')
    (lib / "marker.py").write_text("VALUE = 41 + 1\n")
    return lib


def build(lib: Path, tmp_path: Path, **params) -> bundle_mod.Bundle:
    return build_bundle(resolve_parameters({"config": {"run_id": "t", **params}}), tmp_path / "out", REF,
                        "NvidiaTeslaT4", lib_dir=lib)


def test_bundle_embeds_lib_and_pins(fake_lib: Path, tmp_path: Path) -> None:
    made = build(fake_lib, tmp_path)
    source = nbformat.read(made.notebook, as_version=4).cells[0].source
    archive = re.search(r"^LIB_ARCHIVE = '([A-Za-z0-9+/=]+)'$", source, re.M).group(1)
    tar_bytes = lzma.decompress(base64.b64decode(archive))
    assert hashlib.sha256(tar_bytes).hexdigest() == made.lib_sha256
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        assert sorted(tar.getnames()) == ["lib/__init__.py", "lib/marker.py"]
        assert tar.extractfile("lib/marker.py").read() == b"VALUE = 41 + 1\n"
    pins = bundle_mod.pinned_requirements()
    assert pins["stable-baselines3"] == "2.9.2" and "kaggle" not in pins and "papermill" not in pins
    assert repr(pins) in source


def test_bundle_ships_only_the_layers_that_run_in_the_notebook(tmp_path: Path) -> None:
    """The run needs config, obs, sim, rl and the data; log reading and pushing never run there."""
    made = build_bundle(resolve_parameters({"config": {"run_id": "t"}}), tmp_path / "out", REF, None)
    source = nbformat.read(made.notebook, as_version=4).cells[0].source
    archive = re.search(r"^LIB_ARCHIVE = '([A-Za-z0-9+/=]+)'$", source, re.M).group(1)
    with tarfile.open(fileobj=io.BytesIO(lzma.decompress(base64.b64decode(archive)))) as tar:
        tops = {name.split("/")[1] for name in tar.getnames()}
    assert tops == {"__init__.py", "config.py", "data", "obs", "rl", "sim"}
    assert re.search(r"^SHIPPED = \['__init__', 'config', 'data', 'obs', 'rl', 'sim'\]$", source, re.M)


def test_bootstrap_cell_unpacks_an_importable_lib(fake_lib: Path, tmp_path: Path) -> None:
    """The first cell, run as a script elsewhere, makes `import lib` the bundled package."""
    made = build(fake_lib, tmp_path)
    source = nbformat.read(made.notebook, as_version=4).cells[0].source
    script = source + "\nimport lib.marker\nprint('VALUE', lib.marker.VALUE, lib.marker.__file__)\n"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "XDG_CACHE_HOME")}
    done = subprocess.run([sys.executable, "-c", script], cwd=elsewhere, capture_output=True, text=True,
                          env={**env, "HOME": str(tmp_path / "home")}, timeout=120)
    assert done.returncode == 0, done.stderr
    private = tmp_path / "home" / ".cache" / "victoria-island-signals"
    unpacked = private / f"lib-{made.lib_sha256[:16]}"
    assert "VALUE 42" in done.stdout and str(unpacked) in done.stdout
    assert private.stat().st_mode & 0o777 == 0o700
    assert "installing" not in done.stdout
    (unpacked / "gymnasium.py").write_text("raise SystemExit('planted module imported')\n")
    again = subprocess.run([sys.executable, "-c", script + "import gymnasium\n"], cwd=elsewhere,
                           capture_output=True, text=True, env={**env, "HOME": str(tmp_path / "home")},
                           timeout=120)
    assert again.returncode == 0, again.stderr
    assert not (unpacked / "gymnasium.py").exists(), "a folder that does not match its hashes is replaced"
    private.chmod(0o755)
    shared = subprocess.run([sys.executable, "-c", script], cwd=elsewhere, capture_output=True, text=True,
                            env={**env, "HOME": str(tmp_path / "home")}, timeout=120)
    assert shared.returncode != 0 and "must belong to you and be private: chmod 700" in shared.stderr


def test_oversized_bundle_is_refused(fake_lib: Path, tmp_path: Path) -> None:
    (fake_lib / "data.bin").write_bytes(os.urandom(1_100_000))
    with pytest.raises(BundleError, match=r"over Kaggle's 1 MB source limit.*lib/data.bin"):
        build(fake_lib, tmp_path)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["kaggle.json", ".env", "access_token"])
def test_credential_file_in_tree_is_refused(fake_lib: Path, tmp_path: Path, name: str) -> None:
    (fake_lib / "data").mkdir()
    (fake_lib / "data" / name).write_text("harmless-looking")
    with pytest.raises(BundleError, match="credential file"):
        build(fake_lib, tmp_path)


def test_configured_key_anywhere_is_refused_without_showing_it(fake_lib, tmp_path, monkeypatch) -> None:
    secret = "0123456789abcdef0123456789abcdef"
    monkeypatch.setenv("KAGGLE_KEY", secret)
    (fake_lib / "settings.py").write_text(f"TOKEN = '{secret}'\n")
    with pytest.raises(BundleError, match="looks like a Kaggle key") as info:
        build(fake_lib, tmp_path)
    assert secret not in str(info.value)
    (fake_lib / "settings.py").unlink()
    with pytest.raises(BundleError, match="the notebook or its parameters"):
        build(fake_lib, tmp_path, algorithm=secret)


def test_key_shaped_text_is_refused(fake_lib: Path, tmp_path: Path) -> None:
    (fake_lib / "leak.py").write_text('CONFIG = {"username": "x", "key": "' + "ab" * 16 + '"}\n')
    with pytest.raises(BundleError, match="lib/leak.py"):
        build(fake_lib, tmp_path)


def test_kaggle_style_log_is_written_incrementally(tmp_path: Path) -> None:
    path = tmp_path / "run.log"
    log = KaggleStyleLog(path)
    log.write("stdout", "first\nsecond\n")
    log.write("stderr", "warn")
    truncated = path.read_text()
    assert not truncated.endswith("]")
    assert [e["data"] for e in json.loads(truncated + "]")] == ["first\n", "second\n", "warn"]
    log.close()
    assert [e["stream_name"] for e in json.loads(path.read_text())] == ["stdout", "stdout", "stderr"]


def test_failing_cell_is_named_and_partial_log_kept(fake_lib: Path, tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                           "display_name": "Python 3"},
                                            "language_info": {"name": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("steps = 1", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("print('before the failure', steps)"),
                nbformat.v4.new_code_cell("import lib.marker\nraise ValueError('boom')")]
    notebook = tmp_path / "failing.ipynb"
    nbformat.write(nb, notebook)
    made = build_bundle({"steps": 5}, tmp_path / "out", REF, None, notebook=notebook, lib_dir=fake_lib)
    result = run_local(made, tmp_path / "runs" / "r1")
    assert result.status == "error"
    assert "raised ValueError: boom" in result.error and "import lib.marker" in result.error
    records = json.loads((tmp_path / "runs" / "r1" / "run.log").read_text())
    assert {"stream_name": "stdout", "data": "before the failure 5\n"}.items() <= {
        **next(r for r in records if "before" in r["data"])}.items()
    assert (tmp_path / "runs" / "r1" / made.notebook.name).is_file()
    ending = analyse_path(tmp_path / "runs" / "r1" / "run.log")["ending"]
    assert ending["status"] == "error" and "ValueError: boom" in json.dumps(ending)
    with pytest.raises(BundleError, match="already exists"):
        run_local(made, tmp_path / "runs" / "r1")


@pytest.mark.slow
def test_target_local_runs_here_even_with_credentials(kaggle_stub, tmp_path: Path) -> None:
    env = kaggle_stub.client_env(tmp_path / "home", credentials="key")
    done = push_cli(["--target", "local", "--steps", "128", "--env.episode-seconds", "120", "--eval-episodes",
                     "1", "--n-envs", "2", "--run-id", "local-tiny"], tmp_path, env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "LOCAL RUN (--target local)" in done.stdout
    assert "LOCAL RUN finished (ran here, not on Kaggle)" in done.stdout
    assert '"event": "run_end"' in done.stdout
    assert "without encryption" not in done.stdout + done.stderr  # the local kernel talks over IPC
    run_dir = tmp_path / "runs" / "local-tiny"
    for name in ("run.log", "results.json", "victoria-island-signals.ipynb", "model.zip"):
        assert (run_dir / name).is_file(), name
    log = json.loads((run_dir / "run.log").read_text())
    assert {r["stream_name"] for r in log} == {"stdout", "stderr"}
    assert kaggle_stub.requests == []


@pytest.mark.parametrize("target", ["local", "kaggle"])
def test_parameters_the_run_would_reject_are_refused_before_running(kaggle_stub, tmp_path, target) -> None:
    env = kaggle_stub.client_env(tmp_path / "home", credentials="key")
    done = push_cli(["--target", target, "--n-envs", "0", "--run-id", "bad"], tmp_path, env)
    assert done.returncode == 2
    assert "the run would reject these settings: RunConfig.n_envs must be >= 1" in done.stderr
    assert not (tmp_path / "runs" / "bad").exists() and not (tmp_path / "build").exists()
    assert kaggle_stub.requests == []


@pytest.mark.skipif(cuda_available(), reason="needs a machine without a CUDA GPU to make the run fail")
def test_auto_without_credentials_runs_here_and_names_a_failing_cell(kaggle_stub, tmp_path: Path) -> None:
    env = kaggle_stub.client_env(tmp_path / "home", credentials=None)
    done = push_cli(["--env.backend", "cuda", "--run-id", "bad"], tmp_path, env)
    assert done.returncode == 1
    assert "LOCAL RUN (no Kaggle credentials are configured)" in done.stdout
    assert "LOCAL RUN FAILED" in done.stdout and "numba finds no CUDA GPU" in done.stdout
    log = json.loads((tmp_path / "runs" / "bad" / "run.log").read_text())
    assert any("unpacked to" in r["data"] for r in log)
    assert (tmp_path / "runs" / "bad" / "victoria-island-signals.ipynb").is_file()
    assert kaggle_stub.requests == []


def test_non_positive_timeout_is_an_argument_error(kaggle_stub, tmp_path: Path) -> None:
    env = kaggle_stub.client_env(tmp_path / "home", credentials="key")
    done = push_cli(["--timeout", "-3", "--dry-run"], tmp_path, env)
    assert done.returncode == 2
    assert "--timeout: must be a positive whole number of seconds, got '-3'" in done.stderr
    assert kaggle_stub.requests == []
