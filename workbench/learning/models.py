"""The convolutional trunk, its heads and the cosine loss (Keras 3, ``keras.ops`` only).

One small convolutional trunk (batch-norm, global average pooling) carries one of
four heads:

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

from dataclasses import asdict, dataclass, fields

import keras
import numpy as np
from keras import ops

__all__ = [
    "HEADS",
    "EMBEDDING_HEADS",
    "ModelConfig",
    "CosineDistance",
    "cosine_distance",
    "build_model",
    "compile_model",
    "make_optimizer",
]

#: Every head name.
HEADS = ("pmi", "sigmoid", "random", "identity")
#: Heads that predict a point in a label-embedding space (scored by cosine).
EMBEDDING_HEADS = ("pmi", "random", "identity")
OPTIMIZERS = ("rmsprop", "adam", "sgd")


@dataclass
class ModelConfig:
    """Hyper-parameters of the network (the trunk; the head is chosen by ``build_model``).

    Parameters
    ----------
    image_size : int, default=64
        Input images are ``(image_size, image_size, 3)`` uint8.
    width : int, default=16
        Channels of the first convolution block; each later block doubles them.
    depth : int, default=4
        Number of blocks; each is ``convs_per_block`` × (3×3 convolution, batch-norm,
        ReLU) followed by 2×2 max-pooling.
    convs_per_block : int, default=1
    dropout : float, default=0.2
        Dropout rate before the head.
    batchnorm_momentum : float, default=0.99
        Momentum of the batch-norm moving statistics used at inference (lower it
        for runs of few steps, so validation sees settled statistics).
    augment : bool, default=True
        Random horizontal flips and shifts in training.
    max_shift : float, default=0.1
        Largest shift, as a fraction of the image size.
    flip : bool, default=True
        Random horizontal flips when ``augment`` (turn off for left/right-sensitive labels).
    """

    image_size: int = 64
    width: int = 16
    depth: int = 4
    convs_per_block: int = 1
    dropout: float = 0.2
    batchnorm_momentum: float = 0.99
    augment: bool = True
    max_shift: float = 0.1
    flip: bool = True

    def __post_init__(self):
        for name in ("image_size", "width", "depth", "convs_per_block"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive integer; got {value!r}.")
            setattr(self, name, int(value))
        if self.image_size < 2**self.depth:
            raise ValueError(
                f"image_size {self.image_size} is too small for depth {self.depth} (each block halves it); "
                f"use image_size ≥ {2 ** self.depth} or a smaller depth."
            )
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"ModelConfig.dropout must be in [0, 1); got {self.dropout!r}.")
        if not 0.0 < float(self.batchnorm_momentum) < 1.0:
            raise ValueError(f"ModelConfig.batchnorm_momentum must be in (0, 1); got {self.batchnorm_momentum!r}.")
        if not 0.0 <= float(self.max_shift) < 0.5:
            raise ValueError(f"ModelConfig.max_shift must be in [0, 0.5); got {self.max_shift!r}.")
        self.dropout = float(self.dropout)
        self.max_shift = float(self.max_shift)
        self.batchnorm_momentum = float(self.batchnorm_momentum)
        self.augment = bool(self.augment)
        self.flip = bool(self.flip)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"Unknown model settings {sorted(unknown)}; expected some of {sorted(known)}.")
        return cls(**data)


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
    if head not in HEADS:
        raise ValueError(f"Unknown head {head!r}; use one of {', '.join(HEADS)}.")
    return head


def build_model(config: ModelConfig, *, head: str, output_dim: int, random_state: int = 0) -> keras.Model:
    """The trunk of ``config`` with one head, uncompiled.

    Parameters
    ----------
    config : ModelConfig
    head : {"pmi", "sigmoid", "random", "identity"}
        ``"sigmoid"`` ends in ``Dense(output_dim, sigmoid)``; the others in a linear
        ``Dense(output_dim)``.
    output_dim : int
        ``k`` (the embedding dimension) for pmi/random, ``C`` (number of labels) for
        sigmoid/identity.
    random_state : int, default=0
        Seeds the weight initialisers, dropout and augmentation (no global seeding).

    Returns
    -------
    keras.Model
        Input ``(image_size, image_size, 3)`` uint8; output ``(output_dim,)`` float32.
    """
    _check_head(head)
    if isinstance(output_dim, bool) or not isinstance(output_dim, (int, np.integer)) or output_dim < 1:
        raise ValueError(f"output_dim must be a positive integer; got {output_dim!r}.")
    seeds = iter(np.random.default_rng(random_state).integers(0, 2**31 - 1, size=1000).tolist())
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
    if config.dropout > 0:
        x = keras.layers.Dropout(config.dropout, seed=next(seeds), name="dropout")(x)
    outputs = keras.layers.Dense(
        int(output_dim),
        activation="sigmoid" if head == "sigmoid" else None,
        kernel_initializer=keras.initializers.GlorotUniform(seed=next(seeds)),
        dtype="float32",
        name=f"{head}_head",
    )(x)
    return keras.Model(inputs, outputs, name=f"workbench_{head}")


def make_optimizer(name: str, *, learning_rate: float) -> keras.optimizers.Optimizer:
    """``"rmsprop"`` (the default of every head), ``"adam"`` or ``"sgd"`` (momentum 0.9)."""
    if not (isinstance(learning_rate, (int, float)) and learning_rate > 0):
        raise ValueError(f"learning_rate must be a positive number; got {learning_rate!r}.")
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=learning_rate)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9)
    raise ValueError(f"Unknown optimizer {name!r}; use one of {', '.join(OPTIMIZERS)}.")


def compile_model(model: keras.Model, *, head: str, optimizer: str = "rmsprop", learning_rate: float = 1e-3) -> keras.Model:
    """Compile ``model`` with the loss of ``head`` (cosine distance, or binary cross-entropy)."""
    _check_head(head)
    loss = keras.losses.BinaryCrossentropy() if head == "sigmoid" else CosineDistance()
    model.compile(optimizer=make_optimizer(optimizer, learning_rate=learning_rate), loss=loss)
    return model
