"""Hyper-parameters of a training run, and the names of heads and optimizers (no Keras here).

:class:`ModelConfig` describes the network (the trunk), :class:`TrainConfig` one
training run (head, epochs, optimizer, seeds, the trunk). Both are plain dataclasses
written into every run folder's ``config.json`` and read back from it, so the
command line and the main job can use them without importing Keras.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from workbench import _checks
from workbench.method.targets import BOTTLENECK_HEADS, EMBEDDING_HEADS, HEADS, K_HEADS, PMI_HEADS, SIGMOID_HEADS

__all__ = ["HEADS", "EMBEDDING_HEADS", "PMI_HEADS", "BOTTLENECK_HEADS", "SIGMOID_HEADS", "K_HEADS", "OPTIMIZERS",
           "SIGMOID_BIASES", "DEFAULT_LEARNING_RATES", "STOPPING_FIELDS", "PROTOCOLS", "ModelConfig", "TrainConfig",
           "TrunkConfig", "STOPPING_ARGUMENTS", "stopping_from_arguments", "label_frequency_bias", "parse_devices"]

OPTIMIZERS = ("rmsprop", "adam", "sgd")
#: Where the sigmoid head's output biases start (see :class:`TrainConfig`).
SIGMOID_BIASES = ("label_frequency", "zero")

#: Learning rate of each head with RMSprop (batch 64, the default trunk). Chosen by one
#: sweep with the same budget for every head (``benchmarks/bench_compare.py --sweep``):
#: emoji scenes, 2000 images, 500 labels, missing 0.1 / spurious 0.05 label noise, one
#: split (15 % validation), 4 epochs, seed 0, every head at each rate; kept the rate
#: with the best final validation MAP@100. Results (pmi / sigmoid / random):
#: 3e-4: 0.084 / 0.035 / 0.103;  1e-3: 0.097 / 0.138 / 0.100;
#: 3e-3: 0.187 / 0.146 / 0.111;  1e-2: 0.198 / 0.145 / 0.120.
#: The identity head was not swept; it shares the rate of the other cosine heads. The controls
#: were not swept either: each has the rate of its nearest head — shuffled and random-matched
#: that of pmi and random (the same cosine loss on sums of label vectors), learned that of
#: identity (the cosine loss on multi-hot targets), sigmoid-lowrank that of sigmoid.
DEFAULT_LEARNING_RATES = {"pmi": 1e-2, "random": 1e-2, "identity": 1e-2, "sigmoid": 3e-3,
                          "shuffled": 1e-2, "random-matched": 1e-2, "learned": 1e-2, "sigmoid-lowrank": 3e-3}
#: The :class:`TrainConfig` fields of the learning-rate schedule and the stopping rule (on a hold-out of the
#: training split; :mod:`workbench.learning.stopping`), given together by ``compare(stopping=…)`` and grids.
STOPPING_FIELDS = ("patience", "lr_patience", "lr_factor", "min_delta", "holdout_fraction")
#: The command line's flags of the schedule and the stopping rule (``workbench train`` and ``compare``), with their
#: argparse options: the :class:`TrainConfig` fields of the same names.
STOPPING_ARGUMENTS = (
    ("--patience", {"type": int, "default": 0, "metavar": "P", "help": "stop when a hold-out of the training split has "
                    "not improved for P epochs; --epochs is then the cap (default: 0, never)"}),
    ("--lr-patience", {"type": int, "default": 0, "metavar": "P",
                       "help": "divide the learning rate by 3 after P flat hold-out epochs (default: 0, a constant rate)"}),
    ("--holdout-fraction", {"type": float, "default": 0.15, "metavar": "F",
                            "help": "the share of the training split held out for both (default: 0.15)"}),
)
#: How a comparison trains its heads: each with its own trunk, or every head on the cached features of one
#: trunk trained once on images of its own (:mod:`workbench.learning.twostage`).
PROTOCOLS = ("end-to-end", "two-stage")


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
            setattr(self, name, _checks.integer(getattr(self, name), f"ModelConfig.{name}"))
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
        return _checks.from_dict(cls, data, "model settings")


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run.

    Parameters
    ----------
    head : str, default="pmi"
        One of :data:`HEADS`: ``"pmi"``, ``"sigmoid"``, ``"random"``, ``"identity"``, and the
        controls ``"shuffled"``, ``"random-matched"``, ``"learned"``, ``"sigmoid-lowrank"``
        (:mod:`workbench.method.targets`).
    epochs : int, default=10
        Total epochs (a resumed run trains up to this many).
    batch_size : int, default=64
    learning_rate : float, optional
        ``None`` uses :data:`DEFAULT_LEARNING_RATES` of the head.
    optimizer : {"rmsprop", "adam", "sgd"}, default="rmsprop"
    embedding_dim : int, optional
        ``k`` of the random head and of the bottleneck of the learned and
        sigmoid-lowrank heads (default: that of the embedding given to :func:`train`).
        Ignored by the other heads (pmi, shuffled and random-matched take it from the
        embedding).
    validation_fraction : float, default=0.1
        Share of the data set held out when :func:`train` splits it itself.
    split_random_state : int, default=0
        Seed of that split (kept apart from ``random_state`` so that runs with
        different seeds share one validation split).
    random_state : int, default=0
        Seeds weight initialisation, dropout, augmentation, batch order and the
        random head's label vectors.
    workers : int, default=2
        Threads preparing batches.
    map_k : int, default=100
        The ``k`` of the MAP@k recorded every epoch.
    precision_k : int, default=5
        The ``k`` of the P@k and R@k recorded every epoch.
    model : ModelConfig
        The trunk (``image_size``, ``width``, ``depth``, ``dropout``, ``augment`` …).
    sigmoid_bias : {"label_frequency", "zero"}, default="label_frequency"
        Where the sigmoid (and sigmoid-lowrank) head's output biases start: each label's log-odds in the
        training images, ``log(p / (1 − p))`` with ``p = (count + 0.5) / (N + 1)`` (the
        usual initialisation of a classifier over rare labels: the logits start at each
        label's base rate instead of at even odds), or 0 (every label at probability 0.5).
        One default everywhere (``workbench train``, ``compare``, grids, ``wb.train``): a
        baseline gets the same care as the method. The other heads have no such bias; for
        them it is recorded as ``"zero"``.
    patience : int, default=0
        The stopping rule: stop when the hold-out MAP@``map_k`` has not improved by more than
        ``min_delta`` for this many epochs (``epochs`` is then the cap, *max epochs*). 0: never
        stop early; every one of ``epochs`` is trained, as a run without a hold-out.
    lr_patience : int, default=0
        The schedule (reduce on plateau): multiply the learning rate by ``lr_factor`` when the
        hold-out MAP@``map_k`` has not improved for this many epochs (counted again after each
        reduction). 0: a constant rate.
    lr_factor : float, default=1/3
        What one reduction multiplies the rate by (one step of the tuning grid, ×1/3).
    min_delta : float, default=0.0
        An epoch improves when its hold-out MAP@``map_k`` exceeds the best so far by more than this.
    holdout_fraction : float, default=0.15
        With ``patience`` or ``lr_patience``: the share of the training split held out (split
        with seed ``split_random_state + 1``, the same images for every head and seed) and
        scored after every epoch through the same scoring path as validation; the run trains on
        the rest. The validation split is never used to stop or to schedule. Without either,
        no image is held out.
    """

    head: str = "pmi"
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float | None = None
    optimizer: str = "rmsprop"
    embedding_dim: int | None = None
    validation_fraction: float = 0.1
    split_random_state: int = 0
    random_state: int = 0
    workers: int = 2
    map_k: int = 100
    precision_k: int = 5
    model: ModelConfig = field(default_factory=ModelConfig)
    sigmoid_bias: str = "label_frequency"
    patience: int = 0
    lr_patience: int = 0
    lr_factor: float = 1 / 3
    min_delta: float = 0.0
    holdout_fraction: float = 0.15

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = ModelConfig.from_dict(self.model)
        _checks.choice(self.head, "head", HEADS)
        _checks.choice(self.sigmoid_bias, "sigmoid_bias", SIGMOID_BIASES)
        if self.head not in SIGMOID_HEADS:
            self.sigmoid_bias = "zero"  # no sigmoid output: recorded as such, so equal settings compare equal
        _checks.choice(self.optimizer, "optimizer", OPTIMIZERS)
        for name in ("epochs", "batch_size", "workers", "map_k", "precision_k"):
            setattr(self, name, _checks.integer(getattr(self, name), f"TrainConfig.{name}"))
        if self.embedding_dim is not None:
            self.embedding_dim = _checks.integer(self.embedding_dim, "TrainConfig.embedding_dim")
        if self.learning_rate is not None:
            self.learning_rate = _checks.number(self.learning_rate, "TrainConfig.learning_rate", positive=True)
        validation_fraction = _checks.number(self.validation_fraction, "TrainConfig.validation_fraction")
        if not 0.0 < validation_fraction < 1.0:
            raise ValueError(f"TrainConfig.validation_fraction must be between 0 and 1; got {self.validation_fraction!r}.")
        self.validation_fraction = validation_fraction
        for name in ("random_state", "split_random_state", "patience", "lr_patience"):
            setattr(self, name, _checks.integer(getattr(self, name), f"TrainConfig.{name}", minimum=0))
        lr_factor = _checks.number(self.lr_factor, "TrainConfig.lr_factor")
        if not 0.0 < lr_factor < 1.0:
            raise ValueError(f"TrainConfig.lr_factor must be between 0 and 1 (a reduction); got {self.lr_factor!r}.")
        self.lr_factor = lr_factor
        min_delta = _checks.number(self.min_delta, "TrainConfig.min_delta")
        if min_delta < 0.0:
            raise ValueError(f"TrainConfig.min_delta must be 0 or more; got {self.min_delta!r}.")
        self.min_delta = min_delta
        holdout_fraction = _checks.number(self.holdout_fraction, "TrainConfig.holdout_fraction")
        if not 0.0 < holdout_fraction < 1.0:
            raise ValueError(f"TrainConfig.holdout_fraction must be between 0 and 1; got {self.holdout_fraction!r}.")
        self.holdout_fraction = holdout_fraction

    @property
    def uses_holdout(self) -> bool:
        """Whether a hold-out of the training split is scored every epoch (the stopping rule or the schedule is on)."""
        return bool(self.patience or self.lr_patience)

    @property
    def resolved_learning_rate(self) -> float:
        """``learning_rate``, or the head's default."""
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LEARNING_RATES[self.head]

    def to_dict(self) -> dict:
        data = asdict(self)
        data["model"] = self.model.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        return _checks.from_dict(cls, data, "training settings")


@dataclass
class TrunkConfig:
    """The first stage of the two-stage protocol: one trunk, trained once (:mod:`workbench.learning.twostage`).

    Parameters
    ----------
    fraction : float, default=0.25
        The share of the training split the trunk is trained on; the heads never see those
        images (they train on the rest), and the validation split is never among them. Not used
        when ``images`` is set.
    images : int, default=0
        0: the trunk trains on ``fraction`` of the training split. A positive number: it trains on
        a separate data set of that many images, drawn apart from the comparison's images (for
        generated scenes: the same generator and seed, drawn on past the comparison's images),
        and the heads keep the whole training split.
    epochs : int, default=15
        The trunk's cap of epochs (its stopping rule, on a hold-out of its own images, ends it
        sooner).
    batch_size : int, default=64
    learning_rate : float, optional
        ``None``: the sigmoid head's default (the trunk is trained with the sigmoid head).
    """

    fraction: float = 0.25
    images: int = 0
    epochs: int = 15
    batch_size: int = 64
    learning_rate: float | None = None

    def __post_init__(self):
        fraction = _checks.number(self.fraction, "TrunkConfig.fraction")
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"TrunkConfig.fraction must be between 0 and 1 (a share of the training split); "
                             f"got {self.fraction!r}.")
        self.fraction = fraction
        self.images = _checks.integer(self.images, "TrunkConfig.images", minimum=0)
        self.epochs = _checks.integer(self.epochs, "TrunkConfig.epochs")
        self.batch_size = _checks.integer(self.batch_size, "TrunkConfig.batch_size")
        if self.learning_rate is not None:
            self.learning_rate = _checks.number(self.learning_rate, "TrunkConfig.learning_rate", positive=True)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrunkConfig":
        return _checks.from_dict(cls, data, "trunk settings")


def stopping_from_arguments(values: dict) -> dict | None:
    """The schedule and stopping settings (``compare(stopping=…)``) from parsed :data:`STOPPING_ARGUMENTS`; ``None``
    when both the rule and the schedule are off (then nothing is held out)."""
    if not (values.get("patience") or values.get("lr_patience")):
        return None
    return {"patience": values["patience"], "lr_patience": values["lr_patience"], "holdout_fraction": values["holdout_fraction"]}


def label_frequency_bias(label_counts, num_images: int):
    """Each label's log-odds in ``num_images`` images, ``log(p / (1 − p))`` with ``p = (count + 0.5) / (N + 1)``.

    Returns
    -------
    ndarray of shape (C,), dtype float32
    """
    import numpy as np

    probability = (np.asarray(label_counts, dtype=np.float64) + 0.5) / (int(num_images) + 1.0)
    return np.log(probability / (1.0 - probability)).astype(np.float32)


def parse_devices(text) -> int | str | None:
    """``--devices``: ``None``, a positive integer, or ``"all"``."""
    if text is None or text == "all":
        return text
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise ValueError(f"--devices takes a number of devices or 'all'; got {text!r}.") from None
    if value < 1:
        raise ValueError(f"--devices must be at least 1; got {value}.")
    return value
