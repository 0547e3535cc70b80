"""Train, resume and compare CNN heads; run directories and :class:`TrainedRun`.

A run directory (``RUN_DIR``) holds everything needed to use or continue a run:

``config.json``
    The :class:`TrainConfig` (learning rate resolved), the head, the vocabulary size,
    a fingerprint of the training/validation split, the Keras backend and device,
    and ``status`` (``"running"`` or ``"complete"``).
``vocabulary.csv``
    The ``C`` labels (every head, the sigmoid head included).
``embedding/``
    The :class:`~workbench.method.spectral.LabelEmbedding` the targets were built from
    (pmi, random and identity heads; rows in ``vocabulary.csv`` order). Absent for
    the sigmoid head.
``checkpoints/``
    ``epoch-NNNN.keras`` (the model with its optimizer state after epoch NNNN) and
    ``state.json`` (the last complete epoch and the history up to it), written
    after every epoch, model first, then ``state.json`` (the commit point).
``history.json``
    One record per epoch (see :class:`workbench.learning.metrics.EvaluationCallback`).
``model.keras``
    The final model, written when the last epoch is done.

Running :func:`train` again on the same ``RUN_DIR`` resumes from the last
checkpoint: a killed run loses at most the epoch in progress. Models are loaded in
Keras' safe mode; every custom object is registered (no ``Lambda`` layers).

Fair comparison: :func:`compare` uses one train/validation split for every head and
seed, computes the PMI embedding from the training split only, and trains every head
with the same trunk, epochs and batch size. The per-head learning rates in
:data:`DEFAULT_LEARNING_RATES` come from one sweep that gave every head the same
budget (see their comment and ``benchmarks/bench_compare.py --sweep``).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable, Sequence

import keras
import numpy as np

from workbench._io import atomic_path, atomic_write_json, read_json
from workbench.learning.comparison import comparison_table, summarize_comparison
from workbench.learning.feeding import ImageSource, LabelBatches
from workbench.data.labels import Vocabulary
from workbench.learning.metrics import label_scores as _label_scores
from workbench.learning.models import EMBEDDING_HEADS, HEADS, OPTIMIZERS, ModelConfig, build_model, compile_model

__all__ = [
    "DEFAULT_LEARNING_RATES",
    "TrainConfig",
    "TrainedRun",
    "train",
    "load_run",
    "compare",
    "summarize_comparison",
    "comparison_table",
    "describe_device",
    "label_vectors",
]

#: Learning rate of each head with RMSprop (batch 64, the default trunk). Chosen by one
#: sweep with the same budget for every head (``benchmarks/bench_compare.py --sweep``):
#: emoji scenes, 2000 images, 500 labels, missing 0.1 / spurious 0.05 label noise, one
#: split (15 % validation), 4 epochs, seed 0, every head at each rate; kept the rate
#: with the best final validation MAP@100. Results (pmi / sigmoid / random):
#: 3e-4: 0.084 / 0.035 / 0.103;  1e-3: 0.097 / 0.138 / 0.100;
#: 3e-3: 0.187 / 0.146 / 0.111;  1e-2: 0.198 / 0.145 / 0.120.
#: The identity head was not swept; it shares the rate of the other cosine heads.
DEFAULT_LEARNING_RATES = {"pmi": 1e-2, "random": 1e-2, "identity": 1e-2, "sigmoid": 3e-3}

_RUN_FORMAT = "workbench-run"
_RUN_FORMAT_VERSION = 1
#: Settings that may change between a run and its resumption.
_RESUMABLE_CHANGES = {"epochs", "workers", "verbose"}
#: Up to this many images, TrainedRun calls the model directly instead of predict().
_DIRECT_CALL_LIMIT = 32
#: Validation images kept in memory up to this many bytes; larger splits are streamed.
_VALIDATION_IN_MEMORY_BYTES = 512 * 1024 * 1024


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run.

    Parameters
    ----------
    head : {"pmi", "sigmoid", "random", "identity"}, default="pmi"
    epochs : int, default=10
        Total epochs (a resumed run trains up to this many).
    batch_size : int, default=64
    learning_rate : float, optional
        ``None`` uses :data:`DEFAULT_LEARNING_RATES` of the head.
    optimizer : {"rmsprop", "adam", "sgd"}, default="rmsprop"
    embedding_dim : int, optional
        ``k`` of the random head (default: that of the embedding given to
        :func:`train`). Ignored by the other heads (pmi takes it from the embedding).
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

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = ModelConfig.from_dict(self.model)
        if self.head not in HEADS:
            raise ValueError(f"Unknown head {self.head!r}; use one of {', '.join(HEADS)}.")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"Unknown optimizer {self.optimizer!r}; use one of {', '.join(OPTIMIZERS)}.")
        for name in ("epochs", "batch_size", "workers", "map_k", "precision_k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive integer; got {value!r}.")
            setattr(self, name, int(value))
        if self.embedding_dim is not None:
            if isinstance(self.embedding_dim, bool) or not isinstance(self.embedding_dim, (int, np.integer)) or self.embedding_dim < 1:
                raise ValueError(f"TrainConfig.embedding_dim must be a positive integer; got {self.embedding_dim!r}.")
            self.embedding_dim = int(self.embedding_dim)
        if self.learning_rate is not None:
            if isinstance(self.learning_rate, bool) or not isinstance(self.learning_rate, (int, float)) or not self.learning_rate > 0:
                raise ValueError(f"TrainConfig.learning_rate must be a positive number; got {self.learning_rate!r}.")
            self.learning_rate = float(self.learning_rate)
        if not 0.0 < float(self.validation_fraction) < 1.0:
            raise ValueError(f"TrainConfig.validation_fraction must be between 0 and 1; got {self.validation_fraction!r}.")
        self.validation_fraction = float(self.validation_fraction)
        self.random_state = int(self.random_state)
        self.split_random_state = int(self.split_random_state)

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
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"Unknown training settings {sorted(unknown)}; expected some of {sorted(known)}.")
        return cls(**data)


# ---------------------------------------------------------------------------------
# devices
# ---------------------------------------------------------------------------------
def describe_device() -> str:
    """Which Keras backend trains, and on which device (a GPU is used automatically when visible).

    Returns
    -------
    str
        For example ``"Keras 3.15.1, tensorflow backend, GPU: NVIDIA H200"`` or
        ``"Keras 3.15.1, jax backend, CPU (2 cores)"``.
    """
    backend = keras.backend.backend()
    gpus: list[str] = []
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            for device in tf.config.list_physical_devices("GPU"):
                details = tf.config.experimental.get_device_details(device)
                gpus.append(details.get("device_name", device.name))
        elif backend == "jax":
            import jax

            gpus = [device.device_kind for device in jax.devices() if device.platform in ("gpu", "cuda", "rocm", "tpu")]
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception as error:  # a broken driver must not stop training on the CPU
        return f"Keras {keras.__version__}, {backend} backend, CPU ({os.cpu_count()} cores; GPU query failed: {error})"
    if gpus:
        return f"Keras {keras.__version__}, {backend} backend, GPU: {', '.join(gpus)}"
    return f"Keras {keras.__version__}, {backend} backend, CPU ({os.cpu_count()} cores)"


# ---------------------------------------------------------------------------------
# label vectors of each head
# ---------------------------------------------------------------------------------
def _aligned_embedding(embedding, vocabulary: Vocabulary, *, label_counts=None):
    """``embedding`` with one row per label of ``vocabulary``, in its order.

    Labels of the embedding that the data set lacks are dropped. Data-set labels the
    embedding lacks get a zero vector (cosine score 0, no part in any target) when
    they never occur in the training images (``label_counts`` 0, as
    :func:`workbench.method.spectral.embed_labels` drops never-seen labels); a missing label
    that does occur raises ``ValueError``: the embedding belongs to other data.
    """
    from workbench.method.spectral import LabelEmbedding

    names = tuple(embedding.vocabulary.names)
    if names == tuple(vocabulary.names):
        return embedding
    present = np.array([name in embedding.vocabulary for name in vocabulary.names], dtype=bool)
    if not present.any():
        raise ValueError("The label embedding shares no label with the data set; compute the embedding from this data set.")
    counts = np.ones(len(vocabulary), dtype=np.int64) if label_counts is None else np.asarray(label_counts)
    occurring_missing = [name for name, ok, count in zip(vocabulary.names, present, counts) if not ok and count > 0]
    if occurring_missing:
        raise ValueError(
            f"The label embedding does not match the data set: it lacks {len(occurring_missing)} label(s) of the "
            f"training images (e.g. {occurring_missing[:3]}); compute the embedding from this data set."
        )
    rows = embedding.vocabulary.indices([name for name, ok in zip(vocabulary.names, present) if ok])
    vectors = np.zeros((len(vocabulary), embedding.embedding_dim), dtype=np.float32)
    vectors[present] = embedding.vectors[rows]
    aligned_counts = None
    if embedding.label_counts is not None:
        aligned_counts = np.zeros(len(vocabulary), dtype=np.int64)
        aligned_counts[present] = embedding.label_counts[rows]
    settings = dict(embedding.settings)
    settings["aligned_to_data_set"] = {
        "zero_vectors_for_unseen_labels": int((~present).sum()),
        "dropped_labels": len(names) - int(present.sum()),
    }
    return LabelEmbedding(
        vocabulary=vocabulary, vectors=vectors, eigenvalues=embedding.eigenvalues, label_counts=aligned_counts, settings=settings
    )


def label_vectors(
    head: str,
    *,
    vocabulary: Vocabulary,
    embedding=None,
    embedding_dim: int | None = None,
    random_state: int = 0,
    label_counts=None,
):
    """The label embedding a head is trained against.

    Parameters
    ----------
    head : {"pmi", "random", "identity", "sigmoid"}
    vocabulary : Vocabulary
        The data set's labels (rows of the result follow it).
    embedding : LabelEmbedding, optional
        Required for ``"pmi"``; for ``"random"`` it gives the default ``k``.
    embedding_dim : int, optional
        ``k`` of the random head.
    random_state : int, default=0
        Seed of the random head's vectors.
    label_counts : array-like of shape (C,), optional
        Training images per label; labels the pmi embedding lacks must have 0 here
        (they get a zero vector). ``None`` treats every label as occurring.

    Returns
    -------
    LabelEmbedding or None
        pmi: ``embedding`` with rows in ``vocabulary`` order (see above); random: i.i.d. standard
        Gaussian vectors ``(C, k)``; identity: the ``C × C`` identity; sigmoid: ``None``.
    """
    from workbench.method.spectral import LabelEmbedding

    num_labels = len(vocabulary)
    if head == "sigmoid":
        return None
    if head == "pmi":
        if embedding is None:
            raise ValueError("The pmi head needs a label embedding; pass --embedding DIR (written by 'workbench embed').")
        return _aligned_embedding(embedding, vocabulary, label_counts=label_counts)
    if head == "random":
        dim = embedding_dim if embedding_dim is not None else (embedding.embedding_dim if embedding is not None else None)
        if dim is None:
            raise ValueError("The random head needs an embedding dimension; give embedding_dim (--dim) or an embedding to match.")
        vectors = np.random.default_rng(random_state).standard_normal((num_labels, int(dim))).astype(np.float32)
        return LabelEmbedding(
            vocabulary=vocabulary,
            vectors=vectors,
            eigenvalues=np.zeros(int(dim)),
            settings={"kind": "random", "distribution": "standard normal", "random_state": int(random_state)},
        )
    if head == "identity":
        return LabelEmbedding(
            vocabulary=vocabulary,
            vectors=np.eye(num_labels, dtype=np.float32),
            eigenvalues=np.ones(num_labels),
            settings={"kind": "identity"},
        )
    raise ValueError(f"Unknown head {head!r}; use one of {', '.join(HEADS)}.")


# ---------------------------------------------------------------------------------
# the trained run
# ---------------------------------------------------------------------------------
@dataclass
class TrainedRun:
    """A trained model with everything needed to score images.

    Attributes
    ----------
    model : keras.Model
        Input ``(image_size, image_size, 3)`` uint8 images.
    head : str
        ``"pmi"``, ``"sigmoid"``, ``"random"`` or ``"identity"``.
    vocabulary : Vocabulary
        The ``C`` labels, in the column order of :meth:`label_scores`.
    embedding : LabelEmbedding or None
        The label vectors of an embedding head (rows in ``vocabulary`` order); ``None``
        for the sigmoid head.
    image_size : int
    config : TrainConfig
    history : list of dict
        One record per epoch.
    run_dir : pathlib.Path
    """

    model: object
    head: str
    vocabulary: Vocabulary
    embedding: object | None
    image_size: int
    config: TrainConfig
    history: list
    run_dir: Path

    def _check_images(self, images) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        size = self.image_size
        if images.ndim != 4 or images.shape[1:] != (size, size, 3) or images.dtype != np.uint8:
            raise ValueError(
                f"Expected uint8 images of shape (N, {size}, {size}, 3); got {images.dtype} {images.shape}. "
                f"Load them with workbench.data.images.load_image(source, size={size})."
            )
        return images

    def predict_points(self, images, *, batch_size: int = 256) -> np.ndarray:
        """The model's outputs.

        Parameters
        ----------
        images : ndarray of shape (N, image_size, image_size, 3) or (image_size, image_size, 3), uint8

        Returns
        -------
        ndarray of shape (N, k), dtype float32
            Points in the label-embedding space (embedding heads), or per-label
            probabilities ``(N, C)`` for the sigmoid head.
        """
        images = self._check_images(images)
        width = self.embedding.embedding_dim if self.embedding is not None else len(self.vocabulary)
        if len(images) == 0:
            return np.zeros((0, width), dtype=np.float32)
        if len(images) <= _DIRECT_CALL_LIMIT:
            # A direct call costs milliseconds; predict() sets up a data pipeline per call.
            outputs = keras.ops.convert_to_numpy(self.model(images, training=False))
        else:
            outputs = self.model.predict(images, batch_size=int(batch_size), verbose=0)
        return np.asarray(outputs, dtype=np.float32)

    def label_scores(self, images, *, batch_size: int = 256) -> np.ndarray:
        """A score for every label of every image.

        Parameters
        ----------
        images : ndarray of shape (N, image_size, image_size, 3) or (image_size, image_size, 3), uint8

        Returns
        -------
        ndarray of shape (N, C), dtype float32
            Cosine similarity of the predicted point to each label vector (in
            [-1, 1]; embedding heads), or sigmoid probabilities (sigmoid head).
            Columns follow ``vocabulary``.
        """
        points = self.predict_points(images, batch_size=batch_size)
        if self.embedding is None:
            return points
        return _label_scores(points, vectors=self.embedding.vectors)


def load_run(run_dir: str | Path) -> TrainedRun:
    """Load a run directory written by :func:`train` (the model in Keras' safe mode).

    Uses ``RUN_DIR/model.keras``, or the last checkpoint of a run that has not
    finished.
    """
    from workbench.method.spectral import LabelEmbedding

    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{run_dir}: no config.json; this is not a run directory written by 'workbench train'.")
    meta = read_json(config_path)
    if not isinstance(meta, dict) or meta.get("format") != _RUN_FORMAT:
        raise ValueError(f"{config_path}: not a workbench run description; train again with 'workbench train'.")
    config = TrainConfig.from_dict(meta["train"])
    model_path = run_dir / "model.keras"
    history_path = run_dir / "history.json"
    if not model_path.is_file():
        state = _read_state(run_dir)
        if state is None:
            raise FileNotFoundError(f"{run_dir}: neither model.keras nor a checkpoint; run 'workbench train --out {run_dir}' to train it.")
        model_path = run_dir / "checkpoints" / state["checkpoint"]
        history = state["history"]
    else:
        history = read_json(history_path) if history_path.is_file() else []
    model = keras.saving.load_model(model_path, safe_mode=True, compile=False)
    vocabulary = Vocabulary.read_csv(run_dir / "vocabulary.csv")
    embedding = None
    if config.head in EMBEDDING_HEADS:
        embedding = LabelEmbedding.load(run_dir / "embedding")
        if tuple(embedding.vocabulary.names) != tuple(vocabulary.names):
            raise ValueError(f"{run_dir}: embedding/ and vocabulary.csv list different labels; the run directory is damaged, train again.")
    return TrainedRun(
        model=model,
        head=config.head,
        vocabulary=vocabulary,
        embedding=embedding,
        image_size=config.model.image_size,
        config=config,
        history=list(history),
        run_dir=run_dir,
    )


# ---------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------
def _fingerprint(train_set, validation_set) -> str:
    """A short hash of both splits' image references and labels (detects a changed data set)."""
    digest = hashlib.sha256()
    for part in (train_set, validation_set):
        labels = part.labels
        digest.update(np.int64(labels.shape[0]).tobytes() + np.int64(labels.shape[1]).tobytes())
        digest.update(np.asarray(labels.indptr, dtype=np.int64).tobytes())
        digest.update(np.asarray(labels.indices, dtype=np.int64).tobytes())
        digest.update("\n".join(part.image_paths).encode("utf-8"))
        digest.update("\n".join(part.vocabulary.names).encode("utf-8"))
    return digest.hexdigest()[:16]


def _read_state(run_dir: Path) -> dict | None:
    path = run_dir / "checkpoints" / "state.json"
    if not path.is_file():
        return None
    state = read_json(path)
    if not isinstance(state, dict) or not (run_dir / "checkpoints" / str(state.get("checkpoint", ""))).is_file():
        raise ValueError(f"{path}: the checkpoint it names is missing; delete {run_dir / 'checkpoints'} to start over.")
    return state


def _save_model(model, path: Path) -> None:
    with atomic_path(path, suffix=".keras") as temporary:
        model.save(temporary)


class _Checkpointer(keras.callbacks.Callback):
    """After each epoch: the model (with optimizer state), then history and state (the commit point)."""

    def __init__(self, run_dir: Path, evaluation):
        super().__init__()
        self.run_dir = run_dir
        self.evaluation = evaluation

    def on_epoch_end(self, epoch, logs=None):
        folder = self.run_dir / "checkpoints"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{epoch + 1:04d}.keras"
        _save_model(self.model, folder / name)
        history = self.evaluation.history
        atomic_write_json(self.run_dir / "history.json", history)
        atomic_write_json(folder / "state.json", {"epoch": epoch + 1, "checkpoint": name, "history": history})
        for old in folder.glob("epoch-*.keras"):
            if old.name != name:
                old.unlink(missing_ok=True)


def _validation_inputs(source: ImageSource, *, batch_size: int, workers: int):
    """Validation images in memory when they fit the budget, else a streaming batch sequence."""
    size = source.image_size
    if source.in_memory or len(source) * size * size * 3 <= _VALIDATION_IN_MEMORY_BYTES:
        return source.load_all()
    return LabelBatches(source, batch_size=batch_size, shuffle=False, targets=False, workers=workers)


def _check_out_dir(run_dir: Path) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise NotADirectoryError(f"{run_dir} exists and is not a folder; give --out a folder path.")
    if run_dir.is_dir() and any(run_dir.iterdir()) and not (run_dir / "config.json").is_file():
        raise ValueError(f"{run_dir} is not empty and holds no run; give --out a new or empty folder.")


def train(
    dataset,
    *,
    config: TrainConfig,
    out_dir: str | Path,
    embedding=None,
    validation=None,
    callbacks: Sequence = (),
    verbose: int = 1,
    print_function: Callable[[str], None] = print,
) -> TrainedRun:
    """Train (or resume training) one head and write its run directory.

    Parameters
    ----------
    dataset : MultiLabelDataset
        Images (in memory or as files) with their labels. When ``validation`` is
        ``None`` it is split with ``config.validation_fraction`` and
        ``config.split_random_state``; otherwise it is the training set as it is.
    config : TrainConfig
    out_dir : path
        The run directory. If it holds an unfinished run with the same settings,
        training resumes after its last checkpoint (``config.epochs`` may grow);
        different settings raise ``ValueError``.
    embedding : LabelEmbedding, optional
        Required for the pmi head (same labels as ``dataset``); gives ``k`` to the
        random head when ``config.embedding_dim`` is ``None``.
    validation : MultiLabelDataset, optional
        The validation split (same vocabulary).
    callbacks : sequence of keras.callbacks.Callback
        Extra callbacks, called after the evaluation and the checkpoint of each epoch.
    verbose : int, default=1
        0 silent; 1 one line per epoch; 2 also Keras' progress bar.
    print_function : callable, default=print

    Returns
    -------
    TrainedRun
    """
    run_dir = Path(out_dir)
    _check_out_dir(run_dir)
    if validation is None:
        train_set, validation_set = dataset.split(
            validation_fraction=config.validation_fraction, random_state=config.split_random_state
        )
    else:
        train_set, validation_set = dataset, validation
        if tuple(validation_set.vocabulary.names) != tuple(train_set.vocabulary.names):
            raise ValueError("The validation set has a different vocabulary from the training set; split one data set.")
    vocabulary = train_set.vocabulary
    head_embedding = label_vectors(
        config.head,
        vocabulary=vocabulary,
        embedding=embedding,
        embedding_dim=config.embedding_dim,
        random_state=config.random_state,
        label_counts=np.diff(train_set.labels.tocsc().indptr),
    )
    vectors = None if head_embedding is None else head_embedding.vectors
    output_dim = len(vocabulary) if vectors is None else vectors.shape[1]
    meta = {
        "format": _RUN_FORMAT,
        "format_version": _RUN_FORMAT_VERSION,
        "head": config.head,
        "train": config.to_dict(),
        "learning_rate": config.resolved_learning_rate,
        "output_dim": int(output_dim),
        "num_labels": len(vocabulary),
        "data": {
            "name": dataset.name,
            "num_train": len(train_set),
            "num_validation": len(validation_set),
            "fingerprint": _fingerprint(train_set, validation_set),
        },
        "embedding_settings": None if head_embedding is None else head_embedding.settings,
        "backend": keras.backend.backend(),
        "device": describe_device(),
    }

    # -- resume? ---------------------------------------------------------------------
    state = _read_state(run_dir) if run_dir.is_dir() else None
    if (run_dir / "config.json").is_file():
        previous = read_json(run_dir / "config.json")
        _check_resumable(previous, meta, run_dir)
    if state is not None and config.head in EMBEDDING_HEADS and (run_dir / "embedding").is_dir():
        from workbench.method.spectral import LabelEmbedding

        saved = LabelEmbedding.load(run_dir / "embedding")
        if saved.vectors.shape != head_embedding.vectors.shape or not np.allclose(saved.vectors, head_embedding.vectors, atol=1e-6):
            raise ValueError(f"{run_dir} was trained against a different label embedding; give a new --out folder.")
    run_dir.mkdir(parents=True, exist_ok=True)
    history: list = []
    initial_epoch = 0
    if state is not None:
        model = keras.saving.load_model(run_dir / "checkpoints" / state["checkpoint"], safe_mode=True)
        history = list(state["history"])
        initial_epoch = int(state["epoch"])
        if verbose:
            print_function(f"Resuming {run_dir} after epoch {initial_epoch} of {config.epochs}.")
    else:
        model = build_model(config.model, head=config.head, output_dim=output_dim, random_state=config.random_state)
        compile_model(model, head=config.head, optimizer=config.optimizer, learning_rate=config.resolved_learning_rate)
    vocabulary.write_csv(run_dir / "vocabulary.csv")
    if head_embedding is not None:
        head_embedding.save(run_dir / "embedding")
    atomic_write_json(run_dir / "config.json", {**meta, "status": "running", "epochs_completed": initial_epoch})

    # -- fit -------------------------------------------------------------------------
    if initial_epoch < config.epochs:
        source = ImageSource(train_set, image_size=config.model.image_size)
        batches = LabelBatches(
            source,
            train_set.labels,
            vectors=vectors,
            batch_size=config.batch_size,
            shuffle=True,
            random_state=config.random_state,
            start_epoch=initial_epoch,
            workers=config.workers,
        )
        # no decode cache: validation is loaded whole once when it fits its budget, and a split too
        # large for that budget is streamed rather than held in memory a second way
        validation_source = ImageSource(validation_set, image_size=config.model.image_size, cache_bytes=0)
        from workbench.learning.metrics import EvaluationCallback

        evaluation = EvaluationCallback(
            inputs=_validation_inputs(validation_source, batch_size=config.batch_size, workers=config.workers),
            labels=validation_set.labels,
            vectors=vectors,
            batch_size=max(config.batch_size, 128),
            map_k=config.map_k,
            precision_k=config.precision_k,
            history=history,
            verbose=verbose,
            print_function=print_function,
        )
        if verbose and initial_epoch == 0:
            print_function(
                f"Training the {config.head} head on {len(train_set)} images ({len(validation_set)} for validation, "
                f"{len(vocabulary)} labels, output {output_dim}) for {config.epochs} epochs; {meta['device']}."
            )
        model.fit(
            batches,
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            callbacks=[evaluation, _Checkpointer(run_dir, evaluation), *callbacks],
            shuffle=False,
            verbose=1 if verbose >= 2 else 0,
        )
        history = evaluation.history
    elif verbose:
        print_function(f"{run_dir} already has {initial_epoch} epoch(s); nothing to train.")

    _save_model(model, run_dir / "model.keras")
    atomic_write_json(run_dir / "history.json", history)
    atomic_write_json(run_dir / "config.json", {**meta, "status": "complete", "epochs_completed": max(initial_epoch, len(history))})
    return TrainedRun(
        model=model,
        head=config.head,
        vocabulary=vocabulary,
        embedding=head_embedding,
        image_size=config.model.image_size,
        config=config,
        history=list(history),
        run_dir=run_dir,
    )


def _check_resumable(previous: dict, current: dict, run_dir: Path) -> None:
    if not isinstance(previous, dict) or previous.get("format") != _RUN_FORMAT:
        raise ValueError(f"{run_dir / 'config.json'} is not a workbench run; give --out a new or empty folder.")
    before = {k: v for k, v in previous.get("train", {}).items() if k not in _RESUMABLE_CHANGES}
    after = {k: v for k, v in current["train"].items() if k not in _RESUMABLE_CHANGES}
    changed = sorted(key for key in set(before) | set(after) if before.get(key) != after.get(key))
    if previous.get("data", {}).get("fingerprint") != current["data"]["fingerprint"]:
        changed.append("data")
    if changed:
        raise ValueError(
            f"{run_dir} holds a run with different settings ({', '.join(changed)}); "
            "give --out a new folder, or delete it to start over."
        )


# ---------------------------------------------------------------------------------
# comparison of heads
# ---------------------------------------------------------------------------------
def compare(
    dataset,
    *,
    out_dir: str | Path,
    heads: Sequence[str] = ("pmi", "sigmoid", "random"),
    embedding_dim: int = 64,
    epochs: int = 10,
    seeds: Sequence[int] = (0, 1, 2),
    batch_size: int = 64,
    model: ModelConfig | None = None,
    learning_rates: dict | None = None,
    validation_fraction: float = 0.1,
    split_random_state: int = 0,
    embed_options: dict | None = None,
    workers: int = 2,
    verbose: int = 1,
    print_function: Callable[[str], None] = print,
) -> dict:
    """Train every head with every seed on one split and write ``DIR/results.json``.

    One train/validation split (``split_random_state``) serves every run. The PMI
    embedding is computed from the training split only
    (:func:`workbench.method.cooccurrence.count_cooccurrence`, then
    :func:`workbench.method.spectral.embed_labels` with ``dim=embedding_dim`` and
    ``embed_options``) and saved in ``DIR/embedding``. Every head uses the same trunk
    (``model``), epochs and batch size; learning rates default to
    :data:`DEFAULT_LEARNING_RATES`. Runs go to ``DIR/runs/<head>-seed<seed>`` and
    resume when ``compare`` is run again.

    Parameters
    ----------
    dataset : MultiLabelDataset
    out_dir : path
    heads : sequence of str, default=("pmi", "sigmoid", "random")
    embedding_dim : int, default=64
        ``k`` of the pmi and random heads.
    epochs : int, default=10
    seeds : sequence of int, default=(0, 1, 2)
        The ``random_state`` of each run (initialisation, batch order, random vectors).
    batch_size : int, default=64
    model : ModelConfig, optional
    learning_rates : dict, optional
        Per-head overrides of :data:`DEFAULT_LEARNING_RATES`.
    validation_fraction : float, default=0.1
    split_random_state : int, default=0
    embed_options : dict, optional
        Extra keyword arguments of ``embed_labels`` (PMI policy, solver …).

    Returns
    -------
    dict
        ``{"config": {...}, "runs": [{"head", "seed", "history": [{"epoch",
        "map_at_100", "macro_ap", "seconds"}, …]}, …]}``, as written to
        ``DIR/results.json``.
    """
    heads = [str(head) for head in heads]
    if not heads:
        raise ValueError("No heads to compare; give at least one of pmi, sigmoid, random, identity.")
    for head in heads:
        if head not in HEADS:
            raise ValueError(f"Unknown head {head!r}; use some of {', '.join(HEADS)}.")
    if len(set(heads)) != len(heads):
        raise ValueError(f"Heads {heads} repeat a head; list each head once.")
    seeds = [int(seed) for seed in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"Seeds {seeds} must be a non-empty list of distinct integers.")
    model = model or ModelConfig()
    rates = {head: DEFAULT_LEARNING_RATES[head] for head in heads}
    for head, rate in (learning_rates or {}).items():
        if head not in HEADS:
            raise ValueError(f"Learning rate given for unknown head {head!r}; use one of {', '.join(HEADS)}.")
        rates[head] = float(rate)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"{out_dir} exists and is not a folder; give --out a folder path.")
    out_dir.mkdir(parents=True, exist_ok=True)
    train_set, validation_set = dataset.split(validation_fraction=validation_fraction, random_state=split_random_state)

    embedding = None
    if "pmi" in heads:
        from workbench.method.cooccurrence import count_cooccurrence
        from workbench.method.spectral import embed_labels

        counts = count_cooccurrence(train_set.labels, train_set.vocabulary)
        embedding = embed_labels(counts, dim=int(embedding_dim), **(embed_options or {}))
        embedding.save(out_dir / "embedding")

    config = {
        "data": dataset.name,
        "num_images": len(dataset),
        "num_train": len(train_set),
        "num_validation": len(validation_set),
        "num_labels": len(dataset.vocabulary),
        "heads": heads,
        "seeds": seeds,
        "epochs": int(epochs),
        "batch_size": int(batch_size),
        "embedding_dim": int(embedding_dim),
        "learning_rates": rates,
        "optimizer": "rmsprop",
        "model": model.to_dict(),
        "validation_fraction": float(validation_fraction),
        "split_random_state": int(split_random_state),
        "embed_options": dict(embed_options or {}),
        "embedding_from": "training split only",
        "device": describe_device(),
    }
    runs = []
    for seed in seeds:
        for head in heads:
            if verbose:
                print_function(f"== {head} head, seed {seed} ==")
            run_config = TrainConfig(
                head=head,
                epochs=epochs,
                batch_size=batch_size,
                learning_rate=rates[head],
                embedding_dim=int(embedding_dim) if head == "random" else None,
                validation_fraction=validation_fraction,
                split_random_state=split_random_state,
                random_state=seed,
                workers=workers,
                model=replace(model),
            )
            run = train(
                train_set,
                validation=validation_set,
                config=run_config,
                out_dir=out_dir / "runs" / f"{head}-seed{seed}",
                embedding=embedding if head == "pmi" else None,
                verbose=verbose,
                print_function=print_function,
            )
            history = [
                {"epoch": record["epoch"], "map_at_100": _finite(record.get("map_at_100")),
                 "macro_ap": _finite(record.get("macro_ap")), "seconds": record["seconds"]}
                for record in run.history
            ]
            runs.append({"head": head, "seed": seed, "history": history})
            results = {"config": config, "runs": runs}
            atomic_write_json(out_dir / "results.json", results)
    return {"config": config, "runs": runs}


def _finite(value):
    """JSON has no NaN: undefined metrics become ``None``."""
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None
