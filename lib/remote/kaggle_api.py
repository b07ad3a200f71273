"""Everything that talks to Kaggle: the only module that imports the `kaggle` client.

Why a wrapper at all: the client authenticates (and prints a help block, or calls `exit`) when it
is imported, reads its endpoint switch `KAGGLE_API_ENVIRONMENT` only once at import, prints
request headers (with the key) in verbose mode, and reports failures as HTTP 200 replies with an
`error` field, as `ValueError`s or as `HTTPError`s. Here it is imported lazily with its output
swallowed, configured per call from the current environment, never verbose, and every failure
becomes a `KaggleError` with a message that says what to do and an exit code (2: credentials
missing or rejected, or an unknown kernel; 1: anything else).

Credentials are whatever the client reads: `KAGGLE_API_TOKEN`, `KAGGLE_USERNAME`/`KAGGLE_KEY`,
`~/.kaggle/kaggle.json` (or `$KAGGLE_CONFIG_DIR/kaggle.json`), `~/.kaggle/access_token`, or the
OAuth file of `kaggle auth login`. Their values are never printed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

FINAL_STATUSES = ("COMPLETE", "ERROR", "CANCEL_ACKNOWLEDGED")
RETRY_DELAYS_S = (2.0, 5.0, 10.0, 20.0)
READ_RETRY_HTTP = (429, 500, 502, 503, 504)
PUSH_RETRY_HTTP = (429, 503)
LAST_PUSH_FILE = "last_push.json"
PUSH = "push the kernel"
REF_PATTERN = re.compile(r"^[A-Za-z0-9_-]+/[a-z0-9-]+(/\d+)?$")

CREDENTIALS_HELP = """No Kaggle credentials found. To run on a Kaggle GPU, set up one of:
  1. an API token: create one at https://www.kaggle.com/settings/api ("Generate New Token"),
     then  export KAGGLE_API_TOKEN=<the token>   (or save it to ~/.kaggle/access_token)
  2. a legacy key: export KAGGLE_USERNAME=<user> KAGGLE_KEY=<key>, or put the downloaded
     kaggle.json in ~/.kaggle/kaggle.json and run  chmod 600 ~/.kaggle/kaggle.json
Your account needs a verified phone number for GPU and internet access. See docs/kaggle.md.
Without credentials, `python push_kernel.py` runs the same notebook here (--target local)."""


class KaggleError(Exception):
    """A Kaggle call failed; `exit_code` is 2 for missing/rejected credentials or an unknown kernel."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class PushResult:
    ref: str
    version: int | None
    url: str


def config_file() -> Path:
    """Where the client looks for kaggle.json (same rule as the client, evaluated now)."""
    configured = os.environ.get("KAGGLE_CONFIG_DIR")
    if configured:
        return Path(configured) / "kaggle.json"
    legacy = Path.home() / ".kaggle"
    if legacy.exists():
        return legacy / "kaggle.json"
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(xdg) / "kaggle" / "kaggle.json"


def has_credentials() -> bool:
    """True when any credential source the client reads is present (checked offline)."""
    if os.environ.get("KAGGLE_API_TOKEN"):
        return True
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return True
    kaggle_dir = Path.home() / ".kaggle"
    if any(_non_empty(kaggle_dir / name) for name in ("access_token", "access_token.txt")):
        return True
    return _json_has(config_file(), "username", "key") or _json_has(kaggle_dir / "credentials.json",
                                                                    "refresh_token")


def credential_values() -> list[str]:
    """The secret values configured here, so a bundle can be checked not to contain them."""
    values = [os.environ.get("KAGGLE_KEY", ""), os.environ.get("KAGGLE_API_TOKEN", "")]
    for path in (Path.home() / ".kaggle" / "access_token", Path.home() / ".kaggle" / "access_token.txt"):
        if _non_empty(path):
            values.append(path.read_text().strip())
    with contextlib.suppress(OSError, ValueError, AttributeError):
        values.append(str(json.loads(config_file().read_text()).get("key", "")))
    return [v for v in values if len(v) >= 8]


def configured_username() -> str | None:
    """The user name from KAGGLE_USERNAME or kaggle.json, read offline (None for a bare token)."""
    name = os.environ.get("KAGGLE_USERNAME")
    if name:
        return name
    with contextlib.suppress(OSError, ValueError, AttributeError):
        return str(json.loads(config_file().read_text()).get("username") or "") or None
    return None


def username() -> str:
    """The authenticated account's user name (the owner part of a kernel ref); may call Kaggle."""
    return str(_api().config_values.get("username") or "")


def push(folder: Path, timeout_s: int | None = None, accelerator: str | None = None) -> PushResult:
    """Push the bundle in `folder` (kernel-metadata.json + notebook) and start a run."""
    api = _api()
    try:
        reply = _with_retry(lambda: _quiet(api.kernels_push, str(folder), timeout_s, accelerator),
                            PUSH_RETRY_HTTP, PUSH)
    except ValueError as exc:
        raise KaggleError(f"the bundle in {folder} was refused by the client: {exc}") from exc
    if reply is None:
        raise KaggleError("Kaggle returned no reply to the push; check https://www.kaggle.com/code")
    if reply.error:
        raise KaggleError(f"Kaggle refused the push: {reply.error}")
    metadata = json.loads((folder / "kernel-metadata.json").read_text())
    return PushResult(ref=metadata["id"], version=reply.version_number, url=reply.url)


def record_push(result: PushResult, runs_dir: Path) -> Path:
    """Write runs/last_push.json, which fetch_logs.py reads to find the latest run."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    path = runs_dir / LAST_PUSH_FILE
    record = {"ref": result.ref, "version": result.version, "url": result.url, "pushed_at": time.time()}
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def kernel_status(ref: str) -> tuple[str, str | None]:
    """The kernel's session status name (QUEUED, RUNNING, COMPLETE, ERROR, ...) and failure message."""
    _check_ref(ref)
    api = _api()
    with _kernel_errors(ref):
        reply = _with_retry(lambda: _quiet(api.kernels_status, ref), READ_RETRY_HTTP, "read the status")
    return reply.status.name, reply.failure_message or None


def wait_for_completion(ref: str, poll_s: float = 10.0, max_poll_s: float = 60.0,
                        on_poll: Callable[[str, float], None] | None = None) -> tuple[str, str | None]:
    """Poll the status with backoff (x1.5 up to `max_poll_s`) until the run has ended."""
    start = time.monotonic()
    delay = poll_s
    while True:
        status, message = kernel_status(ref)
        if on_poll is not None:
            on_poll(status, time.monotonic() - start)
        if status in FINAL_STATUSES:
            return status, message
        time.sleep(delay)
        delay = min(max_poll_s, delay * 1.5)


def download_output(ref: str, runs_dir: Path) -> Path:
    """Download all pages of the kernel's outputs into a new folder runs_dir/<slug>-v<version>/.

    The version comes from `owner/slug/N`, else from runs/last_push.json for that kernel, else
    it is 'latest'. An existing folder is never touched: the next free `-2`, `-3`... is used.
    The files land in a hidden `.partial` folder first, so a failed download leaves no half run.
    """
    _check_ref(ref)
    owner, slug, *rest = ref.split("/")
    version = rest[0] if rest else _pushed_version(f"{owner}/{slug}", runs_dir)
    target = _free_folder(runs_dir, f"{slug}-v{version or 'latest'}")
    partial = runs_dir / f".{target.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    api = _api()
    source = f"{owner}/{slug}/{version}" if version else f"{owner}/{slug}"
    try:
        with _kernel_errors(ref):
            _with_retry(lambda: _quiet(api.kernels_output, source, str(partial), None, True),
                        READ_RETRY_HTTP, "download the outputs")
        partial.rename(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def _api() -> Any:
    """An authenticated client configured from the environment as it is now."""
    if not has_credentials():
        raise KaggleError(CREDENTIALS_HELP, exit_code=2)
    api = _import_client()()
    api.args = ["--local"] if os.environ.get("KAGGLE_API_ENVIRONMENT") == "LOCALHOST" else []
    api.config = str(config_file())
    try:
        _quiet(api.authenticate)
    except SystemExit as exc:
        raise KaggleError("Kaggle did not accept the configured credentials (token expired or "
                          "revoked?).\n" + CREDENTIALS_HELP, exit_code=2) from exc
    return api


def _import_client() -> Any:
    """Import the client with its import-time authentication attempt and help text swallowed."""
    try:
        with _silenced():
            from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError as exc:
        raise KaggleError("the kaggle package is missing: pip install -r requirements.txt") from exc
    return KaggleApi


def _quiet(fn: Callable[..., T], *args: Any) -> T:
    with _silenced():
        return fn(*args)


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    """Swallow the client's prints (help blocks, slug advice); our messages say what matters."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield


def _with_retry(call: Callable[[], T], retry_http: tuple[int, ...], what: str) -> T:
    """Run `call`, retrying HTTP statuses in `retry_http` and lost connections with backoff."""
    import requests

    for attempt in range(len(RETRY_DELAYS_S) + 1):
        try:
            return call()
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status not in retry_http or attempt == len(RETRY_DELAYS_S):
                raise _http_error(exc, status, what) from exc
            time.sleep(_retry_after(exc) if status == 429 else RETRY_DELAYS_S[attempt])
        except requests.ConnectionError as exc:
            if attempt == len(RETRY_DELAYS_S):
                raise KaggleError(f"cannot reach Kaggle to {what}: {exc}. Check the network.") from exc
            time.sleep(RETRY_DELAYS_S[attempt])
    raise AssertionError("unreachable")


def _retry_after(exc: Any) -> float:
    value = exc.response.headers.get("Retry-After") if exc.response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else RETRY_DELAYS_S[0]
    except ValueError:
        return RETRY_DELAYS_S[0]


def _http_error(exc: Exception, status: int, what: str) -> KaggleError:
    if status == 401:
        return KaggleError(f"Kaggle rejected the credentials (HTTP 401) trying to {what}: check "
                           "KAGGLE_API_TOKEN / KAGGLE_USERNAME+KAGGLE_KEY / ~/.kaggle/kaggle.json.",
                           exit_code=2)
    if status == 403:
        return KaggleError(f"Kaggle refused to {what} (HTTP 403): the account may lack phone "
                           "verification (needed for GPU and internet), or the kernel belongs to "
                           "another user.", exit_code=2)
    if status == 404:
        return KaggleError(f"Kaggle does not know this kernel (HTTP 404) trying to {what}: check "
                           "the OWNER/SLUG.", exit_code=2)
    if status == 429:
        return KaggleError(f"Kaggle kept rate-limiting the request to {what} (HTTP 429) after "
                           f"{len(RETRY_DELAYS_S)} retries; wait a few minutes and retry.")
    advice = (" A new version may or may not exist: check the kernel's page before pushing again."
              if what == PUSH else " Retry later; Kaggle's status page says whether it is down.")
    return KaggleError(f"Kaggle failed to {what} (HTTP {status}: {exc}).{advice}")


@contextlib.contextmanager
def _kernel_errors(ref: str) -> Iterator[None]:
    """The client turns HTTP 401/403 on a kernel into a ValueError; report it as unknown kernel."""
    try:
        yield
    except ValueError as exc:
        raise KaggleError(f"cannot access kernel '{ref}': wrong OWNER/SLUG, a private kernel of "
                          "another account, or credentials that Kaggle rejects.", exit_code=2) from exc


def _check_ref(ref: str) -> None:
    if not REF_PATTERN.match(ref):
        raise KaggleError(f"'{ref}' is not a kernel reference: write OWNER/SLUG or OWNER/SLUG/VERSION "
                          "(e.g. alice/victoria-island-signals/3).", exit_code=2)


def _pushed_version(ref: str, runs_dir: Path) -> str | None:
    with contextlib.suppress(OSError, ValueError):
        record = json.loads((runs_dir / LAST_PUSH_FILE).read_text())
        if record.get("ref") == ref and record.get("version") is not None:
            return str(record["version"])
    return None


def _free_folder(runs_dir: Path, name: str) -> Path:
    candidate, n = runs_dir / name, 1
    while candidate.exists():
        n += 1
        candidate = runs_dir / f"{name}-{n}"
    return candidate


def _non_empty(path: Path) -> bool:
    return path.is_file() and bool(path.read_text().strip())


def _json_has(path: Path, *keys: str) -> bool:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and all(data.get(k) for k in keys)
