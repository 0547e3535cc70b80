"""Training, resuming, run directories, the data pipeline, comparison and the CLI (tiny models)."""

import json

import numpy as np
import pytest
import scipy.sparse as sp

keras = pytest.importorskip("keras")

from workbench.evaluation import metrics  # noqa: E402
from workbench.data.datasets import MultiLabelDataset  # noqa: E402
from workbench.learning.feeding import ImageSource, LabelBatches, batch_targets  # noqa: E402
from workbench.data.labels import Vocabulary  # noqa: E402
from workbench.learning.models import ModelConfig, build_model  # noqa: E402
from workbench.method.embedding import LabelEmbedding  # noqa: E402
from workbench.learning.config import TrainConfig  # noqa: E402
from workbench.experiments.results import comparison_table, summarize_comparison  # noqa: E402
from workbench.learning.devices import describe_device  # noqa: E402
from workbench.method.targets import label_vectors  # noqa: E402
from workbench.learning.runs import load_run  # noqa: E402
from workbench.learning.training import train  # noqa: E402
from workbench.learning.callbacks import EvaluationCallback  # noqa: E402
from workbench.method.decoding import LabelScorer  # noqa: E402

COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255], [255, 0, 255]], np.uint8)
NAMES = ("red", "green", "blue", "yellow", "cyan", "magenta")
TINY = dict(image_size=16, width=8, depth=2, batchnorm_momentum=0.8)


def coloured_squares(num_images, *, size=16, seed=0, max_labels=2, empty_every=0):
    """An easy task: each label is a 5×5 square of its colour somewhere on black."""
    rng = np.random.default_rng(seed)
    images = np.zeros((num_images, size, size, 3), np.uint8)
    label_sets = []
    for n in range(num_images):
        count = 0 if empty_every and n % empty_every == 0 else int(rng.integers(1, max_labels + 1))
        chosen = rng.choice(len(NAMES), size=count, replace=False)
        for label in chosen:
            y, x = rng.integers(0, size - 5, 2)
            images[n, y : y + 5, x : x + 5] = COLOURS[label]
        label_sets.append(tuple(NAMES[label] for label in chosen))
    return MultiLabelDataset(
        image_paths=tuple(f"images/{n:04d}.png" for n in range(num_images)),
        label_sets=tuple(label_sets),
        vocabulary=Vocabulary(NAMES),
        images=images,
        name="squares",
    )


def embedding_for(vocabulary, *, dim=4, seed=1):
    vectors = np.random.default_rng(seed).standard_normal((len(vocabulary), dim))
    return LabelEmbedding(vocabulary=vocabulary, vectors=vectors, eigenvalues=np.ones(dim), settings={"test": True})


def config(**overrides):
    settings = dict(head="pmi", epochs=1, batch_size=16, learning_rate=3e-3, validation_fraction=0.25, model=ModelConfig(**TINY))
    settings.update(overrides)
    return TrainConfig(**settings)


# ---------------------------------------------------------------------------------
# data pipeline
# ---------------------------------------------------------------------------------
def test_label_batches_targets_shuffle_and_epochs():
    dataset = coloured_squares(37, empty_every=5)
    embedding = embedding_for(dataset.vocabulary)
    batches = LabelBatches(
        ImageSource(dataset, image_size=16), dataset.labels, vectors=embedding.vectors, batch_size=8, shuffle=True, random_state=3
    )
    assert len(batches) == 4  # the incomplete last batch is dropped in training
    seen = []
    for index in range(len(batches)):
        images, targets = batches[index]
        positions = batches.positions(index)
        np.testing.assert_array_equal(images, dataset.images[positions])
        dense = dataset.labels[positions].toarray().astype(np.float32)
        np.testing.assert_allclose(targets, dense @ embedding.vectors, atol=1e-6)  # sum of the label vectors
        seen.extend(positions.tolist())
    assert len(set(seen)) == 32
    empty = [i for i, p in enumerate(batches.positions(0)) if not dataset.label_sets[p]]
    assert all(np.all(batches[0][1][i] == 0) for i in empty)
    first_order = batches._order.copy()
    batches.on_epoch_end()
    assert not np.array_equal(first_order, batches._order)
    # The order depends on (random_state, epoch) only: a resumed run sees the same batches.
    resumed = LabelBatches(ImageSource(dataset, image_size=16), dataset.labels, batch_size=8, shuffle=True, random_state=3, start_epoch=1)
    np.testing.assert_array_equal(resumed._order, batches._order)
    np.testing.assert_array_equal(batch_targets(dataset.labels, [0, 1], vectors=None), dataset.labels[[0, 1]].toarray())
    prediction = LabelBatches(ImageSource(dataset, image_size=16), batch_size=8, shuffle=False, targets=False)
    assert len(prediction) == 5 and prediction[4][0].shape == (5, 16, 16, 3)


def squares_on_disk(folder, num_images=6):
    """``coloured_squares`` in memory and the same images as PNG files under ``folder``."""
    from PIL import Image

    dataset = coloured_squares(num_images)
    (folder / "images").mkdir()
    for n, image in enumerate(dataset.images):
        Image.fromarray(image).save(folder / dataset.image_paths[n])
    on_disk = MultiLabelDataset(
        image_paths=dataset.image_paths, label_sets=dataset.label_sets, vocabulary=dataset.vocabulary, root=folder
    )
    return dataset, on_disk


def test_images_from_files_match_in_memory_and_resize(tmp_path):
    dataset, on_disk = squares_on_disk(tmp_path)
    np.testing.assert_array_equal(ImageSource(on_disk, image_size=16).get([4, 1]), dataset.images[[4, 1]])
    small = ImageSource(dataset, image_size=8).get([0, 1, 2])
    assert small.shape == (3, 8, 8, 3) and small.dtype == np.uint8
    from workbench.data.images import load_image

    np.testing.assert_array_equal(ImageSource(on_disk, image_size=8).get([2])[0], load_image(on_disk.path_of(2), size=8))


def test_images_from_files_are_decoded_once_when_they_fit_the_cache(tmp_path, monkeypatch):
    import workbench.data.images

    dataset, on_disk = squares_on_disk(tmp_path)
    decoded = []
    real_load_image = workbench.data.images.load_image
    monkeypatch.setattr(workbench.data.images, "load_image", lambda path, **kw: decoded.append(path) or real_load_image(path, **kw))

    cached = ImageSource(on_disk, image_size=16)
    np.testing.assert_array_equal(cached.get([4, 1]), dataset.images[[4, 1]])
    np.testing.assert_array_equal(cached.get([1, 4, 0]), dataset.images[[1, 4, 0]])  # 1 and 4 from the cache
    assert len(decoded) == 3 and cached.num_cached == 3
    # the cached copy is not aliased to a returned batch
    batch = cached.get([0])
    batch[:] = 0
    np.testing.assert_array_equal(cached.get([0])[0], dataset.images[0])

    decoded.clear()
    too_small = ImageSource(on_disk, image_size=16, cache_bytes=16 * 16 * 3 * 5)  # 6 images do not fit in 5
    too_small.get([2]), too_small.get([2])
    assert len(decoded) == 2 and too_small.num_cached == 0
    with pytest.raises(ValueError, match="cache_bytes"):
        ImageSource(on_disk, image_size=16, cache_bytes=-1)


# ---------------------------------------------------------------------------------
# train, run directories, load_run
# ---------------------------------------------------------------------------------
def test_train_writes_run_directory_and_load_run_scores(tmp_path):
    dataset = coloured_squares(48, empty_every=7)
    embedding = embedding_for(dataset.vocabulary)
    lines = []
    run = train(dataset, config=config(epochs=2), out_dir=tmp_path / "run", embedding=embedding, print_function=lines.append)
    for name in ("model.keras", "config.json", "history.json", "vocabulary.csv", "embedding/embedding.npz", "checkpoints/state.json"):
        assert (tmp_path / "run" / name).is_file(), name
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    assert meta["status"] == "complete" and meta["train"]["head"] == "pmi" and meta["learning_rate"] == 3e-3
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [record["epoch"] for record in history] == [1, 2]
    for key in ("loss", "map_at_100", "macro_ap", "precision_at_5", "recall_at_5", "seconds"):
        assert np.isfinite(history[-1][key]), key
    assert any("epoch 2:" in line and "MAP@100" in line for line in lines)

    loaded = load_run(tmp_path / "run")
    assert loaded.head == "pmi" and loaded.image_size == 16 and loaded.vocabulary.names == NAMES
    np.testing.assert_allclose(loaded.embedding.vectors, embedding.vectors, atol=1e-6)
    images = dataset.images[:5]
    points = loaded.predict_points(images)
    scores = loaded.label_scores(images)
    assert points.shape == (5, 4) and scores.shape == (5, 6) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, embedding.similarities(points), atol=1e-5)
    np.testing.assert_allclose(loaded.label_scores(images[0]), scores[:1], atol=1e-5)
    np.testing.assert_allclose(run.label_scores(images), scores, atol=1e-5)  # the returned run = the saved one
    many = np.concatenate([dataset.images] * 2)  # above the direct-call limit: through predict()
    np.testing.assert_allclose(loaded.label_scores(many)[:5], scores, atol=1e-5)
    with pytest.raises(ValueError, match="load_image"):
        loaded.label_scores(np.zeros((2, 32, 32, 3), np.uint8))
    # The history's MAP is the metric of the saved model on the validation split.
    _, validation = dataset.split(validation_fraction=0.25, random_state=0)
    recomputed = metrics.mean_average_precision(loaded.label_scores(validation.images), validation.labels, k=100)
    assert recomputed == pytest.approx(history[-1]["map_at_100"], abs=1e-4)


def test_interrupted_run_resumes_from_last_checkpoint(tmp_path):
    dataset = coloured_squares(40)
    embedding = embedding_for(dataset.vocabulary)
    out = tmp_path / "run"
    train(dataset, config=config(epochs=1), out_dir=out, embedding=embedding, verbose=0)
    first = json.loads((out / "history.json").read_text())

    class Kill(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt  # killed during epoch 3

    # Asking for more epochs resumes at epoch 2; the kill during epoch 3 loses only that epoch.
    with pytest.raises(KeyboardInterrupt):
        train(dataset, config=config(epochs=3), out_dir=out, embedding=embedding, callbacks=[Kill()], verbose=0)
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    assert state["epoch"] == 2 and state["history"][0] == first[0]
    assert json.loads((out / "config.json").read_text())["status"] == "running"
    assert sorted(p.name for p in (out / "checkpoints").glob("*.keras")) == ["epoch-0002.keras"]
    interrupted = load_run(out)  # an unfinished run loads from its last checkpoint
    assert len(interrupted.history) == 2

    lines = []
    run = train(dataset, config=config(epochs=3), out_dir=out, embedding=embedding, print_function=lines.append)
    assert lines[0].startswith(f"Resuming {out} after epoch 2 of 3")
    assert [record["epoch"] for record in run.history] == [1, 2, 3]
    assert run.history[:2] == state["history"]

    with pytest.raises(ValueError, match="different settings.*learning_rate"):
        train(dataset, config=config(epochs=3, learning_rate=1e-2), out_dir=out, embedding=embedding, verbose=0)
    with pytest.raises(ValueError, match="different label embedding"):
        train(dataset, config=config(epochs=4), out_dir=out, embedding=embedding_for(dataset.vocabulary, seed=9), verbose=0)


@pytest.mark.slow
def test_training_learns_the_easy_task(tmp_path):
    dataset = coloured_squares(160, seed=4)
    train_set, validation = dataset.split(validation_fraction=0.25, random_state=0)
    embedding = embedding_for(dataset.vocabulary, dim=6, seed=2)
    settings = config(epochs=12, batch_size=16, learning_rate=3e-3)
    run = train(train_set, validation=validation, config=settings, out_dir=tmp_path / "run", embedding=embedding, verbose=0)
    fresh = build_model(settings.model, head="pmi", embedding_dim=6, random_state=settings.random_state)
    untrained = metrics.mean_average_precision(
        LabelScorer(embedding.vectors)(fresh.predict(validation.images, verbose=0)), validation.labels
    )
    trained = run.history[-1]["map_at_100"]
    chance = np.mean(
        [metrics.mean_average_precision(np.random.default_rng(s).random((40, 6)), validation.labels) for s in range(20)]
    )
    assert trained > 0.8, (trained, untrained, chance)
    assert trained > untrained + 0.2 and trained > chance + 0.25


@pytest.mark.parametrize("head", ["sigmoid", "random", "identity"])
def test_other_heads_train_and_load(tmp_path, head):
    dataset = coloured_squares(32, empty_every=6)
    run = train(dataset, config=config(head=head, embedding_dim=5), out_dir=tmp_path / head, verbose=0)
    scores = run.label_scores(dataset.images[:4])
    assert scores.shape == (4, 6) and np.all(np.isfinite(scores))
    if head == "sigmoid":
        assert run.embedding is None and not (tmp_path / head / "embedding").exists()
        assert np.all((scores >= 0) & (scores <= 1))
        np.testing.assert_allclose(scores, run.predict_points(dataset.images[:4]), atol=1e-6)
    elif head == "random":
        again = label_vectors("random", vocabulary=dataset.vocabulary, embedding_dim=5, random_state=0)
        np.testing.assert_array_equal(run.embedding.vectors, again.vectors)  # seeded
        assert run.embedding.vectors.shape == (6, 5)
    else:
        np.testing.assert_array_equal(run.embedding.vectors, np.eye(6, dtype=np.float32))


def test_pmi_head_needs_a_matching_embedding(tmp_path):
    dataset = coloured_squares(20)
    with pytest.raises(ValueError, match="needs a label embedding"):
        train(dataset, config=config(), out_dir=tmp_path / "a", verbose=0)
    other = embedding_for(Vocabulary(("red", "green", "blue", "yellow", "cyan", "black")))
    with pytest.raises(ValueError, match="does not match the data set"):
        train(dataset, config=config(), out_dir=tmp_path / "b", embedding=other, verbose=0)
    shuffled = embedding_for(Vocabulary(tuple(reversed(NAMES))))
    aligned = label_vectors("pmi", vocabulary=dataset.vocabulary, embedding=shuffled)
    np.testing.assert_array_equal(aligned.vectors, shuffled.vectors[::-1])
    # A label that never occurs in training (embed_labels drops those) gets a zero vector.
    partial = embedding_for(Vocabulary(NAMES[:5] + ("black",)))
    counts = np.array([3, 1, 2, 5, 4, 0])
    aligned = label_vectors("pmi", vocabulary=dataset.vocabulary, embedding=partial, label_counts=counts)
    np.testing.assert_array_equal(aligned.vectors[:5], partial.vectors[:5])
    assert np.all(aligned.vectors[5] == 0) and aligned.vocabulary.names == NAMES
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        train(dataset, config=config(), out_dir=tmp_path / "c", embedding=embedding_for(dataset.vocabulary), verbose=0)
    with pytest.raises(ValueError, match="Unknown head"):
        TrainConfig(head="softmax")


def test_evaluation_callback_records_metrics_of_the_model():
    dataset = coloured_squares(24)
    model = build_model(ModelConfig(**TINY), head="sigmoid", num_labels=6)
    model.compile(optimizer="rmsprop", loss="binary_crossentropy")
    callback = EvaluationCallback(inputs=dataset.images, labels=dataset.labels, verbose=0)
    targets = dataset.labels.toarray().astype(np.float32)
    model.fit(dataset.images, targets, epochs=2, batch_size=8, callbacks=[callback], verbose=0)
    assert [record["epoch"] for record in callback.history] == [1, 2]
    expected = metrics.evaluate_scores(model.predict(dataset.images, verbose=0), dataset.labels)
    for key, value in expected.items():
        assert callback.history[-1][key] == pytest.approx(value, abs=1e-6)
    assert callback.history[-1]["seconds"] > 0
    # Undefined metrics (no validation image has a label) are recorded as None, valid JSON.
    empty = EvaluationCallback(inputs=dataset.images, labels=sp.csr_matrix(targets.shape), print_function=lambda line: None)
    model.fit(dataset.images, targets, epochs=1, batch_size=8, callbacks=[empty], verbose=0)
    assert empty.history[0]["map_at_100"] is None and empty.history[0]["macro_ap"] is None
    json.dumps(empty.history, allow_nan=False)


def test_an_evaluation_that_measures_map_alone_records_the_map_and_per_image_ap_of_the_full_one():
    """``measure="map"`` (the stopping rule's hold-out, a tuning run's validation): MAP@k and nothing else, exactly."""
    dataset = coloured_squares(24)
    model = build_model(ModelConfig(**TINY), head="sigmoid", num_labels=6)
    model.compile(optimizer="rmsprop", loss="binary_crossentropy")
    full = EvaluationCallback(inputs=dataset.images, labels=dataset.labels, verbose=0)
    alone = EvaluationCallback(inputs=dataset.images, labels=dataset.labels, measure="map", map_k=3,
                               print_function=(lines := []).append)
    full_k3 = EvaluationCallback(inputs=dataset.images, labels=dataset.labels, map_k=3, verbose=0)
    targets = dataset.labels.toarray().astype(np.float32)
    model.fit(dataset.images, targets, epochs=1, batch_size=8, callbacks=[full, alone, full_k3], verbose=0)
    assert set(alone.history[0]) == {"epoch", "loss", "map_at_3", "seconds", "eval_seconds"}
    assert alone.history[0]["map_at_3"] == full_k3.history[0]["map_at_3"]
    assert np.array_equal(alone.image_ap, full_k3.image_ap, equal_nan=True)
    assert "MAP@3" in lines[0] and "macro AP" not in lines[0]
    with pytest.raises(ValueError, match="measure must be 'all' or 'map'"):
        EvaluationCallback(inputs=dataset.images, labels=dataset.labels, measure="macro")


def test_describe_device_names_backend_and_device():
    text = describe_device()
    assert keras.backend.backend() in text and ("CPU" in text or "GPU" in text)


# ---------------------------------------------------------------------------------
# comparison
# ---------------------------------------------------------------------------------
def _results(curves):
    return {
        "config": {},
        "runs": [
            {"head": head, "seed": seed, "history": [{"epoch": e + 1, "map_at_100": v, "macro_ap": v, "seconds": 1.0} for e, v in enumerate(values)]}
            for (head, seed), values in curves.items()
        ],
    }


def test_summarize_comparison_and_table():
    results = _results(
        {
            ("pmi", 0): [0.2, 0.5, 0.6],
            ("pmi", 1): [0.3, 0.4, 0.8],
            ("sigmoid", 0): [0.1, 0.3, 0.45],
            ("sigmoid", 1): [0.1, 0.3, 0.35],
            ("random", 0): [0.1, 0.2, 0.3],
            ("random", 1): [0.1, 0.2, 0.3],
        }
    )
    summary = summarize_comparison(results)
    # a run's final value is the mean of its last 3 epochs: pmi seeds 0.4333 and 0.5
    assert summary["pmi"]["final_mean"] == pytest.approx(np.mean([(0.2 + 0.5 + 0.6) / 3, (0.3 + 0.4 + 0.8) / 3]))
    assert summary["pmi"]["final_std"] == pytest.approx(np.std([(0.2 + 0.5 + 0.6) / 3, (0.3 + 0.4 + 0.8) / 3], ddof=1))
    assert summary["pmi"]["epochs_to_reference"] == 2  # mean curve 0.25, 0.45, 0.7 reaches 0.4 at epoch 2
    assert summary["sigmoid"]["epochs_to_reference"] == 3
    assert summary["random"]["epochs_to_reference"] is None
    table = comparison_table(results)
    assert "0.4667 ± 0.0471" in table and "—" in table and "sigmoid's last MAP@100 (0.4000)" in table


@pytest.mark.slow
def test_compare_cli_writes_results_plot_and_table(tmp_path, capsys, monkeypatch):
    from workbench.cli import main
    from workbench.data.scenes import write_scenes
    from workbench.method import embed

    computed = []
    real_embed_labels = embed.embed_labels
    monkeypatch.setattr(embed, "embed_labels", lambda *a, **k: computed.append(k) or real_embed_labels(*a, **k))
    dataset = coloured_squares(48, seed=5)
    write_scenes(dataset, tmp_path / "data")
    out = tmp_path / "cmp"
    arguments = ["compare", "--data", str(tmp_path / "data"), "--dim", "3", "--pmi", "ppmi", "--diagonal", "zero",
                 "--heads", "pmi,sigmoid,random", "--seeds", "2", "--epochs", "2", "--image-size", "16", "--width", "4",
                 "--depth", "2", "--batch-size", "16", "--out", str(out)]
    assert main(arguments) == 0
    assert len(computed) == 1, "one comparison computes the PMI embedding exactly once (not per head or seed)"
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert set(results) == {"config", "runs"}
    assert [(run["head"], run["seed"]) for run in results["runs"]] == [
        ("pmi", 0), ("sigmoid", 0), ("random", 0), ("pmi", 1), ("sigmoid", 1), ("random", 1)]
    for run in results["runs"]:
        assert set(run) == {"head", "seed", "history"}
        assert [record["epoch"] for record in run["history"]] == [1, 2]
        assert all(set(record) == {"epoch", "map_at_100", "macro_ap", "seconds"} for record in run["history"])
    assert results["config"]["embedding_from"] == "training split only"
    recorded = results["config"]["embedding_options"]
    assert (recorded["policy"], recorded["diagonal"], recorded["embedding_dim"]) == ("ppmi", "zero", 3)
    # the one embedding reached every model: pmi against its vectors, random with its k (the k achieved:
    # PPMI with a zero diagonal of six labels may have fewer than 3 positive eigenvalues)
    achieved = LabelEmbedding.load(out / "embedding").embedding_dim
    assert results["config"]["embedding_dim"] == achieved <= 3
    for head in ("pmi", "random"):
        run = load_run(out / "runs" / f"{head}-seed1")
        assert run.predict_points(dataset.images[:2]).shape == (2, achieved) and run.embedding.embedding_dim == achieved
    np.testing.assert_array_equal(load_run(out / "runs" / "pmi-seed0").embedding.vectors,
                                  LabelEmbedding.load(out / "embedding").vectors)
    assert (out / "comparison_curves.png").stat().st_size > 1000
    assert "final MAP@100" in printed and "pmi" in printed and "sigmoid" in printed
    # The PMI embedding was counted on the training split only.
    embedding = LabelEmbedding.load(out / "embedding")
    train_set, _ = dataset.split(validation_fraction=0.1, random_state=0)
    train_counts = np.asarray(train_set.labels.sum(axis=0)).ravel()
    expected = {name: int(count) for name, count in zip(dataset.vocabulary.names, train_counts) if count}
    assert dict(zip(embedding.vocabulary.names, embedding.label_counts.tolist())) == expected
    assert embedding.settings["options"]["policy"] == "ppmi" and embedding.settings["pmi"]["diagonal"] == "zero"

    # A rerun with other settings is refused before anything is written: the embedding stays the earlier one.
    before = (out / "embedding" / "embedding.npz").read_bytes()
    changed = [argument if argument != "ppmi" else "zero" for argument in arguments]
    assert main(changed) == 2
    assert "holds a comparison with different settings (embedding_options)" in capsys.readouterr().err
    assert (out / "embedding" / "embedding.npz").read_bytes() == before
    assert len(computed) == 1  # refused before the other embedding was even computed


def test_compare_uses_a_given_embedding_and_says_where_its_counts_came_from(tmp_path, monkeypatch):
    from workbench.experiments.compare import compare
    from workbench.method import embed

    dataset = coloured_squares(40, seed=6)
    monkeypatch.setattr(embed, "embed_labels", lambda *a, **k: pytest.fail("a given embedding is never recomputed"))
    given = embedding_for(dataset.vocabulary, dim=5)  # not counted on this data: no label counts
    results = compare(dataset, out_dir=tmp_path / "cmp", embedding=given, heads=("pmi", "random"), seeds=(0,), epochs=1,
                      batch_size=16, model=ModelConfig(**TINY), verbose=0)
    assert results["config"]["embedding_dim"] == 5 and results["config"]["embedding_options"] is None
    assert results["config"]["embedding_from"] == "unknown (the embedding records no label counts)"
    assert load_run(tmp_path / "cmp" / "runs" / "random-seed0").predict_points(dataset.images[:1]).shape == (1, 5)
    with pytest.raises(ValueError, match="LabelEmbedding or EmbeddingOptions"):
        compare(dataset, out_dir=tmp_path / "other", embedding={"embedding_dim": 5}, verbose=0)


def test_train_cli_trains_from_files_and_reports_errors(tmp_path, capsys):
    from workbench.cli import main
    from workbench.data.scenes import write_scenes

    dataset = coloured_squares(30)
    write_scenes(dataset, tmp_path / "data")
    embedding_for(dataset.vocabulary).save(tmp_path / "embedding")
    arguments = ["train", "--data", str(tmp_path / "data"), "--embedding", str(tmp_path / "embedding"), "--epochs", "1",
                 "--image-size", "16", "--width", "4", "--depth", "2", "--batch-size", "8", "--out", str(tmp_path / "run")]
    assert main(arguments) == 0
    assert "wrote" in capsys.readouterr().out
    run = load_run(tmp_path / "run")
    assert run.history[0]["epoch"] == 1 and run.label_scores(dataset.images[:2]).shape == (2, 6)
    assert main(["train", "--data", str(tmp_path / "data"), "--head", "pmi", "--out", str(tmp_path / "x")]) == 2
    assert "needs --embedding" in capsys.readouterr().err
    assert main(arguments[:-1] + [str(tmp_path / "run"), "--learning-rate", "0.5"]) == 2
    assert "different settings" in capsys.readouterr().err


def test_plot_comparison_curves_draws_mean_and_spread_per_head():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from workbench.apps.plot import plot_comparison_curves

    results = _results({("pmi", 0): [0.2, 0.5], ("pmi", 1): [0.4, 0.7], ("sigmoid", 0): [0.1, 0.3]})
    ax = plot_comparison_curves(results)
    lines = {line.get_label().split(" ")[0]: line for line in ax.get_lines()}
    assert set(lines) == {"pmi", "sigmoid"}
    np.testing.assert_allclose(lines["pmi"].get_ydata(), [0.3, 0.6])
    np.testing.assert_allclose(lines["pmi"].get_xdata(), [1, 2])
    assert len(ax.collections) == 1  # one band: only pmi has several seeds
    assert "MAP@100" in ax.get_ylabel()
    figure, other = plt.subplots()
    assert plot_comparison_curves(results, spread="range", ax=other) is other
    with pytest.raises(ValueError, match="spread"):
        plot_comparison_curves(results, spread="iqr")
    assert "band: ± 1 std over seeds" in ax.get_title()
    # against wall-clock seconds: each point at the seeds' mean cumulative training time
    for run, seconds in zip(results["runs"], ([2.0, 3.0], [4.0, 5.0], [1.0, 1.0])):
        for record, took in zip(run["history"], seconds):
            record["seconds"] = took
    clock = plot_comparison_curves(results, x="seconds", ax=plt.subplots()[1])
    lines = {line.get_label().split(" ")[0]: line for line in clock.get_lines()}
    np.testing.assert_allclose(lines["pmi"].get_xdata(), [3.0, 7.0])  # mean of (2, 4) and of (5, 9)
    np.testing.assert_allclose(lines["sigmoid"].get_xdata(), [1.0, 2.0])
    np.testing.assert_allclose(lines["pmi"].get_ydata(), [0.3, 0.6])
    assert "seconds" in clock.get_xlabel()
    with pytest.raises(ValueError, match="x must be"):
        plot_comparison_curves(results, x="minutes")
    plt.close("all")


def test_the_sigmoid_head_can_start_at_each_labels_log_odds_and_compare_does(tmp_path):
    from workbench.learning.config import label_frequency_bias
    from workbench.experiments.compare import head_config

    dataset = coloured_squares(60, seed=3)
    train_set, validation = dataset.split(validation_fraction=0.25, random_state=0)
    counts = np.diff(train_set.labels.tocsc().indptr)
    expected = np.log((counts + 0.5) / (len(train_set) + 1.0) / (1 - (counts + 0.5) / (len(train_set) + 1.0)))
    np.testing.assert_allclose(label_frequency_bias(counts, len(train_set)), expected, rtol=1e-6)
    settings = config(head="sigmoid", sigmoid_bias="label_frequency", epochs=1)
    fresh = build_model(settings.model, head="sigmoid", num_labels=6, output_bias=label_frequency_bias(counts, len(train_set)))
    np.testing.assert_allclose(fresh.get_layer("sigmoid_head").bias.numpy(), expected, rtol=1e-6)
    run = train(train_set, validation=validation, config=settings, out_dir=tmp_path / "run", verbose=0)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["sigmoid_bias"] == "label_frequency"
    assert load_run(run.run_dir).config.sigmoid_bias == "label_frequency"
    assert head_config("sigmoid", seed=0, epochs=1, batch_size=8, model=ModelConfig(**TINY), validation_fraction=0.25,
                       split_random_state=0).sigmoid_bias == "label_frequency"
    assert head_config("pmi", seed=0, epochs=1, batch_size=8, model=ModelConfig(**TINY), validation_fraction=0.25,
                       split_random_state=0).sigmoid_bias == "zero"
    # one default everywhere: the command line, TrainConfig and the comparison start the sigmoid head alike
    assert TrainConfig(head="sigmoid").sigmoid_bias == "label_frequency" and TrainConfig(head="pmi").sigmoid_bias == "zero"
    with pytest.raises(ValueError, match="Unknown sigmoid_bias 'mean'"):
        config(head="sigmoid", sigmoid_bias="mean")
