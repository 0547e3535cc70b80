"""Composing a scene of chosen labels, and the app that classifies it (driven without a browser)."""

import numpy as np
import pytest

from workbench.apps.compose import ComposeSceneApp


@pytest.fixture(scope="module")
def generator():
    from workbench.data.scenes import SceneConfig, SceneGenerator

    return SceneGenerator(SceneConfig(num_images=10, num_labels=30, image_size=48, max_labels=4, random_state=3))


def test_compose_draws_exactly_the_picked_glyphs_seeded(generator):
    names = generator.vocabulary.names
    image = generator.compose([names[0], names[5]], random_state=1)
    assert image.shape == (48, 48, 3) and image.dtype == np.uint8
    assert np.array_equal(image, generator.compose([names[0], names[5]], random_state=1)), "seeded"
    assert not np.array_equal(image, generator.compose([names[0], names[5]], random_state=2)), "another layout"
    # the glyphs change the picture: the same background with other labels differs
    assert not np.array_equal(image, generator.compose([names[1], names[6]], random_state=1))


@pytest.mark.parametrize("labels, message", [([], "at least one label"), (["no such label"], "not in the scenes"),
                                             (None, "at most 4")])
def test_compose_mistakes_are_one_line_errors(generator, labels, message):
    labels = list(generator.vocabulary.names[:5]) if labels is None else labels
    with pytest.raises(ValueError, match=message):
        generator.compose(labels)


def test_the_app_shows_the_scene_and_marks_the_picked_labels_among_the_ranked_ones(generator):
    names = list(generator.vocabulary.names)
    seen = []

    def classify(image):
        seen.append(image.shape)
        return [(names[3], 0.9), (names[0], 0.8), (names[7], 0.1)]

    app = ComposeSceneApp(labels=names, compose=generator.compose, classify=classify, top=2)
    ranked = app.compose_now([names[0], names[3]], seed=4)
    assert ranked == [(names[3], 0.9), (names[0], 0.8)] and seen == [(48, 48, 3)]
    assert bytes(app.image.value).startswith(b"\x89PNG")
    assert "2 of the 2 picked label(s) among the top 2" in app.message.value
    assert app.ranked.value.count("✓") == 2
    app.button.click()  # the button does the same with the widgets' values
    assert len(seen) == 2


def test_the_app_survives_a_bad_pick_and_a_failing_classifier(generator):
    names = list(generator.vocabulary.names)

    def broken(image):
        raise RuntimeError("the model is not loaded")

    app = ComposeSceneApp(labels=names, compose=generator.compose, classify=broken)
    assert app.compose_now([]) == [] and "at least one label" in app.message.value
    assert app.compose_now([names[1]]) == [] and "RuntimeError: the model is not loaded" in app.message.value
    app.classify_function = lambda image: [(names[1], 0.5)]
    assert app.compose_now([names[1]]) == [(names[1], 0.5)], "the app carries on"
