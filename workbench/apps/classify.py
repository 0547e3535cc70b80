"""Classifying image files and uploads with a trained run: read, hash, decode, score, rank.

:class:`Classifier` runs the whole path for image files or uploaded bytes: read
(with a size limit), SHA-256, decode and resize (:func:`workbench.data.images.load_image`),
score through the run's one scoring path (``run.label_scores``, see
:class:`workbench.method.decoding.LabelScorer`) and rank
(:func:`workbench.method.decoding.rank_labels`, the top ``N`` labels or every label
above a threshold). A file that cannot be classified gives a result with an
``error`` sentence; the other images of the batch are classified.

What ``workbench classify`` does is here too (:func:`classify_files`): :func:`check_request`
(every input checked before any model loads), :func:`format_results` (one block per image;
a name with a control character shown escaped, as ``repr`` shows it) and
:func:`store_results` (after printing, so a store that fails loses no result).

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
from workbench.method.decoders import DECODERS
from workbench.method.decoding import rank_labels, setting_name

__all__ = ["ClassificationResult", "Classifier", "DEFAULT_MAX_BYTES", "DEFAULT_MAX_PIXELS", "printable", "format_results",
           "check_request", "check_store", "store_results", "classify_files"]


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
        ``"top:N"`` and/or ``"threshold:T"`` (see :func:`setting_name`), after the
        decoder's name when it is not the cosine one (``"nnls,threshold:0.5"``).
    pixels : ndarray of shape (size, size, 3), dtype uint8, or None
        The decoded, resized image the model saw (for previews).
    weights : tuple of float, or None
        Greedy and NNLS decoders: each listed label's relative weight in the decoded sum
        (the score the labels were ranked and thresholded by), beside its similarity.
    """

    image: str
    sha256: str | None = None
    labels: tuple[tuple[str, float], ...] = ()
    error: str | None = None
    setting: str | None = None
    pixels: np.ndarray | None = field(default=None, repr=False)
    weights: tuple[float, ...] | None = None

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
        labels = [{"label": name, "similarity": float(score)} for name, score in self.labels]
        for entry, weight in zip(labels, self.weights or ()):
            entry["weight"] = float(weight)
        return {"image": self.image, "sha256": self.sha256, "labels": labels}


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
    decoder : {"cosine", "greedy", "nnls"}, default="cosine"
        How a predicted point becomes labels (:mod:`workbench.method.decoders`); may be
        changed between calls (the upload app's toggle does). Greedy and NNLS need a run
        with ``predict_points`` and ``scores_of_outputs`` (a :class:`TrainedRun`).
    """

    def __init__(
        self,
        run,
        *,
        load_image: Callable | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        batch_size: int = 64,
        decoder: str = "cosine",
    ):
        self.run = run
        self.max_bytes = _checks.integer(max_bytes, "max_bytes")
        self.max_pixels = _checks.integer(max_pixels, "max_pixels")
        self.batch_size = _checks.integer(batch_size, "batch_size")
        self.decoder = decoder
        self._load_image = load_image

    @property
    def decoder(self) -> str:
        """The decoder in use (``"cosine"``, ``"greedy"`` or ``"nnls"``)."""
        return self._decoder

    @decoder.setter
    def decoder(self, name: str) -> None:
        _checks.choice(name, "decoder", DECODERS)
        if name != "cosine" and getattr(self.run, "embedding", None) is None:
            raise ValueError(f"The {name} decoder needs label vectors; this run's {getattr(self.run, 'head', 'sigmoid')} head "
                             "has none (use the cosine decoder).")
        self._decoder = name

    def resolve_threshold(self, threshold):
        """``threshold``, or the run's calibrated micro-F1 threshold of the decoder for ``"auto"``.

        ``"auto"`` on a run without ``calibration.json`` is a ``ValueError`` saying to run
        ``workbench calibrate``.
        """
        if isinstance(threshold, str) and threshold == "auto":
            from workbench.evaluation.calibration import calibrated_threshold

            return calibrated_threshold(self.run.run_dir, decoder=self.decoder)
        return threshold

    @property
    def score_name(self) -> str:
        """What a label's score is: ``"probability"`` (sigmoid heads), ``"score"`` (learned: a linear output) or ``"similarity"`` (cosine)."""
        head = getattr(self.run, "head", None)
        return "probability" if head in ("sigmoid", "sigmoid-lowrank") else "score" if head == "learned" else "similarity"

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
        return self._scores(images)[0]

    def _scores(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The decoder's scores, and for greedy and NNLS the cosine similarities too."""
        images = np.asarray(images)
        if len(images) == 0:
            empty = np.zeros((0, len(self.label_names)), dtype=np.float32)
            return empty, (None if self.decoder == "cosine" else empty)
        scores, similarities = [], []
        for start in range(0, len(images), self.batch_size):
            batch = images[start : start + self.batch_size]
            if self.decoder == "cosine":
                scores.append(np.asarray(self.run.label_scores(batch), dtype=np.float32))
                continue
            outputs = self.run.predict_points(batch)
            scores.append(self.run.scores_of_outputs(outputs, decoder=self.decoder))
            similarities.append(self.run.scores_of_outputs(outputs, decoder="cosine"))
        return np.concatenate(scores, axis=0), (np.concatenate(similarities, axis=0) if similarities else None)

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
            As in :func:`rank_labels` (at least one); ``threshold="auto"`` takes the run's
            calibrated threshold of the decoder in use.
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
        threshold = self.resolve_threshold(threshold)
        setting = setting_name(top=top, threshold=threshold)
        if self.decoder != "cosine":
            setting = f"{self.decoder},{setting}"
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
                scores, similarities = self._scores(np.stack([item[3] for item in decoded]))
                ranked = rank_labels(scores, top=top, threshold=threshold)
                label_names = self.label_names
                for position, ((slot, name, digest, image), row) in enumerate(zip(decoded, ranked)):
                    chunk[slot] = ClassificationResult(
                        image=name,
                        sha256=digest,
                        labels=tuple((label_names[index], float(score if similarities is None else similarities[position, index]))
                                     for index, score in row),
                        setting=setting,
                        pixels=image if keep_pixels else None,
                        weights=None if similarities is None else tuple(float(score) for _, score in row),
                    )
            results.extend(chunk)  # type: ignore[arg-type]
        return results

    def classify_bytes(
        self, content: bytes, name: str, *, top: int | None = None, threshold: float | str | None = None
    ) -> ClassificationResult:
        """Classify one uploaded file (the callable :class:`workbench.apps.widgets.ClassifyApp` takes)."""
        return self.classify([content], top=top, threshold=threshold, names=[name])[0]


# ---------------------------------------------------------------------------------
# the command line's text and store
# ---------------------------------------------------------------------------------
def printable(text) -> str:
    """``text`` for one line of output: as it is, or, when it holds a character that does not print
    (a newline, tab, carriage return or other control character), as ``repr`` shows it (quoted, escaped)."""
    text = str(text)
    return text if text.isprintable() else repr(text)


def _escaped(sentence: str) -> str:
    """A sentence with each character that does not print escaped as ``repr`` would (no quotes added)."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in sentence)


def format_results(results: Sequence[ClassificationResult], *, score_name: str = "similarity") -> str:
    """Results as text, one block per image: its name and SHA-256, then its ranked labels (or one error line).

    Names (of files and labels) with control characters are shown escaped (:func:`printable`),
    so that no name can break a block in two or forge a line of another result.
    """
    lines = []
    for result in results:
        image = printable(result.image)
        if not result.ok:
            lines.append(f"{image}: error: {_escaped(result.error)}")
            continue
        lines.append(f"{image}  (sha256 {result.sha256[:12]}…)")
        if not result.labels:
            lines.append("    no label reaches the threshold")
        names = [printable(name) for name, _ in result.labels]
        width = max(map(len, names), default=0)
        weights = result.weights or [None] * len(result.labels)
        for rank, (name, (_, value), weight) in enumerate(zip(names, result.labels, weights), start=1):
            shown = "" if weight is None else f"weight {weight:.3f}  "
            lines.append(f"  {rank:>3}. {name:<{width}}  {shown}{score_name} {value:.4f}")
    return "\n".join(lines)


def check_request(run_dir, *, top=None, threshold=None, decoder: str = "cosine", store=None, no_store: bool = False):
    """Everything ``workbench classify`` can check before the model loads, each mistake a one-line ``ValueError``.

    The setting (``top``, ``threshold``; ``"auto"`` needs the run's calibration for
    ``decoder``), the run folder and the store (``store``: its path, default
    ``RUN_DIR/results.sqlite``; ``no_store``: none). Returns ``(path, store)``: the store's
    path (``None`` with ``no_store``) and the store when the file exists (:func:`check_store`).
    """
    from workbench.apps.store import default_store_path

    if store and no_store:
        raise ValueError("give --store PATH or --no-store, not both.")
    if threshold != "auto":
        setting_name(top=top, threshold=threshold)
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"{run_dir}: no such run folder; give a folder written by 'workbench train'.")
    if threshold == "auto":
        from workbench.evaluation.calibration import calibrated_threshold

        calibrated_threshold(run_dir, decoder=decoder)
    if no_store:
        return None, None
    path = Path(store or default_store_path(run_dir))
    return path, check_store(path)


def check_store(path):
    """The result store at ``path`` checked before any model loads: an existing file is opened (it must be a
    result store, else a ``ValueError``); for a new one, ``None`` (created only when there is a result to
    store), or a ``ValueError`` when its folder is not writable."""
    from workbench.apps.store import ResultStore

    path = Path(path)
    if path.exists():
        return ResultStore(path)
    if path.parent.exists() and not os.access(path.parent, os.W_OK):
        raise ValueError(f"{path.parent} is not writable; give --store a path you can write, or --no-store.")
    return None


def store_results(results: Sequence[ClassificationResult], *, run, run_dir, path, store=None) -> str | None:
    """Store the classified results of ``run`` (and the run itself) in the result store at ``path``.

    Returns ``None`` when they are stored (or there is none to store), else one sentence saying why
    they could not be (a full disk, a damaged or locked store); nothing is raised for those.
    """
    import sqlite3

    from workbench.apps.store import ResultStore

    if not any(result.ok for result in results):
        return None
    try:
        store = store or ResultStore(path)  # created only now: a failed classify leaves no empty store
        store.add_classifications(results, run_id=store.add_trained_run(run, path=run_dir))
    except (sqlite3.Error, OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return f"could not store the results in {path} ({reason}); every result is printed above."
    return None


def classify_files(run_dir, images, *, top=None, threshold=None, decoder: str = "cosine", as_json: bool = False,
                   store=None, no_store: bool = False, out=None, err=None) -> int:
    """``workbench classify``'s job: check, load the run, classify, print every result, then store them.

    Every input is checked before the model loads (:func:`check_request`); results are printed
    to ``out`` (default: standard output) as text (:func:`format_results`) or, with ``as_json``,
    a JSON list, before the store is touched, so a store that fails loses none of them. Failures
    are one line each on ``err`` (default: standard error).

    Returns
    -------
    int
        The exit status: 0, 1 when some images could not be classified, 3 when the results
        were printed but could not be stored.
    """
    import json
    import sys

    out, err = out or sys.stdout, err or sys.stderr
    store_path, opened = check_request(run_dir, top=top, threshold=threshold, decoder=decoder, store=store, no_store=no_store)
    classifier = Classifier.from_run_dir(run_dir, decoder=decoder)
    results = classifier.classify(images, top=top, threshold=threshold, keep_pixels=False)
    text = (json.dumps([result.to_dict() for result in results], indent=2, ensure_ascii=False) if as_json
            else format_results(results, score_name=classifier.score_name))
    print(text, file=out, flush=True)
    failed = sum(not result.ok for result in results)
    if failed:
        print(f"workbench classify: {failed} of {len(results)} image(s) could not be classified", file=err)
    problem = store_path and store_results(results, run=classifier.run, run_dir=Path(run_dir), path=store_path, store=opened)
    if problem:
        print(f"workbench classify: error: {problem}", file=err)
        return 3
    return 1 if failed else 0
