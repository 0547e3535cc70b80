"""Tests of the emoji-scenes generator (workbench.data.scenes, workbench.data.emoji) and `workbench scenes`."""

from __future__ import annotations

import csv
import itertools

import numpy as np
import pytest
from PIL import Image

from workbench.data import emoji
from workbench.cli import main
from workbench.data.datasets import MultiLabelDataset, read_scenes
from workbench.data.emoji import EmojiResourceError, emoji_catalog, render_glyphs
from workbench.data.labels import Vocabulary
from workbench.data.scenes import SceneConfig, SceneGenerator, generate_scenes, write_scenes

SMALL = {"num_images": 200, "num_labels": 100, "random_state": 3}


@pytest.fixture(scope="module", autouse=True)
def private_cache(private_glyph_cache):
    """Keep the glyph disk cache of these tests out of the user's home (:func:`tests.conftest.private_glyph_cache`)."""
    return private_glyph_cache


@pytest.fixture(scope="module")
def small():
    return generate_scenes(**SMALL)


@pytest.fixture(scope="module")
def large():
    """1,000 images: enough for label statistics."""
    return generate_scenes(num_images=1000, num_labels=100, random_state=5)


# -- catalogue ---------------------------------------------------------------------
def test_catalog_groups_and_names():
    objects, everything = emoji_catalog(), emoji_catalog(groups="all")
    assert 800 <= len(objects) <= 900 and 45 <= len(set(objects.subgroups)) <= 55
    assert set(objects.groups) == set(emoji.OBJECT_GROUPS)
    assert 1800 <= len(everything) <= 1950
    for catalog in (objects, everything):
        assert len(set(catalog.names)) == len(catalog)
        assert not any("|" in name for name in catalog.names)
        assert not any(0x1F3FB <= ord(c) <= 0x1F3FF for s in catalog.sequences for c in s)  # no skin tones
    names = dict(zip(objects.names, objects.subgroups))
    assert names["pizza"] == "food-prepared" and names["dog face"] == "animal-mammal"
    assert "fork and knife" in names and "grinning face" not in names and "grinning face" in everything.names
    with pytest.raises(ValueError, match="Unknown emoji group"):
        emoji_catalog(groups=["Food & Drink", "Snacks"])


# -- determinism, shapes -------------------------------------------------------------
def test_shapes_dtypes_and_vocabulary(small):
    assert isinstance(small, MultiLabelDataset) and small.format == "scenes"
    assert small.images.shape == (200, 64, 64, 3) and small.images.dtype == np.uint8
    assert small.image_paths[0] == "images/000000.png" and small.image_paths[-1] == "images/000199.png"
    vocabulary = small.vocabulary
    assert len(vocabulary) == 100 and len(vocabulary.groups) == len(vocabulary.subgroups) == 100
    labels = small.labels
    assert labels.shape == (200, 100) and labels.dtype == np.uint8
    # the label subset keeps subgroup structure: most labels share their subgroup with others
    subgroup_sizes = np.unique(vocabulary.subgroups, return_counts=True)[1]
    assert 15 <= len(subgroup_sizes) <= 45
    assert subgroup_sizes[subgroup_sizes >= 2].sum() >= 90


def test_same_seed_identical_different_seed_different(small):
    again = generate_scenes(**SMALL)
    assert np.array_equal(again.images, small.images)
    assert again.label_sets == small.label_sets and again.vocabulary == small.vocabulary
    other = generate_scenes(**{**SMALL, "random_state": 4})
    assert not np.array_equal(other.images, small.images)
    assert other.label_sets != small.label_sets
    # chunked streams: a longer data set starts with the shorter one
    longer = generate_scenes(**{**SMALL, "num_images": 300})
    assert np.array_equal(longer.images[:200], small.images) and longer.label_sets[:200] == small.label_sets


def test_glyphs_are_drawn(small):
    # images carry emoji, not only backgrounds: many distinct colours per image
    colours = [len(np.unique(image.reshape(-1, 3), axis=0)) for image in small.images[:20]]
    assert min(colours) > 50
    generator = SceneGenerator(SceneConfig(**SMALL))
    for z in range(len(generator.glyph_sizes)):
        alpha_area = (generator._inverse_alpha[z] < 1.0).mean(axis=(1, 2))
        assert alpha_area.min() > 0.05  # no empty glyph for any label


# -- label statistics ------------------------------------------------------------------
def test_labels_per_image_within_bounds():
    data = generate_scenes(num_images=300, num_labels=60, min_labels=2, max_labels=4, random_state=1)
    per_image = np.diff(data.labels.indptr)
    assert per_image.min() >= 2 and per_image.max() <= 4
    assert set(per_image.tolist()) == {2, 3, 4}


def test_popularity_is_skewed(large):
    counts = np.sort(np.asarray(large.labels.sum(axis=0)).ravel())[::-1]
    top_share = counts[: len(counts) // 10].sum() / counts.sum()
    assert top_share > 0.25, top_share  # uniform popularity would give about 0.10
    assert np.count_nonzero(counts) >= 90  # but the tail still occurs


def test_same_subgroup_labels_cooccur_more(large):
    matrix = large.labels.astype(np.float64)
    num_images = matrix.shape[0]
    cooccurrence = (matrix.T @ matrix).toarray()
    counts = np.diag(cooccurrence).copy()
    expected = np.outer(counts, counts) / num_images  # co-occurrence under independence
    subgroups = np.array(large.vocabulary.subgroups)
    same = subgroups[:, None] == subgroups[None, :]
    off_diagonal = ~np.eye(len(subgroups), dtype=bool)
    lift_same = cooccurrence[same & off_diagonal].sum() / expected[same & off_diagonal].sum()
    lift_cross = cooccurrence[~same].sum() / expected[~same].sum()
    assert lift_same > 3.0 * lift_cross, (lift_same, lift_cross)
    assert lift_same > 2.0 and lift_cross < 1.0


def test_noise_rates_roughly_as_configured(large):
    noisy = generate_scenes(num_images=1000, num_labels=100, random_state=5, missing_rate=0.2, spurious_rate=0.1)
    assert np.array_equal(noisy.images, large.images)  # noise changes labels only
    clean_total = dropped = added = 0
    for clean, labels in zip(large.label_sets, noisy.label_sets):
        clean, labels = set(clean), set(labels)
        clean_total += len(clean)
        dropped += len(clean - labels)
        added += len(labels - clean)
    assert 0.15 < dropped / clean_total < 0.25
    assert 0.06 < added / clean_total < 0.14
    assert generate_scenes(num_images=50, num_labels=100, random_state=5).label_sets == large.label_sets[:50]


# -- writing, the CLI and read_scenes ---------------------------------------------------
def test_cli_writes_what_read_scenes_reads(tmp_path, capsys):
    out = tmp_path / "scenes"
    status = main(
        ["scenes", "--images", "40", "--labels", "30", "--seed", "7", "--missing-rate", "0.1", "--out", str(out)]
    )
    assert status == 0
    summary, card = capsys.readouterr().out.strip().splitlines()
    assert summary.startswith("wrote 40 images, 30 labels,") and "labels/image" in summary and summary.endswith(" s")
    assert card.startswith(f"data card {out / 'card.md'}: training split (32 images): images per label min ")
    expected = generate_scenes(num_images=40, num_labels=30, random_state=7, missing_rate=0.1)
    loaded = read_scenes(out)
    assert loaded.format == "scenes" and loaded.image_paths == expected.image_paths
    assert loaded.label_sets == expected.label_sets
    assert loaded.vocabulary == expected.vocabulary
    assert loaded.vocabulary.groups == expected.vocabulary.groups
    assert loaded.vocabulary.subgroups == expected.vocabulary.subgroups
    pixels = np.stack([np.asarray(Image.open(loaded.path_of(n)).convert("RGB")) for n in range(len(loaded))])
    assert np.array_equal(pixels, expected.images)
    with open(out / "labels.csv", newline="", encoding="utf-8") as handle:
        assert next(csv.reader(handle)) == ["image", "labels"]


def test_write_refuses_foreign_folder_and_rewrites_own(tmp_path, capsys, small):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert main(["scenes", "--images", "5", "--labels", "10", "--out", str(foreign)]) == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith("workbench scenes: error:") and "not empty" in message and "\n" not in message
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]

    own = tmp_path / "own"
    write_scenes(small, own)
    assert len(list((own / "images").iterdir())) == 200
    write_scenes(small.subset(range(10)), own)  # an earlier output may be overwritten; stale images go
    assert sorted(p.name for p in (own / "images").iterdir()) == [f"{n:06d}.png" for n in range(10)]
    assert read_scenes(own).label_sets == small.label_sets[:10]


def test_write_rejects_pipe_in_label(tmp_path):
    data = MultiLabelDataset(
        image_paths=("",),
        label_sets=(("a|b",),),
        vocabulary=Vocabulary(("a|b",)),
        images=np.zeros((1, 16, 16, 3), dtype=np.uint8),
    )
    with pytest.raises(ValueError, match=r"contains '\|'"):
        write_scenes(data, tmp_path / "out")
    assert not (tmp_path / "out" / "labels.csv").exists()


# -- resources, errors, caching -----------------------------------------------------------
def test_missing_font_and_emoji_data_name_the_debian_package(tmp_path, monkeypatch, capsys):
    with pytest.raises(EmojiResourceError, match="apt-get install fonts-noto-color-emoji"):
        generate_scenes(num_images=2, num_labels=10, font_path=tmp_path / "NoFont.ttf")
    with pytest.raises(ValueError, match="apt-get install unicode-data"):
        generate_scenes(num_images=2, num_labels=10, emoji_test_path=tmp_path / "emoji-test.txt")
    monkeypatch.setenv("WORKBENCH_EMOJI_FONT", str(tmp_path / "NoFont.ttf"))
    assert main(["scenes", "--images", "2", "--labels", "10", "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert "fonts-noto-color-emoji" in error and "WORKBENCH_EMOJI_FONT" in error and "\n" not in error


def test_emoji_missing_from_font_are_skipped_and_reported(tmp_path, monkeypatch):
    lines = ["# group: Food & Drink", "# subgroup: food-fruit"]
    fruits = ["1F347", "1F348", "1F349", "1F34A", "1F34B", "1F34C", "1F34D", "1F96D"]
    lines += [f"{code} ; fully-qualified # x E0.6 fruit {n}" for n, code in enumerate(fruits)]
    lines += ["1FAE9 ; fully-qualified # x E99.0 not in any font", "1F34E 1F3FD ; fully-qualified # x E1.0 toned apple"]
    (tmp_path / "emoji-test.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setenv("WORKBENCH_EMOJI_TEST", str(tmp_path / "emoji-test.txt"))
    assert len(emoji_catalog()) == 9  # the skin-tone variant is dropped
    with pytest.warns(UserWarning, match="1 emoji are not drawable"):
        data = generate_scenes(num_images=20, max_labels=3)
    assert data.vocabulary.names == tuple(f"fruit {n}" for n in range(8))
    _, missing = render_glyphs(["\U0001fae9", "\U0001f347"], sizes=[8], disk_cache=False)
    assert missing == ["\U0001fae9"]


def test_glyph_disk_cache_round_trips(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    sequences = ["\U0001f355", "\U0001f415", "\U0001f9d1\u200d\U0001f33e"]  # pizza, dog, farmer (ZWJ)
    monkeypatch.setattr(emoji, "_GLYPH_CACHE", {})
    monkeypatch.setattr(emoji, "_LOADED_FROM_DISK", set())
    first, missing = render_glyphs(sequences, sizes=[20, 30])
    assert missing == [] and first[30]["\U0001f355"].shape == (30, 30, 4)
    files = sorted(p.name for p in (tmp_path / "pmi-workbench").iterdir())
    assert len(files) == 2 and all(name.endswith("px.npz") for name in files)
    monkeypatch.setattr(emoji, "_GLYPH_CACHE", {})
    monkeypatch.setattr(emoji, "_LOADED_FROM_DISK", set())
    monkeypatch.setattr(emoji, "_draw", lambda *args: pytest.fail("glyphs should come from the disk cache"))
    second, _ = render_glyphs(sequences, sizes=[20, 30])
    for size, sequence in itertools.product((20, 30), sequences):
        assert np.array_equal(first[size][sequence], second[size][sequence])


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"min_labels": 4, "max_labels": 2}, "min_labels <= max_labels"),
        ({"missing_rate": 1.5}, "missing_rate must be"),
        ({"num_labels": 5000}, "drawable emoji"),
        ({"image_size": 8}, "image_size must be"),
    ],
)
def test_bad_settings_are_one_line_value_errors(bad, message):
    with pytest.raises(ValueError, match=message) as info:
        generate_scenes(**{"num_images": 5, "num_labels": 20, **bad})
    assert "\n" not in str(info.value)


def test_label_topics_name_the_theme_that_draws_each_label_most_and_its_labels_cooccur():
    from workbench.data.scenes import THEMES, SceneConfig, SceneGenerator

    generator = SceneGenerator(SceneConfig(num_images=1000, num_labels=100, random_state=5))
    topics = generator.label_topics()
    assert len(topics) == len(generator.vocabulary)
    names = [name for name, _ in generator.topics]
    for position, (theme, subgroup) in enumerate(zip(topics, generator.vocabulary.subgroups)):
        holding = [t for t, (name, mixture) in enumerate(generator.topics) if name in THEMES and subgroup in mixture]
        if not holding:
            assert theme == "other"
            continue
        scores = [generator._topic_probability[t] * generator._label_distribution[t, position] for t in holding]
        assert theme == names[holding[int(np.argmax(scores))]]  # brute force, one label at a time
    assert len(set(topics) - {"other"}) >= 5
    # the themes are what the data shows: labels of one theme meet more often than chance, across themes less
    data = generator.generate()
    matrix = data.labels.astype(np.float64)
    cooccurrence = (matrix.T @ matrix).toarray()
    counts = np.diag(cooccurrence).copy()
    expected = np.outer(counts, counts) / matrix.shape[0]
    theme = np.array(topics)
    same = (theme[:, None] == theme[None, :]) & (theme[:, None] != "other") & ~np.eye(len(theme), dtype=bool)
    across = theme[:, None] != theme[None, :]
    lift_same = cooccurrence[same].sum() / expected[same].sum()
    lift_across = cooccurrence[across].sum() / expected[across].sum()
    assert lift_same > 2.0 > 1.0 > lift_across, (lift_same, lift_across)


# -- clean labels -------------------------------------------------------------------------
def test_clean_labels_are_the_labels_drawn_before_noise_and_survive_writing_and_reading(tmp_path, small):
    assert small.clean_label_sets == small.label_sets  # no noise: the clean labels are the labels
    noisy = generate_scenes(**SMALL, missing_rate=0.3, spurious_rate=0.2)
    assert noisy.clean_label_sets == small.label_sets, "the clean labels of a noisy data set are the noise-free labels"
    assert noisy.label_sets != small.label_sets
    train, validation = noisy.split(validation_fraction=0.25, random_state=0)
    order = np.random.default_rng(0).permutation(len(noisy))
    assert validation.clean_label_sets == tuple(small.label_sets[i] for i in np.sort(order[:50]))
    assert (validation.clean_labels != small.labels[np.sort(order[:50])]).nnz == 0
    assert train.labels.shape == train.clean_labels.shape

    write_scenes(noisy, tmp_path / "noisy")
    loaded = read_scenes(tmp_path / "noisy")
    assert loaded.label_sets == noisy.label_sets and loaded.clean_label_sets == noisy.clean_label_sets
    generated = tmp_path / "generated"
    SceneGenerator(SceneConfig(**SMALL, missing_rate=0.3, spurious_rate=0.2)).write(generated)
    assert read_scenes(generated).clean_label_sets == noisy.clean_label_sets

    import dataclasses

    write_scenes(dataclasses.replace(noisy, clean_label_sets=None), tmp_path / "noisy")  # an earlier output rewritten
    assert not (tmp_path / "noisy" / "clean_labels.csv").exists() and read_scenes(tmp_path / "noisy").clean_label_sets is None

    lines = (generated / "clean_labels.csv").read_text().splitlines()
    (generated / "clean_labels.csv").write_text("\n".join([lines[0], lines[2], lines[1], *lines[3:]]) + "\n")
    with pytest.raises(ValueError, match="clean_labels.csv does not list the images of labels.csv"):
        read_scenes(generated)
