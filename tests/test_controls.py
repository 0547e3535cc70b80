"""The controls (shuffled, random-matched, learned, sigmoid-lowrank) and clean-label scoring (map_at_100_clean)."""

import csv
import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from workbench.data.datasets import MultiLabelDataset  # noqa: E402
from workbench.data.labels import Vocabulary  # noqa: E402
from workbench.evaluation.metrics import mean_average_precision  # noqa: E402
from workbench.learning.config import DEFAULT_LEARNING_RATES, HEADS, ModelConfig, TrainConfig  # noqa: E402
from workbench.learning.models import build_model  # noqa: E402
from workbench.learning.runs import load_run  # noqa: E402
from workbench.learning.training import train  # noqa: E402
from workbench.method.embedding import LabelEmbedding  # noqa: E402
from workbench.method.targets import label_vectors  # noqa: E402

CONTROLS = ("shuffled", "random-matched", "learned", "sigmoid-lowrank")
SEVEN = ("pmi", "shuffled", "random-matched", "learned", "sigmoid-lowrank", "identity", "sigmoid")
COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255], [255, 0, 255]], np.uint8)
NAMES = ("red", "green", "blue", "yellow", "cyan", "magenta")
TINY = ModelConfig(image_size=16, width=4, depth=2, batchnorm_momentum=0.8)


def noisy_squares(num_images=48, *, seed=0, noise=0.3):
    """Coloured squares (the clean labels: the squares drawn) with labels dropped and added at random (the labels)."""
    rng = np.random.default_rng(seed)
    images = np.zeros((num_images, 16, 16, 3), np.uint8)
    clean, noisy = [], []
    for n in range(num_images):
        drawn = rng.choice(len(NAMES), size=int(rng.integers(1, 3)), replace=False)
        for label in drawn:
            y, x = rng.integers(0, 11, 2)
            images[n, y : y + 5, x : x + 5] = COLOURS[label]
        kept = [label for label in drawn if rng.random() >= noise]
        if rng.random() < noise:
            kept.append(int(rng.integers(len(NAMES))))
        clean.append(tuple(NAMES[label] for label in drawn))
        noisy.append(tuple(NAMES[label] for label in kept))
    return MultiLabelDataset(image_paths=tuple(f"images/{n:04d}.png" for n in range(num_images)), label_sets=tuple(noisy),
                             vocabulary=Vocabulary(NAMES), images=images, name="squares", clean_label_sets=tuple(clean))


def pmi_like(vocabulary, *, dim=3, seed=1, zero_row=None, label_counts=None):
    """Vectors of unequal norms (as PMI rows are), one row zero when asked (a label the embedding lacks)."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((len(vocabulary), dim)) * rng.uniform(0.2, 3.0, (len(vocabulary), 1))
    if zero_row is not None:
        vectors[zero_row] = 0.0
    return LabelEmbedding(vocabulary=vocabulary, vectors=vectors, eigenvalues=np.ones(dim), label_counts=label_counts,
                          settings={"test": True})


def trained_embedding(train_set, *, dim=3):
    from workbench.method.cooccurrence import count_cooccurrence
    from workbench.method.embed import EmbeddingOptions, embed_labels

    return embed_labels(count_cooccurrence(train_set.labels, train_set.vocabulary),
                        options=EmbeddingOptions(embedding_dim=dim))


# ---------------------------------------------------------------------------------
# the label vectors of the controls
# ---------------------------------------------------------------------------------
def test_shuffled_vectors_are_a_row_permutation_of_the_pmi_vectors_with_the_same_norms():
    vocabulary = Vocabulary([f"label{c}" for c in range(12)])
    pmi = pmi_like(vocabulary, dim=4, zero_row=5)
    shuffled = label_vectors("shuffled", vocabulary=vocabulary, embedding=pmi, random_state=3).vectors
    distances = np.linalg.norm(shuffled[:, None, :] - pmi.vectors[None, :, :], axis=2)
    owner = distances.argmin(axis=1)
    assert np.allclose(distances.min(axis=1), 0.0, atol=1e-6)
    assert sorted(owner.tolist()) == list(range(12)), "every PMI row is used once: a permutation"
    assert (owner != np.arange(12)).sum() >= 6, "labels own other labels' rows"
    assert owner[5] == 5 and not shuffled[5].any(), "a label the embedding lacks keeps its zero vector"
    np.testing.assert_allclose(np.sort(np.linalg.norm(shuffled, axis=1)), np.sort(np.linalg.norm(pmi.vectors, axis=1)),
                               rtol=1e-6)
    np.testing.assert_allclose(shuffled.T @ shuffled, pmi.vectors.T @ pmi.vectors, rtol=1e-5, atol=1e-5)  # same geometry
    again = label_vectors("shuffled", vocabulary=vocabulary, embedding=pmi, random_state=3).vectors
    other = label_vectors("shuffled", vocabulary=vocabulary, embedding=pmi, random_state=4).vectors
    np.testing.assert_array_equal(again, shuffled)
    assert not np.array_equal(other, shuffled), "seeded by the run's random_state"


def test_random_matched_vectors_have_the_pmi_norms_and_gaussian_directions():
    vocabulary = Vocabulary([f"label{c}" for c in range(200)])
    pmi = pmi_like(vocabulary, dim=8, zero_row=0)
    matched = label_vectors("random-matched", vocabulary=vocabulary, embedding=pmi, random_state=7).vectors
    np.testing.assert_allclose(np.linalg.norm(matched, axis=1), np.linalg.norm(pmi.vectors, axis=1), rtol=1e-5, atol=1e-7)
    units = matched[1:] / np.linalg.norm(matched[1:], axis=1, keepdims=True)
    pmi_units = pmi.vectors[1:] / np.linalg.norm(pmi.vectors[1:], axis=1, keepdims=True)
    cosines = np.sum(units * pmi_units, axis=1)
    assert abs(cosines.mean()) < 0.1 and cosines.std() < 0.5, "directions unrelated to PMI's (about 1/sqrt(k) spread)"
    assert abs(units.mean(axis=0)).max() < 0.2, "directions spread evenly, as normalised Gaussians are"
    np.testing.assert_array_equal(label_vectors("random-matched", vocabulary=vocabulary, embedding=pmi,
                                                random_state=7).vectors, matched)
    with pytest.raises(ValueError, match="random-matched head needs a label embedding"):
        label_vectors("random-matched", vocabulary=vocabulary, embedding_dim=8)


def test_the_controls_have_the_rate_of_their_nearest_head_and_the_sigmoid_bias_of_sigmoid():
    assert set(HEADS) >= set(SEVEN) and set(DEFAULT_LEARNING_RATES) == set(HEADS)
    assert DEFAULT_LEARNING_RATES["shuffled"] == DEFAULT_LEARNING_RATES["random-matched"] == DEFAULT_LEARNING_RATES["pmi"]
    assert DEFAULT_LEARNING_RATES["learned"] == DEFAULT_LEARNING_RATES["identity"]
    assert DEFAULT_LEARNING_RATES["sigmoid-lowrank"] == DEFAULT_LEARNING_RATES["sigmoid"]
    assert TrainConfig(head="sigmoid-lowrank").sigmoid_bias == "label_frequency"
    assert TrainConfig(head="learned", sigmoid_bias="label_frequency").sigmoid_bias == "zero"


def _trainable(model) -> int:
    return int(sum(np.prod(weight.shape) for weight in model.trainable_weights))


def test_learned_and_sigmoid_lowrank_have_k_wide_bottlenecks():
    k, labels = 3, 7
    features = TINY.width * 2 ** (TINY.depth - 1)  # channels of the trunk's last block
    pmi = build_model(TINY, head="pmi", embedding_dim=k)
    learned = build_model(TINY, head="learned", embedding_dim=k, num_labels=labels)
    lowrank = build_model(TINY, head="sigmoid-lowrank", embedding_dim=k, num_labels=labels,
                          output_bias=np.linspace(-3, -1, labels))
    sigmoid = build_model(TINY, head="sigmoid", num_labels=labels)
    trunk = _trainable(pmi) - (features * k + k)
    assert _trainable(learned) == trunk + features * k + k + k * labels  # Dense(k), then a k × C map without bias
    assert _trainable(lowrank) == trunk + features * k + k + k * labels + labels
    assert _trainable(sigmoid) == trunk + features * labels + labels
    for model, name in ((learned, "learned"), (lowrank, "sigmoid_lowrank")):
        assert model.get_layer(f"{name}_bottleneck").kernel.shape == (features, k)
        assert model.get_layer(f"{name}_head").kernel.shape == (k, labels)
        assert model.output_shape == (None, labels)
    assert learned.get_layer("learned_head").bias is None
    np.testing.assert_allclose(lowrank.get_layer("sigmoid_lowrank_head").bias.numpy(), np.linspace(-3, -1, labels), rtol=1e-6)
    outputs = lowrank.predict(np.zeros((2, 16, 16, 3), np.uint8), verbose=0)
    assert np.all((outputs > 0) & (outputs < 1))
    with pytest.raises(ValueError, match="learned head needs embedding_dim"):
        build_model(TINY, head="learned", num_labels=labels)


# ---------------------------------------------------------------------------------
# training a control, loading it back, clean-label scoring
# ---------------------------------------------------------------------------------
@pytest.mark.parametrize("head", CONTROLS)
def test_each_control_trains_an_epoch_loads_back_in_safe_mode_and_scores_clean_labels(tmp_path, head):
    data = noisy_squares()
    train_set, validation = data.split(validation_fraction=0.25, random_state=0)
    embedding = trained_embedding(train_set)
    config = TrainConfig(head=head, epochs=1, batch_size=16, validation_fraction=0.25, model=TINY,
                         embedding_dim=2 if head in ("learned", "sigmoid-lowrank") else None)
    run = train(data, config=config, embedding=embedding, out_dir=tmp_path / head, verbose=0)
    loaded = load_run(tmp_path / head)  # safe mode
    scores = loaded.label_scores(validation.images)
    assert scores.shape == (len(validation), len(NAMES)) and np.all(np.isfinite(scores))
    np.testing.assert_allclose(scores, run.label_scores(validation.images), atol=1e-5)
    meta = json.loads((tmp_path / head / "config.json").read_text())
    if head in ("learned", "sigmoid-lowrank"):
        assert loaded.embedding is None and meta["embedding_dim"] == 2 and meta["output_dim"] == len(NAMES)
        np.testing.assert_allclose(scores, loaded.predict_points(validation.images), atol=1e-6)  # the C outputs
    else:
        assert meta["embedding_dim"] == embedding.embedding_dim and meta["data"]["embedding_counted_on"] == "training split only"
        assert loaded.embedding.settings["kind"] == head
    record = run.history[-1]
    assert record["map_at_100"] == pytest.approx(mean_average_precision(scores, validation.labels), abs=1e-5)
    assert record["map_at_100_clean"] == pytest.approx(mean_average_precision(scores, validation.clean_labels), abs=1e-5)
    assert record["map_at_100_clean"] != pytest.approx(record["map_at_100"], abs=1e-9), "noisy and clean labels differ"


@pytest.mark.parametrize("head", ("shuffled", "random-matched"))
def test_the_pmi_controls_refuse_an_embedding_counted_on_the_validation_images(tmp_path, head):
    data = noisy_squares()
    leaky = trained_embedding(data)  # counted on every image, validation included
    config = TrainConfig(head=head, epochs=1, batch_size=16, validation_fraction=0.25, model=TINY)
    with pytest.raises(ValueError, match="include the validation split"):
        train(data, config=config, embedding=leaky, out_dir=tmp_path / "refused", verbose=0)
    assert not (tmp_path / "refused").exists()


def test_a_data_set_without_clean_labels_records_no_clean_map(tmp_path):
    import dataclasses

    data = dataclasses.replace(noisy_squares(), clean_label_sets=None)
    run = train(data, config=TrainConfig(head="sigmoid", epochs=1, batch_size=16, validation_fraction=0.25, model=TINY),
                out_dir=tmp_path / "run", verbose=0)
    assert "map_at_100_clean" not in run.history[-1] and run.history[-1]["map_at_100"] is not None


@pytest.mark.slow
def test_compare_trains_the_seven_heads_and_clean_map_equals_map_on_noise_free_scenes(tmp_path):
    import workbench as wb

    data = wb.scenes(num_images=48, num_labels=8, image_size=16, random_state=1)
    assert data.clean_label_sets == data.label_sets
    embedding = wb.embed(data, dim=3)
    comparison = wb.compare(data, embedding, heads=SEVEN, seeds=(0,), epochs=1, out_dir=tmp_path / "comparison",
                            model={"width": 4, "depth": 2})
    runs = comparison.results["runs"]
    assert [run["head"] for run in runs] == list(SEVEN)
    for run in runs:
        record = run["history"][-1]
        assert record["map_at_100"] is not None
        assert record["map_at_100_clean"] == record["map_at_100"], run["head"]  # noise-free: clean labels are the labels
        loaded = wb.load_run(tmp_path / "comparison" / "runs" / f"{run['head']}-seed0")
        assert loaded.label_scores(data.images[:5]).shape == (5, len(data.vocabulary))
    config = comparison.results["config"]
    assert config["embedding_from"] == "training split only" and config["learning_rates"]["learned"] == 1e-2


# ---------------------------------------------------------------------------------
# a grid with the seven heads
# ---------------------------------------------------------------------------------
def _csv_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_a_grid_with_the_seven_heads_fills_clean_map_for_scenes_and_leaves_it_empty_without_clean_labels(tmp_path):
    import dataclasses

    from workbench.data.scenes import write_scenes
    from workbench.experiments.experiment import run_experiment
    from workbench.experiments.grid import expand_cells, parse_grid

    train_table = {"heads": list(SEVEN), "seeds": [0], "epochs": 1, "image_size": 16, "batch_size": 16, "width": 4,
                   "depth": 2, "tune_lr": False}  # tuning every head (the default) is tested in test_convergence
    grid = parse_grid({"data": {"labels": 8, "images": 48, "size": 16, "missing_rate": 0.2, "spurious_rate": 0.2,
                                "validation_fraction": 0.25},
                       "embedding": {"dim": [2, 3]}, "train": train_table})
    cells = expand_cells(grid)
    assert sorted(cell.name for cell in cells) == ["dim-2", "dim-3", "no-embedding"]
    assert {cell.name: set(cell.heads) for cell in cells}["no-embedding"] == {"identity", "sigmoid"}
    run_experiment(grid, out_dir=tmp_path / "scenes", cores=1, print_function=lambda line: None)
    rows = _csv_rows(tmp_path / "scenes" / "results.csv")
    assert len(rows) == 5 * 2 + 2 and {row["head"] for row in rows} == set(SEVEN)
    assert all(row["map_at_100_clean"] != "" for row in rows)
    assert any(abs(float(row["map_at_100_clean"]) - float(row["map_at_100"])) > 1e-9 for row in rows)
    for row in rows:
        if row["cell"] != "no-embedding":
            assert row["dim"] == row["cell"].split("-")[1], "every head that depends on k has its cell's k"
        history = json.loads((tmp_path / "scenes" / "cells" / row["cell"] / "runs" / f"{row['head']}-seed0"
                              / "history.json").read_text())
        assert float(row["map_at_100_clean"]) == pytest.approx(history[-1]["map_at_100_clean"], abs=1e-12)

    folder = tmp_path / "squares"
    write_scenes(dataclasses.replace(noisy_squares(), clean_label_sets=None), folder)
    assert not (folder / "clean_labels.csv").exists()
    plain = parse_grid({"data": {"path": str(folder), "validation_fraction": 0.25}, "embedding": {"dim": 2},
                        "train": {**train_table, "heads": ["pmi", "sigmoid"]}})
    run_experiment(plain, out_dir=tmp_path / "plain", cores=1, print_function=lambda line: None)
    rows = _csv_rows(tmp_path / "plain" / "results.csv")
    assert len(rows) == 2 and all(row["map_at_100_clean"] == "" and row["map_at_100"] != "" for row in rows)
