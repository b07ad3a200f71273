"""The push bundle: the training notebook made self-contained, and its local execution.

Why: the earlier system cloned a 300 MB repository on Kaggle (85 s of a 150 s run). Here the
bundle is one notebook whose first cell unpacks `lib/` from an embedded xz archive (base64) and
pip-installs only the pinned packages the image lacks; the parameters are injected by papermill
(never by string editing); `kernel-metadata.json` comes from the repository's template. The same
notebook runs here with papermill (`run_local`), writing the log in Kaggle's output-log format, so
`fetch_logs.py` reads local and Kaggle runs alike.

A bundle holds the files git tracks (an untracked file is never shipped by accident). It is
refused when its source exceeds Kaggle's 1 MB limit or when anything in it looks like a credential
(a kaggle.json/.env/token file, a configured key's value, a Kaggle key or token, a private key,
a cloud or code-hosting token); for a push to Kaggle, also when lib/ has uncommitted or untracked
files, unless the caller allows it (`--allow-dirty`).
"""

from __future__ import annotations

import ast
import base64
import contextlib
import hashlib
import io
import json
import lzma
import os
import re
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from lib.config import did_you_mean
from lib.obs.provenance import git_commit
from lib.remote.kaggle_api import credential_values

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO_ROOT / "kernels" / "train.ipynb"
METADATA_TEMPLATE = REPO_ROOT / "kernel-metadata.json"
REQUIREMENTS = REPO_ROOT / "requirements.txt"
MAX_SOURCE_BYTES = 1_000_000
BOOTSTRAP_TAG = "bundle-bootstrap"
SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{3,48}[a-z0-9]$")
# The layers of lib/ that never run inside the notebook (reading logs, pushing): not bundled.
NOT_SHIPPED = ("remote", "runlog")
# Tools for building and pushing the notebook, not imported by the run itself.
NOT_IN_NOTEBOOK = frozenset({"papermill", "ipykernel", "nbformat", "kaggle", "six"})
# The versions the run is known to work with (docs/kaggle.md); the bootstrap accepts the image's
# gymnasium inside its range. Kaggle's 2026 GPU image: python 3.12, numpy 2.0.2, numba 0.60.0,
# numba-cuda 0.22.2, torch 2.10, gymnasium 1.3.0, no stable-baselines3.
SUPPORTED_VERSIONS = {"python": ">=3.10", "numpy": ">=1.26,<3", "numba": ">=0.60", "torch": ">=2.8,<3",
                      "stable-baselines3": "==2.9.2", "gymnasium": ">=1.0,<1.5"}
BOOTSTRAP_SOURCE = Path(__file__).with_name("bootstrap.py")
CREDENTIAL_NAMES = frozenset({"kaggle.json", ".env", "access_token", "access_token.txt",
                              "credentials.json", ".netrc", "id_rsa", "id_ed25519"})
CREDENTIAL_SUFFIXES = (".env", ".pem", ".key", ".p12")
CREDENTIAL_PATTERNS = (
    ("a Kaggle key or token", re.compile(r'"key"\s*:\s*"[0-9a-f]{32}"')),
    ("a Kaggle key or token", re.compile(r"KAGGLE_KEY\s*[=:]\s*['\"]?[0-9a-f]{32}")),
    ("a Kaggle key or token", re.compile(r"KAGGLE_API_TOKEN\s*[=:]\s*['\"]?[A-Za-z0-9_]{20,}")),
    ("a Kaggle key or token", re.compile(r"KGAT_[0-9A-Za-z]{16,}")),
    ("a private key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----")),
    ("an AWS access key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("an AWS secret key", re.compile(r"aws_secret_access_key\s*[=:]\s*['\"]?[A-Za-z0-9/+=]{40}", re.I)),
    ("a GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})")),
    ("a Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("a Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")),
    ("an API secret key", re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{32,}")),
)



class BundleError(Exception):
    """The bundle cannot be built or must not be pushed; the message says why and what to do.
    `exit_code` is 2 for a usage error (a bad option or setting), 1 otherwise."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Bundle:
    folder: Path
    notebook: Path
    metadata: dict[str, Any]
    parameters: dict[str, Any]
    lib_sha256: str
    commit: str
    source_bytes: int
    untracked: tuple[str, ...] = ()  # files under lib/ left out because git does not track them


def notebook_parameters(notebook: Path = NOTEBOOK) -> dict[str, Any]:
    """The notebook's parameters and their defaults, read from its `parameters` cell."""
    import papermill

    found = papermill.inspect_notebook(str(notebook))
    if not found:
        raise BundleError(f"{notebook} has no cell tagged 'parameters': tag the parameters cell.")
    return {name: _literal(info["default"]) for name, info in found.items()}


def resolve_parameters(overrides: dict[str, Any], notebook: Path = NOTEBOOK) -> dict[str, Any]:
    """The defaults with `overrides` applied; an unknown name is an error naming the closest one."""
    defaults = notebook_parameters(notebook)
    for name in overrides:
        if name not in defaults:
            raise BundleError(f"unknown notebook parameter '{name}'.{did_you_mean(name, defaults)} "
                              f"Parameters of {notebook.name}: {', '.join(defaults)}.", exit_code=2)
    return {**defaults, **overrides}


def check_run_settings(settings: dict[str, Any]) -> None:
    """Refuse what the training notebook's RunConfig would refuse, before anything is pushed or
    run: a Kaggle session that dies on a config error in its first cells wastes its queue time.
    (`settings` are RunConfig's by dotted name; none of its checks depends on this machine.)"""
    from lib.config import ConfigError
    from lib.rl.run_config import RunConfig

    try:
        RunConfig.from_dict(settings)
    except ConfigError as exc:
        raise BundleError(f"the run would reject these settings: {exc}", exit_code=2) from None


def build_bundle(parameters: dict[str, Any], out_dir: Path, ref: str, accelerator: str | None,
                 notebook: Path = NOTEBOOK, lib_dir: Path = REPO_ROOT / "lib",
                 max_bytes: int = MAX_SOURCE_BYTES, require_clean: bool = False) -> Bundle:
    """Write `<slug>.ipynb` and `kernel-metadata.json` into `out_dir` and check them.

    `require_clean`: refuse when lib/ has uncommitted or untracked files (a push to Kaggle must
    run what the commit it names holds).

    `parameters` are injected as given (resolve them first); when the notebook takes a `config`
    (the run's settings), an empty `commit` there becomes this checkout's, since Kaggle has no
    git (the run adds the hash of lib/ to `run_start` itself).
    """
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    slug = check_ref(ref)
    untracked = check_clean(lib_dir, require_clean)
    tar_bytes, sizes = _lib_tar(lib_dir)
    lib_sha256 = hashlib.sha256(tar_bytes).hexdigest()
    commit = git_commit(lib_dir)
    params = json.loads(json.dumps(parameters))  # as papermill can write them: tuples become lists
    if isinstance(params.get("config"), dict) and not params["config"].get("commit"):
        params["config"] = {**params["config"], "commit": commit}
    nb = load_notebook_node(str(notebook))
    nb.cells.insert(0, _bootstrap_cell(nbformat, tar_bytes, lib_sha256, shipped_packages(lib_dir)))
    nb = parameterize_notebook(nb, params)
    text = nbformat.writes(nb)
    _check_size(len(text.encode()), max_bytes, sizes)
    _check_credentials(lib_dir, text)
    out_dir.mkdir(parents=True, exist_ok=True)
    nb_path = out_dir / f"{slug}.ipynb"
    nb_path.write_text(text)
    metadata = _metadata(ref, nb_path.name, accelerator)
    (out_dir / "kernel-metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    return Bundle(out_dir, nb_path, metadata, params, lib_sha256, commit, len(text.encode()), untracked)


def pinned_requirements(path: Path = REQUIREMENTS) -> dict[str, str]:
    """`name==version` lines of requirements.txt that the notebook itself needs."""
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*==\s*([^\s;#]+)", line)
        if match and match.group(1).lower() not in NOT_IN_NOTEBOOK:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def _bootstrap_cell(nbformat: Any, tar_bytes: bytes, lib_sha256: str, shipped: list[str]) -> Any:
    """lib/remote/bootstrap.py with this bundle's constants (the archive, its hashes, the pins)."""
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        files = {m.name: hashlib.sha256(tar.extractfile(m).read()).hexdigest() for m in tar.getmembers()}
    archive = base64.b64encode(lzma.compress(tar_bytes, preset=9)).decode()
    constants = (f"LIB_SHA256 = {lib_sha256!r}\nSHIPPED = {shipped!r}\nPINS = {pinned_requirements()!r}\n"
                 f"SUPPORTED = {SUPPORTED_VERSIONS!r}\nFILES = {files!r}\nLIB_ARCHIVE = {archive!r}\n")
    header = "# Bootstrap written by lib/remote/bundle.py from lib/remote/bootstrap.py.\n"
    source = header + constants + BOOTSTRAP_SOURCE.read_text().split("\n", 1)[1]
    return nbformat.v4.new_code_cell(source, metadata={"tags": [BOOTSTRAP_TAG]})


def _lib_tar(lib_dir: Path) -> tuple[bytes, dict[str, int]]:
    """A reproducible tar of lib/ (sorted, no times or owners), so its hash names its content."""
    if not (lib_dir / "__init__.py").is_file():
        raise BundleError(f"{lib_dir} is not the lib package (no __init__.py).")
    buffer, sizes = io.BytesIO(), {}
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in bundled_files(lib_dir):
            data = path.read_bytes()
            name = "lib/" + path.relative_to(lib_dir).as_posix()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
            sizes[name] = len(data)
    return buffer.getvalue(), sizes


def bundled_files(lib_dir: Path) -> list[Path]:
    """The files of lib/ that go into the notebook: the layers that run there, tracked by git
    (every file when lib/ is not in a git checkout), no caches."""
    tracked = _git_state(lib_dir)["tracked"]

    def shipped(path: Path) -> bool:
        return path.is_file() and _shipped_layer(lib_dir, path) and (tracked is None or path in tracked)
    return sorted(p for p in lib_dir.rglob("*") if shipped(p))


def _shipped_layer(lib_dir: Path, path: Path) -> bool:
    """A file of the layers that run in the notebook, not a cache."""
    parts = path.relative_to(lib_dir).parts
    return "__pycache__" not in parts and path.suffix != ".pyc" and parts[0] not in NOT_SHIPPED


def _git_state(lib_dir: Path) -> dict[str, Any]:
    """Files under lib_dir git tracks, leaves untracked (ignored ones aside) and sees modified;
    all None outside a git checkout."""
    def listed(*args: str) -> set[Path] | None:
        try:
            done = subprocess.run(["git", "-C", str(lib_dir), *args, "-z", "--", "."], capture_output=True,
                                  text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return {lib_dir / name for name in done.stdout.split("\0") if name} if done.returncode == 0 else None

    return {"tracked": listed("ls-files", "--cached"),
            "untracked": listed("ls-files", "--others", "--exclude-standard"),
            "modified": listed("diff", "--name-only", "--relative", "HEAD")}


def check_clean(lib_dir: Path, require_clean: bool) -> tuple[str, ...]:
    """The untracked files under lib/ (left out of the bundle); refuse any change if required."""
    state = _git_state(lib_dir)
    shown = {key: sorted(str(p.relative_to(lib_dir.parent)) for p in state[key] or ()
                         if _shipped_layer(lib_dir, p)) for key in ("untracked", "modified")}
    if require_clean and (shown["untracked"] or shown["modified"]):
        listed = ", ".join([*(f"{n} (modified)" for n in shown["modified"]),
                            *(f"{n} (untracked)" for n in shown["untracked"])][:10])
        raise BundleError(f"lib/ has changes git does not hold: {listed}. Commit them (the run's commit "
                          "must say what ran), or pass --allow-dirty: untracked files are then left out "
                          "and modified ones shipped as they are.", exit_code=2)
    return tuple(shown["untracked"])


def shipped_packages(lib_dir: Path) -> list[str]:
    """The top-level modules and packages of lib/ that the bundle ships (named in the log)."""
    return sorted({p.relative_to(lib_dir).parts[0].removesuffix(".py") for p in bundled_files(lib_dir)})


def _check_size(n_bytes: int, max_bytes: int, sizes: dict[str, int]) -> None:
    if n_bytes <= max_bytes:
        return
    largest = sorted(sizes.items(), key=lambda kv: -kv[1])[:3]
    listed = ", ".join(f"{name} ({size / 1e3:.0f} kB)" for name, size in largest)
    raise BundleError(f"the bundle notebook is {n_bytes / 1e6:.2f} MB, over Kaggle's "
                      f"{max_bytes / 1e6:.0f} MB source limit. Largest files in lib/: {listed}. "
                      "Move large data out of lib/ (e.g. into a Kaggle dataset).")


def _check_credentials(lib_dir: Path, notebook_text: str) -> None:
    """Refuse anything that looks like a credential; never print the secret itself."""
    secrets = credential_values()
    for path in bundled_files(lib_dir):
        shown = path.relative_to(lib_dir.parent)
        if path.name.lower() in CREDENTIAL_NAMES or path.name.lower().endswith(CREDENTIAL_SUFFIXES):
            raise BundleError(f"refusing to bundle {shown}: a credential file. Remove it from lib/; "
                              "credentials belong in ~/.kaggle or environment variables.")
        _scan(path.read_bytes().decode("latin-1"), secrets, str(shown))
    _scan(notebook_text, secrets, "the notebook or its parameters")


def _scan(text: str, secrets: list[str], where: str) -> None:
    kinds = ["a Kaggle key or token (one configured here)"] if any(s in text for s in secrets) else []
    kinds += [kind for kind, pattern in CREDENTIAL_PATTERNS if pattern.search(text)]
    if kinds:
        raise BundleError(f"refusing to bundle: {where} contains what looks like {kinds[0]} (value not "
                          "shown). Remove it; credentials never go in the bundle.")


def _metadata(ref: str, code_file: str, accelerator: str | None) -> dict[str, Any]:
    template = json.loads(METADATA_TEMPLATE.read_text())
    slug = ref.split("/")[1]
    metadata = {**template, "id": ref, "title": " ".join(w.capitalize() for w in slug.split("-")),
                "code_file": code_file, "enable_gpu": accelerator is not None}
    metadata.pop("machine_shape", None)
    if accelerator is not None:
        metadata["machine_shape"] = accelerator
    if metadata.get("language") != "python" or metadata.get("kernel_type") != "notebook":
        raise BundleError(f"{METADATA_TEMPLATE.name} must keep language 'python' and kernel_type 'notebook'.")
    return metadata


def check_ref(ref: str) -> str:
    """The slug of kernel id OWNER/SLUG; a bad one is a usage error naming --slug."""
    owner, _, slug = ref.partition("/")
    if not owner or not SLUG_PATTERN.match(slug):
        raise BundleError(f"--slug: '{slug}' is not a valid kernel slug: use 5-50 lowercase letters, digits "
                          "and hyphens, as OWNER/SLUG or SLUG (e.g. alice/victoria-island-signals).",
                          exit_code=2)
    return slug


def _literal(text: str) -> Any:
    """A parameter default as papermill reports it (source text) turned into its value."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


class KaggleStyleLog:
    """Writes a run's output as Kaggle's output log: a JSON array, one element per line.

    Written incrementally (`[{...}` then `\\n,{...}` ..., `]` on close) so a crash leaves a
    truncated but readable log, which is exactly how a killed Kaggle session's log looks.
    """

    def __init__(self, path: Path) -> None:
        self._file = path.open("w", encoding="utf-8")
        self._start = time.monotonic()
        self._first = True

    def stream(self, name: str, echo: TextIO) -> _LogStream:
        return _LogStream(self, name, echo)

    def write(self, stream_name: str, text: str) -> None:
        t = round(time.monotonic() - self._start, 3)
        for line in text.splitlines(keepends=True):
            element = json.dumps({"stream_name": stream_name, "time": t, "data": line})
            self._file.write(("[" if self._first else "\n,") + element)
            self._first = False
        self._file.flush()

    def close(self) -> None:
        self._file.write("[]" if self._first else "]")
        self._file.close()


class _LogStream:
    """A file-like sink for papermill's stdout_file/stderr_file: logs and echoes each chunk."""

    def __init__(self, log: KaggleStyleLog, name: str, echo: TextIO) -> None:
        self._log, self._name, self._echo = log, name, echo

    def write(self, text: str) -> int:
        self._log.write(self._name, text)
        self._echo.write(text)
        return len(text)

    def flush(self) -> None:
        self._echo.flush()


@dataclass(frozen=True)
class LocalRun:
    status: str
    run_dir: Path
    error: str | None


# The local kernel talks to papermill over IPC sockets: over TCP without CurveZMQ keys ipykernel
# prints "Kernel is running over TCP without encryption" into every local run.
LOCAL_KERNEL = {"KernelManager": {"transport": "ipc"}}


def run_local(bundle: Bundle, run_dir: Path, resume: bool = False) -> LocalRun:
    """Execute the bundle notebook here with papermill, cwd = `run_dir` (created, must be new;
    with `resume` it must exist, and its earlier log and notebook are kept as run.<n>.log and
    <notebook>.<n>.ipynb).

    Writes `run_dir/<notebook>` (executed), `run.log` (Kaggle's output-log format); the run
    itself writes results.json, the model and plots into its output_dir (the cwd). A failing
    cell gives status 'error' and an error naming the cell and the exception; the partial log
    and the executed-so-far notebook are kept. One such call per run_dir at a time (an OS lock).
    A first Ctrl-C is passed on to the kernel, where the run saves a checkpoint and ends its log:
    status 'interrupted'; a second one raises KeyboardInterrupt here at once.
    """
    from lib.obs.rundir import RunDirBusy, owned

    _check_run_dir(run_dir, resume)
    try:
        with owned(run_dir, ".push.lock"):
            if resume:
                _keep_earlier(run_dir, bundle.notebook.name)
            return _execute(bundle, run_dir)
    except RunDirBusy as exc:
        raise BundleError(str(exc)) from None


def _check_run_dir(run_dir: Path, resume: bool) -> None:
    """A new run gets a new folder; a resumed one needs the folder and its checkpoints."""
    if resume and not (run_dir / "checkpoints").is_dir():
        raise BundleError(f"{run_dir} holds no checkpoints to resume from: --resume takes the RUN_ID of "
                          "a local run that saved one.", exit_code=2)
    if not resume:
        try:
            run_dir.mkdir(parents=True)
        except FileExistsError as exc:
            raise BundleError(f"{run_dir} already exists: a run never overwrites another; choose "
                              f"another --run-id, or continue it with --resume {run_dir.name}.") from exc


def _keep_earlier(run_dir: Path, notebook_name: str) -> None:
    """Move the earlier attempt's log and notebook aside (run.<n>.log, <notebook>.<n>.ipynb)."""
    n = 1
    while (run_dir / f"run.{n}.log").exists():
        n += 1
    for name, kept in (("run.log", f"run.{n}.log"), (notebook_name, f"{Path(notebook_name).stem}.{n}.ipynb")):
        if (run_dir / name).exists():
            (run_dir / name).rename(run_dir / kept)


def _execute(bundle: Bundle, run_dir: Path) -> LocalRun:
    import papermill
    from traitlets.config import Config

    log = KaggleStyleLog(run_dir / "run.log")
    try:
        with _sigint_to_kernel() as interrupted:
            papermill.execute_notebook(
                str(bundle.notebook), str(run_dir / bundle.notebook.name), cwd=str(run_dir),
                kernel_name="python3", progress_bar=False, log_output=False, config=Config(LOCAL_KERNEL),
                stdout_file=log.stream("stdout", sys.stdout), stderr_file=log.stream("stderr", sys.stderr))
    except papermill.PapermillExecutionError as exc:
        # As in a Kaggle log, the traceback ends the log, so fetch_logs reads the ending as an error.
        log.write("stderr", _ANSI.sub("", "\n".join(exc.traceback)) + "\n")
        if interrupted:
            return LocalRun("interrupted", run_dir, "interrupted (Ctrl-C)")
        return LocalRun("error", run_dir, _cell_error(bundle.notebook, exc))
    except Exception as exc:  # the kernel died or could not start: still a clean report
        log.write("stderr", f"{type(exc).__name__}: {exc}\n")
        return LocalRun("error", run_dir, f"the notebook could not run: {type(exc).__name__}: {exc}")
    finally:
        log.close()
    return LocalRun("ok", run_dir, None)


@contextlib.contextmanager
def _sigint_to_kernel() -> Iterator[list[bool]]:
    """The first Ctrl-C is passed on to the kernel (which runs in a session of its own); there the
    run saves a checkpoint and ends its log, and the failing cell ends the notebook. Tearing the
    kernel down at once, as papermill would, could cut that short; a second Ctrl-C does it."""
    interrupted: list[bool] = []
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return

    def handler(signum: int, frame: Any) -> None:
        if interrupted:
            raise KeyboardInterrupt
        interrupted.append(True)
        _interrupt_kernels()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupt_kernels() -> None:
    """SIGINT to the process group of each Jupyter kernel this process started (as Jupyter's own
    interrupt does)."""
    import psutil

    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error, OSError):
            if any("ipykernel" in part for part in child.cmdline()):
                os.killpg(os.getpgid(child.pid), signal.SIGINT)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _cell_error(notebook: Path, exc: Any) -> str:
    first_line = next((line for line in str(exc.source).splitlines()
                       if line.strip() and not line.startswith("#")), "")
    return (f"cell {exc.cell_index} of {notebook.name} (In [{exc.exec_count}], starting "
            f"'{first_line[:60]}') raised {exc.ename}: {exc.evalue}")
