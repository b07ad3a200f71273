"""The notebooks in kernels/: valid, parameterisable by papermill, clean in the repository."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook

from lib.bundle import REPO_ROOT, notebook_parameters

NOTEBOOKS = sorted((REPO_ROOT / "kernels").glob("*.ipynb"))
TRAIN = REPO_ROOT / "kernels" / "train.ipynb"
REQUIRED = {"steps", "seed", "algorithm", "n_envs", "eval_episodes", "backend", "episode_seconds",
            "decision_interval", "run_id", "commit", "output_dir"}


def test_there_is_a_training_notebook() -> None:
    assert TRAIN in NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_valid_with_kernelspec_and_language_info(path: Path) -> None:
    """Kaggle runs pushed notebooks with papermill, which fails without kernelspec/language_info."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    assert nb.metadata.kernelspec.language == "python"
    assert nb.metadata.language_info.name == "python"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_outputs_cleared_in_the_repository(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_exactly_one_parameters_cell(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code"


def test_training_parameters_and_attribution() -> None:
    params = notebook_parameters(TRAIN)
    assert REQUIRED <= set(params)
    assert isinstance(params["steps"], int) and params["algorithm"] in ("dqn", "ppo")
    sources = [c.source for c in nbformat.read(TRAIN, as_version=4).cells]
    map_cell = next(s for s in sources if "corridor_map" in s)
    assert "OpenStreetMap contributors, ODbL" in map_cell
    run_cell = next(s for s in sources if "RunConfig(" in s)
    for name in REQUIRED:
        assert f"{name}={name}" in run_cell, name


def test_papermill_injects_after_the_parameters_cell() -> None:
    nb = parameterize_notebook(load_notebook_node(str(TRAIN)), {"steps": 64, "algorithm": "ppo"})
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.tags)
    injected = nb.cells[index + 1]
    assert injected.metadata.tags == ["injected-parameters"]
    assert "steps = 64" in injected.source and 'algorithm = "ppo"' in injected.source
    nbformat.validate(nb)
