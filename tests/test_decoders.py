"""Sum-aware decoders, label-set metrics, and calibration fitted on one part of validation and measured on another."""

import json
import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from workbench.evaluation.calibration import (
    best_threshold,
    best_top_n,
    choose_labels,
    macro_f1_threshold,
    per_label_thresholds,
)
from workbench.evaluation.metrics import label_set_metrics, label_set_metrics_by_count
from workbench.method.decoders import DECODERS, decoder_scores, estimated_num_labels


# ---------------------------------------------------------------------------------
# decoders
# ---------------------------------------------------------------------------------
def constructed_embedding():
    """k = 4, six labels. "loud" is long; "quiet" is short; "echo" leans on "loud" (a co-occurring companion)."""
    names = ("loud", "quiet", "echo", "north", "east", "up")
    vectors = np.array([
        [3.0, 0.0, 0.0, 0.0],   # loud
        [0.0, 0.5, 0.0, 0.0],   # quiet
        [0.6, 0.0, 0.8, 0.0],   # echo: cos(loud, echo) = 0.6
        [0.0, 0.0, 1.0, 0.2],   # north
        [0.0, 0.3, 0.0, 1.0],   # east
        [0.0, 0.0, 0.2, 0.9],   # up
    ])
    return names, vectors


def top_set(scores, size):
    return set(np.argsort(-scores, kind="stable")[:size].tolist())


def test_greedy_and_nnls_recover_noise_free_sums_that_cosine_top_n_gets_wrong():
    names, vectors = constructed_embedding()
    label_sets = [(0, 1), (0, 1, 4), (1, 3), (0, 5), (2,), (0, 1, 3)]
    points = np.stack([vectors[list(labels)].sum(axis=0) for labels in label_sets]) * np.array([[1.0], [0.2], [7.0], [1.0], [3.0], [0.5]])
    cosine = decoder_scores(points, vectors, decoder="cosine")
    wrong = [labels for labels, row in zip(label_sets, cosine) if top_set(row, len(labels)) != set(labels)]
    assert (0, 1) in wrong, "the short 'quiet' loses to 'echo', the long 'loud's companion, under cosine"
    for decoder in ("greedy", "nnls"):
        scores = decoder_scores(points, vectors, decoder=decoder)
        for labels, row in zip(label_sets, scores):
            assert top_set(row, len(labels)) == set(labels), (decoder, labels, row)
            # equal weights in the target: each true label scores ~1, the others below the 0.5 cut
            assert {int(i) for i in np.flatnonzero(row >= 0.5)} == set(labels), (decoder, labels, row)
        np.testing.assert_array_equal(estimated_num_labels(scores), [len(labels) for labels in label_sets])
        assert np.all((scores >= 0) & (scores <= 1))


def test_decoders_on_a_real_pmi_embedding_beat_cosine_at_recovering_ideal_targets():
    """Ideal targets (sums of the true labels' vectors) of topic-structured label sets, k = 16 of 60 labels."""
    from workbench.data.labels import Vocabulary, label_matrix
    from workbench.method.cooccurrence import count_cooccurrence
    from workbench.method.embed import embed_labels

    rng = np.random.default_rng(3)
    vocabulary = Vocabulary(tuple(f"label {i}" for i in range(60)))
    topics = [rng.choice(60, size=10, replace=False) for _ in range(8)]
    label_sets = []
    for _ in range(1500):
        topic = topics[rng.integers(len(topics))]
        chosen = rng.choice(topic, size=rng.integers(1, 6), replace=False, p=np.linspace(2, 1, 10) / np.linspace(2, 1, 10).sum())
        label_sets.append(tuple(vocabulary[int(i)] for i in chosen))
    counts = count_cooccurrence(label_matrix(label_sets, vocabulary), vocabulary)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        embedding = embed_labels(counts, embedding_dim=16, policy="ppmi")
    truth = label_matrix(label_sets[:400], embedding.vocabulary).toarray().astype(np.float64)
    points = truth @ embedding.vectors
    exact = {}
    for decoder in DECODERS:
        scores = decoder_scores(points, embedding.vectors, decoder=decoder)
        exact[decoder] = np.mean([top_set(row, int(t.sum())) == set(np.flatnonzero(t)) for row, t in zip(scores, truth)])
    assert exact["nnls"] >= 0.9 and exact["nnls"] > exact["cosine"] + 0.1, exact
    assert exact["greedy"] > exact["cosine"], exact


def test_decoders_refuse_bad_input():
    _, vectors = constructed_embedding()
    with pytest.raises(ValueError, match="Unknown decoder 'sparse'"):
        decoder_scores(np.ones((1, 4)), vectors, decoder="sparse")
    with pytest.raises(ValueError, match="Points have 3 dimensions but label vectors have 4"):
        decoder_scores(np.ones((1, 3)), vectors, decoder="nnls")
    with pytest.raises(ValueError, match="max_labels must be a positive integer"):
        decoder_scores(np.ones((1, 4)), vectors, decoder="greedy", max_labels=0)
    zero = decoder_scores(np.zeros((1, 4)), vectors, decoder="greedy")
    assert np.all(zero < 1e-3), "a zero prediction has no label"


# ---------------------------------------------------------------------------------
# label-set metrics against scikit-learn
# ---------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
def test_label_set_metrics_equal_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    truth = rng.random((60, 9)) < 0.25
    predicted = np.where(rng.random((60, 9)) < 0.8, truth, ~truth)
    truth[:, 8] = predicted[:, 8] = False  # a label neither true nor predicted: left out of macro F1
    metrics = label_set_metrics(predicted, truth)
    assert metrics["micro_f1"] == pytest.approx(f1_score(truth, predicted, average="micro"))
    assert metrics["macro_f1"] == pytest.approx(f1_score(truth, predicted, average="macro", zero_division=np.nan))
    assert metrics["micro_precision"] == pytest.approx(precision_score(truth, predicted, average="micro"))
    assert metrics["micro_recall"] == pytest.approx(recall_score(truth, predicted, average="micro"))
    assert metrics["exact_set_accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    assert metrics["count_mae"] == pytest.approx(np.mean(np.abs(predicted.sum(1) - truth.sum(1))))
    by_count = label_set_metrics_by_count(predicted, truth, max_count=3)
    for key, rows in (("1", truth.sum(1) == 1), ("2", truth.sum(1) == 2), ("3+", truth.sum(1) >= 3)):
        if rows.any():
            assert by_count[key]["micro_f1"] == pytest.approx(f1_score(truth[rows], predicted[rows], average="micro"))
            assert by_count[key]["num_images"] == rows.sum()


# ---------------------------------------------------------------------------------
# fitting operating points
# ---------------------------------------------------------------------------------
def test_fitted_thresholds_and_top_n_match_a_brute_force_search():
    rng = np.random.default_rng(7)
    truth = rng.random((80, 12)) < 0.2
    scores = np.round(truth * 0.4 + rng.random((80, 12)) * 0.8, 2)  # rounded: many ties
    threshold, f1 = best_threshold(scores, truth)
    brute = max(f1_score(truth.ravel(), scores.ravel() >= value) for value in np.unique(scores))
    assert f1 == pytest.approx(brute)
    assert f1_score(truth.ravel(), scores.ravel() >= threshold) == pytest.approx(brute)
    assert threshold not in set(np.unique(scores).tolist()), "halfway between two scores"
    per_label = per_label_thresholds(scores, truth, fallback=threshold)
    for label in range(12):
        best = max(f1_score(truth[:, label], scores[:, label] >= value, zero_division=0) for value in np.unique(scores[:, label]))
        assert f1_score(truth[:, label], scores[:, label] >= per_label[label]) == pytest.approx(best)
    top_n, top_f1 = best_top_n(scores, truth, max_top=6)
    brute_top = [f1_score(truth, choose_labels(scores, top=n), average="micro") for n in range(1, 7)]
    assert top_f1 == pytest.approx(max(brute_top)) and top_n == int(np.argmax(brute_top)) + 1
    macro, macro_f1 = macro_f1_threshold(scores, truth)
    assert macro_f1 == pytest.approx(f1_score(truth, scores >= macro, average="macro", zero_division=np.nan))


# ---------------------------------------------------------------------------------
# calibration of a trained run, and the command line
# ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def calibrated_setup(tmp_path_factory):
    from tests.conftest import colour_dataset, pmi_embedding, training_split
    from workbench.data.datasets import read_scenes
    from workbench.data.scenes import write_scenes
    from workbench.learning.config import ModelConfig, TrainConfig
    from workbench.learning.training import train

    folder = tmp_path_factory.mktemp("calibration")
    write_scenes(colour_dataset(240), folder / "data")
    dataset = read_scenes(folder / "data")
    config = TrainConfig(head="pmi", epochs=6, batch_size=32, learning_rate=3e-3, workers=1, validation_fraction=0.25,
                         model=ModelConfig(image_size=16, width=8, depth=2, augment=False, dropout=0.0, batchnorm_momentum=0.8))
    train(dataset, config=config, out_dir=folder / "run", embedding=pmi_embedding(training_split(dataset, config)), verbose=0)
    return folder, dataset


@pytest.mark.slow
def test_calibration_is_fitted_on_validation_and_measured_on_other_images(calibrated_setup):
    from workbench.evaluation.calibration import calibrate, fit_operating_points, load_calibration, measure
    from workbench.learning.feeding import ImageSource
    from workbench.learning.runs import load_run

    folder, dataset = calibrated_setup
    report = calibrate(load_run(folder / "run"), dataset, random_state=1)
    assert load_calibration(folder / "run") == json.loads(json.dumps(report))
    calibration_images, test_images = set(report["calibration_images"]), set(report["test_images"])
    assert calibration_images and test_images and not calibration_images & test_images, "fit and measure never share an image"
    _, validation = dataset.split(validation_fraction=0.25, random_state=0)
    assert calibration_images | test_images == set(validation.image_paths)
    # Recompute from scratch: fit on the calibration images only, measure on the test images only.
    run = load_run(folder / "run")
    rows = {path: i for i, path in enumerate(validation.image_paths)}
    fit_rows = [rows[p] for p in report["calibration_images"]]
    test_rows = [rows[p] for p in report["test_images"]]
    outputs = run.predict_points(ImageSource(validation, image_size=run.image_size, cache_bytes=0).load_all())
    truth = validation.labels.toarray() != 0
    for decoder in DECODERS:
        scores = run.scores_of_outputs(outputs, decoder=decoder)
        fitted = fit_operating_points(scores[fit_rows], truth[fit_rows])
        assert fitted["threshold_micro_f1"] == pytest.approx(report["decoders"][decoder]["fitted"]["threshold_micro_f1"], abs=1e-5)
        expected = measure(scores[test_rows], truth[test_rows], fitted)
        measured = report["decoders"][decoder]["test"]
        assert measured["threshold_micro_f1"]["micro_f1"] == pytest.approx(expected["threshold_micro_f1"]["micro_f1"], abs=1e-6)
        assert measured["threshold_micro_f1"]["num_images"] == len(test_rows)
    assert report["best"]["decoder"] in DECODERS


@pytest.mark.slow
def test_cli_calibrate_then_classify_with_auto_threshold_and_decoders(calibrated_setup, tmp_path, capsys):
    import shutil

    from workbench.cli import main

    folder, dataset = calibrated_setup
    run_dir = tmp_path / "run"
    shutil.copytree(folder / "run", run_dir)
    (run_dir / "calibration.json").unlink(missing_ok=True)
    image = str(dataset.path_of(0))
    assert main(["classify", str(run_dir), image, "--threshold", "auto", "--no-store"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "is not calibrated; run 'workbench calibrate" in error
    assert main(["calibrate", str(run_dir), "--data", str(folder / "data")]) == 0
    printed = capsys.readouterr().out
    assert "threshold_micro_f1" in printed and "best on the calibration images" in printed
    report = json.loads((run_dir / "calibration.json").read_text())
    for decoder in DECODERS:
        assert main(["classify", str(run_dir), image, "--threshold", "auto", "--decoder", decoder, "--json", "--no-store"]) == 0
        result = json.loads(capsys.readouterr().out)[0]
        threshold = report["decoders"][decoder]["fitted"]["threshold_micro_f1"]
        if decoder == "cosine":
            assert all(entry["similarity"] >= threshold for entry in result["labels"])
        else:
            assert all(entry["weight"] >= threshold and -1 <= entry["similarity"] <= 1 for entry in result["labels"])
    assert main(["calibrate", str(run_dir), "--data", str(folder / "data"), "--decoders", "cosine,bogus"]) == 2
    assert "Unknown decoder 'bogus'" in capsys.readouterr().err


@pytest.mark.slow
def test_a_sigmoid_run_is_calibrated_on_its_own_probabilities(tmp_path, capsys):
    from tests.conftest import colour_dataset
    from workbench.cli import main
    from workbench.data.datasets import read_scenes
    from workbench.data.scenes import write_scenes
    from workbench.learning.config import ModelConfig, TrainConfig
    from workbench.learning.training import train

    write_scenes(colour_dataset(120), tmp_path / "data")
    dataset = read_scenes(tmp_path / "data")
    config = TrainConfig(head="sigmoid", epochs=2, batch_size=32, workers=1, validation_fraction=0.25,
                         model=ModelConfig(image_size=16, width=4, depth=2, augment=False, batchnorm_momentum=0.8))
    train(dataset, config=config, out_dir=tmp_path / "run", verbose=0)
    assert main(["calibrate", str(tmp_path / "run"), "--data", str(tmp_path / "data"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report["decoders"]) == ["cosine"] and report["head"] == "sigmoid"
    assert main(["calibrate", str(tmp_path / "run"), "--data", str(tmp_path / "data"), "--decoders", "nnls"]) == 2
    assert "sigmoid run has no label vectors" in capsys.readouterr().err


def test_threshold_sweep_and_macro_threshold_count_exactly_what_label_set_metrics_measures():
    """The one-sort-per-label counts give scikit-learn's micro and macro scores at every threshold (ties, empty labels)."""
    from workbench.evaluation.calibration import threshold_sweep

    rng = np.random.default_rng(7)
    for trial in range(40):
        num_images, num_labels = int(rng.integers(1, 30)), int(rng.integers(1, 9))
        scores = rng.random((num_images, num_labels))
        if trial % 3 == 0:
            scores = np.round(scores, 1)  # ties at the thresholds
        truth = rng.random((num_images, num_labels)) < rng.random()
        truth[:, 0] = truth[:, 0] if trial % 4 else False  # a label never true
        sweep = threshold_sweep(scores, truth, num_thresholds=9)
        for position, threshold in enumerate(sweep["thresholds"]):
            reference = label_set_metrics(scores >= threshold, truth)
            for name in ("precision", "recall", "f1"):
                np.testing.assert_allclose(sweep[name][position], reference[f"micro_{name}"], rtol=0, atol=1e-12)
        candidates = np.unique(np.quantile(scores, np.linspace(0.0, 1.0, 64)))
        macro = [label_set_metrics(scores >= threshold, truth)["macro_f1"] for threshold in candidates]
        finite = [(value, -position) for position, value in enumerate(macro) if np.isfinite(value)]
        threshold, value = macro_f1_threshold(scores, truth)
        if finite:
            best_value, best_position = max(finite)
            assert threshold == candidates[-best_position] and abs(value - max(best_value, 0.0)) < 1e-12
