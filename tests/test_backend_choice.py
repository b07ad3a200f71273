"""backend="auto" says why: the device it found, or numba's error when CUDA is unusable; a Kaggle
GPU session that ends up on the CPU is a `warning` that fetch_logs.py puts in its summary."""

from __future__ import annotations

import pytest
from numba import cuda

from lib.rl.train import report_backend
from lib.runlog.analysis import analyse_path
from lib.runlog.report import render_text
from lib.sim import simulator
from lib.sim.simulator import choose_backend, kaggle_gpu_attached

BROKEN = "CUDA_ERROR_NO_DEVICE: driver 999 says no"


@pytest.fixture
def broken_cuda(monkeypatch):
    def fail():
        raise RuntimeError(BROKEN)

    monkeypatch.setattr(cuda, "current_context", fail)


def test_auto_on_a_broken_cuda_says_numbas_error(broken_cuda) -> None:
    choice = choose_backend("auto")
    assert choice.backend == "cpu" and choice.device == "cpu"
    assert choice.reason == f"RuntimeError: {BROKEN}"
    with pytest.raises(ValueError, match="driver 999 says no"):
        choose_backend("cuda")


def test_asking_for_the_cpu_is_its_own_reason() -> None:
    assert choose_backend("cpu").reason == "asked for the CPU"


def test_a_kaggle_gpu_session_is_told_from_its_environment_and_driver_files(tmp_path) -> None:
    kaggle = {"KAGGLE_KERNEL_RUN_TYPE": "Batch"}
    assert not kaggle_gpu_attached(kaggle, tmp_path), "a Kaggle CPU session has no NVIDIA device"
    (tmp_path / "proc/driver/nvidia/gpus/0000:00:04.0").mkdir(parents=True)
    assert kaggle_gpu_attached(kaggle, tmp_path)
    assert not kaggle_gpu_attached({}, tmp_path), "not on Kaggle: no accelerator was requested there"
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/nvidia0").touch()
    assert kaggle_gpu_attached(kaggle, tmp_path / "dev/..")


def test_an_idle_kaggle_gpu_is_a_warning_in_the_log_summary(broken_cuda, monkeypatch, pool_events,
                                                            tmp_path) -> None:
    monkeypatch.setattr(simulator, "kaggle_gpu_attached", lambda: True)
    report_backend(choose_backend("auto"))
    (said,) = pool_events("backend")
    assert said["backend"] == "cpu" and said["requested"] == "auto" and BROKEN in said["reason"]
    (warning,) = pool_events("warning")
    assert warning["category"] == "gpu_unused" and BROKEN in warning["message"]
    log = tmp_path / "run.log"
    log.write_text(pool_events.stream.getvalue())
    summary = render_text(analyse_path(log)).split("== ")[1]
    assert f"backend cpu on cpu (asked auto): RuntimeError: {BROKEN}" in summary
    assert "WARNING: the GPU sat idle: a GPU accelerator is attached" in summary


def test_no_warning_off_kaggle(broken_cuda, monkeypatch, pool_events) -> None:
    monkeypatch.setattr(simulator, "kaggle_gpu_attached", lambda: False)
    report_backend(choose_backend("auto"))
    assert not pool_events("warning")
