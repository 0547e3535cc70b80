"""The two-stage protocol: the trunk's images are apart, the saved model reproduces the recorded score, a grid names it."""

import csv
import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from tests.test_training import TINY, coloured_squares, config, embedding_for  # noqa: E402
from workbench.evaluation import metrics  # noqa: E402
from workbench.experiments.grid import expand_cells, parse_grid  # noqa: E402
from workbench.learning.config import ModelConfig, TrunkConfig  # noqa: E402
from workbench.learning.runs import load_run  # noqa: E402
from workbench.learning.training import train  # noqa: E402
from workbench.learning.twostage import Trunk, prepare_trunk, trunk_split  # noqa: E402

SPLIT = dict(validation_fraction=0.25, split_random_state=0)


def _trunk(dataset, folder, **trunk):
    return prepare_trunk(dataset, folder=folder, model=ModelConfig(**TINY),
                         trunk=TrunkConfig(**{"fraction": 0.3, "epochs": 2, "batch_size": 16, **trunk}),
                         print_function=lambda line: None, **SPLIT)


def test_the_trunk_never_sees_validation_or_heads_images_and_is_trained_once(tmp_path):
    dataset = coloured_squares(80)
    trunk = _trunk(dataset, tmp_path / "trunk")
    train_set, validation = dataset.split(validation_fraction=0.25, random_state=0)
    heads, trunk_images = trunk_split(train_set, fraction=0.3, split_random_state=0)
    assert set(trunk.heads_split(train_set).image_paths) == set(heads.image_paths)
    assert not set(trunk_images.image_paths) & set(heads.image_paths)
    assert not set(trunk_images.image_paths) & set(validation.image_paths)
    assert len(heads) + len(trunk_images) == len(train_set) and len(trunk_images) == 18
    recorded = json.loads((tmp_path / "trunk" / "run" / "config.json").read_text())
    assert recorded["data"]["num_train"] + recorded["data"]["num_validation"] == len(trunk_images)
    # the cached features are the trunk's pooled output of each image, found by path
    network = keras.saving.load_model(tmp_path / "trunk" / "run" / "model.keras")
    pooled = keras.Model(network.input, network.get_layer("pool").output).predict(validation.images, verbose=0)
    np.testing.assert_allclose(trunk.features_of(validation), pooled, atol=1e-5)
    # prepared again: loaded, not trained again; other settings are refused
    stamp = (tmp_path / "trunk" / "trunk.json").stat().st_mtime_ns
    again = _trunk(dataset, tmp_path / "trunk")
    assert (tmp_path / "trunk" / "trunk.json").stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.features, trunk.features)
    with pytest.raises(ValueError, match=r"holds a trunk with other settings \(trunk\)"):
        _trunk(dataset, tmp_path / "trunk", epochs=3)
    with pytest.raises(ValueError, match="another data set"):
        Trunk.load(tmp_path / "trunk").features_of(coloured_squares(90, seed=1).subset([85]))


def test_a_trunk_with_images_of_its_own_leaves_the_heads_the_whole_training_split(tmp_path):
    dataset, more = coloured_squares(60), coloured_squares(30, seed=5)
    own = type(more)(image_paths=tuple(f"trunk/{n}.png" for n in range(30)), label_sets=more.label_sets,
                     vocabulary=more.vocabulary, images=more.images)
    with pytest.raises(ValueError, match="give trunk_data of exactly that many images"):
        _trunk(dataset, tmp_path / "trunk", images=20)
    trunk = prepare_trunk(dataset, folder=tmp_path / "trunk", model=ModelConfig(**TINY),
                          trunk=TrunkConfig(images=30, epochs=1, batch_size=16), trunk_data=own,
                          print_function=lambda line: None, **SPLIT)
    train_set, _ = dataset.split(validation_fraction=0.25, random_state=0)
    assert trunk.heads_split(train_set) is train_set
    recorded = json.loads((tmp_path / "trunk" / "run" / "config.json").read_text())
    assert recorded["data"]["num_train"] + recorded["data"]["num_validation"] == 30
    assert trunk.settings["trunk_data_fingerprint"] == own.fingerprint()
    assert trunk.features_of(dataset).shape == (60, trunk.num_features)


def test_images_without_distinct_paths_are_refused(tmp_path):
    dataset = coloured_squares(20)
    unnamed = type(dataset)(image_paths=("",) * 20, label_sets=dataset.label_sets, vocabulary=dataset.vocabulary,
                            images=dataset.images)
    with pytest.raises(ValueError, match="distinct paths; give every image its own path, or train end to end"):
        _trunk(unnamed, tmp_path / "trunk")
    assert not (tmp_path / "trunk").exists()


@pytest.mark.parametrize("head", ["pmi", "learned", "sigmoid"])
def test_a_head_on_features_saves_a_model_of_images_that_reproduces_its_recorded_score(tmp_path, head):
    dataset = coloured_squares(80)
    trunk = _trunk(dataset, tmp_path / "trunk")
    train_set, validation = dataset.split(validation_fraction=0.25, random_state=0)
    heads = trunk.heads_split(train_set)
    embedding = embedding_for(dataset.vocabulary)
    run = train(heads, validation=validation, config=config(head=head, epochs=2, embedding_dim=4),
                embedding=embedding if head == "pmi" else None, out_dir=tmp_path / head, verbose=0, trunk=trunk,
                allow_overlap=True)
    meta = json.loads((tmp_path / head / "config.json").read_text())
    assert meta["protocol"] == "two-stage" and meta["trunk"]["folder"] == str(tmp_path / "trunk")
    assert meta["data"]["num_train"] == len(heads)
    loaded = load_run(tmp_path / head)  # the trunk and the head composed: images in
    scores = loaded.label_scores(validation.images)
    recomputed = metrics.mean_average_precision(scores, validation.labels, k=100)
    assert recomputed == pytest.approx(run.history[-1]["map_at_100"], abs=1e-4)
    # a head that ran on features cannot be resumed end to end
    with pytest.raises(ValueError, match="different settings .*protocol"):
        train(heads, validation=validation, config=config(head=head, epochs=3, embedding_dim=4),
              embedding=embedding if head == "pmi" else None, out_dir=tmp_path / head, verbose=0, allow_overlap=True)


def test_a_run_needs_the_model_settings_of_its_trunk(tmp_path):
    dataset = coloured_squares(40)
    trunk = _trunk(dataset, tmp_path / "trunk")
    other = config(head="sigmoid", model=ModelConfig(**{**TINY, "width": TINY["width"] * 2}))
    with pytest.raises(ValueError, match="differ from its trunk's"):
        train(dataset, config=other, out_dir=tmp_path / "run", verbose=0, trunk=trunk)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("raw, message", [
    ({"train": {"protocol": "three-stage"}}, r"\[train\] protocol must be one of 'end-to-end', 'two-stage'"),
    ({"train": {"trunk_fraction": 1.5}}, r"\[train\] trunk_fraction: TrunkConfig.fraction must be between 0 and 1"),
    ({"train": {"trunk_epochs": [5, 10]}}, "takes one value"),
    ({"data": {"path": "photos"}, "train": {"trunk_images": 100}}, "give trunk_fraction instead"),
])
def test_two_stage_grid_mistakes_are_one_line_errors(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_grid(raw)


def test_only_two_stage_cells_carry_the_trunk_settings_and_cells_of_one_setting_share_a_trunk():
    end_to_end = expand_cells(parse_grid({"embedding": {"dim": [2, 3]}}))
    assert all("protocol" not in cell.train and cell.trunk_name() is None for cell in end_to_end)
    cells = expand_cells(parse_grid({"data": {"labels": [6, 8]}, "embedding": {"dim": [2, 3]},
                                     "train": {"protocol": "two-stage", "trunk_fraction": 0.3}}))
    names = {}
    for cell in cells:
        names.setdefault(cell.data["labels"], set()).add(cell.trunk_name())
        assert cell.trunk_config() == TrunkConfig(fraction=0.3)
    assert all(len(shared) == 1 for shared in names.values()) and names[6] != names[8]


@pytest.mark.slow
def test_a_two_stage_grid_trains_one_trunk_and_names_the_protocol_in_its_results(tmp_path):
    from workbench.experiments.experiment import run_experiment

    grid = parse_grid({"data": {"labels": 6, "images": 64, "size": 16, "validation_fraction": 0.25},
                       "embedding": {"dim": [2, 3]},
                       "train": {"heads": ["pmi", "shuffled", "sigmoid"], "seeds": [0], "epochs": 2, "image_size": 16,
                                 "batch_size": 16, "width": 4, "depth": 2, "tune_lr": False, "protocol": "two-stage",
                                 "trunk_epochs": 2, "trunk_images": 40, "patience": 0, "lr_patience": 0}})
    results = run_experiment(grid, out_dir=tmp_path / "out", cores=1, print_function=lambda line: None)
    assert not results["failed"]
    trunks = list((tmp_path / "out" / "trunks").glob("*/trunk.json"))
    assert len(trunks) == 1  # three cells, one trunk
    with open(tmp_path / "out" / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5 and {row["protocol"] for row in rows} == {"two-stage"}
    trunk = json.loads(trunks[0].read_text())
    for config_path in (tmp_path / "out" / "cells").glob("*/runs/*/config.json"):
        meta = json.loads(config_path.read_text())
        assert meta["protocol"] == "two-stage" and meta["trunk"]["data_fingerprint"] == trunk["data_fingerprint"]
        assert meta["data"]["num_train"] + meta["data"]["num_validation"] == 64  # the trunk had scenes of its own
    assert trunk["num_trunk_images"] == 40
    trunk_run = json.loads(next((tmp_path / "out" / "trunks").glob("*/run/config.json")).read_text())
    assert trunk_run["data"]["num_train"] + trunk_run["data"]["num_validation"] == 40
