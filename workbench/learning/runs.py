"""The run folder and :class:`TrainedRun`: a trained model with everything needed to score images.

A run directory (``RUN_DIR``) holds everything needed to use or continue a run:

``config.json``
    The :class:`TrainConfig` (learning rate resolved), the head, the vocabulary size,
    a fingerprint of the training/validation split, image files left out
    (``data.skipped_images``) or skipped when they failed to decode
    (``data.failed_images``), the Keras backend and device, and ``status``
    (``"running"`` or ``"complete"``).
``vocabulary.csv``
    The ``C`` labels (every head, the sigmoid head included).
``embedding/``
    The :class:`~workbench.method.embedding.LabelEmbedding` the targets were built from
    (pmi, random, identity, shuffled and random-matched heads; rows in ``vocabulary.csv``
    order). Absent for the heads without label vectors (sigmoid, learned, sigmoid-lowrank).
``checkpoints/``
    ``epoch-NNNN.keras`` (the model with its optimizer state after epoch NNNN) and
    ``state.json`` (the last complete epoch and the history up to it), written
    after every epoch, model first, then ``state.json`` (the commit point).
``history.json``
    One record per epoch (see :class:`workbench.learning.callbacks.EvaluationCallback`).
``image_ap.npz``
    ``image_ap``, shape (epochs, validation images): every validation image's AP@k after
    each epoch (written before ``state.json``; intervals over images are drawn from it).
``model.keras``
    The final model, written when the last epoch is done.
``manifest.json``
    The SHA-256 of ``vocabulary.csv``, ``embedding/`` and ``model.keras``, written with
    the final model; :func:`load_run` checks them, so an embedding replaced after
    training is refused instead of silently changing the run's predictions.
``calibration.json``
    Written by ``workbench calibrate`` (:mod:`workbench.evaluation.calibration`).

:func:`load_run` reads a run folder (the model in Keras' safe mode; every custom
object is registered, no ``Lambda`` layers). :meth:`TrainedRun.label_scores` is the
one way a trained model scores images: the model's outputs through the run's
:class:`~workbench.method.decoding.LabelScorer`, the scorer the per-epoch evaluation
uses too.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from workbench._io import atomic_path, read_json
from workbench.data.labels import Vocabulary
from workbench.learning.config import EMBEDDING_HEADS, TrainConfig
from workbench.method.decoding import LabelScorer
from workbench.method.embedding import LabelEmbedding

__all__ = ["TrainedRun", "load_run", "read_state", "save_model", "check_out_dir", "run_fingerprint", "write_manifest",
           "verify_manifest", "RUN_FORMAT"]

#: ``config.json``'s ``format`` and ``format_version``.
RUN_FORMAT = "workbench-run"
RUN_FORMAT_VERSION = 1
#: Up to this many images, a run scores with ``model.predict_on_batch`` on a batch padded to a power
#: of two (no data pipeline; at most seven traced shapes).
_SMALL_BATCH = 64


def run_fingerprint(train_set, validation_set) -> str:
    """A short hash of both splits (:meth:`MultiLabelDataset.fingerprint`): a changed data set is detected."""
    digest = hashlib.sha256(f"{train_set.fingerprint()}|{validation_set.fingerprint()}".encode("ascii"))
    return digest.hexdigest()[:16]


@dataclass
class TrainedRun:
    """A trained model with everything needed to score images.

    Attributes
    ----------
    model : keras.Model
        Input ``(image_size, image_size, 3)`` uint8 images.
    head : str
        One of :data:`~workbench.learning.config.HEADS`.
    vocabulary : Vocabulary
        The ``C`` labels, in the column order of :meth:`label_scores`.
    embedding : LabelEmbedding or None
        The label vectors of an embedding head (rows in ``vocabulary`` order); ``None``
        for the heads without label vectors (sigmoid, learned, sigmoid-lowrank).
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

    @functools.cached_property
    def scorer(self) -> LabelScorer:
        """The run's :class:`~workbench.method.decoding.LabelScorer` (label vectors normalised once)."""
        return LabelScorer(None if self.embedding is None else self.embedding.vectors)

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

    def splits(self, dataset):
        """``(train_set, validation_set)``: ``dataset`` split as this run split it, checked against the run.

        Raises ``ValueError`` when ``dataset`` is not the one the run was trained on (its
        recorded split fingerprint differs).
        """
        train_set, validation = dataset.split(validation_fraction=self.config.validation_fraction,
                                              random_state=self.config.split_random_state)
        recorded = read_json(self.run_dir / "config.json").get("data", {}).get("fingerprint")
        if recorded != run_fingerprint(train_set, validation):
            raise ValueError(f"{dataset.name} is not the data set {self.run_dir} was trained on (its train/validation "
                             "split differs); give --data the run's own data set.")
        return train_set, validation

    def images_of(self, dataset) -> np.ndarray:
        """Every image of ``dataset`` decoded at the run's size, ``(N, image_size, image_size, 3)`` uint8."""
        from workbench.learning.feeding import ImageSource

        return ImageSource(dataset, image_size=self.image_size, cache_bytes=0).load_all()

    def save(self, path) -> "TrainedRun":
        """Copy the run folder to ``path`` (a new or empty folder) and return the run read from there.

        The copy is written beside ``path`` and renamed into place, so ``path`` never holds
        half a run. A run trained without ``out_dir`` lives in a temporary folder that is
        removed when the process ends: save it to keep it.
        """
        target = Path(path)
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise ValueError(f"{target} exists and is not an empty folder; give a new folder to save the run in.")
        if target.resolve() == self.run_dir.resolve():
            return self
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            shutil.copytree(self.run_dir, staging, dirs_exist_ok=True)
            if target.exists():
                target.rmdir()
            staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return dataclasses.replace(self, run_dir=target)

    def predict_points(self, images, *, batch_size: int = 256) -> np.ndarray:
        """The model's outputs.

        Parameters
        ----------
        images : ndarray of shape (N, image_size, image_size, 3) or (image_size, image_size, 3), uint8

        Returns
        -------
        ndarray of shape (N, k), dtype float32
            Points in the label-embedding space (embedding heads), or per-label
            outputs ``(N, C)``: probabilities (sigmoid, sigmoid-lowrank), the learned label
            map's scores (learned).
        """
        images = self._check_images(images)
        width = self.embedding.embedding_dim if self.embedding is not None else len(self.vocabulary)
        if len(images) == 0:
            return np.zeros((0, width), dtype=np.float32)
        if len(images) <= _SMALL_BATCH:
            # One compiled step on a batch padded to the next power of two: milliseconds, and at most
            # seven traced shapes (a batch of every new size would be traced again, and TensorFlow
            # warns about it; predict() sets up a data pipeline per call).
            size = 1 << (len(images) - 1).bit_length()
            padded = np.zeros((size, *images.shape[1:]), dtype=images.dtype)
            padded[: len(images)] = images
            outputs = np.asarray(self.model.predict_on_batch(padded))[: len(images)]
        else:
            outputs = self.model.predict(images, batch_size=int(batch_size), verbose=0)
        return np.asarray(keras.ops.convert_to_numpy(outputs), dtype=np.float32)

    def label_scores(self, images, *, decoder: str = "cosine", batch_size: int = 256) -> np.ndarray:
        """A score for every label of every image.

        Parameters
        ----------
        images : ndarray of shape (N, image_size, image_size, 3) or (image_size, image_size, 3), uint8
        decoder : {"cosine", "greedy", "nnls"}, default="cosine"
            How an embedding head's point becomes label scores
            (:func:`workbench.method.decoders.decoder_scores`).

        Returns
        -------
        ndarray of shape (N, C), dtype float32
            Cosine similarity of the predicted point to each label vector (in
            [-1, 1]; embedding heads), a greedy or NNLS decoder's relative weights,
            sigmoid probabilities (sigmoid, sigmoid-lowrank), or the ``C`` outputs of the
            learned head's label map. Columns follow ``vocabulary``.
        """
        return self.scores_of_outputs(self.predict_points(images, batch_size=batch_size), decoder=decoder)

    def scores_of_outputs(self, outputs, *, decoder: str = "cosine") -> np.ndarray:
        """Label scores of model outputs already computed (as :meth:`label_scores`)."""
        if decoder == "cosine":
            return self.scorer(outputs)
        if self.embedding is None:
            raise ValueError(f"The {decoder} decoder needs label vectors; the {self.head} head has none (use decoder='cosine').")
        from workbench.method.decoders import decoder_scores

        return decoder_scores(outputs, self.embedding.vectors, decoder=decoder)


def load_run(run_dir: str | Path) -> TrainedRun:
    """Load a run directory written by :func:`train` (the model in Keras' safe mode).

    Uses ``RUN_DIR/model.keras``, or the last checkpoint of a run that has not
    finished.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{run_dir}: no config.json; this is not a run directory written by 'workbench train'.")
    meta = read_json(config_path)
    if not isinstance(meta, dict) or meta.get("format") != RUN_FORMAT:
        raise ValueError(f"{config_path}: not a workbench run description; train again with 'workbench train'.")
    verify_manifest(run_dir)
    try:
        config = TrainConfig.from_dict(meta["train"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{config_path}: the run folder is damaged (its training settings: {_reason(error)}); train again.") from None
    model_path = run_dir / "model.keras"
    history_path = run_dir / "history.json"
    if not model_path.is_file():
        state = read_state(run_dir)
        if state is None:
            raise FileNotFoundError(f"{run_dir}: neither model.keras nor a checkpoint; run 'workbench train --out {run_dir}' to train it.")
        model_path = run_dir / "checkpoints" / state["checkpoint"]
        history = state["history"]
    else:
        history = read_json(history_path) if history_path.is_file() else []
    try:
        model = keras.saving.load_model(model_path, safe_mode=True, compile=False)
    except Exception as error:  # a truncated or crafted archive raises many types inside Keras and h5py
        raise ValueError(f"{model_path}: the run folder is damaged (the model cannot be loaded: {_reason(error)}); "
                         "train again.") from None
    try:
        vocabulary = Vocabulary.read_csv(run_dir / "vocabulary.csv")
    except (OSError, ValueError) as error:
        raise ValueError(f"{run_dir / 'vocabulary.csv'}: the run folder is damaged ({_reason(error)}); train again.") from None
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


#: The files of a run folder whose checksums ``manifest.json`` records (those that exist).
MANIFEST_FILES = ("vocabulary.csv", "embedding/embedding.json", "embedding/embedding.npz", "model.keras")


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(run_dir: str | Path) -> dict:
    """Record the SHA-256 of the run's files (:data:`MANIFEST_FILES` that exist) in ``RUN_DIR/manifest.json``."""
    from workbench._io import atomic_write_json

    run_dir = Path(run_dir)
    manifest = {name: _sha256_of(run_dir / name) for name in MANIFEST_FILES if (run_dir / name).is_file()}
    atomic_write_json(run_dir / "manifest.json", {"sha256": manifest})
    return manifest


def verify_manifest(run_dir: str | Path) -> None:
    """A one-line ``ValueError`` when a file of the run was replaced or changed after training (runs without a manifest pass)."""
    run_dir = Path(run_dir)
    path = run_dir / "manifest.json"
    if not path.is_file():
        return
    recorded = read_json(path)
    checksums = recorded.get("sha256") if isinstance(recorded, dict) else None
    if not isinstance(checksums, dict):
        raise ValueError(f"{path}: the run folder is damaged (its manifest is not one 'workbench train' wrote); train again.")
    for name, checksum in checksums.items():
        if name not in MANIFEST_FILES:
            continue
        file = run_dir / name
        if not file.is_file():
            raise ValueError(f"{file}: missing; the run folder is damaged, restore it or train again.")
        if _sha256_of(file) != checksum:
            raise ValueError(f"{file} was replaced or changed after training (its checksum differs from the run's "
                             "manifest); restore it, or train again.")


def _reason(error: BaseException) -> str:
    """The first line of an exception's message (its type name when empty), without a final full stop."""
    text = str(error.args[0] if isinstance(error, KeyError) and error.args else error).strip()
    return (text.splitlines()[0] if text else type(error).__name__).rstrip(".")


def read_state(run_dir: Path) -> dict | None:
    path = run_dir / "checkpoints" / "state.json"
    if not path.is_file():
        return None
    state = read_json(path)
    if not isinstance(state, dict) or not (run_dir / "checkpoints" / str(state.get("checkpoint", ""))).is_file():
        raise ValueError(f"{path}: the checkpoint it names is missing; delete {run_dir / 'checkpoints'} to start over.")
    return state


def save_model(model, path: Path) -> None:
    with atomic_path(path, suffix=".keras") as temporary:
        model.save(temporary)


def temporary_run_dir(*, prefix: str = "workbench-run-") -> Path:
    """A new, empty folder in the system's temporary directory, removed when the process ends."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def check_out_dir(run_dir: Path) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise NotADirectoryError(f"{run_dir} exists and is not a folder; give --out a folder path.")
    # temporaries (dot files) of a writer stopped by a kill or a full disk do not make the folder someone else's
    if run_dir.is_dir() and any(not entry.name.startswith(".") for entry in run_dir.iterdir()) \
            and not (run_dir / "config.json").is_file():
        raise ValueError(f"{run_dir} is not empty and holds no run; give --out a new or empty folder.")
