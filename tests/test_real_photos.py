"""End to end on real photos: ``../shared/data/miml_scenes`` through the command line and the upload widget.

A balanced fifth of the MIML natural scenes (every fifth row of its multi-hot CSV: 400
photos, 384×256 JPEG, labels desert, mountains, sea, sunset, trees) goes through
``workbench embed``, ``workbench train`` (pmi and sigmoid heads), ``workbench compare``
and ``workbench classify``, and a real photo is uploaded to the classification widget.
Skips when the shared data is absent.
"""

from __future__ import annotations

import datetime
import hashlib
import json

import numpy as np
import pytest

from workbench.cli import main
from workbench.data.datasets import load_dataset

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]

LABELS = ("desert", "mountains", "sea", "sunset", "trees")
TRAIN_OPTIONS = ["--image-size", "32", "--width", "16", "--depth", "3", "--batch-size", "32", "--batchnorm-momentum", "0.8",
                 "--validation-fraction", "0.25"]  # few steps: batch-norm statistics must settle fast


@pytest.fixture(scope="module")
def miml_subset(shared_data, tmp_path_factory):
    """A multi-hot CSV of every fifth MIML photo, beside a link to the real images folder."""
    source = shared_data / "miml_scenes"
    folder = tmp_path_factory.mktemp("miml")
    lines = (source / "labels.csv").read_text(encoding="utf-8").splitlines()
    (folder / "labels.csv").write_text("\n".join([lines[0], *lines[1::5]]) + "\n", encoding="utf-8")
    (folder / "images").symlink_to(source / "images", target_is_directory=True)
    return folder


@pytest.fixture(scope="module")
def trained_runs(miml_subset, tmp_path_factory):
    out = tmp_path_factory.mktemp("miml-runs")
    assert main(["embed", "--data", str(miml_subset), "--dim", "4", "--validation-fraction", "0.25",
                 "--out", str(out / "embedding")]) == 0  # the training split that train holds out below
    runs = {}
    for head in ("pmi", "sigmoid"):
        command = ["train", "--data", str(miml_subset), "--head", head, "--epochs", "5", *TRAIN_OPTIONS, "--out", str(out / head)]
        if head == "pmi":
            command += ["--embedding", str(out / "embedding")]
        assert main(command) == 0
        runs[head] = out / head
    return runs


def test_the_subset_is_the_real_data(miml_subset):
    dataset = load_dataset(miml_subset)
    assert dataset.format == "multihot-csv" and len(dataset) == 400
    assert tuple(dataset.vocabulary.names) == LABELS
    counts = np.asarray(dataset.labels.sum(axis=0)).ravel()
    assert counts.min() >= 70  # every label well represented in the balanced subset


@pytest.mark.parametrize("head", ["pmi", "sigmoid"])
def test_training_on_real_photos_beats_label_frequency(trained_runs, miml_subset, head):
    from workbench.evaluation.metrics import mean_average_precision
    from workbench.learning.runs import load_run

    run_dir = trained_runs[head]
    history = json.loads((run_dir / "history.json").read_text())
    assert [record["epoch"] for record in history] == [1, 2, 3, 4, 5]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["status"] == "complete" and config["epochs_completed"] == 5
    # the validation split the run used, scored by the saved model, beats ranking labels by frequency
    run = load_run(run_dir)
    dataset = load_dataset(miml_subset)
    train_set, validation = dataset.split(validation_fraction=0.25, random_state=0)
    truth = validation.labels
    frequency = np.asarray(train_set.labels.sum(axis=0), dtype=np.float64).ravel()
    frequency_map = mean_average_precision(np.tile(frequency, (truth.shape[0], 1)), truth)
    from workbench.data.images import load_images

    scores = run.label_scores(load_images([validation.path_of(i) for i in range(len(validation))], size=run.image_size))
    model_map = mean_average_precision(scores, truth)
    assert model_map == pytest.approx(history[-1]["map_at_100"], abs=1e-3)
    # observed: pmi +0.13 (0.616 against 0.486) with its embedding counted on the training split only; it was
    # +0.16 while the embedding also counted the validation images, which train now refuses
    assert model_map > frequency_map + 0.1, (model_map, frequency_map)


def test_classify_cli_on_real_photos_with_a_corrupt_file(trained_runs, miml_subset, tmp_path, capsys):
    photos = [miml_subset / "images" / name for name in ("1.jpg", "1201.jpg")]  # a desert and a sunset
    corrupt = tmp_path / "broken.jpg"
    corrupt.write_bytes(photos[0].read_bytes()[:2000])
    capsys.readouterr()
    status = main(["classify", str(trained_runs["pmi"]), str(photos[0]), str(corrupt), str(photos[1]), "--top", "3", "--json"])
    assert status == 1  # one file failed, the others were classified
    output = json.loads(capsys.readouterr().out)
    assert [entry["image"] for entry in output] == [str(photos[0]), str(corrupt), str(photos[1])]
    for entry, photo in ((output[0], photos[0]), (output[2], photos[1])):
        assert entry["sha256"] == hashlib.sha256(photo.read_bytes()).hexdigest()
        names = [label["label"] for label in entry["labels"]]
        assert len(names) == 3 and set(names) <= set(LABELS)
        similarities = [label["similarity"] for label in entry["labels"]]
        assert similarities == sorted(similarities, reverse=True) and all(-1 <= s <= 1 for s in similarities)
    assert {"image", "error"} <= set(output[1]) and "labels" not in output[1] and "\n" not in output[1]["error"]
    from workbench.apps.store import ResultStore

    store = ResultStore(trained_runs["pmi"] / "results.sqlite")
    assert len(store.history(hashlib.sha256(photos[1].read_bytes()).hexdigest())) == 1


def test_upload_widget_classifies_a_real_photo_and_survives_a_bad_one(trained_runs, miml_subset):
    from workbench.apps.widgets import ClassifyApp

    def entry(name, content):
        return {"name": name, "type": "image/jpeg", "size": len(content), "content": memoryview(content),
                "last_modified": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)}

    app = ClassifyApp.for_run(trained_runs["sigmoid"], use_store=False, top=2)
    photo = (miml_subset / "images" / "801.jpg").read_bytes()  # a sea photo
    app.upload.value = (entry("801.jpg", photo), entry("notes.jpg", b"not a jpeg at all"))
    assert [result.image for result in app.results] == ["801.jpg"]
    assert len(app.results[0].labels) == 2 and {name for name, _ in app.results[0].labels} <= set(LABELS)
    assert [name for name, _ in app.errors] == ["notes.jpg"]
    app.upload.value = (entry("1601.jpg", (miml_subset / "images" / "1601.jpg").read_bytes()),)
    assert [result.image for result in app.results] == ["801.jpg", "1601.jpg"]


def test_compare_cli_on_real_photos(miml_subset, tmp_path, capsys):
    out = tmp_path / "compare"
    status = main(["compare", "--data", str(miml_subset), "--dim", "4", "--heads", "pmi,sigmoid", "--seeds", "1",
                   "--epochs", "2", *TRAIN_OPTIONS, "--out", str(out)])
    assert status == 0
    results = json.loads((out / "results.json").read_text())
    assert sorted(run["head"] for run in results["runs"]) == ["pmi", "sigmoid"]
    assert all(len(run["history"]) == 2 for run in results["runs"])
    assert (out / "comparison_curves.png").stat().st_size > 0
    printed = capsys.readouterr().out
    assert "pmi" in printed and "sigmoid" in printed
