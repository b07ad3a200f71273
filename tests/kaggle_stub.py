"""A stand-in for Kaggle's HTTP API on 127.0.0.1, so tests drive the real `kaggle` client offline.

Why: the push and download code must be tested against the client as it really behaves (its
request bodies, its auth headers, its handling of HTTP errors), yet nothing may reach Kaggle.
The client honours `KAGGLE_API_ENVIRONMENT=LOCALHOST` by sending every call to
`http://localhost/api/v1/...`; with `HTTP_PROXY` pointing here (and `NO_PROXY` empty) those calls
arrive at this server as proxy requests. `HTTPS_PROXY` points here too, so a call that would
escape to the real Kaggle (https) arrives as a `CONNECT`, is refused and recorded in
`stub.escaped`; the fixtures fail the test when anything escaped, so the tests fail closed.

Usage in a test module::

    pytest_plugins = ("tests.kaggle_stub",)   # the fixtures kaggle_stub, kaggle_env; import
                                              # nothing else from here (pytest warns if you do)

    def test_x(kaggle_env):               # in-process: env set, HOME is a temporary folder
        stub = kaggle_env
        stub.add_kernel("stubuser/my-run", statuses=["COMPLETE"], outputs={"run.log": b"[]"})
        ...
        assert stub.calls("GetKernelSessionStatus")

    def test_y(kaggle_stub, tmp_path):      # subprocess: pass stub.client_env(tmp_path / "home")
        subprocess.run([...], env=kaggle_stub.client_env(tmp_path / "home"))

It answers `SaveKernel`, `GetKernelSessionStatus`, `ListKernelSessionOutput` (paginated:
`output_page_size` files per page), `IntrospectToken` (for `KAGGLE_API_TOKEN`) and the file
downloads the listing points to. `stub.fail(endpoint, status, times)` scripts HTTP errors;
`stub.misbehave(endpoint, mode, times)` scripts faults: "stall" (no reply until `stall_s` passed
or the stub stops), "drop" (act on the request, then close the connection without a reply),
"garbage" (HTTP 200 with a body that is not JSON) and "truncate" (a download cut off mid-body).
"""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

USERNAME = "stubuser"
KEY = "stub-key-0123456789abcdef"
TOKEN = "KGAT_stub-token-0123456789abcdef"
API_PREFIX = "/api/v1/"
LOCAL_HOSTS = ("localhost", "127.0.0.1")
FINAL_STATUSES = ("COMPLETE", "ERROR", "CANCEL_ACKNOWLEDGED")
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client dropping a kept-alive connection is normal; other errors are reported."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class Recorded:
    """One request the stub received: `endpoint` is the API method name or 'download'."""

    method: str
    host: str
    path: str
    endpoint: str
    headers: dict[str, str]
    body: Any


@dataclass
class StubKernel:
    """A kernel the stub knows: its versions, scripted statuses and outputs."""

    ref: str
    version: int = 0
    statuses: list[str] = field(default_factory=lambda: ["RUNNING", "COMPLETE"])
    failure_message: str | None = None
    outputs: dict[str, bytes] = field(default_factory=dict)
    log: str | None = None
    pushed: list[dict[str, Any]] = field(default_factory=list)

    def next_status(self) -> str:
        """The scripted statuses one per call; the last one repeats."""
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]


@dataclass
class ScriptedFailure:
    status: int
    times: int
    retry_after: str | None
    message: str


class KaggleStub:
    """The server's state: kernels, recorded requests, scripted failures. Thread-safe."""

    username, key, token = USERNAME, KEY, TOKEN

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.escaped: list[str] = []
        self.kernels: dict[str, StubKernel] = {}
        self.save_error: str | None = None
        self.output_page_size = 2
        self.default_statuses = ["RUNNING", "COMPLETE"]
        self._failures: dict[str, list[ScriptedFailure]] = {}
        self._faults: dict[str, list[list[Any]]] = {}
        self.stall_s = 30.0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> KaggleStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def add_kernel(self, ref: str, **fields: Any) -> StubKernel:
        """Register (or replace) kernel `owner/slug` with the given StubKernel fields."""
        kernel = StubKernel(ref=ref, **fields)
        with self._lock:
            self.kernels[ref] = kernel
        return kernel

    def fail(self, endpoint: str, status: int, times: int = 1, retry_after: str | None = None,
             message: str = "scripted failure") -> None:
        """Answer the next `times` calls of `endpoint` with HTTP `status` (JSON error body)."""
        with self._lock:
            self._failures.setdefault(endpoint, []).append(
                ScriptedFailure(status, times, retry_after, message))

    def misbehave(self, endpoint: str, mode: str, times: int = 1) -> None:
        """Answer the next `times` calls of `endpoint` with fault `mode` (see the module docstring)."""
        if mode not in ("stall", "drop", "garbage", "truncate"):
            raise ValueError(f"unknown fault mode {mode!r}")
        with self._lock:
            self._faults.setdefault(endpoint, []).append([mode, times])

    def _fault(self, endpoint: str) -> str | None:
        with self._lock:
            queue = self._faults.get(endpoint, [])
            if not queue:
                return None
            queue[0][1] -= 1
            return (queue.pop(0) if queue[0][1] <= 0 else queue[0])[0]

    def calls(self, endpoint: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.endpoint == endpoint]

    def basic_auth(self) -> str:
        """The Authorization header the client sends for KAGGLE_USERNAME/KAGGLE_KEY."""
        return "Basic " + base64.b64encode(f"{USERNAME}:{KEY}".encode()).decode()

    def client_env(self, home: Path, credentials: str | None = "key") -> dict[str, str]:
        """A full environment for a subprocess that talks only to this stub.

        `credentials`: "key" (KAGGLE_USERNAME/KAGGLE_KEY), "token" (KAGGLE_API_TOKEN), "file"
        (~/.kaggle/kaggle.json under `home`) or None. HOME is `home`, so no real credentials leak in.
        """
        home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("KAGGLE_") and k.upper() not in PROXY_VARS}
        env.update(HOME=str(home), KAGGLE_API_ENVIRONMENT="LOCALHOST", PYTHONUNBUFFERED="1")
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            env[name] = self.url
        env["NO_PROXY"] = env["no_proxy"] = ""
        if credentials == "key":
            env.update(KAGGLE_USERNAME=USERNAME, KAGGLE_KEY=KEY)
        elif credentials == "token":
            env["KAGGLE_API_TOKEN"] = TOKEN
        elif credentials == "file":
            folder = home / ".kaggle"
            folder.mkdir(exist_ok=True)
            path = folder / "kaggle.json"
            path.write_text(json.dumps({"username": USERNAME, "key": KEY}))
            path.chmod(0o600)
        elif credentials is not None:
            raise ValueError(f"credentials must be 'key', 'token', 'file' or None, got {credentials!r}")
        return env

    # Request handling (called from the server threads).

    def _record(self, entry: Recorded) -> None:
        with self._lock:
            self.requests.append(entry)

    def _scripted(self, endpoint: str) -> ScriptedFailure | None:
        with self._lock:
            queue = self._failures.get(endpoint, [])
            if not queue:
                return None
            failure = queue[0]
            failure.times -= 1
            if failure.times <= 0:
                queue.pop(0)
            return failure

    def _authorised(self, headers: dict[str, str]) -> bool:
        auth = headers.get("Authorization", "")
        return auth in (self.basic_auth(), f"Bearer {TOKEN}")

    def _answer(self, endpoint: str, body: Any) -> tuple[int, Any]:
        if endpoint == "IntrospectToken":
            ok = isinstance(body, dict) and body.get("token") == TOKEN
            return 200, {"active": ok, "username": USERNAME if ok else ""}
        if endpoint == "SaveKernel":
            return self._save(body)
        kernel = self.kernels.get(f"{body.get('userName')}/{body.get('kernelSlug')}")
        if kernel is None:
            return 404, {"code": 404, "message": "Kernel not found"}
        if endpoint == "GetKernelSessionStatus":
            reply = {"status": kernel.next_status()}
            if kernel.failure_message:
                reply["failureMessage"] = kernel.failure_message
            return 200, reply
        if endpoint == "ListKernelSessionOutput":
            return 200, self._output_page(kernel, body.get("pageToken") or "")
        if endpoint == "GetKernel":
            return 200, {"metadata": {"ref": kernel.ref, "currentVersionNumber": kernel.version},
                         "blob": {"source": "", "language": "python", "kernelType": "notebook"}}
        return 404, {"code": 404, "message": f"unknown endpoint {endpoint}"}

    def _save(self, body: dict[str, Any]) -> tuple[int, Any]:
        if self.save_error:
            return 200, {"ref": "", "url": "", "error": self.save_error}
        ref = str(body.get("slug"))
        with self._lock:
            kernel = self.kernels.get(ref) or StubKernel(ref=ref, statuses=list(self.default_statuses))
            self.kernels[ref] = kernel
            kernel.version += 1
            kernel.pushed.append(body)
        return 200, {"ref": f"/code/{ref}", "url": f"https://www.kaggle.com/code/{ref}",
                     "versionNumber": kernel.version}

    def _output_page(self, kernel: StubKernel, token: str) -> dict[str, Any]:
        names = sorted(kernel.outputs)
        start = int(token or 0)
        page = names[start:start + self.output_page_size]
        reply: dict[str, Any] = {
            "files": [{"fileName": n, "url": f"{self.url}/download/{kernel.ref}/{n}"} for n in page]}
        if kernel.log is not None:
            reply["log"] = kernel.log
        if start + self.output_page_size < len(names):
            reply["nextPageToken"] = str(start + self.output_page_size)
        return reply

    def _download(self, path: str) -> tuple[int, bytes]:
        owner, slug, name = path.removeprefix("/download/").split("/", 2)
        kernel = self.kernels.get(f"{owner}/{slug}")
        if kernel is None or name not in kernel.outputs:
            return 404, b"not found"
        return 200, kernel.outputs[name]


def _handler_for(stub: KaggleStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Silence the per-request lines on stderr."""

        def do_CONNECT(self) -> None:
            stub.escaped.append(f"CONNECT {self.path}")
            self._send(403, b"the Kaggle stub refuses tunnels: this request would have left the machine")

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            host = (parts.hostname or "127.0.0.1").lower()
            path = unquote(parts.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if host not in LOCAL_HOSTS:
                stub.escaped.append(f"{self.command} {self.path}")
                self._send(403, b"the Kaggle stub only answers localhost")
                return
            endpoint = path.rsplit("/", 1)[-1] if path.startswith(API_PREFIX) else "download"
            body = _decode(raw)
            stub._record(Recorded(self.command, host, path, endpoint, dict(self.headers.items()), body))
            fault = stub._fault(endpoint)
            if fault is not None and self._misbehave(fault, endpoint, path, body):
                return
            failure = stub._scripted(endpoint)
            if failure is not None:
                extra = {"Retry-After": failure.retry_after} if failure.retry_after else {}
                self._json(failure.status, {"code": failure.status, "message": failure.message}, extra)
            elif endpoint == "download":
                status, data = stub._download(path)
                self._send(status, data, "application/octet-stream")
            elif endpoint != "IntrospectToken" and not stub._authorised(dict(self.headers.items())):
                self._json(401, {"code": 401, "message": "Unauthenticated"})
            else:
                self._json(*stub._answer(endpoint, body if isinstance(body, dict) else {}))

        def _misbehave(self, fault: str, endpoint: str, path: str, body: Any) -> bool:
            """Play `fault`; False when the request should then be answered normally."""
            if fault == "stall":
                stub._stopping.wait(stub.stall_s)
                self.close_connection = True
                return True
            if fault == "garbage":
                self._send(200, b"<html>Bad gateway</html>", "application/json")
                return True
            if fault == "truncate":
                data = stub._download(path)[1] if endpoint == "download" else b"{}"
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data) + 1000))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.close_connection = True
                return True
            if endpoint not in ("download", "IntrospectToken"):  # "drop": act, then lose the reply
                stub._answer(endpoint, body if isinstance(body, dict) else {})
            self.close_connection = True
            return True

        def _json(self, status: int, payload: Any, extra: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(payload).encode(), "application/json", extra)

        def _send(self, status: int, data: bytes, ctype: str = "text/plain",
                  extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return raw


@pytest.fixture
def kaggle_stub() -> Iterator[KaggleStub]:
    """A running stub; fails the test if any request tried to leave for the real Kaggle."""
    stub = KaggleStub().start()
    try:
        yield stub
    finally:
        stub.stop()
    assert not stub.escaped, f"requests escaped the stub: {stub.escaped}"


@pytest.fixture
def kaggle_env(kaggle_stub: KaggleStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> KaggleStub:
    """This process's environment pointed at the stub, with KAGGLE_USERNAME/KAGGLE_KEY set."""
    env = kaggle_stub.client_env(tmp_path / "home", credentials="key")
    for name in list(os.environ):
        if name not in env:
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return kaggle_stub
