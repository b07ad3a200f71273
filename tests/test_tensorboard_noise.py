"""With TensorBoard logging off, a run imports neither TensorBoard nor TensorFlow (lib/rl/tensorboard.py).

Stand-in packages that shout when imported play Kaggle's image, where importing SB3 pulled
torch.utils.tensorboard, TensorBoard and TensorFlow (6 s and stderr noise per run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

RUN = r"""
import json, sys, tempfile
from lib import RunConfig, run
with tempfile.TemporaryDirectory() as out:
    result = run(RunConfig.from_dict({"steps": 16, "n_envs": 2, "eval_episodes": 1, "progress_bar": False,
                                      "env.episode_seconds": 60.0, "env.backend": "cpu", "output_dir": out}))
print(json.dumps({"status": result.status,
                  "imported": sorted(m for m in ("tensorboard", "tensorflow") if m in sys.modules)}))
"""


@pytest.mark.slow
def test_a_run_without_tensorboard_never_imports_it(tmp_path: Path) -> None:
    stand_ins = tmp_path / "site"
    for name, body in {
        "tensorflow": "import sys\nprint('STAND-IN TENSORFLOW: oneDNN ops are on', file=sys.stderr)\n",
        "tensorboard": "import tensorflow\n__version__ = '2.20.0'\nprint('STAND-IN TENSORBOARD imported')\n",
    }.items():
        (stand_ins / name).mkdir(parents=True)
        (stand_ins / name / "__init__.py").write_text(body)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(stand_ins), str(ROOT)])}
    done = subprocess.run([sys.executable, "-c", RUN], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "STAND-IN" not in done.stdout + done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"status": "ok", "imported": []}
