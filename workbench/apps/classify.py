"""Classifying image files and uploads with a trained run: read, hash, decode, score, rank.

:class:`Classifier` runs the whole path for image files or uploaded bytes: read
(with a size limit), SHA-256, decode and resize (:func:`workbench.data.images.load_image`),
score through the run's one scoring path (``run.label_scores``, see
:class:`workbench.method.decoding.LabelScorer`) and rank
(:func:`workbench.method.decoding.rank_labels`, the top ``N`` labels or every label
above a threshold). A file that cannot be classified gives a result with an
``error`` sentence; the other images of the batch are classified.

Keras is never imported here: the model lives in the run object passed in.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from workbench import _checks
from workbench.data.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from workbench.method.decoding import rank_labels, setting_name

__all__ = ["ClassificationResult", "Classifier", "DEFAULT_MAX_BYTES", "DEFAULT_MAX_PIXELS"]


# ---------------------------------------------------------------------------------
# classifying images
# ---------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ClassificationResult:
    """The ranked labels of one image, or why it could not be classified.

    Attributes
    ----------
    image : str
        The path or upload name the image came from (for display only).
    sha256 : str or None
        Hex SHA-256 of the file's bytes (None when the file could not be read).
    labels : tuple of (str, float)
        Label names with their score (cosine similarity, or probability for a sigmoid
        head), best first; empty when ``error`` is set.
    error : str or None
        One sentence saying why the image was not classified.
    setting : str or None
        ``"top:N"`` and/or ``"threshold:T"`` (see :func:`setting_name`).
    pixels : ndarray of shape (size, size, 3), dtype uint8, or None
        The decoded, resized image the model saw (for previews).
    """

    image: str
    sha256: str | None = None
    labels: tuple[tuple[str, float], ...] = ()
    error: str | None = None
    setting: str | None = None
    pixels: np.ndarray | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """True when the image was classified."""
        return self.error is None

    def to_dict(self) -> dict:
        """JSON form: ``{"image", "sha256", "labels": [{"label", "similarity"}, …]}`` or ``{"image", "error"}``."""
        if self.error is not None:
            out = {"image": self.image, "error": self.error}
            if self.sha256 is not None:
                out["sha256"] = self.sha256
            return out
        return {
            "image": self.image,
            "sha256": self.sha256,
            "labels": [{"label": name, "similarity": float(score)} for name, score in self.labels],
        }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _describe_size(num_bytes: int) -> str:
    return f"{num_bytes / 2**20:.1f} MB" if num_bytes >= 2**20 else f"{num_bytes / 1024:.0f} kB"


def _sentence(error: BaseException) -> str:
    """A one-line message from an exception (its first line; the type name when empty)."""
    text = str(error.args[0] if isinstance(error, KeyError) and error.args else error).strip()
    text = text.splitlines()[0] if text else type(error).__name__
    return text if text.endswith((".", "?", "!")) else text + "."


class Classifier:
    """Classify image files or uploaded bytes with a trained run.

    Parameters
    ----------
    run : TrainedRun-like
        Needs ``vocabulary`` (a :class:`~workbench.data.labels.Vocabulary`), ``image_size``
        (int) and ``label_scores(images)`` mapping ``(N, size, size, 3)`` uint8 images
        to ``(N, C)`` float32 scores (see :func:`workbench.learning.runs.load_run`).
    load_image : callable, optional
        ``load_image(source: path | bytes, *, size, max_bytes, max_pixels) -> (size,
        size, 3) uint8``, raising ``ValueError`` for anything that is not a usable
        image. Defaults to :func:`workbench.data.images.load_image`.
    max_bytes : int
        Files above this size are refused without being read.
    max_pixels : int
        Images declaring more pixels are refused before decoding (decompression bombs).
    batch_size : int
        Images per call of ``run.label_scores``.
    """

    def __init__(
        self,
        run,
        *,
        load_image: Callable | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        batch_size: int = 64,
    ):
        self.run = run
        self.max_bytes = _checks.integer(max_bytes, "max_bytes")
        self.max_pixels = _checks.integer(max_pixels, "max_pixels")
        self.batch_size = _checks.integer(batch_size, "batch_size")
        self._load_image = load_image

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, **options) -> "Classifier":
        """Load a run directory written by ``workbench train`` (imports Keras)."""
        from workbench.learning.runs import load_run

        return cls(load_run(run_dir), **options)

    @property
    def label_names(self) -> tuple[str, ...]:
        """The ``C`` label names, in score-column order."""
        return tuple(self.run.vocabulary.names)

    # -- one step each ----------------------------------------------------------------
    def read(self, source) -> bytes:
        """The bytes of ``source`` (a path, or bytes-like returned as ``bytes``); ``ValueError`` when unreadable."""
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            if len(data) > self.max_bytes:
                raise ValueError(
                    f"The upload is {_describe_size(len(data))}, above the {_describe_size(self.max_bytes)} limit; "
                    "use a smaller image."
                )
            return data
        path = Path(os.fspath(source))
        try:
            size = path.stat().st_size
            if path.is_dir():
                raise ValueError("This is a folder, not an image file.")
            if size > self.max_bytes:
                raise ValueError(
                    f"The file is {_describe_size(size)}, above the {_describe_size(self.max_bytes)} limit; "
                    "use a smaller image."
                )
            with path.open("rb") as handle:
                data = handle.read(self.max_bytes + 1)
        except FileNotFoundError:
            raise ValueError("No such file.") from None
        except PermissionError:
            raise ValueError("The file cannot be read (permission denied).") from None
        except OSError as error:
            raise ValueError(f"The file cannot be read ({error.strerror or type(error).__name__}).") from None
        if len(data) > self.max_bytes:  # grew while reading
            raise ValueError(f"The file is above the {_describe_size(self.max_bytes)} limit; use a smaller image.")
        return data

    def decode(self, source) -> np.ndarray:
        """Decode and resize an image file or image bytes to the run's ``(size, size, 3)`` uint8 input."""
        load = self._load_image
        if load is None:
            from workbench.data.images import load_image as load
        image = load(source, size=int(self.run.image_size), max_bytes=self.max_bytes, max_pixels=self.max_pixels)
        image = np.asarray(image)
        size = int(self.run.image_size)
        if image.shape != (size, size, 3) or image.dtype != np.uint8:
            raise ValueError(f"The image decoded to {image.dtype} {image.shape}, not uint8 ({size}, {size}, 3).")
        return image

    def scores(self, images: np.ndarray) -> np.ndarray:
        """``(N, C)`` float32 scores of ``(N, size, size, 3)`` uint8 images, ``batch_size`` at a time.

        The run's own ``label_scores`` (for a :class:`~workbench.learning.runs.TrainedRun`:
        the model's outputs through its :class:`~workbench.method.decoding.LabelScorer`),
        so classification scores exactly as evaluation does.
        """
        images = np.asarray(images)
        if len(images) == 0:
            return np.zeros((0, len(self.label_names)), dtype=np.float32)
        parts = [np.asarray(self.run.label_scores(images[start : start + self.batch_size]), dtype=np.float32)
                 for start in range(0, len(images), self.batch_size)]
        return np.concatenate(parts, axis=0)

    # -- the whole path ---------------------------------------------------------------
    def classify(
        self,
        sources: Iterable,
        *,
        top: int | None = None,
        threshold: float | None = None,
        names: Sequence[str] | None = None,
        keep_pixels: bool = True,
    ) -> list[ClassificationResult]:
        """Classify a batch of images; never raises for one bad image.

        Parameters
        ----------
        sources : iterable of path-like or bytes
            Image files, or the bytes of uploaded files.
        top, threshold
            As in :func:`rank_labels` (at least one).
        names : sequence of str, optional
            Display names (default: the path, or ``"image <i>"`` for bytes).
        keep_pixels : bool
            Keep each decoded image in its result's ``pixels`` (False for long batches).

        Returns
        -------
        list of ClassificationResult
            One per source, in order; failed images have ``error`` set. Images are
            decoded and scored ``batch_size`` at a time, so memory does not grow with
            the number of images (beyond the results).
        """
        setting = setting_name(top=top, threshold=threshold)
        sources = list(sources)
        if names is not None and len(names) != len(sources):
            raise ValueError(f"Got {len(names)} names for {len(sources)} images; give one name per image.")
        results: list[ClassificationResult] = []
        for start in range(0, len(sources), self.batch_size):
            positions = range(start, min(start + self.batch_size, len(sources)))
            chunk: list[ClassificationResult | None] = []
            decoded: list[tuple[int, str, str, np.ndarray]] = []
            for position in positions:
                source = sources[position]
                if names is not None:
                    name = str(names[position])
                elif isinstance(source, (bytes, bytearray, memoryview)):
                    name = f"image {position + 1}"
                else:
                    name = os.fspath(source)
                digest = None
                try:
                    data = self.read(source)
                    digest = _sha256(data)
                    # a path is decoded from the file so that messages name the file
                    image = self.decode(data if isinstance(source, (bytes, bytearray, memoryview)) else os.fspath(source))
                except Exception as error:  # noqa: BLE001 -- any decoder failure is this file's problem
                    message = (
                        _sentence(error)
                        if isinstance(error, ValueError)
                        else f"The file could not be decoded as an image ({_sentence(error)[:-1]})."
                    )
                    chunk.append(ClassificationResult(image=name, sha256=digest, error=message, setting=setting))
                    continue
                chunk.append(None)
                decoded.append((len(chunk) - 1, name, digest, image))
            if decoded:
                scores = self.scores(np.stack([item[3] for item in decoded]))
                ranked = rank_labels(scores, top=top, threshold=threshold)
                label_names = self.label_names
                for (slot, name, digest, image), row in zip(decoded, ranked):
                    chunk[slot] = ClassificationResult(
                        image=name,
                        sha256=digest,
                        labels=tuple((label_names[index], float(score)) for index, score in row),
                        setting=setting,
                        pixels=image if keep_pixels else None,
                    )
            results.extend(chunk)  # type: ignore[arg-type]
        return results

    def classify_bytes(
        self, content: bytes, name: str, *, top: int | None = None, threshold: float | None = None
    ) -> ClassificationResult:
        """Classify one uploaded file (the callable :class:`workbench.apps.widgets.ClassifyApp` takes)."""
        return self.classify([content], top=top, threshold=threshold, names=[name])[0]
