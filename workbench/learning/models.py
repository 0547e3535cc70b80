"""The convolutional trunk, its heads and the cosine loss (Keras 3, ``keras.ops`` only).

One small convolutional trunk (batch-norm, global average pooling) carries one of
eight heads:

``"pmi"``
    Linear ``Dense(k)``. The target of an image is the SUM of the embedding vectors
    of its labels; the loss is the cosine distance ``1 − cos(prediction, target)``.
``"random"``
    As ``"pmi"``, with random Gaussian label vectors of the same ``k`` (a control:
    any gain of ``"pmi"`` over it comes from the PMI geometry, not the loss).
``"identity"``
    As ``"pmi"`` with the identity embedding (``k = C``): cosine on multi-hot targets.
``"sigmoid"``
    ``Dense(C, sigmoid)`` with binary cross-entropy on multi-hot targets (the
    usual baseline).
``"shuffled"``, ``"random-matched"``
    As ``"pmi"``, with the PMI vectors' rows permuted among the labels, or Gaussian
    directions with each label's PMI norm (controls: :mod:`workbench.method.targets`).
``"learned"``
    ``Dense(k)`` then a trainable ``Dense(C, use_bias=False)``: a ``k``-dimensional label
    embedding learned with the network (the ``k × C`` kernel), the cosine loss against the
    multi-hot target; the ``C`` outputs are the label scores.
``"sigmoid-lowrank"``
    ``Dense(k)`` then ``Dense(C, sigmoid)`` with binary cross-entropy: the sigmoid head
    through a ``k``-wide bottleneck.

Images arrive as ``uint8`` and are normalised inside the model (``Rescaling`` to
[-1, 1]); light augmentation (random horizontal flip, random shift by up to
``max_shift`` of the image size) is part of the model too and only acts in
training, so the same ``model.keras`` serves training and prediction.

Images without labels have a zero target for the embedding heads: a zero vector has
no direction, so :class:`CosineDistance` masks them out of the loss (the batch mean
is taken over the images that have a target). They stay in training for the
sigmoid head, where they are valid all-negative examples.

Every custom object is registered with ``keras.saving.register_keras_serializable``
so saved models load in Keras' safe mode; the model uses no ``Lambda`` layer.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from workbench import _checks
from workbench.learning.config import BOTTLENECK_HEADS, EMBEDDING_HEADS, HEADS, OPTIMIZERS, SIGMOID_HEADS, ModelConfig

__all__ = [
    "HEADS",
    "EMBEDDING_HEADS",
    "ModelConfig",
    "CosineDistance",
    "cosine_distance",
    "build_model",
    "compile_model",
    "make_optimizer",
    "output_width",
]

# ---------------------------------------------------------------------------------
# the loss
# ---------------------------------------------------------------------------------
def cosine_distance(y_true, y_pred, *, epsilon: float = 1e-7):
    """Per-sample cosine distance ``1 − cos(y_true, y_pred)`` (``keras.ops`` only).

    Parameters
    ----------
    y_true, y_pred : tensors of shape (B, k)
    epsilon : float
        Guards the division for (near) zero vectors; a zero vector gives distance 1.

    Returns
    -------
    tensor of shape (B,)
        In [0, 2]; 0 when the two vectors point the same way. (Unlike
        ``keras.losses.CosineSimilarity``, which returns the *negative* similarity.)
    """
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.cast(y_true, y_pred.dtype)
    dot = ops.sum(y_true * y_pred, axis=-1)
    true_norm = ops.sqrt(ops.maximum(ops.sum(ops.square(y_true), axis=-1), epsilon**2))
    pred_norm = ops.sqrt(ops.maximum(ops.sum(ops.square(y_pred), axis=-1), epsilon**2))
    return 1.0 - dot / (true_norm * pred_norm)


@keras.saving.register_keras_serializable(package="workbench")
class CosineDistance(keras.losses.Loss):
    """Cosine distance loss that ignores samples whose target is the zero vector.

    The per-sample values are ``1 − cos`` for samples with a non-zero target and 0
    otherwise, rescaled by ``batch / valid`` so that Keras' batch mean equals the mean
    over the valid samples only (0 for a batch without any valid sample).

    Parameters
    ----------
    epsilon : float, default=1e-7
        Targets with a norm at or below ``epsilon`` count as zero.
    """

    def __init__(self, *, epsilon: float = 1e-7, name: str = "cosine_distance", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.epsilon = float(epsilon)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        distance = cosine_distance(y_true, y_pred, epsilon=self.epsilon)
        valid = ops.cast(ops.sum(ops.square(y_true), axis=-1) > self.epsilon**2, distance.dtype)
        batch = ops.sum(ops.ones_like(valid))
        scale = batch / ops.maximum(ops.sum(valid), 1.0)
        return distance * valid * scale

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon})
        return config


# ---------------------------------------------------------------------------------
# the network
# ---------------------------------------------------------------------------------
def _check_head(head: str) -> str:
    return _checks.choice(head, "head", HEADS)


def output_width(head: str, *, embedding_dim: int | None = None, num_labels: int | None = None) -> int:
    """The width of the last ``Dense`` layer: ``embedding_dim`` for an embedding head, ``num_labels`` for the others.

    The bottleneck heads (learned, sigmoid-lowrank) need both: ``k`` is their bottleneck.
    """
    _check_head(head)
    if head in (*EMBEDDING_HEADS, *BOTTLENECK_HEADS):
        if embedding_dim is None:
            what = "the length of its label vectors" if head in EMBEDDING_HEADS else "the width of its bottleneck"
            raise ValueError(f"The {head} head needs embedding_dim (k, {what}).")
        embedding_dim = _checks.integer(embedding_dim, "embedding_dim")
        if head in EMBEDDING_HEADS:
            return embedding_dim
    if num_labels is None:
        raise ValueError(f"The {head} head needs num_labels (one output per label).")
    return _checks.integer(num_labels, "num_labels")


def _trunk(config: ModelConfig, seeds):
    """The image input and the trunk up to its pooled features (the layer ``pool``)."""
    size = config.image_size
    inputs = keras.Input(shape=(size, size, 3), dtype="uint8", name="image")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalise")(inputs)
    if config.augment:
        if config.flip:
            x = keras.layers.RandomFlip("horizontal", seed=next(seeds), name="random_flip")(x)
        if config.max_shift > 0:
            x = keras.layers.RandomTranslation(
                config.max_shift, config.max_shift, fill_mode="reflect", seed=next(seeds), name="random_shift"
            )(x)
    channels = config.width
    for block in range(config.depth):
        for conv in range(config.convs_per_block):
            x = keras.layers.Conv2D(
                channels,
                3,
                padding="same",
                use_bias=False,
                kernel_initializer=keras.initializers.HeNormal(seed=next(seeds)),
                name=f"block{block + 1}_conv{conv + 1}",
            )(x)
            x = keras.layers.BatchNormalization(momentum=config.batchnorm_momentum, name=f"block{block + 1}_bn{conv + 1}")(x)
            x = keras.layers.ReLU(name=f"block{block + 1}_relu{conv + 1}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{block + 1}_pool")(x)
        channels *= 2
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return inputs, x


def build_model(
    config: ModelConfig,
    *,
    head: str,
    embedding_dim: int | None = None,
    num_labels: int | None = None,
    random_state: int = 0,
    output_bias=None,
    num_features: int | None = None,
) -> keras.Model:
    """The trunk of ``config`` with one head, uncompiled (or the head alone, on a trunk's features).

    Parameters
    ----------
    config : ModelConfig
    head : str
        One of :data:`HEADS`. ``"sigmoid"`` ends in ``Dense(num_labels, sigmoid)``; the
        embedding heads in a linear ``Dense(embedding_dim)``; the bottleneck heads in a
        linear ``Dense(embedding_dim)`` (``<head>_bottleneck``) followed by
        ``Dense(num_labels)`` (no bias and linear for learned; sigmoid for
        sigmoid-lowrank).
    embedding_dim : int
        ``k``, the length of the label vectors (pmi, random, shuffled, random-matched;
        ``C`` for identity) or the bottleneck's width (learned, sigmoid-lowrank).
    num_labels : int
        ``C``. Required by the sigmoid and bottleneck heads.
    random_state : int, default=0
        Seeds the weight initialisers, dropout and augmentation (no global seeding).
    output_bias : array-like of shape (width,), optional
        Initial biases of the last layer (for example
        :func:`workbench.learning.config.label_frequency_bias` for the sigmoid head);
        default 0.
    num_features : int, optional
        The two-stage protocol's second stage (:mod:`workbench.learning.twostage`): the
        input is a trunk's pooled feature vector of this length, and the model is what
        follows the ``pool`` layer of the full network (the dropout, then the same head
        layers); ``config`` then only gives the dropout.

    Returns
    -------
    keras.Model
        Input ``(image_size, image_size, 3)`` uint8 (or ``(num_features,)`` float32); output
        ``(embedding_dim,)`` or ``(num_labels,)`` float32. The last layer is ``<head>_head``
        (``-`` written ``_``).
    """
    width = output_width(head, embedding_dim=embedding_dim, num_labels=num_labels)
    seeds = iter(np.random.default_rng(random_state).integers(0, 2**31 - 1, size=1000).tolist())
    if num_features is not None:
        inputs = keras.Input(shape=(_checks.integer(num_features, "num_features"),), dtype="float32", name="features")
        x = inputs
    else:
        inputs, x = _trunk(config, seeds)
    if config.dropout > 0:
        x = keras.layers.Dropout(config.dropout, seed=next(seeds), name="dropout")(x)
    if output_bias is not None:
        output_bias = np.asarray(output_bias, dtype=np.float32).reshape(-1)
        if output_bias.shape != (width,) or not np.all(np.isfinite(output_bias)):
            raise ValueError(f"output_bias must be {width} finite numbers, one per output; got shape {output_bias.shape}.")
    name = head.replace("-", "_")
    if head in BOTTLENECK_HEADS:  # the k-wide bottleneck: the network's k-vector, then a k × C map to the labels
        x = keras.layers.Dense(
            _checks.integer(embedding_dim, "embedding_dim"),
            kernel_initializer=keras.initializers.GlorotUniform(seed=next(seeds)),
            dtype="float32",
            name=f"{name}_bottleneck",
        )(x)
    if output_bias is not None and head == "learned":
        raise ValueError("The learned head's label map has no bias; give output_bias=None.")
    outputs = keras.layers.Dense(
        width,
        activation="sigmoid" if head in SIGMOID_HEADS else None,
        use_bias=head != "learned",
        kernel_initializer=keras.initializers.GlorotUniform(seed=next(seeds)),
        dtype="float32",
        name=f"{name}_head",
    )(x)
    model = keras.Model(inputs, outputs, name=f"workbench_{name}")
    if output_bias is not None:  # assigned, not an initializer: the saved config stays plain JSON
        model.get_layer(f"{name}_head").bias.assign(output_bias)
    return model


def make_optimizer(name: str, *, learning_rate: float) -> keras.optimizers.Optimizer:
    """``"rmsprop"`` (the default of every head), ``"adam"`` or ``"sgd"`` (momentum 0.9)."""
    learning_rate = _checks.number(learning_rate, "learning_rate", positive=True)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=learning_rate)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9)
    raise ValueError(f"Unknown optimizer {name!r}; use one of {', '.join(OPTIMIZERS)}.")


def compile_model(model: keras.Model, *, head: str, optimizer: str = "rmsprop", learning_rate: float = 1e-3) -> keras.Model:
    """Compile ``model`` with the loss of ``head`` (binary cross-entropy for the sigmoid heads, else cosine distance)."""
    _check_head(head)
    loss = keras.losses.BinaryCrossentropy() if head in SIGMOID_HEADS else CosineDistance()
    model.compile(optimizer=make_optimizer(optimizer, learning_rate=learning_rate), loss=loss)
    return model
