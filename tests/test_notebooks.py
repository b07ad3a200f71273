"""The notebooks in kernels/: valid, parameterisable by papermill, clean in the repository."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook

from lib.obs.events import parse_line
from lib.remote.bundle import REPO_ROOT, build_bundle, notebook_parameters, resolve_parameters, run_local

NOTEBOOKS = sorted((REPO_ROOT / "kernels").glob("*.ipynb"))
TRAIN = REPO_ROOT / "kernels" / "train.ipynb"
TINY = {"steps": 128, "env.episode_seconds": 120.0, "eval_episodes": 1, "n_envs": 2, "run_id": "tiny"}


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


def test_training_takes_one_config_parameter_and_keeps_the_attribution() -> None:
    """One source of truth: the notebook's only parameter is the run's settings (empty: RunConfig's
    defaults), handed whole to RunConfig, so a new field needs no edit in the notebook."""
    assert notebook_parameters(TRAIN) == {"config": {}}
    sources = [c.source for c in nbformat.read(TRAIN, as_version=4).cells]
    map_cell = next(s for s in sources if "corridor_map" in s)
    assert "OpenStreetMap contributors, ODbL" in map_cell
    run_cell = next(s for s in sources if "run(RunConfig" in s)
    assert 'RunConfig.from_dict({"output_dir": ".", **config})' in run_cell


def test_papermill_injects_after_the_parameters_cell() -> None:
    settings = {"steps": 64, "env.sim.order": 2}
    nb = parameterize_notebook(load_notebook_node(str(TRAIN)), {"config": settings})
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.tags)
    injected = nb.cells[index + 1]
    assert injected.metadata.tags == ["injected-parameters"]
    assert injected.source.strip().startswith("# Parameters\nconfig = ")
    exec(injected.source, namespace := {})  # noqa: S102 - papermill's own literal
    assert namespace["config"] == settings
    nbformat.validate(nb)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_with_papermill_on_tiny_parameters(path: Path, tmp_path: Path) -> None:
    """The bundle of each notebook, executed by papermill here exactly as push_kernel does."""
    params = resolve_parameters({"config": TINY}, path)
    made = build_bundle(params, tmp_path / "bundle", "local/tiny-run", None, notebook=path)
    result = run_local(made, tmp_path / "run")
    assert result.status == "ok", result.error
    executed = nbformat.read(tmp_path / "run" / made.notebook.name, as_version=4)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    if path == TRAIN:
        assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3
        assert_reads_as_a_report(outputs)
        log = json.loads((tmp_path / "run" / "run.log").read_text())
        events = [e for e in (parse_line(r["data"]) for r in log if r["stream_name"] == "stdout") if e]
        assert events[0]["event"] == "run_start" and events[0]["run_id"] == "tiny"
        assert events[-1]["event"] == "run_end" and events[-1]["status"] == "ok"
        assert any("OpenStreetMap contributors, ODbL" in r["data"] for r in log)
        results = json.loads((tmp_path / "run" / "results.json").read_text())
        assert results["steps"] == 128 and "webster" in results["results"]


def assert_reads_as_a_report(outputs: list) -> None:
    """The executed notebook is for a person: no event lines or progress-bar fragments in its visible
    outputs (the log keeps them), results as Markdown tables, the attribution below the map."""
    texts = [o.get("text", "") for o in outputs if o.output_type == "stream"]
    texts += [str(v) for o in outputs for k, v in o.get("data", {}).items() if k.startswith("text/")]
    shown = "\n".join(texts)
    assert "[event]" not in shown
    assert not re.search(r"\d+/\d+ \[|it/s|step/s|\r", shown), "a progress bar reached the notebook"
    markdown = [o["data"]["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {})]
    assert any(line.startswith("| controller |") for m in markdown for line in m.splitlines())
    assert "OpenStreetMap contributors, ODbL" in shown
