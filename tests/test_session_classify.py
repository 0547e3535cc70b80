"""What notebooks 03 and 04 call: the workspace's run, model, fresh scenes, companions and apps; a run's
baselines, per-image AP, threshold sweep and store; a comparison's histories; a calibration by labels per
image and its sweep; a classification against the true labels (hits with chance, mistakes, pictures)."""

import dataclasses

import numpy as np
import pytest

pytest.importorskip("pandas")


def _result(image, labels, *, pixels=None):
    from workbench.apps.classify import ClassificationResult

    return ClassificationResult(image=image, sha256="0" * 64, labels=tuple(labels), setting="top:3", pixels=pixels)


def test_a_classification_counts_its_hits_against_chance_and_lists_its_mistakes():
    from workbench.results import Classification

    results = Classification([_result("a.png", [("cat", 0.9), ("dog", 0.5), ("fish", 0.1)]),
                              _result("b.png", [("fish", 0.8)]), _result("c.png", [])])
    hits = results.hits([("cat", "fish"), ("bird",), ()], num_labels=10)
    assert list(hits.columns) == ["image", "num_listed", "num_true", "hits", "chance_hits", "chance_any"]
    assert list(hits["num_listed"]) == [3, 1, 0] and list(hits["num_true"]) == [2, 1, 0] and list(hits["hits"]) == [2, 0, 0]
    assert np.allclose(hits["chance_hits"], [3 * 2 / 10, 1 / 10, 0.0])
    # three labels drawn from ten, two of them true: 1 − C(8, 3) / C(10, 3) = 1 − 56/120
    assert np.isclose(hits["chance_any"][0], 1 - 56 / 120) and np.isclose(hits["chance_any"][1], 0.1)
    assert hits["chance_any"][2] == 0.0
    with pytest.raises(ValueError, match="one per image"):
        results.hits([("cat",)], num_labels=10)

    wrong = results.mistakes([("cat", "fish"), ("bird",), ()], companions={"cat": {"dog"}, "bird": set()})
    assert list(zip(wrong["image"], wrong["label"], wrong["rank"], wrong["companion"])) == [
        ("a.png", "dog", 2, True), ("b.png", "fish", 1, False)]
    assert "companion" not in results.mistakes([("cat",), (), ()]).columns


def test_a_classification_of_a_data_set_takes_its_labels_and_vocabulary_and_draws_itself():
    import matplotlib.pyplot as plt

    import workbench as wb
    from workbench.results import Classification

    data = wb.scenes(num_images=6, num_labels=8, image_size=16, random_state=0)
    results = Classification([_result(f"images/{i}.png", [(data.label_sets[i][0], 0.7), ("zzz", 0.2)],
                                      pixels=data.images[i]) for i in range(len(data))])
    hits = results.hits(data)
    assert list(hits["hits"]) == [1] * 6 and np.allclose(hits["chance_hits"], 2 * hits["num_true"] / 8)
    ax = results.plot(truth=data, num_images=4, top=2)
    assert len(ax.images) == 4 and all(text.get_text().startswith("✓ ") for text in ax.texts)
    axes = results.plot_bars(truth=data, num_images=3)
    assert len(axes) == 3 and axes[0].get_title().startswith("0.png\ntrue: ")
    assert [tick.get_text() for tick in axes[0].get_yticklabels()] == [f"{data.label_sets[0][0]} ✓", "zzz"]
    plt.close("all")
    without_pixels = Classification([_result("x.png", [("cat", 0.5)])])
    with pytest.raises(ValueError, match="keep_pixels=True"):
        without_pixels.plot()


def test_an_embedding_gives_the_target_of_a_label_set_and_draws_the_labels_nearest_to_a_point():
    import matplotlib.pyplot as plt

    import workbench as wb

    data = wb.scenes(num_images=200, num_labels=12, image_size=16, random_state=1)
    embedding = wb.embed(data, dim=4)
    labels = list(data.label_sets[0])
    positions = embedding.vocabulary.indices(labels)
    assert np.allclose(embedding.target(labels), embedding.vectors[positions].sum(axis=0))
    assert embedding.target([]).shape == (4,) and not embedding.target([]).any()
    ax = embedding.plot_nearest(embedding.target(labels), top=5, marked=labels)
    names = [tick.get_text() for tick in ax.get_yticklabels()]
    assert len(names) == 5 and {name[:-2] for name in names if name.endswith(" ✓")} <= set(labels)
    plt.close("all")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A workspace with a tiny profile: 240 scenes of 16 pixels, two epochs, a pmi and a random head."""
    pytest.importorskip("keras")
    import workbench as wb

    profile = dataclasses.replace(wb.get_profile("ci"), name="tiny", num_images=240, num_labels=12, image_size=16,
                                  max_labels=3, embedding_dim=4, epochs=2, batch_size=32, trunk_width=4, trunk_depth=2,
                                  comparison_heads=("pmi", "random"), comparison_seeds=(0,), num_demo_images=6)
    return wb.workspace(tmp_path_factory.mktemp("results"), profile=profile, verbose=False)


@pytest.mark.slow
def test_the_workspace_makes_fresh_scenes_companions_and_the_model_it_trains(workspace):
    fresh = workspace.fresh_scenes(6)
    data = workspace.scenes()
    assert len(fresh) == 6 and fresh.vocabulary.names == data.vocabulary.names
    assert all(path.is_file() and path.parent.parent == workspace.results / "fresh_scenes" for path in fresh.paths())
    companions = workspace.companions(top=2)
    assert set(companions) == set(data.vocabulary.names) and all(len(partners) <= 2 for partners in companions.values())
    assert all(label not in partners and partners <= set(data.vocabulary.names) for label, partners in companions.items())
    model = workspace.model()
    assert model.outputs[0].shape[-1] == workspace.embedding().embedding_dim


@pytest.mark.slow
def test_a_workspace_run_measures_itself_against_baselines_and_classifies_and_stores(workspace, monkeypatch):
    import matplotlib.pyplot as plt

    import workbench as wb

    from workbench.notebook import helpers

    made = []
    real = helpers.live_history
    monkeypatch.setattr(helpers, "live_history", lambda **options: made.append(real(**options)) or made[-1])
    run = workspace.run(live=("loss", "map_at_100"))
    assert len(made) == 1 and [record["epoch"] for record in made[0].history] == [1, 2], "the curves hold the run"
    data = workspace.scenes()

    baselines = run.baselines(data, draws=3, random_state=0)
    assert list(baselines["ranking"]) == ["chance (random ranking)", "label frequency", "pmi head (this run)"]
    assert np.isclose(baselines["map_at_100"][2], run.history[-1]["map_at_100"], atol=1e-3)
    assert run.image_ap().shape == (2, len(workspace.split()[1]))
    sweep = run.sweep(workspace.split()[1], num_thresholds=11)
    assert list(sweep.columns) == ["threshold", "precision", "recall", "f1"] and len(sweep) == 11

    fresh = workspace.fresh_scenes(6)
    results = wb.classify(run, fresh.paths(), top=3, keep_pixels=True)
    assert len(results) == 6 and all(result.pixels.shape == (16, 16, 3) for result in results)
    assert wb.classify(run, fresh.paths()[:1])[0].pixels is None, "pixels are kept only when asked"
    store = run.store()
    assert store.path == run.run_dir / "results.sqlite"
    ids = store.add_classifications(results, run_id=store.add_trained_run(run))
    assert store.count_classifications() == len(ids) == 6

    calibration = wb.calibrate(run, data, random_state=0)
    by_count = calibration.by_num_labels()
    assert set(by_count.index) == set(calibration.report["decoders"])
    assert all(column.endswith("label(s)") for column in by_count.columns)
    ax = calibration.plot()
    assert ax.get_title().startswith(calibration.best["decoder"]) and ax.lines
    plt.close("all")

    app = workspace.compose_app(top=3, picked=data.vocabulary.names[:2])
    assert app.labels == list(run.vocabulary.names)
    ranked = app.compose_now(seed=0)
    assert len(ranked) == 3 and {name for name, _ in ranked} <= set(run.vocabulary.names)
    assert wb.classify_app(run, top=3, threshold=0.5).classifier.run.run_dir == run.run_dir
    assert isinstance(wb.device(), str) and wb.device()


@pytest.mark.slow
def test_a_comparison_lists_every_epoch_of_every_run_and_draws_reference_lines(workspace):
    import matplotlib.pyplot as plt

    comparison = workspace.comparison()
    history = comparison.history()
    assert {"head", "seed", "epoch", "map_at_100"} <= set(history.columns)
    assert sorted(set(history["head"])) == ["pmi", "random"] and len(history) == 2 * 2
    ax = comparison.plot(x="seconds", references={"chance": 0.1, "label frequency": 0.2})
    assert {line.get_label() for line in ax.lines} >= {"chance", "label frequency"}
    plt.close("all")

