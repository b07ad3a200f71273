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
import random
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

FINAL_STATUSES = ("COMPLETE", "ERROR", "CANCEL_ACKNOWLEDGED")
KNOWN_STATUSES = ("QUEUED", "RUNNING", "CANCEL_REQUESTED", "NEW_SCRIPT", *FINAL_STATUSES)
READ_RETRY_HTTP = (429, 500, 502, 503, 504)
PUSH_RETRY_HTTP = (429, 500, 502, 503, 504)
LAST_PUSH_FILE = "last_push.json"
PUSH = "push the kernel"
POLICY_ENV = "SIGNALS_KAGGLE_POLICY"
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
class Policy:
    """How long any request may take and how often it is retried (docs/kaggle.md, "Timeouts").

    Why bounded everywhere: a server that accepts a connection and never answers, or asks to
    retry tomorrow, must end in a message, not a silent hang. The environment variable
    SIGNALS_KAGGLE_POLICY (`read_s=2,total_s=10`) overrides fields, so tests can use short ones.
    """

    connect_s: float = 10.0  # to open the connection
    read_s: float = 60.0  # between two bytes of a reply
    attempts: int = 5  # tries of one request, the first included
    total_s: float = 300.0  # all tries of one request together, sleeps included
    backoff_s: float = 2.0  # first retry delay; doubles, +-50 % jitter
    backoff_max_s: float = 60.0
    retry_after_max_s: float = 120.0  # a longer Retry-After ends the call with a message
    min_poll_s: float = 5.0  # the fastest --wait polls the status

    @classmethod
    def from_env(cls) -> Policy:
        text = os.environ.get(POLICY_ENV, "").strip()
        if not text:
            return cls()
        names = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for item in text.split(","):
            name, _, raw = item.partition("=")
            try:
                values[name.strip()] = int(raw) if names[name.strip()] == "int" else float(raw)
            except (KeyError, ValueError):
                raise KaggleError(f"{POLICY_ENV}: cannot read {item!r}; write NAME=NUMBER pairs "
                                  f"separated by commas, NAME one of {', '.join(names)}.", 2) from None
        return replace(cls(), **values)


@dataclass(frozen=True)
class PushResult:
    """`version` is the newest version this push made; `versions` lists all it made (usually one)."""

    ref: str
    version: int | None
    url: str
    versions: tuple[int, ...] = ()


class _Transient(Exception):
    """A failed try worth repeating; `reached`: the request may have been acted on by Kaggle."""

    def __init__(self, cause: str, reached: bool, wait_s: float | None = None) -> None:
        super().__init__(cause)
        self.reached, self.wait_s = reached, wait_s


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
    """True when any credential source the client reads is present (checked offline).

    A credential file that exists but cannot be read (not UTF-8, not JSON, no key) raises a
    KaggleError naming it: treating it as absent would quietly run locally instead of on Kaggle.
    """
    if os.environ.get("KAGGLE_API_TOKEN"):
        return True
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return True
    kaggle_dir = Path.home() / ".kaggle"
    if any(_token_file(kaggle_dir / name) for name in ("access_token", "access_token.txt")):
        return True
    return _json_has(config_file(), "username", "key") or _json_has(kaggle_dir / "credentials.json",
                                                                    "refresh_token")


def credential_values() -> list[str]:
    """The secret values configured here, so a bundle can be checked not to contain them."""
    values = [os.environ.get("KAGGLE_KEY", ""), os.environ.get("KAGGLE_API_TOKEN", "")]
    for path in (Path.home() / ".kaggle" / "access_token", Path.home() / ".kaggle" / "access_token.txt"):
        with contextlib.suppress(OSError):
            values.append(path.read_bytes().decode("latin-1").strip())
    with contextlib.suppress(OSError, ValueError, AttributeError):
        values.append(str(json.loads(config_file().read_bytes()).get("key", "")))
    return [v for v in values if len(v) >= 8]


def configured_username() -> str | None:
    """The user name from KAGGLE_USERNAME or kaggle.json, read offline (None for a bare token)."""
    name = os.environ.get("KAGGLE_USERNAME")
    if name:
        return name
    with contextlib.suppress(OSError, ValueError, AttributeError):
        return str(json.loads(config_file().read_bytes()).get("username") or "") or None
    return None


def username() -> str:
    """The authenticated account's user name (the owner part of a kernel ref); may call Kaggle."""
    return str(_api().config_values.get("username") or "")


def push(folder: Path, timeout_s: int | None = None, accelerator: str | None = None) -> PushResult:
    """Push the bundle in `folder` (kernel-metadata.json + notebook) and start a run.

    A push is repeated only when Kaggle certainly did not act on it (no connection, HTTP 429):
    after a lost or unreadable reply the kernel's latest version is read first, and a version
    that appeared is reported instead of pushing again (each version is a GPU session).
    """
    metadata = _read_metadata(folder)
    ref = str(metadata.get("id") or "")
    _check_ref(ref)
    api = _api()
    before = latest_version(ref, api)

    def landed() -> PushResult | None:
        try:
            now = latest_version(ref, api)
        except KaggleError as exc:
            raise KaggleError(f"the push's reply was lost and the kernel's versions cannot be read now "
                              f"({exc}): a new version may exist; check https://www.kaggle.com/code/{ref} "
                              "before pushing again.") from exc
        if now <= before:
            return None
        return PushResult(ref, now, f"https://www.kaggle.com/code/{ref}", tuple(range(before + 1, now + 1)))

    result = _with_retry(lambda: _push_once(api, folder, ref, timeout_s, accelerator), PUSH_RETRY_HTTP,
                         PUSH, on_reached=landed)
    if result.versions:
        return result
    now = latest_version(ref, api) if result.version is None else result.version
    return replace(result, versions=tuple(range(before + 1, max(now, before) + 1)))


def _push_once(api: Any, folder: Path, ref: str, timeout_s: int | None,
               accelerator: str | None) -> PushResult:
    sent = _state().sent
    try:
        reply = _quiet(api.kernels_push, str(folder), timeout_s, accelerator)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        if _state().sent == sent:  # the client refused before sending anything
            raise KaggleError(f"the bundle in {folder} was refused by the client: {exc}") from exc
        raise _Transient(f"Kaggle's reply could not be read ({_reply_excerpt()})", reached=True) from exc
    if reply is None:
        raise _Transient("Kaggle returned an empty reply", reached=True)
    if reply.error:
        raise KaggleError(f"Kaggle refused the push: {reply.error}")
    return PushResult(ref=ref, version=reply.version_number or None, url=reply.url)


def latest_version(ref: str, api: Any = None) -> int:
    """The kernel's current version number, 0 when Kaggle does not know the kernel yet."""
    from kagglesdk.kernels.types.kernels_api_service import ApiGetKernelRequest

    api = api or _api()
    owner, slug = ref.split("/")[:2]

    def read() -> int:
        request = ApiGetKernelRequest()
        request.user_name, request.kernel_slug = owner, slug
        with _silenced(), api.build_kaggle_client() as client:
            reply = client.kernels.kernels_api_client.get_kernel(request)
        return int(reply.metadata.current_version_number) if reply.metadata else 0

    try:
        return _with_retry(lambda: _parsed(read), READ_RETRY_HTTP, "read the kernel's latest version")
    except KaggleError as exc:
        if "HTTP 404" in str(exc):
            return 0
        raise


def record_push(result: PushResult, runs_dir: Path) -> Path:
    """Write runs/last_push.json, which fetch_logs.py reads to find the latest run."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    path = runs_dir / LAST_PUSH_FILE
    record = {"ref": result.ref, "version": result.version, "versions": list(result.versions),
              "url": result.url, "pushed_at": time.time()}
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def kernel_status(ref: str) -> tuple[str, str | None]:
    """The kernel's session status name (QUEUED, RUNNING, COMPLETE, ERROR, ...) and failure message.

    A status this client does not know is returned as Kaggle spelled it (see KNOWN_STATUSES).
    """
    _check_ref(ref)
    api = _api()
    with _kernel_errors(ref):
        return _with_retry(lambda: _status_once(api, ref), READ_RETRY_HTTP, "read the status")


def _status_once(api: Any, ref: str) -> tuple[str, str | None]:
    try:
        reply = _quiet(api.kernels_status, ref)
        return reply.status.name, reply.failure_message or None
    except (KeyError, AttributeError, TypeError, ValueError) as exc:
        if "Permission" in str(exc):
            raise
        raw = _reply_json()
        if isinstance(raw, dict) and isinstance(raw.get("status"), str) and raw["status"]:
            message = raw.get("failureMessage")
            return raw["status"][:80], str(message) if message else None
        raise _Transient(f"Kaggle's status reply could not be read ({_reply_excerpt()})", True) from exc


def wait_for_completion(ref: str, poll_s: float = 10.0, max_poll_s: float = 60.0,
                        deadline_s: float | None = None,
                        on_poll: Callable[[str, float], None] | None = None) -> tuple[str, str | None]:
    """Poll the status with backoff (x1.5 up to `max_poll_s`) until the run has ended.

    Polls are at least Policy.min_poll_s apart; after `deadline_s` (None: no deadline) it stops
    with a KaggleError saying the kernel may still run and how to fetch it later.
    """
    policy = Policy.from_env()
    start = time.monotonic()
    delay = max(policy.min_poll_s, poll_s)
    while True:
        status, message = kernel_status(ref)
        elapsed = time.monotonic() - start
        if on_poll is not None:
            on_poll(status, elapsed)
        if status in FINAL_STATUSES:
            return status, message
        if deadline_s is not None and elapsed + delay > deadline_s:
            raise KaggleError(f"gave up waiting for {ref} after {elapsed:.0f} s (deadline "
                              f"{deadline_s:.0f} s): it was still {status}. It may go on running "
                              f"on Kaggle; later run  python fetch_logs.py {ref}")
        time.sleep(delay)
        delay = min(max(max_poll_s, policy.min_poll_s), delay * 1.5)


def download_output(ref: str, runs_dir: Path) -> Path:
    """Download all pages of the kernel's outputs into a new folder runs_dir/<slug>-v<version>/.

    The version comes from `owner/slug/N`, else from runs/last_push.json for that kernel, else
    it is 'latest'. An existing folder is never touched: the next free `-2`, `-3`... is used.
    The files land in a private temporary folder first (one per call, so fetches running at
    once never mix), so a failed download leaves no half run.
    """
    _check_ref(ref)
    owner, slug, *rest = ref.split("/")
    version = rest[0] if rest else _pushed_version(f"{owner}/{slug}", runs_dir)
    name = f"{slug}-v{version or 'latest'}"
    api = _api()
    runs_dir.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=runs_dir))
    try:
        _with_retry(lambda: _download_once(api, owner, slug, version, partial), READ_RETRY_HTTP,
                    "download the outputs")
        return _claim(runs_dir, name, partial)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _download_once(api: Any, owner: str, slug: str, version: str | None, partial: Path) -> None:
    """One complete download of every output page into an emptied `partial` (a retry never keeps
    half of a try). Done here rather than by the client, whose downloads retry on their own for
    minutes and save a cut-off file as if it were whole."""
    for child in partial.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    token, log = "", None
    while True:
        page = _parsed(lambda token=token: _output_page(api, owner, slug, version, token))
        for item in page.files or []:
            _fetch_file(str(item.file_name), str(item.url), partial)
        log = log or page.log
        token = page.next_page_token
        if not token:
            break
    if log:
        (partial / f"{slug}.log").write_text(log, encoding="utf-8")


def _output_page(api: Any, owner: str, slug: str, version: str | None, token: str) -> Any:
    from kagglesdk.kernels.types.kernels_api_service import ApiListKernelSessionOutputRequest

    request = ApiListKernelSessionOutputRequest()
    request.user_name, request.kernel_slug = owner, slug
    if version:
        request.version_label = f"v{version}"
    if token:
        request.page_token = token
    with _silenced(), api.build_kaggle_client() as client:
        return client.kernels.kernels_api_client.list_kernel_session_output(request)


def _fetch_file(name: str, url: str, folder: Path) -> None:
    """Stream one output file into `folder`; a body shorter than its Content-Length raises
    (urllib3 checks it), so a cut-off reply is retried, never kept."""
    import requests

    target = (folder / name).resolve()
    if not name or not target.is_relative_to(folder.resolve()):
        raise KaggleError(f"the kernel's outputs name a file outside the download folder: {name!r}; "
                          "nothing was kept.")
    target.parent.mkdir(parents=True, exist_ok=True)
    with requests.get(url, stream=True) as response, target.open("wb") as out:
        response.raise_for_status()
        for chunk in response.iter_content(1 << 20):
            out.write(chunk)


def _claim(runs_dir: Path, name: str, partial: Path) -> Path:
    """Move `partial` to the first free runs_dir/<name>[-n]; mkdir claims a name atomically."""
    n = 1
    while True:
        target = runs_dir / (name if n == 1 else f"{name}-{n}")
        try:
            target.mkdir()
        except FileExistsError:
            n += 1
            continue
        os.replace(partial, target)  # onto the empty folder just claimed
        return target


def _api() -> Any:
    """An authenticated client configured from the environment as it is now."""
    if not has_credentials():
        raise KaggleError(CREDENTIALS_HELP, exit_code=2)
    api = _import_client()()
    api.args = ["--local"] if os.environ.get("KAGGLE_API_ENVIRONMENT") == "LOCALHOST" else []
    api.config = str(config_file())
    try:
        _with_retry(lambda: _quiet(api.authenticate), READ_RETRY_HTTP, "authenticate")
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
    _install_send_hook()
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


# --------------------------------------------------------------------------- bounded requests

_LOCAL = threading.local()
_HOOK_LOCK = threading.Lock()


@dataclass
class _CallState:
    """This thread's current request policy and what its requests did (for the messages)."""

    policy: Policy
    depth: int = 0  # nested _with_retry calls under way; the hook acts only inside one
    sent: int = 0
    last: Any = None


def _state() -> _CallState:
    state = getattr(_LOCAL, "state", None)
    if state is None:
        state = _LOCAL.state = _CallState(Policy.from_env())
    return state


def _install_send_hook() -> None:
    """Give every request this module makes the policy's timeouts; the client sets none (its API
    calls) or 300 s (downloads). Other code in the process keeps requests' behaviour."""
    import requests

    with _HOOK_LOCK:  # threads that fetch at once must not wrap send twice
        if not getattr(requests.Session.send, "_kaggle_io", False):
            requests.Session.send = _bounded_send(requests.Session.send)  # type: ignore[method-assign]


def _bounded_send(original: Callable[..., Any]) -> Callable[..., Any]:
    """`Session.send` that, inside `_with_retry`, sets the timeouts and notes the reply."""

    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        state = getattr(_LOCAL, "state", None)
        if state is None or state.depth == 0:
            return original(self, request, **kwargs)
        kwargs["timeout"] = (state.policy.connect_s, state.policy.read_s)
        state.sent += 1
        state.last = None
        state.last = original(self, request, **kwargs)
        return state.last

    send._kaggle_io = True  # type: ignore[attr-defined]
    return send


def _with_retry(call: Callable[[], T], retry_http: tuple[int, ...], what: str,
                on_reached: Callable[[], T | None] | None = None) -> T:
    """Run `call` under the policy: bounded tries and total time, backoff with jitter.

    `on_reached`: for a request that must not be repeated blindly (a push), called after a try
    that may have been acted on; a result it returns ends the retries.
    """
    state = _state()
    policy = state.policy = Policy.from_env()
    state.depth += 1
    try:
        return _retrying(call, retry_http, what, on_reached, policy)
    finally:
        state.depth -= 1


def _retrying(call: Callable[[], T], retry_http: tuple[int, ...], what: str,
              on_reached: Callable[[], T | None] | None, policy: Policy) -> T:
    deadline = time.monotonic() + policy.total_s
    for attempt in range(1, policy.attempts + 1):
        try:
            return _classified(call, retry_http, what)
        except _Transient as failure:
            if failure.reached and on_reached is not None:
                landed = on_reached()
                if landed is not None:
                    return landed
            wait = failure.wait_s if failure.wait_s is not None else _backoff(policy, attempt)
            if failure.wait_s is not None and wait > policy.retry_after_max_s:
                raise KaggleError(f"Kaggle asks to wait {wait:.0f} s before trying to {what} again "
                                  f"(Retry-After), more than the {policy.retry_after_max_s:.0f} s this "
                                  "tool waits: try again later.") from failure
            if attempt == policy.attempts or time.monotonic() + wait > deadline:
                raise KaggleError(f"could not {what} after {attempt} tries in "
                                  f"{policy.total_s - (deadline - time.monotonic()):.0f} s: {failure}. "
                                  + _advice(what)) from failure
            time.sleep(wait)
    raise AssertionError("unreachable")


def _backoff(policy: Policy, attempt: int) -> float:
    base = min(policy.backoff_max_s, policy.backoff_s * 2 ** (attempt - 1))
    return base * random.uniform(0.5, 1.5)


def _classified(call: Callable[[], T], retry_http: tuple[int, ...], what: str) -> T:
    """`call()`, its failures sorted into final KaggleErrors and retryable _Transients."""
    import requests

    try:
        return call()
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        if status not in retry_http:
            raise _http_error(exc, status, what) from exc
        wait = _retry_after(exc) if status == 429 else None
        raise _Transient(f"HTTP {status}", reached=status != 429, wait_s=wait) from exc
    except requests.ConnectionError as exc:
        reached = not _never_connected(exc)
        raise _Transient(_connection_cause(exc, reached), reached) from exc
    except requests.Timeout as exc:
        raise _Transient(f"no reply within {_state().policy.read_s:g} s (read timeout)", True) from exc
    except requests.RequestException as exc:
        raise _Transient(f"the reply was cut off or damaged ({type(exc).__name__})", True) from exc


def _parsed(call: Callable[[], T]) -> T:
    """`call()`, an unreadable reply (not JSON, unexpected fields) turned into a _Transient."""
    try:
        return call()
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        if "Permission" in str(exc):
            raise
        raise _Transient(f"Kaggle's reply could not be read ({_reply_excerpt()})", True) from exc


def _never_connected(exc: Exception) -> bool:
    """True when the connection was never opened, so the request cannot have reached Kaggle."""
    import requests
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0] if exc.args else None, "reason", None)
    causes = (reason, *getattr(reason, "args", ()))  # a proxy wraps the refused connection
    return any(isinstance(c, (NewConnectionError, ConnectTimeoutError)) for c in causes)


def _connection_cause(exc: Exception, reached: bool) -> str:
    if not reached:
        return f"cannot connect to Kaggle ({type(exc).__name__}); check the network"
    return "the connection closed before Kaggle's reply arrived"


def _reply_json() -> Any:
    response = _state().last
    try:
        return response.json() if response is not None else None
    except ValueError:
        return None


def _reply_excerpt() -> str:
    """The start of the last reply, quoted: never a credential (replies carry none)."""
    response = _state().last
    if response is None:
        return "no reply"
    text = response.content[:80].decode("utf-8", errors="replace")
    return f"HTTP {response.status_code}, {response.headers.get('Content-Type', 'no type')}: {text!r}"


def _retry_after(exc: Any) -> float:
    value = exc.response.headers.get("Retry-After") if exc.response is not None else None
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        seconds = None
    return max(0.0, seconds) if seconds is not None and seconds == seconds else 0.0


def _advice(what: str) -> str:
    if what == PUSH:
        return ("No new version appeared on Kaggle. Check https://www.kaggle.com/code before "
                "pushing again.")
    return "Retry later; Kaggle's status page says whether it is down."


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
    return KaggleError(f"Kaggle failed to {what} (HTTP {status}: {exc}). {_advice(what)}")


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


def _read_metadata(folder: Path) -> dict[str, Any]:
    try:
        metadata = json.loads((folder / "kernel-metadata.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KaggleError(f"{folder}/kernel-metadata.json cannot be read ({exc}): rebuild the bundle "
                          "with push_kernel.py.") from exc
    if not isinstance(metadata, dict):
        raise KaggleError(f"{folder}/kernel-metadata.json is not a JSON object: rebuild the bundle.")
    return metadata


def _pushed_version(ref: str, runs_dir: Path) -> str | None:
    with contextlib.suppress(OSError, ValueError):
        record = json.loads((runs_dir / LAST_PUSH_FILE).read_text())
        if record.get("ref") == ref and isinstance(record.get("version"), int):
            return str(record["version"])
    return None


def _token_file(path: Path) -> bool:
    """Whether a token file holds a token; one that is not UTF-8 text is a KaggleError."""
    try:
        return path.is_file() and bool(path.read_bytes().decode("utf-8").strip())
    except UnicodeDecodeError:
        raise KaggleError(f"{path} is not UTF-8 text: save the token from "
                          "https://www.kaggle.com/settings/api into it again.", exit_code=2) from None


def _json_has(path: Path, *keys: str) -> bool:
    """Whether a credential JSON file has `keys`; a present but broken file is a KaggleError."""
    if not path.is_file():
        return False
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise KaggleError(f"{path} exists but is not readable JSON ({type(exc).__name__}): download it "
                          "again from https://www.kaggle.com/settings/api, or remove it.", 2) from None
    if not (isinstance(data, dict) and all(data.get(k) for k in keys)):
        raise KaggleError(f"{path} lacks {' and '.join(repr(k) for k in keys)}: download it again from "
                          "https://www.kaggle.com/settings/api, or remove it.", exit_code=2)
    return True
