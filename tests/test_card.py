"""Tests of the data card (workbench.data.card): per-label training counts and look-alike glyphs."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from workbench.cli import main
from workbench.data.card import LOOK_ALIKE_RMS, card_markdown, dataset_card, glyph_distances, look_alike_pairs
from workbench.data.scenes import SceneConfig, SceneGenerator, generate_scenes

SMALL = {"num_images": 300, "num_labels": 36, "image_size": 32, "missing_rate": 0.1, "spurious_rate": 0.05,
         "random_state": 4}


@pytest.fixture(scope="module", autouse=True)
def private_cache(private_glyph_cache):
    """Keep the glyph disk cache of these tests out of the user's home (:func:`tests.conftest.private_glyph_cache`)."""
    return private_glyph_cache


@pytest.fixture(scope="module")
def generator():
    return SceneGenerator(SceneConfig(**SMALL))


def test_training_counts_are_the_label_counts_of_the_split_every_call_makes(generator):
    dataset = generator.generate()
    card = generator.card(dataset, validation_fraction=0.2, split_random_state=3, min_count=10)
    train, _ = dataset.split(validation_fraction=0.2, random_state=3)
    names = dataset.vocabulary.names
    noisy = np.array([sum(name in labels for labels in train.label_sets) for name in names])
    clean = np.array([sum(name in labels for labels in train.clean_label_sets) for name in names])
    assert card["split"]["num_train"] == len(train) == 240
    assert [card["counts"]["per_label"][name] for name in names] == [[int(n), int(c)] for n, c in zip(noisy, clean)]
    for kind, counts in (("noisy", noisy), ("clean", clean)):
        summary = card["counts"][kind]
        assert (summary["min"], summary["max"], summary["median"]) == (counts.min(), counts.max(), np.median(counts))
        assert summary["below_min_count"] == int((counts < 10).sum()) and summary["zero"] == int((counts == 0).sum())
    assert not np.array_equal(noisy, clean), "the noise changes the counts"
    rarest = card["counts"]["rarest"]
    assert len(rarest) == max(10, int((noisy < 10).sum())) and [row["count"] for row in rarest] == sorted(noisy)[: len(rarest)]
    whole = dataset_card(dataset, validation_fraction=0)  # 0: every image
    assert whole["split"]["num_train"] == 300 and whole["look_alikes"] is None
    assert whole["counts"]["noisy"]["max"] == int(np.asarray(dataset.labels.sum(axis=0)).max())


def test_glyph_distances_are_the_rms_difference_of_premultiplied_glyphs():
    rng = np.random.default_rng(0)
    glyphs = rng.integers(0, 256, (7, 5, 5, 4)).astype(np.uint8)
    glyphs[3] = glyphs[1]
    alpha = glyphs[..., 3:].astype(float) / 255
    premultiplied = np.concatenate([glyphs[..., :3] * alpha, glyphs[..., 3:].astype(float)], axis=-1)
    flat = premultiplied.reshape(7, -1)
    expected = cdist(flat, flat) / np.sqrt(flat.shape[1])
    np.testing.assert_allclose(glyph_distances(glyphs), expected, atol=1e-6)
    assert glyph_distances(glyphs)[1, 3] == 0.0
    mirrored = premultiplied[:, :, ::-1].reshape(7, -1)
    np.testing.assert_allclose(glyph_distances(glyphs, mirror=True), cdist(flat, mirrored) / np.sqrt(flat.shape[1]), atol=1e-6)
    # straight alpha: the colour under a transparent pixel does not count
    clear = np.zeros((2, 3, 3, 4), np.uint8)
    clear[0, ..., :3], clear[1, ..., :3] = 255, 0
    assert glyph_distances(clear)[0, 1] == 0.0


def test_look_alike_detection_finds_a_constructed_duplicate_and_a_mirrored_copy(generator):
    names = generator.vocabulary.names
    glyphs = generator.glyphs_by_size()
    natural = look_alike_pairs(glyphs, names)
    assert natural == [], "a set without look-alikes to construct them in"
    rng = np.random.default_rng(1)
    for size, stack in glyphs.items():
        stack[5] = stack[0]  # a duplicate, up to ±5 levels of colour where the glyph has ink
        ink = stack[5, ..., 3] > 0
        stack[5, ..., :3][ink] = np.clip(stack[5, ..., :3][ink].astype(int) + rng.integers(-5, 6, (ink.sum(), 3)), 0, 255)
        stack[9] = stack[1][:, ::-1]  # a mirror image
    pairs = look_alike_pairs(glyphs, names)
    assert [(pair["first"], pair["second"], pair["under_flip"]) for pair in pairs] == [
        (names[0], names[5], False), (names[1], names[9], True)]
    duplicate, mirrored = pairs
    assert duplicate["alike_at"] == sorted(glyphs) and 1.0 < min(duplicate["distances"]) <= 5.0 and duplicate["identical"] is False
    assert mirrored["distances"] == [0.0] * len(glyphs) and mirrored["identical"] is True
    assert len(look_alike_pairs(glyphs, names, threshold=0.5)) == 1, "the noisy duplicate is above a threshold of 0.5"

    card = dataset_card(generator.generate(), validation_fraction=0.2, glyphs_by_size=glyphs, image_size=32)
    alike = card["look_alikes"]
    assert (alike["num_pairs"], alike["num_pairs_under_flip"], alike["num_labels_involved"]) == (1, 1, 2)
    assert alike["num_pairs_at_size"] == {str(size): 1 for size in sorted(glyphs)} and alike["threshold"] == LOOK_ALIKE_RMS
    text = card_markdown(card)
    assert f"| {names[0]} | {names[5]} |" in text and f"| {names[1]} | {names[9]} |" in text and "| yes |" in text


def test_workbench_scenes_writes_the_card_and_wb_scenes_returns_it(tmp_path, capsys):
    import workbench as wb

    out = tmp_path / "scenes"
    assert main(["scenes", "--images", "300", "--labels", "36", "--size", "32", "--seed", "4", "--missing-rate", "0.1",
                 "--spurious-rate", "0.05", "--validation-fraction", "0.25", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    card = json.loads((out / "card.json").read_text())
    assert card["split"] == {"validation_fraction": 0.25, "split_random_state": 0, "num_train": 225}
    assert f"images per label min {card['counts']['noisy']['min']}, median {card['counts']['noisy']['median']:g}" in printed
    assert (out / "card.md").read_text().startswith("# Data card: emoji scenes (300 images, 36 labels, seed 4)")
    assert card["look_alikes"]["glyph_sizes"] == [10, 13, 19]

    data = wb.scenes(**SMALL, max_labels=6, validation_fraction=0.25, split_random_state=0, out_dir=tmp_path / "api")
    assert data.card["counts"] == card["counts"] and "## Look-alike glyphs" in data.card_text()
    assert json.loads((tmp_path / "api" / "card.json").read_text())["counts"] == card["counts"]


def test_a_label_count_too_large_for_every_group_does_not_suggest_every_group():
    with pytest.raises(ValueError, match="use all groups") as objects:
        generate_scenes(num_images=5, num_labels=5000)
    with pytest.raises(ValueError, match=r"ask for at most \d+ labels\.$") as every:
        generate_scenes(num_images=5, num_labels=5000, groups="all")
    assert "all groups" not in str(every.value) and "\n" not in str(every.value) + str(objects.value)


def test_default_scenes_are_those_of_earlier_versions_and_the_new_knobs_flatten_the_counts():
    # the default data set, as generated before label_skew and topic_balance existed (bit for bit)
    data = generate_scenes(num_images=300, num_labels=60, image_size=32, missing_rate=0.1, random_state=2)
    digest = hashlib.sha256(data.images.tobytes() + repr(data.label_sets).encode()).hexdigest()[:16]
    assert digest == DEFAULT_DIGEST
    settings = dict(num_images=4000, num_labels=400, image_size=16, groups="all", random_state=1)
    skewed = np.asarray(generate_scenes(**settings).labels.sum(axis=0)).ravel()
    flat = np.asarray(generate_scenes(**settings, label_skew=0.3, topic_balance=1.0).labels.sum(axis=0)).ravel()
    assert np.median(flat) > np.median(skewed) and np.percentile(flat, 10) > np.percentile(skewed, 10)
    assert flat.max() < skewed.max()
    with pytest.raises(ValueError, match="label_skew must be a number from 0 to 4"):
        SceneConfig(num_images=1, label_skew=-1)


DEFAULT_DIGEST = "e78898b116106dcb"
