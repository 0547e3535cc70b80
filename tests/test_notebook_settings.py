"""Notebook 03 computes the PMI embedding once, and follows the embedding settings notebook 02 recorded.

Notebook 03 is executed for real (``ci`` profile, a fresh kernel through nbclient) with
two cells added around its main part: one before, wrapping
:func:`workbench.method.embed.embed_labels` to count its calls, and one after (before the
exercises, which compute other embeddings on purpose: the ceiling at another k), printing
the count and the output width of every trained model as JSON.
"""

import json
import os
from pathlib import Path

import nbformat
import numpy as np
import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "03_training.ipynb"

COUNTING_CELL = """
import workbench.method.embed as _embed_module
_EMBED_CALLS = []
_real_embed_labels = _embed_module.embed_labels
def _counting_embed_labels(*args, **kwargs):
    _EMBED_CALLS.append(kwargs.get("options"))
    return _real_embed_labels(*args, **kwargs)
_embed_module.embed_labels = _counting_embed_labels
"""

REPORT_CELL = """
import json as _json
from pathlib import Path as _Path
from workbench.learning.runs import load_run as _load_run
_widths = {path.name: int(_load_run(path).predict_points(dataset.images[:1]).shape[1])
           for path in sorted((_Path(RESULTS) / "comparison" / "runs").iterdir())}
print("REPORT " + _json.dumps({"embed_calls": len(_EMBED_CALLS), "k": embedding.embedding_dim,
                               "run_width": int(run.predict_points(dataset.images[:1]).shape[1]),
                               "comparison_widths": _widths, "num_labels": len(dataset.vocabulary)}))
"""


def _run_notebook_03(results_dir: Path) -> dict:
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.cells.insert(0, nbformat.v4.new_code_cell(COUNTING_CELL))
    exercises = next(position for position, cell in enumerate(notebook.cells) if cell.source.startswith("## Exercises"))
    notebook.cells.insert(exercises, nbformat.v4.new_code_cell(REPORT_CELL))
    saved = {key: os.environ.get(key) for key in ("WORKBENCH_PROFILE", "WORKBENCH_RESULTS", "MPLBACKEND")}
    os.environ.update({"WORKBENCH_PROFILE": "ci", "WORKBENCH_RESULTS": str(results_dir), "MPLBACKEND": "Agg"})
    try:
        NotebookClient(notebook, timeout=900, kernel_name="python3",
                       resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    text = "".join(output.get("text", "") for output in notebook.cells[exercises].outputs)
    return json.loads(text.split("REPORT ", 1)[1])


@pytest.mark.slow
def test_notebook_03_computes_the_pmi_embedding_exactly_once(tmp_path):
    report = _run_notebook_03(tmp_path)
    assert report["embed_calls"] == 1, "the embedding, the pmi run and the comparison share one computation"
    k = report["k"]
    assert report["run_width"] == k
    widths = report["comparison_widths"]
    assert set(widths) == {f"{head}-seed0" for head in ("pmi", "sigmoid", "random")}
    assert widths["pmi-seed0"] == widths["random-seed0"] == k and widths["sigmoid-seed0"] == report["num_labels"]


@pytest.mark.slow
def test_embedding_dim_changed_in_notebook_02_reaches_notebook_03s_models(tmp_path):
    from workbench.method.embed import EmbeddingOptions
    from workbench.notebook.profiles import get_profile
    from workbench.notebook.workspace import ensure_counts, ensure_embedding, ensure_scenes

    profile = get_profile("ci")
    # What notebook 02 does when a learner sets EMBEDDING_DIM = 5 and PMI_POLICY = "ppmi" in its first cell.
    dataset = ensure_scenes(tmp_path, num_images=profile.num_images, num_labels=profile.num_labels,
                            image_size=profile.image_size, max_labels=profile.max_labels,
                            missing_rate=profile.missing_rate, spurious_rate=profile.spurious_rate, random_state=0,
                            verbose=False)
    counts = ensure_counts(tmp_path, dataset, validation_fraction=profile.validation_fraction, verbose=False)
    chosen = EmbeddingOptions(embedding_dim=5, policy="ppmi", diagonal=profile.pmi_diagonal)
    assert chosen.embedding_dim != profile.embedding_dim
    made = ensure_embedding(tmp_path, counts, options=chosen, verbose=False)

    report = _run_notebook_03(tmp_path)
    assert report["embed_calls"] == 0, "notebook 03 reads notebook 02's embedding instead of rebuilding another"
    assert report["k"] == made.embedding_dim == 5
    assert report["run_width"] == 5
    assert report["comparison_widths"]["pmi-seed0"] == report["comparison_widths"]["random-seed0"] == 5
    results = json.loads((tmp_path / "comparison" / "results.json").read_text())
    assert results["config"]["embedding_options"]["policy"] == "ppmi"
    assert results["config"]["embedding_dim"] == 5
    saved = np.load(tmp_path / "comparison" / "embedding" / "embedding.npz")["vectors"]
    np.testing.assert_array_equal(saved, made.vectors)
