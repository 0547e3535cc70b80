"""The main job's notebook runner: environment, outputs, failure handling, summary."""

import json

import nbformat
import pytest

from workbench.notebook.pipeline import find_notebooks, format_summary, run_notebooks


def _write_notebook(path, *sources):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("# Title")] + [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(notebook, path)


def test_runs_notebooks_in_order_with_profile_and_results_folder(tmp_path, capfd):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _write_notebook(
        notebooks / "01_first.ipynb",
        "import os, pathlib\nresults = pathlib.Path(os.environ['WORKBENCH_RESULTS'])",
        "(results / 'first.txt').write_text(os.environ['WORKBENCH_PROFILE'])",
    )
    _write_notebook(
        notebooks / "02_second.ipynb",
        "import os, pathlib\nresults = pathlib.Path(os.environ['WORKBENCH_RESULTS'])\n"
        "assert (results / 'first.txt').read_text() == 'ci'\nprint('second saw first')",
        # what the kernel process itself writes (TensorFlow's C++ logs do this) is logged, not shown
        "os.write(2, b'kernel process noise\\n')",
    )
    (notebooks / "helper.ipynb").write_text("not a numbered notebook, never run")
    out = tmp_path / "results"
    job = run_notebooks(notebook_dir=notebooks, out_dir=out, profile="ci", progress=False)
    assert job.ok
    assert [run.name for run in job.notebooks] == ["01_first.ipynb", "02_second.ipynb"]
    executed = nbformat.read(out / "notebooks" / "02_second.ipynb", as_version=4)
    assert "second saw first" in executed.cells[1].outputs[0]["text"]
    assert "second saw first" in (out / "notebooks" / "02_second.html").read_text()
    summary = format_summary(job)
    assert "01_first.ipynb" in summary and str(out) in summary
    assert "kernel process noise" in (out / "notebooks" / "02_second.kernel.log").read_text()
    assert "kernel process noise" not in capfd.readouterr().err


def test_failing_notebook_stops_the_job_and_keeps_its_traceback(tmp_path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _write_notebook(notebooks / "01_broken.ipynb", "raise ValueError('the data set is empty')")
    _write_notebook(notebooks / "02_never.ipynb", "print('never')")
    job = run_notebooks(notebook_dir=notebooks, out_dir=tmp_path / "out", profile="ci", progress=False, html=False)
    assert not job.ok
    assert len(job.notebooks) == 1
    assert job.notebooks[0].error == "ValueError: the data set is empty"
    assert (tmp_path / "out" / "notebooks" / "01_broken.failed.ipynb").exists()


def test_unknown_profile_and_missing_folder_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="Unknown profile 'huge'"):
        run_notebooks(notebook_dir=tmp_path, profile="huge")
    with pytest.raises(FileNotFoundError, match="No numbered notebooks"):
        find_notebooks(tmp_path)


def test_summary_shows_the_comparison_table(tmp_path):
    from workbench.notebook.pipeline import JobResult

    results = {
        "config": {},
        "runs": [
            {"head": "pmi", "seed": 0, "history": [{"epoch": 1, "map_at_100": 0.1}, {"epoch": 2, "map_at_100": 0.5}]},
            {"head": "pmi", "seed": 1, "history": [{"epoch": 1, "map_at_100": 0.2}, {"epoch": 2, "map_at_100": 0.7}]},
            {"head": "sigmoid", "seed": 0, "history": [{"epoch": 1, "map_at_100": 0.3}, {"epoch": 2, "map_at_100": 0.4}]},
        ],
    }
    (tmp_path / "comparison").mkdir()
    (tmp_path / "comparison" / "results.json").write_text(json.dumps(results))
    summary = format_summary(JobResult(profile="ci", results_dir=tmp_path))
    pmi_row = next(line for line in summary.splitlines() if line.strip().startswith("pmi"))
    assert "0.3750" in pmi_row  # each run's final value is the mean of its last (up to 3) epochs: 0.3 and 0.45
    sigmoid_row = next(line for line in summary.splitlines() if line.strip().startswith("sigmoid"))
    assert "0.3500" in sigmoid_row


def test_the_summary_reads_the_comparison_without_importing_keras(tmp_path):
    """The main job prints its summary after the notebooks; importing Keras there would print TensorFlow's start-up lines."""
    import subprocess
    import sys

    (tmp_path / "comparison").mkdir()
    runs = [{"head": "pmi", "seed": 0, "history": [{"epoch": 1, "map_at_100": 0.5}]}]
    (tmp_path / "comparison" / "results.json").write_text(json.dumps({"config": {}, "runs": runs}))
    code = (
        "import sys; from pathlib import Path; from workbench.notebook.pipeline import JobResult, format_summary; "
        f"summary = format_summary(JobResult(profile='ci', results_dir=Path({str(tmp_path)!r}))); "
        "print('0.5000' in summary, 'keras' in sys.modules or 'tensorflow' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["True", "False"]
