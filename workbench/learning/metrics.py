"""Ranking metrics for multi-label classification, and the per-epoch evaluation callback.

Every metric takes a score matrix ``scores`` of shape ``(N, C)`` (one score per image
and label, higher = more likely) and the true labels as a multi-hot matrix of the
same shape (a scipy CSR label matrix, or any dense 0/1 array).

Ranking and ties
    Each image ranks its ``C`` labels by decreasing score; equal scores are broken by
    the label's column index (lower first), so every ranking is deterministic.

AP@k and MAP@k (per image, then averaged over images)
    For one image with ``R ≥ 1`` relevant labels, let ``rel(r)`` be 1 when the label
    at rank ``r`` is relevant and ``P@r`` the share of relevant labels among the top
    ``r``. Then

    ``AP@k = (1 / min(k, R)) · Σ_{r=1..k} P@r · rel(r)``

    and ``MAP@k`` is the mean of ``AP@k`` over the images with at least one label.
    ``AP@k`` is 1 when the ``min(k, R)`` first ranks are all relevant. ``MAP@100``
    is the metric of the paper. With ``k ≥ C`` and no tied scores it equals
    scikit-learn's ``label_ranking_average_precision_score``.

Macro AP (per label, then averaged over labels)
    Each label ranks the ``N`` images by decreasing score; its average precision is
    scikit-learn's ``average_precision_score`` (the step-wise area under the
    precision-recall curve, ``Σ_n (R_n − R_{n−1}) P_n``, tied scores forming one
    threshold). Macro AP is the mean over labels with at least one positive image.

P@k and R@k
    ``P@k`` = relevant labels among the top ``k`` / ``k``; ``R@k`` = relevant labels
    among the top ``k`` / ``R``. Both are averaged over the images with at least one
    label.

Images without labels have no relevant label to rank: they are left out of MAP, P@k
and R@k (not counted as zero). Labels without positive images are left out of macro
AP. This module imports only numpy and scipy; :class:`EvaluationCallback` (a Keras
callback) is built on first access, so importing the module never loads Keras.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import scipy.sparse as sp

__all__ = [
    "label_scores",
    "average_precision_at_k",
    "mean_average_precision",
    "per_label_average_precision",
    "macro_average_precision",
    "precision_at_k",
    "recall_at_k",
    "evaluate_scores",
    "EvaluationCallback",  # noqa: F822  (built lazily by __getattr__, so importing never loads Keras)
]

#: Rows (images) ranked at once; bounds the memory of the dense blocks to a few MB.
_ROW_CHUNK = 2048


# ---------------------------------------------------------------------------------
# scores
# ---------------------------------------------------------------------------------
def label_scores(outputs: np.ndarray, *, vectors: np.ndarray | None = None) -> np.ndarray:
    """Scores for all ``C`` labels per image from a model's outputs.

    Parameters
    ----------
    outputs : ndarray of shape (N, k) or (N, C)
        Model outputs: points in a label-embedding space (pmi, random, identity
        heads), or per-label probabilities (sigmoid head).
    vectors : ndarray of shape (C, k), optional
        The label embedding of an embedding head. When given, the score of label
        ``c`` is the cosine between the output and ``vectors[c]``
        (:func:`workbench.method.spectral.cosine_similarities`: 0 for zero vectors); when
        ``None`` the outputs already are per-label scores and are returned as they are.

    Returns
    -------
    ndarray of shape (N, C), dtype float32
    """
    if vectors is None:
        return np.asarray(outputs, dtype=np.float32)
    from workbench.method.spectral import cosine_similarities

    return cosine_similarities(outputs, vectors)


# ---------------------------------------------------------------------------------
# input checking
# ---------------------------------------------------------------------------------
def _check(scores, labels) -> tuple[np.ndarray, sp.csr_matrix]:
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be a 2-D (N, C) array; got shape {scores.shape}.")
    if not np.issubdtype(scores.dtype, np.number) or np.issubdtype(scores.dtype, np.complexfloating):
        raise ValueError(f"scores must be real numbers; got dtype {scores.dtype}.")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinite values; check the model outputs (did training diverge?).")
    labels = sp.csr_matrix(labels)
    if labels.shape != scores.shape:
        raise ValueError(
            f"labels have shape {labels.shape} but scores have shape {scores.shape}; give one row per image "
            "and one column per label in both."
        )
    labels.sum_duplicates()
    labels.eliminate_zeros()
    if labels.nnz and (labels.data != 1).any():
        labels = labels.copy()
        labels.data = (labels.data != 0).astype(np.uint8)
        labels.eliminate_zeros()
    return scores, labels


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}.")
    return int(k)


def _ranked_relevance(scores: np.ndarray, labels: sp.csr_matrix, *, k: int):
    """Yield ``(rows, relevance)`` chunks: relevance of the top ``k`` ranks, (n, k) bool."""
    k = min(k, scores.shape[1])
    for start in range(0, scores.shape[0], _ROW_CHUNK):
        stop = min(start + _ROW_CHUNK, scores.shape[0])
        block = scores[start:stop]
        # Stable sort of the negated scores: ties go to the lower column index.
        order = np.argsort(-block.astype(np.float64), axis=1, kind="stable")[:, :k]
        dense = labels[start:stop].toarray().astype(bool)
        yield slice(start, stop), np.take_along_axis(dense, order, axis=1)


# ---------------------------------------------------------------------------------
# per-image ranking metrics
# ---------------------------------------------------------------------------------
def average_precision_at_k(scores, labels, *, k: int = 100) -> np.ndarray:
    """AP@k of every image (see the module docstring for the definition).

    Parameters
    ----------
    scores : array-like of shape (N, C)
        Label scores, higher = more likely.
    labels : scipy sparse matrix or array-like of shape (N, C)
        Multi-hot true labels (non-zero = relevant).
    k : int, default=100
        Ranks considered; ``k > C`` behaves as ``k = C``.

    Returns
    -------
    ndarray of shape (N,), dtype float64
        AP@k per image, in [0, 1]; NaN for images without labels.
    """
    scores, labels = _check(scores, labels)
    k = _check_k(k)
    num_relevant = np.diff(labels.indptr)
    result = np.full(scores.shape[0], np.nan)
    for rows, relevance in _ranked_relevance(scores, labels, k=k):
        hits = np.cumsum(relevance, axis=1)
        precision = hits / np.arange(1, relevance.shape[1] + 1)
        totals = (precision * relevance).sum(axis=1)
        relevant = num_relevant[rows]
        with np.errstate(invalid="ignore", divide="ignore"):
            values = totals / np.minimum(k, relevant)
        result[rows] = np.where(relevant > 0, values, np.nan)
    return result


def mean_average_precision(scores, labels, *, k: int = 100) -> float:
    """MAP@k: the mean of :func:`average_precision_at_k` over images with labels.

    Parameters
    ----------
    scores : array-like of shape (N, C)
    labels : scipy sparse matrix or array-like of shape (N, C)
    k : int, default=100
        ``MAP@100`` is the paper's metric.

    Returns
    -------
    float
        In [0, 1]; NaN when no image has a label.
    """
    values = average_precision_at_k(scores, labels, k=k)
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else float("nan")


def _hits_at_k(scores, labels, k):
    scores, labels = _check(scores, labels)
    k = _check_k(k)
    num_relevant = np.diff(labels.indptr)
    hits = np.zeros(scores.shape[0], dtype=np.int64)
    for rows, relevance in _ranked_relevance(scores, labels, k=k):
        hits[rows] = relevance.sum(axis=1)
    return hits, num_relevant, k


def precision_at_k(scores, labels, *, k: int = 5) -> float:
    """P@k: relevant labels among the top ``k`` divided by ``k``, mean over images with labels.

    Parameters
    ----------
    scores : array-like of shape (N, C)
    labels : scipy sparse matrix or array-like of shape (N, C)
    k : int, default=5

    Returns
    -------
    float
        In [0, 1]; NaN when no image has a label.
    """
    hits, num_relevant, k = _hits_at_k(scores, labels, k)
    keep = num_relevant > 0
    return float((hits[keep] / k).mean()) if keep.any() else float("nan")


def recall_at_k(scores, labels, *, k: int = 5) -> float:
    """R@k: relevant labels among the top ``k`` divided by all relevant labels, mean over images with labels.

    Parameters
    ----------
    scores : array-like of shape (N, C)
    labels : scipy sparse matrix or array-like of shape (N, C)
    k : int, default=5

    Returns
    -------
    float
        In [0, 1]; NaN when no image has a label.
    """
    hits, num_relevant, k = _hits_at_k(scores, labels, k)
    keep = num_relevant > 0
    return float((hits[keep] / num_relevant[keep]).mean()) if keep.any() else float("nan")


# ---------------------------------------------------------------------------------
# per-label metrics
# ---------------------------------------------------------------------------------
def per_label_average_precision(scores, labels) -> np.ndarray:
    """Average precision of every label over the images (scikit-learn's definition).

    Parameters
    ----------
    scores : array-like of shape (N, C)
    labels : scipy sparse matrix or array-like of shape (N, C)

    Returns
    -------
    ndarray of shape (C,), dtype float64
        ``average_precision_score(labels[:, c], scores[:, c])``; NaN for labels
        without positive images.
    """
    scores, labels = _check(scores, labels)
    num_images, num_labels = scores.shape
    labels = labels.tocsc()
    positives = np.diff(labels.indptr)
    result = np.full(num_labels, np.nan)
    positions = np.arange(1, num_images + 1, dtype=np.float64)[:, None]
    column_chunk = max(1, 4_000_000 // max(num_images, 1))
    for start in range(0, num_labels, column_chunk):
        stop = min(start + column_chunk, num_labels)
        block = scores[:, start:stop].astype(np.float64)
        relevant = labels[:, start:stop].toarray().astype(bool)
        order = np.argsort(-block, axis=0, kind="stable")
        sorted_scores = np.take_along_axis(block, order, axis=0)
        sorted_relevant = np.take_along_axis(relevant, order, axis=0)
        precision = np.cumsum(sorted_relevant, axis=0) / positions
        # Tied scores form one threshold: every positive gets the precision at the
        # end of its tie group (the next position whose successor has a lower score).
        group_end = np.ones_like(sorted_relevant)
        group_end[:-1] = sorted_scores[:-1] != sorted_scores[1:]
        end_index = np.where(group_end, np.arange(num_images)[:, None], num_images)
        end_index = np.minimum.accumulate(end_index[::-1], axis=0)[::-1]
        precision_at_end = np.take_along_axis(precision, end_index, axis=0)
        totals = (precision_at_end * sorted_relevant).sum(axis=0)
        count = positives[start:stop]
        with np.errstate(invalid="ignore", divide="ignore"):
            result[start:stop] = np.where(count > 0, totals / count, np.nan)
    return result


def macro_average_precision(scores, labels) -> float:
    """Macro AP: mean of :func:`per_label_average_precision` over labels with positives.

    Returns
    -------
    float
        In [0, 1]; NaN when no label has a positive image.
    """
    values = per_label_average_precision(scores, labels)
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else float("nan")


def evaluate_scores(scores, labels, *, map_k: int = 100, precision_k: int = 5) -> dict:
    """Every metric of one evaluation, as a JSON-ready dict.

    Returns
    -------
    dict
        ``map_at_{map_k}``, ``macro_ap``, ``precision_at_{precision_k}``,
        ``recall_at_{precision_k}`` (floats; NaN where undefined).
    """
    scores, labels = _check(scores, labels)
    return {
        f"map_at_{map_k}": mean_average_precision(scores, labels, k=map_k),
        "macro_ap": macro_average_precision(scores, labels),
        f"precision_at_{precision_k}": precision_at_k(scores, labels, k=precision_k),
        f"recall_at_{precision_k}": recall_at_k(scores, labels, k=precision_k),
    }


# ---------------------------------------------------------------------------------
# the Keras callback (built lazily: importing this module never loads Keras)
# ---------------------------------------------------------------------------------
_CALLBACK_CLASS = None


def _evaluation_callback_class():
    global _CALLBACK_CLASS
    if _CALLBACK_CLASS is not None:
        return _CALLBACK_CLASS
    import keras

    class EvaluationCallback(keras.callbacks.Callback):
        """Evaluate on a validation split after every epoch and record the curves.

        Parameters
        ----------
        inputs : ndarray of shape (N, H, W, 3), dtype uint8, or keras.utils.PyDataset
            Validation images (or batches of them, images only), in the order of
            ``labels``' rows.
        labels : scipy sparse matrix of shape (N, C)
            Their multi-hot labels.
        vectors : ndarray of shape (C, k), optional
            The label embedding of an embedding head (scores are cosines); ``None``
            for the sigmoid head (scores are the outputs).
        batch_size : int, default=256
            Prediction batch size when ``inputs`` is an array.
        map_k, precision_k : int
            The ``k`` of MAP@k and of P@k/R@k.
        history : list of dict, optional
            Records of earlier epochs (when resuming); new records are appended.
        verbose : int, default=1
            Print one line per epoch when positive.
        print_function : callable, default=print

        Attributes
        ----------
        history : list of dict
            One record per epoch: ``epoch`` (1-based), ``loss``, ``map_at_{map_k}``,
            ``macro_ap``, ``precision_at_{precision_k}``, ``recall_at_{precision_k}``,
            ``seconds`` (wall time of the epoch's training) and ``eval_seconds``;
            undefined values (NaN) are stored as ``None`` so records are valid JSON.
            The record is also merged into the epoch's ``logs`` for later callbacks.
        """

        def __init__(
            self,
            *,
            inputs,
            labels,
            vectors=None,
            batch_size: int = 256,
            map_k: int = 100,
            precision_k: int = 5,
            history: list | None = None,
            verbose: int = 1,
            print_function: Callable[[str], None] = print,
        ):
            super().__init__()
            self.inputs = inputs
            self.labels = sp.csr_matrix(labels)
            self.vectors = None if vectors is None else np.asarray(vectors, dtype=np.float32)
            self.batch_size = int(batch_size)
            self.map_k = _check_k(map_k)
            self.precision_k = _check_k(precision_k)
            self.history = list(history or [])
            self.verbose = verbose
            self.print_function = print_function
            self._epoch_start = None

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch_start = time.perf_counter()

        def evaluate_model(self) -> dict:
            """The metrics of the current model on the validation split."""
            if isinstance(self.inputs, np.ndarray):
                outputs = self.model.predict(self.inputs, batch_size=self.batch_size, verbose=0)
            else:
                outputs = self.model.predict(self.inputs, verbose=0)
            scores = label_scores(np.asarray(outputs), vectors=self.vectors)
            return evaluate_scores(scores, self.labels, map_k=self.map_k, precision_k=self.precision_k)

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - (self._epoch_start or time.perf_counter())
            start = time.perf_counter()
            metrics = self.evaluate_model()
            record = {"epoch": int(epoch) + 1}
            if logs and "loss" in logs:
                record["loss"] = _json_number(logs["loss"])
            record.update({key: _json_number(value) for key, value in metrics.items()})
            record["seconds"] = round(seconds, 3)
            record["eval_seconds"] = round(time.perf_counter() - start, 3)
            self.history.append(record)
            if logs is not None:
                logs.update({key: value for key, value in record.items() if key != "epoch" and value is not None})
            if self.verbose:
                loss = f"loss {float(logs['loss']):.4f}  " if logs and "loss" in logs else ""
                self.print_function(
                    f"epoch {record['epoch']}: {loss}MAP@{self.map_k} {metrics[f'map_at_{self.map_k}']:.4f}  "
                    f"macro AP {metrics['macro_ap']:.4f}  P@{self.precision_k} "
                    f"{metrics[f'precision_at_{self.precision_k}']:.4f}  R@{self.precision_k} "
                    f"{metrics[f'recall_at_{self.precision_k}']:.4f}  ({seconds:.1f} s train, "
                    f"{record['eval_seconds']:.1f} s eval)"
                )

    EvaluationCallback.__module__ = __name__
    _CALLBACK_CLASS = EvaluationCallback
    return EvaluationCallback


def _json_number(value):
    """A float, or ``None`` for NaN and infinities (JSON has neither)."""
    value = float(value)
    return value if np.isfinite(value) else None


def __getattr__(name):
    if name == "EvaluationCallback":
        return _evaluation_callback_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
