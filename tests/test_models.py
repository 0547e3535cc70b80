"""The trunk, heads and cosine loss; one tiny fit+predict under every installed Keras backend."""

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from workbench.learning.models import (  # noqa: E402
    HEADS,
    CosineDistance,
    ModelConfig,
    build_model,
    compile_model,
    cosine_distance,
    make_optimizer,
)

TINY = ModelConfig(image_size=16, width=4, depth=2)
REPOSITORY_ROOT = Path(__file__).resolve().parents[1]


def test_cosine_distance_matches_numpy_and_is_one_plus_keras_similarity():
    rng = np.random.default_rng(0)
    y_true = rng.standard_normal((6, 5)).astype(np.float32)
    y_pred = rng.standard_normal((6, 5)).astype(np.float32)
    expected = 1 - (y_true * y_pred).sum(1) / np.linalg.norm(y_true, axis=1) / np.linalg.norm(y_pred, axis=1)
    got = keras.ops.convert_to_numpy(cosine_distance(y_true, y_pred))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # keras.losses.CosineSimilarity returns the NEGATIVE similarity (mean over the batch).
    keras_value = float(keras.losses.CosineSimilarity()(y_true, y_pred))
    assert float(np.mean(got)) == pytest.approx(1 + keras_value, abs=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(cosine_distance(y_true, 3 * y_true)), 0, atol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(cosine_distance(y_true, -y_true)), 2, atol=1e-6)


def test_cosine_loss_masks_zero_targets():
    rng = np.random.default_rng(1)
    y_true = rng.standard_normal((5, 4)).astype(np.float32)
    y_pred = rng.standard_normal((5, 4)).astype(np.float32)
    y_true[[1, 3]] = 0.0  # images without labels
    loss = float(CosineDistance()(y_true, y_pred))
    keep = [0, 2, 4]
    expected = np.mean(keras.ops.convert_to_numpy(cosine_distance(y_true[keep], y_pred[keep])))
    assert loss == pytest.approx(float(expected), abs=1e-5)
    assert float(CosineDistance()(np.zeros((3, 4), np.float32), y_pred[:3])) == 0.0


def test_cosine_loss_gradient_is_finite_with_zero_targets():
    import tensorflow as tf

    y_true = tf.constant([[0.0, 0.0], [1.0, 0.0]])
    y_pred = tf.Variable([[0.5, 0.2], [0.0, 1.0]])
    with tf.GradientTape() as tape:
        loss = CosineDistance()(y_true, y_pred)
    gradient = tape.gradient(loss, y_pred).numpy()
    assert np.all(np.isfinite(gradient))
    np.testing.assert_allclose(gradient[0], 0.0)  # masked sample: no gradient


@pytest.mark.parametrize("head", HEADS)
def test_heads_output_shapes_and_ranges(head):
    width = 3 if head in ("pmi", "random", "shuffled", "random-matched") else 7
    sizes = {"num_labels": width} if head == "sigmoid" else {"embedding_dim": width}
    if head in ("learned", "sigmoid-lowrank"):  # a k = 3 bottleneck before the C = 7 outputs
        sizes = {"embedding_dim": 3, "num_labels": width}
    model = build_model(TINY, head=head, random_state=0, **sizes)
    images = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    outputs = model.predict(images, verbose=0)
    assert outputs.shape == (4, width) and outputs.dtype == np.float32
    if head in ("sigmoid", "sigmoid-lowrank"):
        assert np.all((outputs >= 0) & (outputs <= 1))
    # Augmentation and dropout act only in training: prediction is deterministic.
    np.testing.assert_array_equal(outputs, model.predict(images, verbose=0))
    assert model.inputs[0].dtype == "uint8"
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)


def test_seeded_build_is_reproducible_and_seeds_differ():
    images = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    first = build_model(TINY, head="pmi", embedding_dim=3, random_state=5).predict(images, verbose=0)
    again = build_model(TINY, head="pmi", embedding_dim=3, random_state=5).predict(images, verbose=0)
    other = build_model(TINY, head="pmi", embedding_dim=3, random_state=6).predict(images, verbose=0)
    np.testing.assert_allclose(first, again, atol=1e-6)
    assert np.abs(first - other).max() > 1e-3


def test_saved_model_loads_in_safe_mode_with_its_loss(tmp_path):
    model = compile_model(build_model(TINY, head="pmi", embedding_dim=3), head="pmi", learning_rate=1e-3)
    images = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    targets = np.random.default_rng(1).standard_normal((8, 3)).astype(np.float32)
    model.fit(images, targets, batch_size=4, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert isinstance(loaded.loss, CosineDistance)
    assert isinstance(loaded.optimizer, keras.optimizers.RMSprop)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-5)


def test_bad_settings_raise_value_errors():
    with pytest.raises(ValueError, match="width"):
        ModelConfig(width=0)
    with pytest.raises(ValueError, match="too small"):
        ModelConfig(image_size=8, depth=4)
    with pytest.raises(ValueError, match="Unknown head"):
        build_model(TINY, head="softmax", embedding_dim=3)
    with pytest.raises(ValueError, match="embedding_dim must be a positive integer"):
        build_model(TINY, head="pmi", embedding_dim=0)
    with pytest.raises(ValueError, match="The pmi head needs embedding_dim"):
        build_model(TINY, head="pmi", num_labels=5)
    with pytest.raises(ValueError, match="The sigmoid head needs num_labels"):
        build_model(TINY, head="sigmoid", embedding_dim=5)
    with pytest.raises(ValueError, match="Unknown optimizer"):
        make_optimizer("adagrad", learning_rate=0.1)
    with pytest.raises(ValueError, match="Unknown model settings"):
        ModelConfig.from_dict({"image_size": 16, "colour": "red"})


_BACKEND_SCRIPT = textwrap.dedent(
    """
    import numpy as np, scipy.sparse as sp, keras
    from workbench.learning.feeding import ImageSource, LabelBatches
    from workbench.learning.models import ModelConfig, build_model, compile_model

    assert keras.backend.backend() == BACKEND, keras.backend.backend()

    class Data:  # the two attributes ImageSource needs
        images = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
        def __len__(self):
            return 8

    labels = sp.csr_matrix(np.eye(8, 5, dtype=np.uint8))
    vectors = np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32)
    model = build_model(ModelConfig(image_size=16, width=4, depth=2), head="pmi", embedding_dim=3)
    compile_model(model, head="pmi", learning_rate=1e-3)
    batches = LabelBatches(ImageSource(Data(), image_size=16), labels, vectors=vectors, batch_size=8, shuffle=True)
    history = model.fit(batches, epochs=1, steps_per_epoch=1, verbose=0, shuffle=False)
    loss = history.history["loss"][0]
    assert np.isfinite(loss), loss
    outputs = model.predict(Data.images, verbose=0)
    assert outputs.shape == (8, 3) and np.all(np.isfinite(outputs))
    print("OK", keras.backend.backend())
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_tiny_model_fits_and_predicts_under_each_backend(backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    environment = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu"}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPOSITORY_ROOT), environment.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", f"BACKEND = {backend!r}\n" + _BACKEND_SCRIPT],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"OK {backend}" in result.stdout
