"""Profiles and the notebooks' load-or-build helpers (workbench.notebook.profiles, workbench.notebook.workspace)."""

import json

import numpy as np
import pytest

from workbench.notebook.profiles import PROFILE_NAMES, Profile, get_profile
from workbench.notebook import workspace
from workbench.notebook.workspace import (
    SETTINGS_FILE,
    ensure_counts,
    ensure_scenes,
)
from workbench.notebook.helpers import example_labels, format_table

TINY = dict(num_images=60, num_labels=12, image_size=16, max_labels=3)


# ---------------------------------------------------------------------------------
# profiles
# ---------------------------------------------------------------------------------
def test_profiles_exist_and_grow_from_ci_to_full():
    profiles = [get_profile(name) for name in PROFILE_NAMES]
    assert [p.name for p in profiles] == ["ci", "workshop", "full"]
    for field in ("num_images", "num_labels", "epochs", "embedding_dim"):
        sizes = [getattr(p, field) for p in profiles]
        assert sizes == sorted(sizes) and sizes[0] < sizes[-1], field
    with pytest.raises(Exception):
        profiles[0].num_images = 1  # frozen


def test_every_profile_is_a_valid_scene_model_and_training_setting():
    from workbench.apps.labelmap import MAP_METHODS
    from workbench.method.pmi import DIAGONALS, POLICIES
    from workbench.data.scenes import SceneConfig

    for name in PROFILE_NAMES:
        p = get_profile(name)
        SceneConfig(num_images=p.num_images, num_labels=p.num_labels, image_size=p.image_size, max_labels=p.max_labels,
                    missing_rate=p.missing_rate, spurious_rate=p.spurious_rate)
        assert p.image_size >= 2**p.trunk_depth, "the trunk halves the image size trunk_depth times"
        assert p.pmi_policy in POLICIES and p.pmi_diagonal in DIAGONALS and p.map_method in MAP_METHODS
        assert p.embedding_dim < p.num_labels and 0 < p.validation_fraction < 1
        assert "pmi" in p.comparison_heads and 0 in p.comparison_seeds  # notebook 3's run (seed 0) is reused
        assert json.loads(json.dumps(p.to_dict()))["name"] == name


def test_unknown_profile_lists_the_three():
    with pytest.raises(ValueError, match="Unknown profile 'huge'.*ci, workshop, full"):
        get_profile("huge")
    with pytest.raises(ValueError, match="Unknown profile"):
        get_profile(None)
    assert isinstance(get_profile("ci"), Profile)


# ---------------------------------------------------------------------------------
# data set
# ---------------------------------------------------------------------------------
def test_ensure_scenes_generates_then_reads_back_the_same_data(tmp_path):
    generated = ensure_scenes(tmp_path, random_state=3, verbose=False, **TINY)
    assert (tmp_path / "data" / "labels.csv").is_file()
    read = ensure_scenes(tmp_path, random_state=3, verbose=False, **TINY)
    assert read.images is not None and read.images.shape == (60, 16, 16, 3)
    np.testing.assert_array_equal(read.images, generated.images)
    assert read.label_sets == generated.label_sets
    assert read.vocabulary == generated.vocabulary  # names, groups and subgroups
    assert read.image_paths == generated.image_paths
    assert read.fingerprint() == generated.fingerprint()


def test_ensure_scenes_reads_instead_of_generating(tmp_path, monkeypatch, capsys):
    ensure_scenes(tmp_path, random_state=0, **TINY)
    assert "Generated" in capsys.readouterr().out

    def refuse(*args, **kwargs):
        raise AssertionError("should have read the stored scenes")

    monkeypatch.setattr("workbench.data.scenes.SceneGenerator.generate", refuse)
    ensure_scenes(tmp_path, random_state=0, **TINY)
    assert "Read 60 images" in capsys.readouterr().out


def test_ensure_scenes_regenerates_when_settings_change(tmp_path):
    first = ensure_scenes(tmp_path, random_state=0, verbose=False, **TINY)
    other_seed = ensure_scenes(tmp_path, random_state=1, verbose=False, **TINY)
    assert other_seed.fingerprint() != first.fingerprint()
    fewer = ensure_scenes(tmp_path, random_state=1, verbose=False, **{**TINY, "num_images": 30})
    assert len(fewer) == 30
    assert len(list((tmp_path / "data" / "images").iterdir())) == 30  # stale images removed
    assert json.loads((tmp_path / "data" / "scenes.json").read_text())["config"]["num_images"] == 30


def test_ensure_scenes_never_overwrites_a_foreign_folder(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        ensure_scenes(tmp_path, random_state=0, verbose=False, **TINY)
    assert (tmp_path / "data" / "notes.txt").read_text() == "mine"


# ---------------------------------------------------------------------------------
# counts
# ---------------------------------------------------------------------------------
@pytest.fixture()
def tiny_dataset(tmp_path):
    return ensure_scenes(tmp_path, random_state=0, verbose=False, **TINY)


def test_ensure_counts_counts_the_training_split_only(tmp_path, tiny_dataset):
    from workbench.method.cooccurrence import count_cooccurrence

    counts = ensure_counts(tmp_path, tiny_dataset, validation_fraction=0.25, split_random_state=2, verbose=False)
    train_set, validation_set = tiny_dataset.split(validation_fraction=0.25, random_state=2)
    expected = count_cooccurrence(train_set.labels, train_set.vocabulary)
    assert counts.n_images == len(train_set) == 45
    np.testing.assert_array_equal(counts.label_counts, expected.label_counts)
    assert (counts.pair_counts != expected.pair_counts).nnz == 0
    assert counts.vocabulary == tiny_dataset.vocabulary  # subgroups kept for the notebooks' plots
    # brute force: pairs counted over the training images' label sets
    dense = np.zeros((12, 12), dtype=np.int64)
    for labels in train_set.label_sets:
        index = [tiny_dataset.vocabulary.index(name) for name in labels]
        for i in index:
            for j in index:
                dense[i, j] += i != j
    np.testing.assert_array_equal(counts.pair_counts.toarray(), dense)


def test_ensure_counts_reads_back_and_recounts_when_the_split_changes(tmp_path, tiny_dataset, monkeypatch):
    first = ensure_counts(tmp_path, tiny_dataset, validation_fraction=0.25, verbose=False)
    settings = json.loads((tmp_path / "counts" / SETTINGS_FILE).read_text())
    assert settings["complete"] is True and settings["settings"]["validation_fraction"] == 0.25

    def refuse(*args, **kwargs):
        raise AssertionError("should have read the stored counts")

    monkeypatch.setattr("workbench.method.cooccurrence.count_cooccurrence", refuse)
    again = ensure_counts(tmp_path, tiny_dataset, validation_fraction=0.25, verbose=False)
    assert again.fingerprint() == first.fingerprint()
    assert again.vocabulary == tiny_dataset.vocabulary
    monkeypatch.undo()
    other = ensure_counts(tmp_path, tiny_dataset, validation_fraction=0.5, verbose=False)
    assert other.n_images == 30
    assert json.loads((tmp_path / "counts" / SETTINGS_FILE).read_text())["settings"]["validation_fraction"] == 0.5


def test_an_unfinished_build_is_never_taken_for_finished(tmp_path, tiny_dataset):
    ensure_counts(tmp_path, tiny_dataset, validation_fraction=0.25, verbose=False)
    path = tmp_path / "counts" / SETTINGS_FILE
    data = json.loads(path.read_text())
    data["complete"] = False  # as if the process died while counting
    path.write_text(json.dumps(data))
    (tmp_path / "counts" / "counts.json").write_text("{")  # and left a broken file
    counts = ensure_counts(tmp_path, tiny_dataset, validation_fraction=0.25, verbose=False)
    assert counts.n_images == 45
    assert json.loads(path.read_text())["complete"] is True


def test_folders_the_workspace_did_not_write_are_refused(tmp_path, tiny_dataset):
    (tmp_path / "counts").mkdir()
    (tmp_path / "counts" / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match="did not write"):
        ensure_counts(tmp_path, tiny_dataset, validation_fraction=0.25, verbose=False)
    assert (tmp_path / "counts" / "thesis.tex").read_text() == "precious"


# ---------------------------------------------------------------------------------
# embedding, run and comparison
# ---------------------------------------------------------------------------------
def test_ensure_embedding_computes_once_and_recomputes_for_other_settings(tmp_path, tiny_dataset, monkeypatch):
    from workbench.method import embed

    counts = ensure_counts(tmp_path, tiny_dataset, validation_fraction=0.25, verbose=False)
    calls = []
    real = embed.embed_labels

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(embed, "embed_labels", counting)
    options = embed.EmbeddingOptions(embedding_dim=4, policy="zero", diagonal="self")
    first = workspace.ensure_embedding(tmp_path, counts, options=options, verbose=False)
    again = workspace.ensure_embedding(tmp_path, counts, options=options, verbose=False)
    assert len(calls) == 1
    np.testing.assert_array_equal(again.vectors, first.vectors)
    used = int(np.count_nonzero(counts.label_counts))  # labels absent from the training split are dropped
    assert first.vectors.shape == (used, 4)
    np.testing.assert_allclose(first.vectors, real(counts, embedding_dim=4, policy="zero", diagonal="self").vectors)
    other = workspace.ensure_embedding(tmp_path, counts, options=embed.EmbeddingOptions(embedding_dim=3, policy="ppmi", diagonal="zero"),
                                       verbose=False)
    assert len(calls) == 2 and other.vectors.shape == (used, 3)


def test_a_later_notebook_follows_the_embedding_settings_recorded_by_an_earlier_one(tmp_path, tiny_dataset, capsys):
    from workbench.method.embed import EmbeddingOptions

    profile_default = EmbeddingOptions(embedding_dim=6)
    assert workspace.recorded_embedding_options(tmp_path, default=profile_default) == profile_default
    assert "No label embedding recorded" in capsys.readouterr().out
    counts = ensure_counts(tmp_path, tiny_dataset, validation_fraction=0.25, verbose=False)
    chosen = EmbeddingOptions(embedding_dim=3, policy="ppmi")  # what a learner typed into notebook 02
    workspace.ensure_embedding(tmp_path, counts, options=chosen, verbose=False)
    assert workspace.recorded_embedding_options(tmp_path, default=profile_default) == chosen
    said = capsys.readouterr().out
    assert "k = 3" in said and "'ppmi'" in said and "embedding_dim = 6" in said  # says what the profile would give
    with pytest.raises(ValueError, match="options must be EmbeddingOptions"):
        workspace.ensure_embedding(tmp_path, counts, options={"embedding_dim": 3}, verbose=False)


@pytest.mark.slow
def test_the_trained_run_is_loaded_again_and_reused_by_the_comparison(tmp_path, tiny_dataset, monkeypatch):
    pytest.importorskip("keras")
    from workbench.learning import training
    from workbench.learning.models import ModelConfig

    from workbench.experiments import compare as experiments
    from workbench.method import embed

    counts = ensure_counts(tmp_path, tiny_dataset, validation_fraction=0.25, verbose=False)
    embedding = workspace.ensure_embedding(tmp_path, counts, options=embed.EmbeddingOptions(embedding_dim=4), verbose=False)
    monkeypatch.setattr(embed, "embed_labels", lambda *a, **k: pytest.fail("the comparison must use the given embedding"))
    model = ModelConfig(image_size=16, width=4, depth=2, augment=False)
    config = workspace.pmi_train_config(epochs=1, batch_size=16, model=model, validation_fraction=0.25)
    run = workspace.ensure_run(tmp_path, tiny_dataset, embedding, config=config, verbose=0)
    assert len(run.history) == 1
    assert json.loads((tmp_path / "run" / SETTINGS_FILE).read_text())["complete"] is True

    real_train = training.train
    trained = []

    def recording_train(*args, **kwargs):
        trained.append(kwargs["out_dir"])
        return real_train(*args, **kwargs)

    monkeypatch.setattr(training, "train", recording_train)
    again = workspace.ensure_run(tmp_path, tiny_dataset, embedding, config=config, verbose=0)
    assert trained == [] and again.history == run.history

    results = workspace.ensure_comparison(
        tmp_path, tiny_dataset, embedding, heads=("pmi", "sigmoid"), seeds=(0,), epochs=1, batch_size=16, model=model,
        validation_fraction=0.25, verbose=0,
    )
    by_head = {entry["head"]: entry for entry in results["runs"]}
    assert set(by_head) == {"pmi", "sigmoid"}
    # the pmi run was adopted, not trained again: its history (timings included) is the run's
    assert by_head["pmi"]["history"][0]["seconds"] == run.history[0]["seconds"]
    assert (tmp_path / "comparison" / "runs" / "pmi-seed0" / "model.keras").is_file()
    assert results["config"]["embedding_from"] == "training split only"
    monkeypatch.setattr(experiments, "compare", lambda *a, **k: pytest.fail("should have read results.json"))
    assert workspace.ensure_comparison(
        tmp_path, tiny_dataset, embedding, heads=("pmi", "sigmoid"), seeds=(0,), epochs=1, batch_size=16, model=model,
        validation_fraction=0.25, verbose=0,
    ) == json.loads((tmp_path / "comparison" / "results.json").read_text())


# ---------------------------------------------------------------------------------
# notebook helpers
# ---------------------------------------------------------------------------------
def test_example_labels_pick_companions_and_a_distant_group(tmp_path, tiny_dataset):
    counts = ensure_counts(tmp_path, tiny_dataset, validation_fraction=0.25, verbose=False)
    chosen = example_labels(counts, num_groups=2, per_group=3)
    assert len(chosen) == len(set(chosen.tolist())) == 6
    assert chosen[0] == int(np.argmax(counts.label_counts))
    pairs = counts.pair_counts.toarray()
    within = pairs[np.ix_(chosen[:3], chosen[:3])].sum() + pairs[np.ix_(chosen[3:], chosen[3:])].sum()
    across = 2 * pairs[np.ix_(chosen[:3], chosen[3:])].sum()
    assert within > across


def test_format_table_aligns_columns_and_rounds_floats():
    text = format_table([("a", 1.23456, 3), ("bbbb", 2.0, 10)], columns=["name", "x", "n"], digits=2)
    assert text.splitlines() == ["name     x   n", "----  ----  --", "a     1.23   3", "bbbb  2.00  10"]
    with pytest.raises(ValueError, match="3 values"):
        format_table([("a", 1)], columns=["name", "x", "n"])


def test_a_later_notebook_follows_the_data_settings_recorded_by_notebook_01(tmp_path, capsys):
    profile = get_profile("ci")
    default = profile.data_settings(random_state=0)
    assert workspace.recorded_data_settings(tmp_path, default=default) == default
    assert "No data set recorded" in capsys.readouterr().out
    # what a learner typed into notebook 01: fewer images, another seed, another split
    chosen = {**TINY, "num_images": 40}
    dataset = ensure_scenes(tmp_path, random_state=2, verbose=False, **chosen)
    ensure_counts(tmp_path, dataset, validation_fraction=0.3, split_random_state=2, verbose=False)
    settings = workspace.recorded_data_settings(tmp_path, default=default)
    assert settings["num_images"] == 40 and settings["num_labels"] == TINY["num_labels"]
    assert settings["image_size"] == TINY["image_size"] and settings["max_labels"] == TINY["max_labels"]
    assert settings["random_state"] == 2 and settings["validation_fraction"] == 0.3
    assert set(settings) == set(default)
    said = capsys.readouterr().out
    assert "Using the data settings recorded" in said and f"num_images {profile.num_images} instead of 40" in said
    # with those settings the later notebook reads the same data back instead of generating another set
    again = ensure_scenes(tmp_path, **{key: settings[key] for key in settings if key != "validation_fraction"})
    assert again.fingerprint() == dataset.fingerprint()
    assert "Read 40 images" in capsys.readouterr().out


def test_a_rebuild_with_other_settings_says_what_differs(tmp_path, tiny_dataset, capsys):
    from workbench.method.embed import EmbeddingOptions

    ensure_scenes(tmp_path, random_state=0, verbose=False, **TINY)
    ensure_scenes(tmp_path, random_state=0, **{**TINY, "num_images": 30})
    said = capsys.readouterr().out
    assert "made with other settings (num_images 60 → 30)" in said and "Generated 30 images" in said
    counts = ensure_counts(tmp_path, tiny_dataset, validation_fraction=0.25, verbose=False)
    workspace.ensure_embedding(tmp_path, counts, options=EmbeddingOptions(embedding_dim=4), verbose=False)
    workspace.ensure_embedding(tmp_path, counts, options=EmbeddingOptions(embedding_dim=3, policy="ppmi"))
    said = capsys.readouterr().out
    assert "built with other settings" in said
    assert "options.embedding_dim 4 → 3" in said and "options.policy 'zero' → 'ppmi'" in said
    assert workspace.describe_differences({"a": 1}, {"a": 1}) == "no setting"


def test_scenes_recorded_before_label_skew_and_topic_balance_existed_are_read_not_regenerated(tmp_path, capsys):
    workspace.ensure_scenes(tmp_path, num_images=20, num_labels=20, image_size=16, verbose=False)
    marker = tmp_path / "data" / "scenes.json"
    recorded = json.loads(marker.read_text())
    for key in ("label_skew", "topic_balance"):  # as an earlier version recorded it
        del recorded["config"][key]
    marker.write_text(json.dumps(recorded))
    workspace.ensure_scenes(tmp_path, num_images=20, num_labels=20, image_size=16)
    assert capsys.readouterr().out.startswith("Read 20 images")
    workspace.ensure_scenes(tmp_path, num_images=20, num_labels=20, image_size=16, label_skew=0.5)
    assert "other settings (label_skew 1.0 → 0.5)" in capsys.readouterr().out
