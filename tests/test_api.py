"""The public API, ``import workbench as wb``: the README's example runs, objects show themselves, leaks are refused."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPOSITORY_ROOT

pytest.importorskip("pandas")


def _readme_example() -> str:
    readme = (REPOSITORY_ROOT / "README.md").read_text()
    match = re.search(r"<!-- readme-example -->\n```python\n(.*?)```", readme, flags=re.DOTALL)
    assert match, "the README's Python section marks its example with <!-- readme-example -->"
    return match.group(1)


def test_importing_workbench_is_cheap_and_keras_free_and_lists_the_api():
    code = ("import sys, workbench as wb; names = dir(wb); "
            "print('keras' in sys.modules or 'tensorflow' in sys.modules, all(n in names for n in "
            "['scenes', 'count', 'embed', 'ceiling', 'train', 'compare', 'experiment', 'calibrate', 'classify', "
            "'explore', 'load_dataset']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "True"]
    import workbench as wb

    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        wb.nonsense  # noqa: B018


def test_the_readme_example_is_at_most_ten_lines():
    lines = [line for line in _readme_example().splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert len(lines) <= 10, lines


@pytest.mark.slow
def test_the_readme_example_runs_and_every_object_renders(monkeypatch, capsys):
    import matplotlib

    matplotlib.use("Agg")
    namespace: dict = {}
    exec(compile(_readme_example(), "README.md", "exec"), namespace)  # noqa: S102 -- the README's own code
    printed = capsys.readouterr().out
    wb = namespace["wb"]
    data, embedding, run, comparison = (namespace[name] for name in ("data", "embedding", "run", "comparison"))

    frame = comparison.to_frame()
    assert set(frame.iloc[:, 0]) == {"pmi", "random", "sigmoid"} and len(frame) == 3
    assert "pmi" in printed and "sigmoid" in printed
    labels = wb.classify(run, data.images[:1]).labels
    assert len(labels) == 1 and len(labels[0]) == 5 and set(labels[0]) <= set(data.vocabulary.names)
    assert f"[{labels[0]!r}]".replace("'", "") in printed.replace("'", "")

    # the run trained without out_dir lives in a temporary folder and is kept by save()
    assert run.run_dir.is_dir() and "workbench-run-" in run.run_dir.name
    history = run.to_frame()
    assert list(history["epoch"]) == [1, 2] and {"loss", "map_at_100"} <= set(history.columns)
    # the pmi head's final value in the comparison's table is the mean of its last epochs' MAP@100
    pmi_history = next(item["history"] for item in comparison.results["runs"] if item["head"] == "pmi")
    pmi_row = frame[frame.iloc[:, 0] == "pmi"].iloc[0]
    assert np.isclose(pmi_row.iloc[1], np.mean([record["map_at_100"] for record in pmi_history]), atol=1e-9)

    for shown in (data, embedding, run, comparison, wb.count(data), wb.classify(run, data.images[:2]),
                  comparison.statistics()):
        page = shown._repr_html_()
        assert page.startswith("<h4>") and "<table" in page, type(shown).__name__
        assert shown.table().strip() and type(shown).__name__ in repr(type(shown))
    assert embedding.plot(method="pca") is not None and run.plot() is not None and comparison.plot() is not None
    assert list(embedding.neighbours(data.vocabulary.names[0], top=3).columns) == ["label", "similarity"]


@pytest.mark.slow
def test_a_run_without_out_dir_is_saved_where_asked_and_loads_back(tmp_path):
    import workbench as wb

    data = wb.scenes(num_images=120, num_labels=12, image_size=16, random_state=1)
    run = wb.train(data, head="sigmoid", epochs=1, model={"width": 4, "depth": 2, "augment": False})
    kept = run.save(tmp_path / "kept")
    assert (tmp_path / "kept" / "model.keras").is_file() and kept.run_dir == tmp_path / "kept"
    again = wb.load_run(tmp_path / "kept")
    images = data.images[:3]
    assert np.allclose(again.label_scores(images), run.label_scores(images), atol=1e-6)
    with pytest.raises(ValueError, match="not an empty folder"):
        run.save(tmp_path / "kept")


def _leaky_embedding(data):
    """An embedding counted on every image, the validation split included."""
    import workbench as wb
    from workbench.method.cooccurrence import count_cooccurrence

    return wb.embed(count_cooccurrence(data.labels, data.vocabulary), dim=4)


@pytest.mark.slow
def test_train_and_compare_refuse_an_embedding_counted_on_the_validation_images(tmp_path):
    import workbench as wb

    data = wb.scenes(num_images=160, num_labels=12, image_size=16, random_state=2)
    small = {"width": 4, "depth": 2, "augment": False}
    leaky = _leaky_embedding(data)
    with pytest.raises(ValueError, match="include the validation split"):
        wb.train(data, leaky, epochs=1, model=small, out_dir=tmp_path / "refused")
    assert not (tmp_path / "refused").exists(), "nothing is written before the refusal"
    with pytest.raises(ValueError, match="include the validation split"):
        wb.compare(data, leaky, heads=("pmi",), seeds=(0,), epochs=1, model=small, out_dir=tmp_path / "refused-comparison")
    assert not (tmp_path / "refused-comparison").exists()

    allowed = wb.train(data, leaky, epochs=1, model=small, out_dir=tmp_path / "allowed", allow_overlap=True)
    recorded = json.loads((allowed.run_dir / "config.json").read_text())["data"]["embedding_counted_on"]
    assert recorded == "training and validation images (allowed)"
    clean = wb.train(data, wb.embed(data, dim=4), epochs=1, model=small, out_dir=tmp_path / "clean")
    assert json.loads((clean.run_dir / "config.json").read_text())["data"]["embedding_counted_on"] == "training split only"
    comparison = wb.compare(data, leaky, heads=("pmi",), seeds=(0,), epochs=1, model=small,
                            out_dir=tmp_path / "comparison", allow_overlap=True)
    assert comparison.results["config"]["embedding_from"] == "training and validation images (allowed)"


def test_counted_on_tells_the_training_split_from_the_whole_data_set_and_from_other_data():
    import workbench as wb
    from workbench.method.cooccurrence import count_cooccurrence
    from workbench.method.embed import embed_labels
    from workbench.method.targets import counted_on

    data = wb.scenes(num_images=200, num_labels=12, image_size=16, random_state=3)
    train_set, validation_set = data.split(validation_fraction=wb.VALIDATION_FRACTION, random_state=0)
    assert counted_on(wb.embed(data, dim=4).artefact, train_set, validation_set) == "training split only"
    with pytest.raises(ValueError, match="allow_overlap=True"):
        counted_on(_leaky_embedding(data).artefact, train_set, validation_set)
    other = wb.scenes(num_images=50, num_labels=12, image_size=16, random_state=3)  # the same labels, other images
    elsewhere = embed_labels(count_cooccurrence(other.labels, other.vocabulary), embedding_dim=4)
    assert counted_on(elsewhere, train_set, validation_set) == "other data (not this split)"


def test_api_calls_say_what_was_wrong_in_one_line():
    import workbench as wb

    with pytest.raises(ValueError, match="Expected a data set"):
        wb.count([["cat", "dog"]])
    data = wb.scenes(num_images=40, num_labels=8, image_size=16, random_state=4)
    with pytest.raises(ValueError, match="either as options"):
        wb.embed(data, dim=4, options=wb.EmbeddingOptions())
    with pytest.raises(ValueError, match="Expected a label embedding"):
        wb.train(data, "embedding.npz")
