"""Classifying new images: predictions decoded into ranked labels.

A trained run maps an image to a score per label: the cosine similarity of the
network's output to each label vector (embedding heads) or a probability (sigmoid
head). This module turns those ``(N, C)`` scores into ranked label lists, either the
``top`` best labels or every label scoring at least ``threshold``:

* :func:`rank_labels` ranks a score matrix (vectorised: ``np.argpartition`` picks the
  top labels of every row, only those are sorted);
* :func:`decode_predictions` ranks network outputs against label vectors in batches
  (one matrix product per batch, so memory stays bounded for 17,000 labels);
* :class:`Classifier` runs the whole path for image files or uploaded bytes
  (read, hash, decode, resize, predict, rank). A file that cannot be classified gives
  a result with an ``error`` sentence; the other images of the batch are classified.

Keras is never imported here: the model lives in the run object passed in.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from workbench.data.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS

__all__ = [
    "ClassificationResult",
    "Classifier",
    "rank_labels",
    "decode_predictions",
    "setting_name",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
]


#: Rows of scores ranked at a time by :func:`decode_predictions` (bounds the ``(batch, C)`` buffer).
DEFAULT_DECODE_BATCH = 1024


# ---------------------------------------------------------------------------------
# ranking
# ---------------------------------------------------------------------------------
def _check_setting(top, threshold) -> tuple[int | None, float | None]:
    """Validated ``(top, threshold)``; at least one must be given."""
    if top is None and threshold is None:
        raise ValueError("Give top=N (the N best labels) or threshold=T (every label scoring at least T), or both.")
    if top is not None:
        if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
            raise ValueError(f"top must be a positive integer; got {top!r}.")
        top = int(top)
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)):
            raise ValueError(f"threshold must be a number; got {threshold!r}.")
        threshold = float(threshold)
        if not math.isfinite(threshold):
            raise ValueError(f"threshold must be a finite number; got {threshold!r}.")
    return top, threshold


def setting_name(*, top: int | None = None, threshold: float | None = None) -> str:
    """The setting as stored with a classification: ``"top:5"``, ``"threshold:0.3"`` or both joined by ``,``."""
    top, threshold = _check_setting(top, threshold)
    parts = []
    if top is not None:
        parts.append(f"top:{top}")
    if threshold is not None:
        parts.append(f"threshold:{threshold:g}")
    return ",".join(parts)


def rank_labels(scores, *, top: int | None = None, threshold: float | None = None) -> list[list[tuple[int, float]]]:
    """Ranked labels of every row of a score matrix.

    Parameters
    ----------
    scores : array-like of shape (N, C)
        One score per image and label (cosine similarity or probability); higher is
        better. NaN or infinite scores are refused.
    top : int, optional
        Keep the ``top`` best labels of each row (all ``C`` when ``top >= C``).
    threshold : float, optional
        Keep every label scoring at least ``threshold``. With ``top`` too, keep the
        ``top`` best of those.

    Returns
    -------
    list of N lists of (int, float)
        ``(label_index, score)`` pairs, best first; equal scores in label order
        (so ties at the ``top`` cut-off keep the lower label index).

    Notes
    -----
    Vectorised over rows, never a full sort: the columns are cut into blocks and the
    maximum of every block is taken (one pass over the matrix). For ``top``,
    ``np.partition`` finds the ``top``-th largest block maximum of every row, a lower
    bound of the row's ``top``-th score; for a threshold the bound is the threshold.
    Only blocks whose maximum reaches the bound are compared with it, and only the
    scores that pass are sorted (one ``np.lexsort`` for the whole matrix). A full
    argsort is ``O(C log C)`` per row; this is ``O(C)`` plus the survivors.
    """
    top, threshold = _check_setting(top, threshold)
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be a (num_images, num_labels) matrix; got shape {scores.shape}.")
    if not (np.issubdtype(scores.dtype, np.floating) or np.issubdtype(scores.dtype, np.integer)) or scores.dtype == bool:
        raise ValueError(f"scores must be numbers; got dtype {scores.dtype}.")
    if not np.issubdtype(scores.dtype, np.floating):
        scores = scores.astype(np.float64)
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinite values; check the model outputs.")
    return _rank(scores, top=top, threshold=threshold)


def _rank(
    scores: np.ndarray, *, top: int | None, threshold: float | None, clip: bool = False
) -> list[list[tuple[int, float]]]:
    """:func:`rank_labels` on a validated, finite ``(N, C)`` matrix (``clip``: kept scores clipped to [-1, 1])."""
    num_rows, num_labels = scores.shape
    if num_rows == 0:
        return []
    if num_labels == 0:
        return [[] for _ in range(num_rows)]
    if top is not None and top >= num_labels:
        top = None
    if top is None and threshold is None:
        row_index, columns = np.divmod(np.arange(scores.size), num_labels)
        return _ranked_rows(row_index, columns, scores[row_index, columns], num_rows=num_rows, top=None, clip=clip)

    # Exact candidate filter. Columns are cut into blocks and only blocks whose maximum
    # reaches a row's bound are compared and sorted. For ``top`` the bound is the
    # ``top``-th largest block maximum, a lower bound of the row's ``top``-th score
    # (the ``top`` best blocks hold ``top`` distinct scores at least that large); a
    # threshold raises it.
    block = int(min(256, max(1, num_labels // (8 * (top or 1)))))
    num_blocks = num_labels // block
    full = num_blocks * block
    blocks = scores[:, :full].reshape(num_rows, num_blocks, block)
    block_max = blocks.max(axis=2)
    tail = scores[:, full:]
    if top is None:
        bound = np.full(num_rows, threshold, dtype=scores.dtype)
    else:
        maxima = np.concatenate([block_max, tail.max(axis=1, keepdims=True)], axis=1) if tail.shape[1] else block_max
        if maxima.shape[1] > top:
            bound = np.partition(maxima, maxima.shape[1] - top, axis=1)[:, maxima.shape[1] - top]
        else:
            bound = maxima.min(axis=1)
        if threshold is not None:
            bound = np.maximum(bound, np.asarray(threshold, dtype=bound.dtype))
    bound = bound[:, None]
    block_rows, block_index = np.nonzero(block_max >= bound)
    hit, offset = np.nonzero(blocks[block_rows, block_index] >= bound[block_rows])
    row_index = block_rows[hit]
    columns = block_index[hit] * block + offset
    if tail.shape[1]:
        tail_rows, tail_columns = np.nonzero(tail >= bound)
        row_index = np.concatenate([row_index, tail_rows])
        columns = np.concatenate([columns, tail_columns + full])
    return _ranked_rows(row_index, columns, scores[row_index, columns], num_rows=num_rows, top=top, clip=clip)


def _ranked_rows(
    row_index, columns, values, *, num_rows: int, top: int | None, clip: bool = False
) -> list[list[tuple[int, float]]]:
    """Group ``(row, column, value)`` triples by row, best value first (ties by column); keep ``top`` per row."""
    order = np.lexsort((columns, -values, row_index))
    row_index, columns, values = row_index[order], columns[order], values[order]
    bounds = np.concatenate([[0], np.cumsum(np.bincount(row_index, minlength=num_rows))])
    if top is not None:
        keep = np.arange(len(row_index)) - bounds[row_index] < top
        row_index, columns, values = row_index[keep], columns[keep], values[keep]
        bounds = np.concatenate([[0], np.cumsum(np.bincount(row_index, minlength=num_rows))])
    if clip:  # rounding can put a cosine a hair outside [-1, 1]; clipping keeps the order
        values = np.clip(values, -1.0, 1.0)
    columns = columns.tolist()
    values = values.tolist()
    bounds = bounds.tolist()
    return [list(zip(columns[bounds[r] : bounds[r + 1]], values[bounds[r] : bounds[r + 1]])) for r in range(num_rows)]


def decode_predictions(
    points,
    vectors,
    *,
    top: int | None = None,
    threshold: float | None = None,
    batch_size: int = DEFAULT_DECODE_BATCH,
) -> list[list[tuple[int, float]]]:
    """Rank label vectors by cosine similarity to each predicted point.

    Parameters
    ----------
    points : array-like of shape (N, k)
        Network outputs (points in the label-embedding space).
    vectors : array-like of shape (C, k)
        Label vectors (``LabelEmbedding.vectors``).
    top, threshold
        As in :func:`rank_labels`.
    batch_size : int
        Points scored per matrix product; bounds the temporary ``(batch_size, C)``
        float32 similarity matrix.

    Returns
    -------
    list of N lists of (int, float)
        ``(label_index, cosine_similarity)`` pairs, best first.
    """
    top, threshold = _check_setting(top, threshold)
    points = np.asarray(points, dtype=np.float32)
    vectors = np.asarray(vectors, dtype=np.float32)
    if points.ndim != 2 or vectors.ndim != 2:
        raise ValueError(f"decode_predictions expects points (N, k) and vectors (C, k); got {points.shape} and {vectors.shape}.")
    if points.shape[1] != vectors.shape[1]:
        raise ValueError(
            f"Points have {points.shape[1]} dimensions but label vectors have {vectors.shape[1]}; "
            "use points from a model trained against this embedding."
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")
    if not (np.all(np.isfinite(points)) and np.all(np.isfinite(vectors))):
        raise ValueError("decode_predictions got NaN or infinite values; check the model outputs.")
    # float32 throughout and the label vectors normalised once (``cosine_similarities``
    # of workbench.method.spectral works in float64 per call, three times slower here).
    unit_vectors_t = np.ascontiguousarray(_unit_rows(vectors).T)
    ranked: list[list[tuple[int, float]]] = []
    for start in range(0, len(points), int(batch_size)):
        similarities = _unit_rows(points[start : start + batch_size]) @ unit_vectors_t
        ranked.extend(_rank(similarities, top=top, threshold=threshold, clip=True))
    return ranked


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    """float32 rows scaled to unit norm; zero rows stay zero (similarity 0, never NaN)."""
    norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix, dtype=np.float64)).astype(np.float32)[:, None]
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


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
        to ``(N, C)`` float32 scores (see :func:`workbench.learning.training.load_run`).
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
        for name, value in (("max_bytes", max_bytes), ("max_pixels", max_pixels)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}.")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")
        self.run = run
        self.max_bytes = int(max_bytes)
        self.max_pixels = int(max_pixels)
        self.batch_size = int(batch_size)
        #: Score with ``model.predict_on_batch`` and cached unit label vectors (False: ``run.label_scores``).
        self.use_model_directly = True
        self._unit_vectors_t = None
        self._load_image = load_image

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, **options) -> "Classifier":
        """Load a run directory written by ``workbench train`` (imports Keras)."""
        from workbench.learning.training import load_run

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
        """``(N, C)`` float32 scores of ``(N, size, size, 3)`` uint8 images, in batches of ``batch_size``.

        The same scores as ``run.label_scores`` (cosine similarity to each label
        vector, or the sigmoid head's probabilities), computed faster for the small
        batches of uploads: the model runs through ``model.predict_on_batch`` (a
        compiled inference step; ``model.predict`` sets up a data pipeline per call,
        some 200 ms) and the label vectors are normalised once, not per call. With
        :attr:`use_model_directly` False, or a run without ``model``, it calls
        ``run.label_scores``.
        """
        images = np.asarray(images)
        if len(images) == 0:
            return np.zeros((0, len(self.label_names)), dtype=np.float32)
        model = getattr(self.run, "model", None)
        direct = self.use_model_directly and model is not None
        parts = []
        for start in range(0, len(images), self.batch_size):
            batch = images[start : start + self.batch_size]
            if not direct:
                parts.append(np.asarray(self.run.label_scores(batch), dtype=np.float32))
                continue
            outputs = np.asarray(model.predict_on_batch(batch), dtype=np.float32)
            unit_vectors_t = self._unit_label_vectors_t()
            parts.append(outputs if unit_vectors_t is None else _unit_rows(outputs) @ unit_vectors_t)
        return np.concatenate(parts, axis=0)

    def _unit_label_vectors_t(self) -> np.ndarray | None:
        """The run's label vectors, unit-normalised and transposed ``(k, C)``, computed once (None for sigmoid)."""
        embedding = getattr(self.run, "embedding", None)
        if embedding is None:
            return None
        if self._unit_vectors_t is None:
            vectors = np.asarray(embedding.vectors, dtype=np.float32)
            self._unit_vectors_t = np.ascontiguousarray(_unit_rows(vectors).T)
        return self._unit_vectors_t

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
