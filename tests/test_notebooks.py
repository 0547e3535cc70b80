"""The ordered notebooks: saved clean, parameters first, and every cell runs in the ci profile.

Each numbered notebook is executed with nbval (``--nbval-lax``: every cell must run;
the notebooks check themselves with ``assert``) in a separate pytest process, with
``WORKBENCH_PROFILE=ci`` and ``WORKBENCH_RESULTS`` pointing at one temporary folder
shared by the notebooks in order, as in the main job (``workbench run``). Run only
these with ``.venv/bin/python -m pytest tests/test_notebooks.py``; the six together
take about two minutes on two cores (kernel start-up and TensorFlow import included).
"""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
#: Seconds one notebook may take in the ci profile before the test fails (a hang, not slowness).
TIMEOUT = 900


def _code_cells(path):
    return [cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]


def test_the_numbered_notebooks_are_there():
    names = [path.name for path in NOTEBOOKS]
    for expected in ("01_pmi.ipynb", "02_spectral_embedding.ipynb", "03_training.ipynb", "04_classification.ipynb"):
        assert expected in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_saved_without_outputs_and_starts_with_its_parameters(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.cells[0].cell_type == "markdown" and notebook.cells[0].source.startswith("# "), "a title first"
    cells = _code_cells(path)
    for cell in cells:
        assert not cell.outputs and cell.execution_count is None, "clear the outputs before saving"
    first = cells[0].source
    for line in (
        'PROFILE = os.environ.get("WORKBENCH_PROFILE", "workshop")',
        'RESULTS = os.environ.get("WORKBENCH_RESULTS", f"../results/{PROFILE}")',
        "SEED = ",
    ):
        assert line in first, f"the first code cell sets {line.split('=')[0].strip()}"
    for cell in cells[1:]:
        assert "WORKBENCH_PROFILE" not in cell.source and "get_profile(" not in cell.source, (
            "only the first cell reads the profile"
        )


#: Code lines (not blank, not a comment) of the six notebooks before the public API (``git show aa80a1a``):
#: 148, 128, 139, 183, 98 and 89. Written on ``import workbench as wb`` they are at most two thirds of that.
CODE_LINES_BEFORE_THE_API = 785


def _code_lines(source: str) -> list[str]:
    return [line for line in source.splitlines() if line.strip() and not line.strip().startswith("#")]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_reads_as_a_story_few_imports_and_a_short_parameters_cell(path):
    """At most 5 import lines in the whole notebook and at most 12 lines in its parameters cell."""
    import re

    cells = _code_cells(path)
    imports = [line for cell in cells for line in cell.source.splitlines() if re.match(r"\s*(import |from \S+ import )", line)]
    assert len(imports) <= 5, imports
    parameters = [line for line in cells[0].source.splitlines() if line.strip()]
    assert len(parameters) <= 12, parameters
    assert not re.search(r"\]\[\"[a-z_]+\"\]\[", "".join(cell.source for cell in cells)), "no nested-dict digging"


def test_the_notebooks_together_have_a_third_fewer_code_lines_than_before_the_api():
    total = sum(len(_code_lines(cell.source)) for path in NOTEBOOKS for cell in _code_cells(path))
    assert total <= CODE_LINES_BEFORE_THE_API * 2 / 3, total


@pytest.fixture(scope="module")
def ci_results(tmp_path_factory):
    """One results folder for the notebooks in order, as the main job does."""
    return tmp_path_factory.mktemp("results-ci")


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_the_ci_profile(path, ci_results):
    environment = {
        **os.environ,
        "WORKBENCH_PROFILE": "ci",
        "WORKBENCH_RESULTS": str(ci_results),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "MPLBACKEND": "Agg",
    }
    command = [
        sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
        "-q", "--no-header", "-o", "addopts=", "-o", "testpaths=", str(path),
    ]
    completed = subprocess.run(
        command, cwd=NOTEBOOK_DIR, env=environment, capture_output=True, text=True, timeout=TIMEOUT
    )
    report = (completed.stdout + completed.stderr)[-6000:]
    assert completed.returncode == 0, f"{path.name} failed in the ci profile:\n{report}"
