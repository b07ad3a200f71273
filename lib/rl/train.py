"""A training run: one strict config in, phases framed by events, results a user can trust out.

`run(RunConfig(...))` performs config -> build -> sanity -> train -> eval -> baselines -> save,
each framed by `phase_start`/`phase_end`, between `run_start` (first line) and `run_end` (last
line, also on errors and interruptions). Why it is shaped this way (docs/training.md):

- One source of truth: every setting is a RunConfig field, checked on construction (a misspelled
  key raises naming the closest valid one; a budget that would never update the network raises).
- One build: the training VecEnv, the sanity env and the evaluation VecEnv all lease scenarios
  from lib.rl.pool, so the whole run prints exactly one `network_build`.
- The model kept is the best on the validation seeds (`validation_every` > 0): every so many
  steps the policy runs on the validation episodes (lib.rl.protocol's tuning/validation set, a
  pooled env) and the best is saved to best_model.zip; evaluation uses it, never the last one.
- Baselines as deployed (lib/rl/tuning.py): each classic controller at its own 1 s control
  step, with the parameters tuned for this simulator version when stored, on the same seeds.
- Nothing silent: a tqdm bar on stderr, `train_progress`/`eval_progress` at least every 10 s,
  repeated warnings folded into `warning` events, SIGTERM and Ctrl-C save a checkpoint and end
  with `run_end` status "interrupted".
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecMonitor

from lib.obs import events
from lib.obs.events import emit, jsonable, start_clock
from lib.obs.provenance import git_commit, lib_hash
from lib.obs.rundir import owned
from lib.obs.warn import capture_warnings
from lib.rl import plots, pool, protocol, tensorboard, tuning
from lib.rl.callbacks import BestModelCallback, CheckpointCallback, ProgressCallback
from lib.rl.checkpoints import Checkpoints
from lib.rl.env import DECISION_STEPS, TrafficSignalEnv
from lib.rl.evaluate import (
    Evaluation,
    evaluate,
    evaluate_controllers,
    policy_actor,
    relative_change,
    report,
    results_markdown,
)
from lib.rl.run_config import DEFAULT_LEARNING_STARTS, SANITY_SEED_OFFSET, RunConfig
from lib.rl.sanity import run_checks
from lib.rl.vecenv import TrafficVecEnv
from lib.sim import launches
from lib.sim.simulator import BackendChoice, choose_backend, cuda_available

REFERENCES = tuning.BASELINES
EVENTS_LOG = "events.log"  # the run's events, beside its results (plain text, one event a line)
# Validation episodes come from the tuning/validation seed set, apart from the tuning episodes.
VALIDATION_SKIP = 500_000


@dataclass
class RunResult:
    """What a run produced; `results` maps controller -> metric means and their `_std`."""

    status: Literal["ok", "error", "interrupted"]
    output_dir: Path
    results: dict[str, dict[str, float]] = field(default_factory=dict)
    training_curve: list[tuple[int, float]] = field(default_factory=list)
    link_metrics: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    builds: int = 0
    run_id: str = ""
    policy: str = ""  # the controller name of the trained policy in `results`
    steps: int = 0  # environment steps trained (num_timesteps)
    updates: int = 0  # gradient updates made
    error: str = ""
    model_path: Path | None = None  # the model evaluated: best_model.zip if validated, else model.zip
    validation: list[tuple[int, float]] = field(default_factory=list)  # (steps, validation mean delay)


class RunFailed(RuntimeError):
    """run() failed; `.result` is the RunResult with status "error" (run_end was printed)."""

    def __init__(self, message: str, result: RunResult) -> None:
        super().__init__(message)
        self.result = result


class RunInterrupted(KeyboardInterrupt):
    """SIGTERM arrived: handled like Ctrl-C (checkpoint, run_end status "interrupted")."""


# --------------------------------------------------------------------------- run


def run(config: RunConfig) -> RunResult:
    """Train, check and evaluate as `config` says; see the module docstring for the phases. Every
    event also goes to `output_dir/events.log`, so any run folder has a log fetch_logs.py reads."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    run_id = config.run_id or f"{stamp}-{config.algorithm}-s{config.seed}"
    folder = Path(config.output_dir or str(Path("runs") / run_id))
    with events.copy_to(folder / EVENTS_LOG):
        return _run(config.replace(run_id=run_id, output_dir=str(folder)))


def _run(config: RunConfig) -> RunResult:
    start_clock()
    started = time.monotonic()
    run_id = config.run_id
    config = config.replace(commit=config.commit or git_commit())
    result = RunResult(status="ok", output_dir=Path(config.output_dir), run_id=run_id)
    choice = choose_backend(config.env.backend)
    emit(
        "run_start",
        run_id=run_id,
        commit=config.commit,
        params=config.to_dict(),
        backend=choice.backend,  # what "auto" chose; params keeps the request
        device=choice.device,
        versions=versions(),
        lib_hash=lib_hash(),
    )
    report_backend(choice)
    threads = torch.get_num_threads()
    counted = launches.TOTAL.snapshot(), DECISION_STEPS[0]
    try:
        torch.set_num_threads(config.torch_threads)
        with capture_warnings(), sigterm_interrupts(), owned(Path(config.output_dir)):
            _Run(config, result).phases()
    except KeyboardInterrupt as exc:
        result.status, result.error = "interrupted", type(exc).__name__
    except Exception as exc:
        result.status, result.error = "error", f"{type(exc).__name__}: {exc}"
    finally:
        torch.set_num_threads(threads)
        result.builds = pool.build_count()
        result.seconds = time.monotonic() - started
        ending = {"error": result.error} if result.error and result.status == "error" else {}
        emit(
            "run_end", status=result.status, seconds=round(result.seconds, 3), builds=result.builds, **ending,
            **launch_report(*counted),
        )
    if result.status == "error":
        raise RunFailed(f"run {run_id} failed: {result.error}", result)
    return result


class _Run:
    """The state shared by the phases of one run; environments are always released."""

    def __init__(self, config: RunConfig, result: RunResult) -> None:
        self.config = config
        self.result = result
        self.out = Path(config.output_dir)
        self.envs: list[Any] = []
        self.model: Any = None

    def phases(self) -> None:
        try:
            with phase("config"):
                self.prepare()
            with phase("build"):
                self.train_env = self.vec_env(self.config.n_envs)
            with phase("sanity") as info:
                info["checks"] = self.sanity()
            with phase("train") as info:
                self.train(info)
            with phase("eval"):
                self.evaluate_policy()
            if self.config.baselines:
                with phase("baselines"):
                    self.evaluate_baselines()
            with phase("save"):
                self.save()
        finally:
            for env in self.envs:
                env.close()

    def prepare(self) -> None:
        checkpoints = self.out / "checkpoints"
        if not self.config.resume and checkpoints.is_dir() and any(checkpoints.iterdir()):
            raise ValueError(
                f"{checkpoints} already holds checkpoints: pass resume=True to continue that run, "
                f"or a new output_dir"
            )
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(json.dumps(self.config.to_dict(), indent=2, default=str))

    def vec_env(self, n: int) -> TrafficVecEnv:
        env = TrafficVecEnv(n, self.config.env)
        self.envs.append(env)
        return env

    def sanity(self) -> int:
        env = TrafficSignalEnv(self.config.env)
        self.envs.append(env)
        checks = run_checks(env, self.config.seed + SANITY_SEED_OFFSET)
        env.close()
        return len(checks)

    def train(self, info: dict[str, Any]) -> None:
        config = self.config
        env = VecMonitor(self.train_env)
        env.seed(config.seed)
        store = Checkpoints(self.out / "checkpoints", config.keep_checkpoints)
        latest = store.latest() if config.resume else None
        self.model = (
            store.load(latest, config.algorithm, env, config.torch_device, config.resume_without_replay)
            if latest
            else new_model(config, env)
        )
        if not latest:
            warn_shrunk_warmup(config)
        if not latest:
            self.model.set_random_seed(config.seed)
        info["resumed_from"] = str(latest) if latest else None
        if store.skipped:
            info["skipped_checkpoints"] = store.skipped
        remaining = config.steps - self.model.num_timesteps
        progress = ProgressCallback(config.steps, config.progress_bar, self.result.training_curve)
        callbacks = [progress, CheckpointCallback(store, config.checkpoint_every)]
        best = self.best_model_callback()
        callbacks += [best] if best else []
        try:
            if remaining > 0:
                self.model.learn(
                    total_timesteps=remaining,
                    callback=callbacks,
                    reset_num_timesteps=latest is None,
                    tb_log_name=config.run_id,
                )
        except KeyboardInterrupt:
            saved = store.save(self.model)
            print(f"interrupted at step {self.model.num_timesteps}: checkpoint {saved} saved; continue with "
                  f"resume=True and output_dir={self.out}", file=sys.stderr, flush=True)
            raise
        finally:
            self.result.steps = int(self.model.num_timesteps)
            self.result.updates = int(getattr(self.model, "_n_updates", 0))
        store.save(self.model)
        self.model.save(self.out / "model.zip")
        self.result.model_path = self.out / "model.zip"
        if best is not None and best.path.exists():
            self.result.validation = best.scores
            self.result.model_path = best.path
            self.model = type(self.model).load(best.path, env=env, device=config.torch_device)
        info.update(steps=self.result.steps, updates=self.result.updates, model=str(self.result.model_path))

    def best_model_callback(self) -> BestModelCallback | None:
        """Periodic validation on a pooled env of the validation seeds, or None when off."""
        if not self.config.validation_every:
            return None
        env = self.vec_env(self.config.validation_episodes)
        seeds = protocol.TUNING.take(self.config.validation_episodes, skip=VALIDATION_SKIP)
        return BestModelCallback(
            lambda model: validation_delay(model, env, seeds),
            self.config.validation_every,
            self.out / "best_model.zip",
        )

    def evaluate_policy(self) -> Evaluation:
        self.eval_env = self.vec_env(self.config.eval_episodes)
        model = self.model
        name = self.config.algorithm
        evaluation = evaluate(
            name,
            policy_actor(model),
            self.eval_env,
            self.eval_seed(),
            progress_bar=self.config.progress_bar,
        )
        self.result.results[name] = report(evaluation)
        self.result.policy = name
        self.result.link_metrics = {
            "mean_speed_mps": evaluation.link_speed_mps.tolist(),
            "mean_density_vpm": evaluation.link_density_vpm.tolist(),
        }
        self.episodes = {name: evaluation.episodes}
        return evaluation

    def evaluate_baselines(self) -> None:
        env_config = self.config.env
        seeds = [self.eval_seed() + i for i in range(self.config.eval_episodes)]
        controllers = tuning.run_baselines(env_config, self.train_env.network, self.config.seed)
        evaluations = evaluate_controllers(  # every controller x episode in one batch
            controllers, env_config, seeds, env_config.decision_interval, self.config.progress_bar
        )
        for name in controllers:
            self.result.results[name] = report(evaluations[name])
            self.episodes[name] = evaluations[name].episodes

    def eval_seed(self) -> int:
        """The first evaluation seed: the protocol's evaluation set, the same for every training
        seed, so runs of one sweep level face the same episodes (and their baselines agree)."""
        return protocol.EVALUATION.take(self.config.eval_episodes)[0]

    def comparison(self) -> dict[str, Any]:
        """The policy's paired statistics against every baseline and the best classic one (one
        training seed: the interval is over episodes only), when classic baselines ran."""
        baselines = {name: eps for name, eps in self.episodes.items() if name != self.result.policy}
        if not set(baselines) & set(protocol.CLASSIC):
            return {}
        summaries = {name: self.result.results[name] for name in baselines}
        return {"comparison": protocol.compare([self.episodes[self.result.policy]], baselines, summaries)}

    def save(self) -> None:
        results, policy = self.result.results, self.result.policy
        payload = {
            "run_id": self.config.run_id,
            "commit": self.config.commit,
            "config": self.config.to_dict(),
            "policy": policy,
            "steps": self.result.steps,
            "updates": self.result.updates,
            "eval_seeds": [self.eval_seed() + i for i in range(self.config.eval_episodes)],
            "results": results,
            "relative_change": {
                ref: relative_change(results, policy, ref) for ref in REFERENCES if ref in results
            },
            "model": str(self.result.model_path),
            "validation": self.result.validation,
            **self.comparison(),
            "episodes": self.episodes,
            "training_curve": self.result.training_curve,
            "link_metrics": self.result.link_metrics,
            "link_names": [link.name for link in self.train_env.network.links],
        }
        (self.out / "results.json").write_text(json.dumps(jsonable(payload), indent=2, allow_nan=False))
        table = results_markdown(results, policy, REFERENCES)
        if "comparison" in payload:
            table += "\n" + "\n".join(protocol.paired_markdown(policy, payload["comparison"])) + "\n"
        (self.out / "results.md").write_text(table)
        for name, figure in (
            ("training_curve.png", plots.training_curve(self.result)),
            ("comparison.png", plots.controller_comparison(self.result)),
        ):
            figure.savefig(self.out / name, dpi=120)


def warn_shrunk_warmup(config: RunConfig) -> None:
    """Say so when DQN's default warm-up was shrunk to fit a small budget."""
    warmup = config.warmup_steps()
    if config.algorithm == "dqn" and config.learning_starts is None and warmup < DEFAULT_LEARNING_STARTS:
        emit("warning", category="learning_starts", count=1,
             message=f"learning_starts shrunk from {DEFAULT_LEARNING_STARTS} to {warmup} so that DQN trains "
                     f"within steps={config.steps}; set learning_starts to choose the warm-up")


def validation_delay(model: BaseAlgorithm, env: TrafficVecEnv, seeds: list[int]) -> float:
    """The policy's mean delay over the validation episodes (deterministic actions)."""
    evaluation = evaluate("validation", policy_actor(model), env, seeds, progress_bar=False)
    return float(np.mean([e["mean_delay_s"] for e in evaluation.episodes]))


def new_model(config: RunConfig, env: VecEnv) -> BaseAlgorithm:
    """A fresh SB3 model with this config's hyperparameters (TensorBoard only if asked)."""
    if config.tensorboard:
        tensorboard.enable()
    common = {
        "learning_rate": config.learning_rate,
        "gamma": config.discount(),
        "batch_size": config.batch_size,
        "policy_kwargs": {"net_arch": list(config.net_arch)},
        "seed": config.seed,
        "device": config.torch_device,
        "verbose": 0,
        "tensorboard_log": str(Path(config.output_dir) / "tensorboard") if config.tensorboard else None,
    }
    if config.algorithm == "dqn":
        return DQN(
            "MlpPolicy",
            env,
            buffer_size=config.buffer_size,
            learning_starts=config.warmup_steps(),
            train_freq=config.train_freq,
            gradient_steps=config.gradient_steps,
            target_update_interval=config.target_update_interval,
            exploration_fraction=config.exploration_fraction,
            exploration_final_eps=config.exploration_final_eps,
            **common,
        )
    return PPO(
        "MlpPolicy",
        env,
        n_steps=config.n_steps,
        n_epochs=config.n_epochs,
        gae_lambda=config.gae_lambda,
        clip_range=config.clip_range,
        ent_coef=config.ent_coef,
        **common,
    )


# --------------------------------------------------------------------------- helpers


@contextmanager
def phase(name: str) -> Iterator[dict[str, Any]]:
    """Frame a phase with phase_start / phase_end (seconds, status and what the phase adds)."""
    emit("phase_start", phase=name)
    started = time.monotonic()
    info: dict[str, Any] = {}
    status = "error"
    try:
        yield info
        status = "ok"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        emit("phase_end", phase=name, seconds=round(time.monotonic() - started, 3), status=status, **info)


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Inside the block SIGTERM raises RunInterrupted (main thread only; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise RunInterrupted(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def launch_report(before: dict[str, Any], decisions_before: int) -> dict[str, Any]:
    """The run's kernel launches (every simulator of the process), per decision step (one
    SignalBatch.step: set_phase, advance and read-outs of a whole batch), and how many launches
    had each grid size (blocks): where a GPU's time goes when it sits idle."""
    counted = launches.since(before)
    decisions = DECISION_STEPS[0] - decisions_before
    per = round(counted["launches"] / decisions, 2) if decisions else None
    return {"launches": counted["launches"], "decisions": decisions, "launches_per_decision": per,
            "grid_sizes": {str(g): n for g, n in sorted(counted["grids"].items())}}


def report_backend(choice: BackendChoice) -> None:
    """The `backend` event (what was asked, what runs, on which device, why not CUDA), and a
    `warning` when a Kaggle GPU session runs on the CPU: that session's GPU time is being spent idle."""
    emit("backend", requested=choice.requested, backend=choice.backend, device=choice.device,
         reason=choice.reason)
    if choice.gpu_unused:
        emit("warning", category="gpu_unused", count=1,
             message=f"a GPU accelerator is attached but the simulator runs on the CPU: {choice.reason}")


def versions() -> dict[str, str | None]:
    """What this run uses; `image` (when the bundle's bootstrap ran) what the image had before it
    installed anything, so a run that breaks on a new Kaggle image says which versions changed."""
    import importlib.metadata

    import gymnasium
    import numba
    import stable_baselines3

    found: dict[str, Any] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "torch": torch.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "gymnasium": gymnasium.__version__,
        "cuda_driver": _cuda_driver(),
    }
    try:
        found["numba_cuda"] = importlib.metadata.version("numba-cuda")
    except importlib.metadata.PackageNotFoundError:
        found["numba_cuda"] = None
    with contextlib.suppress(ValueError):
        found["image"] = json.loads(os.environ.get("SIGNALS_IMAGE_VERSIONS") or "null") or None
    return found


def _cuda_driver() -> str | None:
    """The CUDA driver version ("12.8"), None without a usable GPU."""
    if not cuda_available():
        return None
    from numba import cuda

    try:
        major, minor = cuda.cudadrv.driver.get_version()
    except Exception:  # noqa: BLE001 - a driver that cannot say is reported as unknown
        return None
    return f"{major}.{minor}"


