"""Experiment grids over the scenes of a large vocabulary: the keys groups, label_skew and topic_balance."""

from __future__ import annotations

import json

import numpy as np
import pytest

from workbench.data.scenes import generate_scenes
from workbench.experiments.experiment import _cell_dataset, cell_state
from workbench.experiments.grid import SCENE_KEYS_ADDED, expand_cells, parse_grid


@pytest.fixture(scope="module", autouse=True)
def private_cache(private_glyph_cache):
    """Keep the glyph disk cache of these tests out of the user's home (:func:`tests.conftest.private_glyph_cache`)."""
    return private_glyph_cache


def test_a_cell_generates_the_scenes_its_groups_skew_and_balance_describe():
    grid = parse_grid({"data": {"labels": 60, "images": 120, "size": 16, "groups": "all", "label_skew": 0.5,
                                "topic_balance": 1.0, "seed": 3}, "train": {"heads": ["pmi"]}})
    cell = expand_cells(grid)[0]
    assert (cell.data["groups"], cell.data["label_skew"], cell.data["topic_balance"]) == ("all", 0.5, 1.0)
    made = _cell_dataset(cell)
    expected = generate_scenes(num_images=120, num_labels=60, image_size=16, groups="all", label_skew=0.5,
                               topic_balance=1.0, random_state=3)
    assert made.label_sets == expected.label_sets and np.array_equal(made.images, expected.images)
    assert set(made.vocabulary.groups) - {"Animals & Nature", "Food & Drink", "Travel & Places", "Activities", "Objects"}
    default = expand_cells(parse_grid({"train": {"heads": ["pmi"]}}))[0]
    assert {key: default.data[key] for key in SCENE_KEYS_ADDED} == SCENE_KEYS_ADDED


@pytest.mark.parametrize("data, message", [
    ({"groups": "flags"}, r'\[data\] groups must be "objects" or "all"'),
    ({"label_skew": 5}, r"\[data\] label_skew: label_skew must be a number from 0 to 4"),
    ({"topic_balance": -0.5}, r"\[data\] topic_balance: topic_balance must be a number from 0 to 1"),
    ({"path": "somewhere", "groups": "all"}, r"\[data\] path is set, so 'groups' does not apply"),
])
def test_bad_scene_keys_are_one_line_errors_naming_the_key(data, message):
    with pytest.raises(ValueError, match=message) as info:
        parse_grid({"data": data}, source="grid.toml")
    assert "\n" not in str(info.value)


def test_a_cell_run_before_the_keys_existed_resumes_as_the_same_cell(tmp_path):
    cell = expand_cells(parse_grid({"data": {"labels": 20}, "train": {"heads": ["pmi"]}}))[0]
    folder = tmp_path / "cells" / cell.name
    folder.mkdir(parents=True)
    earlier = cell.settings()
    earlier["data"] = {key: value for key, value in earlier["data"].items() if key not in SCENE_KEYS_ADDED}
    (folder / "cell.json").write_text(json.dumps({**earlier, "status": "running"}))
    assert cell_state(tmp_path, cell) == "unfinished"
    other = expand_cells(parse_grid({"data": {"labels": 20, "groups": "all"}, "train": {"heads": ["pmi"]}}))[0]
    with pytest.raises(ValueError, match=r"holds a cell with other settings \(data\)"):
        cell_state(tmp_path, other)
