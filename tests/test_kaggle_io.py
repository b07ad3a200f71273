"""lib/remote/kaggle_api.py driven through the real `kaggle` client against the stand-in server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lib.remote import kaggle_api as kaggle_io
from lib.remote.bundle import build_bundle, resolve_parameters
from lib.remote.kaggle_api import KaggleError

pytest_plugins = ("tests.kaggle_stub",)

USERNAME = "stubuser"
REF = f"{USERNAME}/victoria-island-signals"


@pytest.fixture(autouse=True)
def no_retry_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries keep their count but not their sleeping, so the tests stay fast."""
    monkeypatch.setenv(kaggle_io.POLICY_ENV, "backoff_s=0,min_poll_s=0")


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    params = resolve_parameters({"config": {"steps": 300, "run_id": "t1"}})
    return build_bundle(params, tmp_path / "bundle", REF, "NvidiaTeslaT4").folder


def test_push_sends_notebook_metadata_and_auth(kaggle_env, bundle_dir: Path, tmp_path: Path) -> None:
    stub = kaggle_env
    result = kaggle_io.push(bundle_dir, timeout_s=3600, accelerator="NvidiaTeslaT4")
    assert (result.ref, result.version) == (REF, 1)
    assert result.url.endswith(REF)
    [call] = stub.calls("SaveKernel")
    assert call.headers["Authorization"] == stub.basic_auth()
    body = call.body
    assert body["slug"] == REF and body["newTitle"] == "Victoria Island Signals"
    assert (body["language"], body["kernelType"]) == ("python", "notebook")
    assert body["isPrivate"] is True and body["enableGpu"] is True and body["enableInternet"] is True
    assert body["machineShape"] == "NvidiaTeslaT4" and body["sessionTimeoutSeconds"] == 3600
    cells = json.loads(body["text"])["cells"]
    injected = next(c for c in cells if "injected-parameters" in c["metadata"].get("tags", []))
    assert '"steps": 300' in injected["source"] and '"run_id": "t1"' in injected["source"]
    record = json.loads(kaggle_io.record_push(result, tmp_path / "runs").read_text())
    assert record["ref"] == REF and record["version"] == 1 and record["url"] == result.url
    assert record["pushed_at"] > 0


def test_push_with_api_token_uses_bearer(kaggle_env, bundle_dir: Path, monkeypatch) -> None:
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    monkeypatch.setenv("KAGGLE_API_TOKEN", kaggle_env.token)
    kaggle_io.push(bundle_dir)
    assert kaggle_env.calls("IntrospectToken")
    [call] = kaggle_env.calls("SaveKernel")
    assert call.headers["Authorization"] == f"Bearer {kaggle_env.token}"


def test_error_field_in_http_200_reply_is_a_failure(kaggle_env, bundle_dir: Path) -> None:
    kaggle_env.save_error = "Notebook exceeds maximum GPU quota"
    with pytest.raises(KaggleError, match="GPU quota") as info:
        kaggle_io.push(bundle_dir)
    assert info.value.exit_code == 1


def test_rate_limit_is_retried_honouring_retry_after(kaggle_env, bundle_dir: Path) -> None:
    kaggle_env.fail("SaveKernel", 429, times=2, retry_after="0")
    assert kaggle_io.push(bundle_dir).version == 1
    assert len(kaggle_env.calls("SaveKernel")) == 3


def test_rate_limit_that_persists_gives_up_with_advice(kaggle_env, bundle_dir: Path) -> None:
    kaggle_env.fail("SaveKernel", 429, times=99, retry_after="0")
    with pytest.raises(KaggleError, match="429") as info:
        kaggle_io.push(bundle_dir)
    assert info.value.exit_code == 1
    assert len(kaggle_env.calls("SaveKernel")) == kaggle_io.Policy().attempts


@pytest.mark.parametrize(("status", "code", "words"), [
    (401, 2, "rejected the credentials"), (403, 2, "phone verification"), (400, 1, "Check https")])
def test_push_http_errors_are_not_retried_and_explained(kaggle_env, bundle_dir, status, code, words) -> None:
    kaggle_env.fail("SaveKernel", status)
    with pytest.raises(KaggleError, match=words) as info:
        kaggle_io.push(bundle_dir)
    assert info.value.exit_code == code
    assert len(kaggle_env.calls("SaveKernel")) == 1
    assert kaggle_env.key not in str(info.value)


def test_rejected_token_exits_2_with_setup_help(kaggle_env, monkeypatch) -> None:
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    monkeypatch.setenv("KAGGLE_API_TOKEN", "KGAT_revoked-token")
    with pytest.raises(KaggleError, match="did not accept the configured credentials") as info:
        kaggle_io.kernel_status(REF)
    assert info.value.exit_code == 2
    assert [c.body["token"] for c in kaggle_env.calls("IntrospectToken")][-1] == "KGAT_revoked-token"
    assert "KGAT_revoked-token" not in str(info.value)


def test_wrong_key_is_refused_by_the_server(kaggle_env, monkeypatch) -> None:
    kaggle_env.add_kernel(REF)
    monkeypatch.setenv("KAGGLE_KEY", "0" * 32)
    with pytest.raises(KaggleError) as info:
        kaggle_io.kernel_status(REF)
    assert info.value.exit_code == 2
    assert "0" * 32 not in str(info.value)


def test_status_reads_retry_server_errors(kaggle_env) -> None:
    kaggle_env.add_kernel(REF, statuses=["RUNNING"])
    kaggle_env.fail("GetKernelSessionStatus", 500, times=2)
    assert kaggle_io.kernel_status(REF) == ("RUNNING", None)
    assert len(kaggle_env.calls("GetKernelSessionStatus")) == 3


def test_status_error_with_failure_message(kaggle_env) -> None:
    kaggle_env.add_kernel(REF, statuses=["ERROR"], failure_message="CUDA out of memory")
    assert kaggle_io.kernel_status(REF + "/2") == ("ERROR", "CUDA out of memory")
    assert kaggle_env.calls("GetKernelSessionStatus")[0].body["versionLabel"] == "v2"


def test_unknown_kernel_and_bad_ref_exit_2(kaggle_env) -> None:
    with pytest.raises(KaggleError, match="404") as info:
        kaggle_io.kernel_status(f"{USERNAME}/no-such-kernel")
    assert info.value.exit_code == 2
    kaggle_env.fail("GetKernelSessionStatus", 403)
    with pytest.raises(KaggleError, match="cannot access kernel") as info:
        kaggle_io.kernel_status(REF)
    assert info.value.exit_code == 2
    with pytest.raises(KaggleError, match="OWNER/SLUG") as info:
        kaggle_io.kernel_status("just-a-slug")
    assert info.value.exit_code == 2


def test_wait_polls_until_a_final_status(kaggle_env) -> None:
    kaggle_env.add_kernel(REF, statuses=["QUEUED", "RUNNING", "RUNNING", "COMPLETE"])
    seen: list[str] = []
    status = kaggle_io.wait_for_completion(REF, poll_s=0.0, on_poll=lambda s, t: seen.append(s))
    assert status == ("COMPLETE", None)
    assert seen == ["QUEUED", "RUNNING", "RUNNING", "COMPLETE"]


def test_download_gets_all_pages_into_new_folders(kaggle_env, tmp_path: Path) -> None:
    outputs = {f"file{i}.txt": f"content {i}".encode() for i in range(5)}
    kaggle_env.add_kernel(REF, outputs=outputs, log='[{"stream_name":"stdout","time":1.0,"data":"hi\\n"}]')
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "last_push.json").write_text(json.dumps({"ref": REF, "version": 4}))
    first = kaggle_io.download_output(REF, runs)
    assert first == runs / "victoria-island-signals-v4"
    assert {p.name: p.read_bytes() for p in first.glob("file*")} == outputs
    assert json.loads((first / "victoria-island-signals.log").read_text())[0]["data"] == "hi\n"
    assert len(kaggle_env.calls("ListKernelSessionOutput")) == 3
    (first / "file0.txt").write_text("kept")
    second = kaggle_io.download_output(REF + "/4", runs)
    assert second == runs / "victoria-island-signals-v4-2"
    assert (first / "file0.txt").read_text() == "kept"
    assert kaggle_io.download_output(f"{REF}/7", runs).name == "victoria-island-signals-v7"


def test_failed_download_leaves_no_half_folder(kaggle_env, tmp_path: Path) -> None:
    kaggle_env.add_kernel(REF, outputs={"a.txt": b"a"})
    kaggle_env.fail("download", 500, times=99)
    with pytest.raises(KaggleError, match="HTTP 500.*Retry later"):
        kaggle_io.download_output(REF + "/1", tmp_path / "runs")
    assert list((tmp_path / "runs").iterdir()) == []


def test_missing_credentials_exit_2_before_any_request(kaggle_env, monkeypatch) -> None:
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    assert not kaggle_io.has_credentials()
    with pytest.raises(KaggleError, match="KAGGLE_API_TOKEN") as info:
        kaggle_io.kernel_status(REF)
    assert info.value.exit_code == 2
    assert kaggle_env.requests == []


def test_credentials_file_is_found_and_its_key_known_as_secret(kaggle_stub, tmp_path, monkeypatch) -> None:
    env = kaggle_stub.client_env(tmp_path / "home", credentials="file")
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    monkeypatch.delenv("KAGGLE_KEY", raising=False)
    monkeypatch.delenv("KAGGLE_API_TOKEN", raising=False)
    monkeypatch.delenv("KAGGLE_CONFIG_DIR", raising=False)
    monkeypatch.setenv("HOME", env["HOME"])
    assert kaggle_io.has_credentials()
    assert kaggle_io.configured_username() == USERNAME
    assert kaggle_stub.key in kaggle_io.credential_values()


def test_stub_catches_requests_that_would_reach_kaggle(kaggle_env, monkeypatch) -> None:
    """Fail closed: without the LOCALHOST switch the client goes to https://api.kaggle.com, which
    the HTTPS proxy (the stub) refuses and records; nothing leaves the machine."""
    monkeypatch.delenv("KAGGLE_API_ENVIRONMENT")
    with pytest.raises(KaggleError):
        kaggle_io.kernel_status(REF)
    assert any("api.kaggle.com" in line for line in kaggle_env.escaped)
    kaggle_env.escaped.clear()
