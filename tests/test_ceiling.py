"""The decoding ceiling: ideal targets decoded, against k, for PMI, random and identity embeddings."""

import json

import numpy as np
import pytest

from workbench.data.datasets import MultiLabelDataset
from workbench.data.labels import Vocabulary
from workbench.evaluation.ceiling import decoding_ceiling
from workbench.evaluation.metrics import mean_average_precision
from workbench.method.embed import EmbeddingOptions


def topic_dataset(num_images=1200, num_labels=40, seed=0):
    """Label sets drawn from 6 topics of 8 labels (no images: the ceiling reads labels only)."""
    rng = np.random.default_rng(seed)
    vocabulary = Vocabulary(tuple(f"label {i:02d}" for i in range(num_labels)))
    topics = [rng.choice(num_labels, size=8, replace=False) for _ in range(6)]
    label_sets = []
    for _ in range(num_images):
        topic = topics[rng.integers(len(topics))]
        label_sets.append(tuple(vocabulary[int(i)] for i in rng.choice(topic, size=rng.integers(1, 5), replace=False)))
    return MultiLabelDataset(image_paths=tuple(f"{n}.png" for n in range(num_images)), label_sets=tuple(label_sets),
                             vocabulary=vocabulary, name="topics")


def test_identity_ceiling_is_perfect_and_pmi_beats_random_at_small_k():
    report = decoding_ceiling(topic_dataset(), dims=(2, 4, 32), options=EmbeddingOptions(policy="ppmi"))
    rows = {(row["embedding"], row["dim"]): row for row in report["rows"]}
    identity = rows[("identity", 40)]
    assert identity["map_at_100"] == pytest.approx(1.0) and identity["macro_ap"] == pytest.approx(1.0)
    assert rows[("pmi", 2)]["map_at_100"] > rows[("random", 2)]["map_at_100"] + 0.1
    assert rows[("pmi", 4)]["map_at_100"] > rows[("random", 4)]["map_at_100"]
    for name in ("pmi", "random"):  # more dimensions, a higher ceiling
        assert rows[(name, 32)]["map_at_100"] >= rows[(name, 2)]["map_at_100"]
    assert report["config"]["embedding_options"]["policy"] == "ppmi"
    assert report["config"]["embedding_from"] == "training split only"


def test_ceiling_is_the_map_of_decoded_ideal_targets():
    """Recompute one row by hand: sum the validation images' true label vectors, rank labels by cosine."""
    from workbench.method.targets import label_vectors

    dataset = topic_dataset(600, seed=3)
    report = decoding_ceiling(dataset, dims=(3,), embeddings=("random",), random_state=7)
    _, validation = dataset.split(validation_fraction=0.1, random_state=0)
    vectors = label_vectors("random", vocabulary=validation.vocabulary, embedding_dim=3, random_state=7).vectors.astype(np.float64)
    truth = validation.labels.toarray()
    truth = truth[truth.sum(axis=1) > 0]
    targets = truth @ vectors
    cosines = (targets / np.linalg.norm(targets, axis=1, keepdims=True)) @ (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).T
    assert report["rows"][0]["map_at_100"] == pytest.approx(mean_average_precision(cosines, truth), abs=1e-6)


def test_ceiling_refuses_bad_settings():
    with pytest.raises(ValueError, match="Unknown embedding 'svd'"):
        decoding_ceiling(topic_dataset(100), embeddings=("svd",))
    with pytest.raises(ValueError, match="dim must be a positive integer"):
        decoding_ceiling(topic_dataset(100), dims=(0,))


def test_cli_ceiling_writes_the_contract(tmp_path, capsys):
    from workbench.cli import main
    from workbench.data.datasets import load_dataset

    dataset = topic_dataset(400)
    folder = tmp_path / "data"
    (folder / "images").mkdir(parents=True)
    (folder / "labels.csv").write_text("image,labels\n" + "".join(f"images/{n}.png,{'|'.join(labels)}\n"
                                                                  for n, labels in enumerate(dataset.label_sets)))
    num_labels = load_dataset(folder, format="list-csv").num_labels  # the labels that occur (the images are not read)
    out = tmp_path / "ceiling"
    assert main(["ceiling", "--data", str(folder), "--format", "list-csv", "--dims", "4,16", "--pmi", "ppmi", "--out", str(out)]) == 0
    report = json.loads((out / "ceiling.json").read_text())
    assert set(report) == {"config", "rows"}
    assert [(row["embedding"], row["dim"]) for row in report["rows"]] == [("pmi", 4), ("pmi", 16), ("random", 4), ("random", 16), ("identity", num_labels)]
    assert all({"embedding", "dim", "map_at_100", "macro_ap"} <= set(row) for row in report["rows"])
    assert report["config"]["embedding_options"]["policy"] == "ppmi"
    assert (out / "ceiling.png").stat().st_size > 1000
    assert "identity" in capsys.readouterr().out
    assert main(["ceiling", "--data", str(folder), "--format", "list-csv", "--dims", "4,x", "--out", str(out)]) == 2
    assert "--dims takes comma-separated whole numbers" in capsys.readouterr().err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "mine.txt").write_text("keep me")
    assert main(["ceiling", "--data", str(folder), "--format", "list-csv", "--out", str(tmp_path / "other")]) == 2
    assert (tmp_path / "other" / "mine.txt").read_text() == "keep me"


@pytest.mark.shared_data
def test_cli_ceiling_on_real_miml_labels(shared_data, tmp_path, capsys):
    from workbench.cli import main

    out = tmp_path / "miml"
    assert main(["ceiling", "--data", str(shared_data / "miml_scenes"), "--dims", "2,4", "--out", str(out)]) == 0
    rows = {(row["embedding"], row["dim"]): row for row in json.loads((out / "ceiling.json").read_text())["rows"]}
    assert rows[("identity", 5)]["map_at_100"] == pytest.approx(1.0)
    assert 0.5 < rows[("pmi", 2)]["map_at_100"] <= 1.0
